"""A forged `invokedBy` is judged like any other actor: the quarantine or the rollback happens.

Only the AWS services in connect_guard.principals.EXEMPT_SERVICES exempt (tests/unit/test_exemptions.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connect_guard.responders import role_quarantine
from connect_guard.runtime import build_pipeline
from tests.conftest import load_event, with_new_event_id
from tests.integration.test_profile_rollback import IAM_USER, connect_event, instance, pipeline  # noqa: F401

ACCOUNT = "111122223333"
QUARANTINE_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/connect-guard/connect-guard-quarantine"


# ---- quarantine: a forged invokedBy is quarantined like anyone ------------------------------------
@pytest.mark.parametrize("invoked_by", ["attacker.example.com", "evil.amazonaws.com"])
def test_a_forged_invoked_by_does_not_save_the_actor_from_quarantine(aws, invoked_by: str) -> None:
    event = with_new_event_id(load_event("quarantine/delete-role-connect-slr-denied-iam-user.json"))
    event["detail"]["userIdentity"]["invokedBy"] = invoked_by  # IAM user mallory.ops
    result = build_pipeline(role_quarantine.build, aws.settings(response_mode="enforce"), aws.clients).process(event)

    assert (result["outcome"], result["severity"]) == ("quarantined", "CRITICAL")
    iam = aws.account_session(ACCOUNT).client("iam")
    attached = [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName="mallory.ops")["AttachedPolicies"]]
    assert attached == [QUARANTINE_POLICY]
    (message,) = aws.inbox()
    finding = json.loads(message["Message"])
    assert finding["actor"]["invoked_by"] == invoked_by  # shown to the analyst, not trusted
    assert not [r for r in finding["reasons"] if "AWS service" in r]


def test_an_aws_service_identity_with_an_unknown_service_is_critical_not_excused(aws) -> None:
    event = with_new_event_id(load_event("quarantine/delete-role-by-service.json"))
    event["detail"]["userIdentity"] = {"type": "AWSService", "invokedBy": "evil.amazonaws.com"}
    result = build_pipeline(role_quarantine.build, aws.settings(response_mode="enforce"), aws.clients).process(event)

    assert (result["outcome"], result["severity"]) == ("alerted", "CRITICAL")  # was HIGH "an AWS service"
    (message,) = aws.inbox()
    reasons = json.loads(message["Message"])["reasons"]
    assert "a AWSService principal cannot be quarantined automatically; act by hand" in reasons


def test_the_genuine_cloudformation_sample_is_still_alerted_without_a_quarantine(aws) -> None:
    event = with_new_event_id(load_event("quarantine/delete-role-by-service.json"))
    result = build_pipeline(role_quarantine.build, aws.settings(response_mode="enforce"), aws.clients).process(event)
    assert (result["outcome"], result["severity"]) == ("alerted", "HIGH")


# ---- rollback: only the replication service itself is left alone --------------------------------
@pytest.mark.parametrize(
    "identity",
    [
        {**IAM_USER, "invokedBy": "synchronization.connect.amazonaws.com"},  # the right name, the wrong type
        {"type": "AWSService", "invokedBy": "synchronization.evil.amazonaws.com"},
        {"type": "AWSService", "invokedBy": "attacker.example.com"},
    ],
    ids=["iam user claiming replication", "lookalike service", "foreign service"],
)
def test_a_forged_replication_claim_is_rolled_back(aws, instance, identity: dict[str, Any]) -> None:  # noqa: F811
    params = instance.escalate_user()
    result = pipeline(aws).process(connect_event("UpdateUserSecurityProfiles", params, identity))

    assert (result["outcome"], result["severity"]) == ("rolled_back", "CRITICAL")
    assert instance.user_profiles() == {instance.agent}


def test_genuine_replication_is_still_left_to_its_source_region(aws, instance) -> None:  # noqa: F811
    params = instance.escalate_user()
    identity = {"type": "AWSService", "invokedBy": "synchronization.connect.amazonaws.com"}
    result = pipeline(aws).process(connect_event("UpdateUserSecurityProfiles", params, identity))
    assert result["outcome"] == "ignored" and "replication" in result["reason"]
    assert instance.user_profiles() == {instance.agent, instance.admin}
