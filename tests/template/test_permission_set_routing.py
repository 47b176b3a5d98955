"""IAM Identity Center permission-set events: routed by the template's own patterns to policy-alerts,
succeeded or denied, and nothing that only looks like them."""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard.responders.permission_sets import EVENTS
from connect_guard_tools.routing import compile_pattern
from connect_guard_tools.template import rule_routes
from tests.template.stack import RULES, T, props

PERMISSION_SET_EVENTS = sorted(EVENTS)


def _event(source: str, event_source: str, event_name: str, **detail: Any) -> dict[str, Any]:
    return {
        "source": source,
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": event_source, "eventName": event_name, **detail},
    }


def matching(event: dict[str, Any]) -> set[str]:
    return {
        n
        for n, r in RULES.items()
        if "EventPattern" in r["Properties"] and compile_pattern(r["Properties"]["EventPattern"])(event)
    }


def test_the_rule_lists_exactly_the_events_the_responder_handles() -> None:
    pattern = props("PermissionSetRule")["EventPattern"]
    assert pattern["source"] == ["aws.sso"]
    assert pattern["detail"]["eventSource"] == ["sso.amazonaws.com"]
    assert sorted(pattern["detail"]["eventName"]) == PERMISSION_SET_EVENTS
    route = {r.rule: r for r in rule_routes(T)}["PermissionSetRule"]
    assert (route.queue, route.function, route.responder) == (
        "PolicyAlertsQueue",
        "PolicyAlertsFunction",
        "policy_alerts",
    )


@pytest.mark.parametrize("event_name", PERMISSION_SET_EVENTS)
def test_each_event_reaches_the_permission_set_rule_only_succeeded_or_denied(event_name: str) -> None:
    event = _event("aws.sso", "sso.amazonaws.com", event_name)
    assert matching(event) == {"PermissionSetRule"}
    denied = _event("aws.sso", "sso.amazonaws.com", event_name, errorCode="AccessDenied", requestParameters=None)
    assert matching(denied) == {"PermissionSetRule"}


@pytest.mark.parametrize(
    "event",
    [
        _event("aws.iam", "iam.amazonaws.com", "AttachManagedPolicyToPermissionSet"),  # IAM has no such call
        _event("aws.sso", "iam.amazonaws.com", "CreateAccountAssignment"),  # a forged mix
        _event("aws.iam", "sso.amazonaws.com", "CreateAccountAssignment"),
        _event("aws.sso", "sso.amazonaws.com", "AttachManagedPolicyToPermissionSets"),  # look-alike names
        _event("aws.sso", "sso.amazonaws.com", "createaccountassignment"),
        _event("aws.sso", "sso.amazonaws.com", "DetachManagedPolicyFromPermissionSet"),  # a de-escalation
        _event("aws.sso", "sso.amazonaws.com", "ListPermissionSets"),  # a read
        _event("aws.sso-directory", "sso-directory.amazonaws.com", "CreateAccountAssignment"),
    ],
)
def test_look_alikes_and_neighbours_are_noise(event: dict[str, Any]) -> None:
    assert "PermissionSetRule" not in matching(event)


def test_the_rules_deliveries_are_admitted_by_the_queue_and_the_dlq_only_from_it() -> None:
    arn = {"Fn::GetAtt": ["PermissionSetRule", "Arn"]}
    statements = props("PolicyAlertsQueuePolicy")["PolicyDocument"]["Statement"]
    allow = next(s for s in statements if s["Effect"] == "Allow")
    deny = next(s for s in statements if s.get("Sid") == "DenyEveryOtherSender")
    assert arn in allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert arn in deny["Condition"]["ArnNotEquals"]["aws:SourceArn"]
    (target,) = props("PermissionSetRule")["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeliveryDLQ", "Arn"]}}
    dlq = props("EventDeliveryDLQPolicy")["PolicyDocument"]["Statement"]
    assert all(arn in s["Condition"][op]["aws:SourceArn"] for s in dlq for op in s["Condition"] if "Arn" in op)
