"""Routing of the Connect user takeover events (connect_user_guard) by the template's patterns."""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard_tools.routing import compile_pattern
from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.conftest import load_event
from tests.template.stack import RULES, props

USER = "arn:aws:connect:us-east-1:111122223333:instance/i-1/agent/u-1"
ENCODED = USER.replace(":", "%3A").replace("/", "%2F")


def event(name: str, params: dict[str, Any] | None, **detail: Any) -> dict[str, Any]:
    return {
        "source": "aws.connect",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": "connect.amazonaws.com", "eventName": name, "requestParameters": params, **detail},
    }


def matching(sample: dict[str, Any]) -> set[str]:
    return {n for n, r in RULES.items() if compile_pattern(r["Properties"]["EventPattern"])(sample)}


@pytest.mark.parametrize("arn", [USER, ENCODED, ENCODED.replace("%2F", "%2f")])
@pytest.mark.parametrize("name", ["TagResource", "UntagResource"])
def test_tags_of_a_user_reach_the_rollback_rule_only(name: str, arn: str) -> None:
    assert matching(event(name, {"resourceArn": arn})) == {"ProfileRollbackRule"}


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:connect:us-east-1:111122223333:instance/i-1",
        "arn:aws:connect:us-east-1:111122223333:instance/i-1/queue/q-1",
        "arn:aws:connect:us-east-1:111122223333:instance/i-1/agent-state/s-1",
        "arn%3Aaws%3Aconnect%3Aus-east-1%3A111122223333%3Ainstance%2Fi-1%2Frouting-profile%2Fr-1",
    ],
)
def test_tags_of_other_connect_resources_are_not_routed_to_the_rollback(arn: str) -> None:
    assert "ProfileRollbackRule" not in matching(event("TagResource", {"resourceArn": arn}))


def test_denied_tag_calls_with_null_parameters_are_routed() -> None:
    assert matching(event("TagResource", None, errorCode="AccessDenied")) == {"ProfileRollbackRule"}
    assert "ProfileRollbackRule" not in matching(event("TagResource", None))


@pytest.mark.parametrize("name", ["UpdateUserIdentityInfo", "UpdateUserHierarchy"])
def test_identity_and_hierarchy_changes_are_routed_succeeded_or_denied(name: str) -> None:
    assert matching(event(name, {"InstanceId": "i-1", "UserId": "u-1"})) == {"ProfileRollbackRule"}
    assert matching(event(name, None, errorCode="AccessDenied")) == {"ProfileRollbackRule"}


def test_the_connect_canary_is_not_routed_to_the_rollback() -> None:
    canary = load_event("liveness/connect-canary-after-silence.json")
    assert "ProfileRollbackRule" not in matching(canary)


def test_the_member_stack_forwards_what_the_rollback_rule_matches() -> None:
    member = load_template(PROJECT_ROOT / "member" / "template.yaml")
    forward = member["Resources"]["ForwardProfileRollbackRule"]["Properties"]["EventPattern"]
    assert forward == props("ProfileRollbackRule")["EventPattern"]
