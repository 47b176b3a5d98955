"""An escalation whose Connect user, profile or instance does not resolve is alerted: what the
event claimed, that the state could not be read, and that nothing was done. Never dropped."""

from __future__ import annotations

import json
from typing import Any

from connect_guard.baseline import BaselineStore, InstanceBaseline, ProfileBaseline, UserBaseline
from connect_guard.responders import profile_rollback
from connect_guard.runtime import build_pipeline
from tests.integration.test_profile_rollback import ACCOUNT, INSTANCE, REGION, Instance, connect_event
from tests.integration.test_profile_rollback import settings as rollback_settings

GONE_INSTANCE = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"  # baselined, then deleted from Connect


def process(aws, event: dict[str, Any], **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = rollback_settings(aws, response_mode="enforce", **overrides)
    result = build_pipeline(profile_rollback.build, settings, aws.clients).process(event)
    (message,) = aws.inbox()
    return result, json.loads(message["Message"])


def test_an_escalation_of_a_user_that_does_not_exist_is_alerted_with_what_the_event_claimed(aws):
    instance = Instance(aws)
    params = {
        "InstanceId": INSTANCE,
        "UserId": "a0a0a0a0-0000-4000-8000-00000000dead",
        "SecurityProfileIds": [instance.admin],
    }
    result, finding = process(aws, connect_event("UpdateUserSecurityProfiles", params))
    assert (result["outcome"], result["severity"]) == ("alerted", "HIGH")
    assert finding["title"] == "Connect change not assessed: UpdateUserSecurityProfiles by mallory"
    assert finding["reasons"][0].startswith(
        "the Connect user a0a0a0a0-0000-4000-8000-00000000dead (instance "
        f"{INSTANCE}) named by the event could not be read (DescribeUser: "
    )
    assert finding["reasons"][0].endswith("no rollback attempted, review by hand")
    assert finding["reasons"][1] == f"the event claims SecurityProfileIds: {instance.admin}"
    assert finding["actions"] == []
    assert instance.updates() == []  # nothing written


def test_an_escalation_of_a_profile_that_does_not_exist_is_alerted(aws):
    Instance(aws)
    params = {
        "InstanceId": INSTANCE,
        "SecurityProfileId": "b1b1b1b1-0000-4000-8000-00000000dead",
        "Permissions": ["Users.Edit", "Users.Delete"],
    }
    result, finding = process(aws, connect_event("UpdateSecurityProfile", params))
    assert result["severity"] == "HIGH"
    assert "the Connect security profile b1b1b1b1-0000-4000-8000-00000000dead" in finding["reasons"][0]
    assert finding["reasons"][1] == "the event claims Permissions: Users.Edit, Users.Delete"


def test_an_escalation_in_an_instance_that_no_longer_exists_is_alerted(aws):
    arn = f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{GONE_INSTANCE}"
    baseline = InstanceBaseline(arn)
    baseline.profiles["p-1"] = ProfileBaseline("p-1", "Agent", frozenset({"BasicAgentAccess"}))
    baseline.users["u-1"] = UserBaseline("u-1", "m.garcia", frozenset({"p-1"}))
    BaselineStore(aws.clients.dynamodb, aws.baseline_table).approve_instance(baseline, "test")
    params = {"InstanceId": GONE_INSTANCE, "UserId": "u-1", "SecurityProfileIds": "***"}
    result, finding = process(aws, connect_event("UpdateUserSecurityProfiles", params), connect_instance_arns=(arn,))
    assert result["severity"] == "HIGH"
    assert f"(instance {GONE_INSTANCE}) named by the event could not be read" in finding["reasons"][0]
    assert "Instance not found" in finding["reasons"][0]
    assert finding["reasons"][1] == "the event claims SecurityProfileIds: (redacted in CloudTrail)"


def test_an_escalation_that_would_leave_a_user_without_a_profile_and_no_fallback_is_critical(aws):
    instance = Instance(aws)
    created = instance.fake.add_user(INSTANCE, "new.admin", [instance.admin])  # not in the baseline
    event = connect_event(
        "CreateUser", {"InstanceId": INSTANCE, "Username": "new.admin", "SecurityProfileIds": [instance.admin]}
    )
    event["detail"]["responseElements"] = {"UserId": created}
    result, finding = process(aws, event, fallback_security_profile_name="Trainee")
    assert result["severity"] == "CRITICAL"
    assert "fallback security profile 'Trainee' not found: the escalation is NOT rolled back" in finding["reasons"][0]
    assert "the event claims Username: new.admin" in finding["reasons"]
    assert set(instance.fake.user(INSTANCE, created)["SecurityProfileIds"]) == {instance.admin}
