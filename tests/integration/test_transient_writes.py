"""A write refused for a passing reason (5xx, throttling) is retried, never reported as a failed
action; a write that timed out after the service applied it is re-read before it is reported.

Each case: the first receive meets the fault, SQS delivers the message again, and the finding
the SOC gets agrees with the state after (exactly one action, titled as made).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connect_guard.aws_errors import transient
from connect_guard.responders import profile_rollback, role_quarantine
from tests.integration import test_role_quarantine
from tests.integration.delivery import Refuse, TimeOut, sqs_handler
from tests.integration.test_profile_rollback import Instance, connect_event
from tests.integration.test_profile_rollback import settings as rollback_settings
from tests.integration.test_role_quarantine import POLICY_ARN, assumed, attached, iam_event, user

iam = test_role_quarantine.iam  # the fixture: IAM with the sample users and roles
SSO_PATH = "/aws-reserved/sso.amazonaws.com/"
SSO_ROLE = "AWSReservedSSO_ConnectAdmin_0a1b2c3d4e5f6a7b"
ZOE = "zoe@example.com"


def alerts(aws) -> list[dict[str, Any]]:
    return [json.loads(m["Message"]) for m in aws.inbox()]


def deletion_by(actor: dict[str, Any]) -> dict[str, Any]:
    return iam_event("DeleteRole", actor, {"roleName": "ConnectAgentFederation"}).model_dump(mode="json", by_alias=True)


@pytest.mark.parametrize(
    ("operation", "code", "status"),
    [
        ("iam:AttachUserPolicy", "ServiceUnavailable", 503),
        ("iam:AttachUserPolicy", "ServiceFailure", 500),
        ("iam:AttachUserPolicy", "Throttling", 400),
        ("iam:TagUser", "ServiceUnavailable", 503),  # after the attachment: the retry finishes it
    ],
)
def test_a_passing_refusal_of_a_quarantine_write_is_retried_not_reported_failed(
    aws, iam, monkeypatch, operation, code, status
):
    receive = sqs_handler(aws, monkeypatch, role_quarantine.build, aws.settings(response_mode="enforce"))
    event = deletion_by(user("mallory"))
    Refuse(operation, code, status).install(aws)

    assert not receive(event, 1)  # retried: no finding claims a quarantine, or its failure, yet
    assert alerts(aws) == []
    assert receive(event, 2)
    (alert,) = alerts(aws)
    assert alert["title"] == "Quarantined mallory: Deleted role ConnectAgentFederation in 111122223333"
    assert [(a["operation"], a["status"]) for a in alert["actions"]] == [
        ("AttachUserPolicy", "taken"),
        ("TagUser", "taken"),
    ]
    assert attached(iam, "mallory") == [POLICY_ARN]
    tags = {t["Key"] for t in iam.list_user_tags(UserName="mallory")["Tags"]}
    assert "connect-guard:quarantined" in tags


def test_a_final_refusal_of_the_attachment_is_reported_not_retried(aws, iam, monkeypatch):
    receive = sqs_handler(aws, monkeypatch, role_quarantine.build, aws.settings(response_mode="enforce"))
    Refuse("iam:AttachUserPolicy", "AccessDenied", 403).install(aws)
    assert receive(deletion_by(user("mallory")), 1)  # nothing a retry can fix: reported at once
    (alert,) = alerts(aws)
    assert alert["severity"] == "CRITICAL"
    assert not alert["title"].startswith("Quarantined")
    assert any(r.startswith("user mallory not quarantined: AttachUserPolicy AccessDenied") for r in alert["reasons"])


def identity_center(aws, iam) -> Any:
    with aws.unmodifiable_roles.aws_side():  # IAM Identity Center provisions it
        iam.create_role(RoleName=SSO_ROLE, Path=SSO_PATH, AssumeRolePolicyDocument="{}")
    center = aws.prepare_identity_center([ZOE])
    settings = aws.settings(
        response_mode="enforce",
        identity_center_account_id=center.account_id,
        identity_store_id=center.identity_store_id,
        sso_deny_list_policy_id=center.policy_id,
    )
    return center, settings


def denied(aws, center) -> list[str]:
    policy = aws.session.client("organizations").describe_policy(PolicyId=center.policy_id)["Policy"]
    (ours,) = [
        s for s in json.loads(policy["Content"])["Statement"] if s["Sid"] == "ConnectGuardDenyIdentityCenterUsers"
    ]
    return list(ours["Condition"]["StringEquals"]["identitystore:userId"])


def test_a_passing_refusal_of_the_deny_list_update_is_retried_not_reported_failed(aws, iam, monkeypatch):
    center, settings = identity_center(aws, iam)
    receive = sqs_handler(aws, monkeypatch, role_quarantine.build, settings)
    event = deletion_by(assumed(SSO_ROLE, ZOE, SSO_PATH))
    Refuse("organizations:UpdatePolicy", "ServiceUnavailable", 503).install(aws)

    assert not receive(event, 1)
    assert alerts(aws) == []
    assert receive(event, 2)
    (alert,) = alerts(aws)
    assert alert["title"].startswith(f"Quarantined {ZOE} via role {SSO_ROLE}")
    assert [(a["operation"], a["status"]) for a in alert["actions"]] == [("UpdatePolicy", "taken")]
    assert center.user_ids[ZOE] in denied(aws, center)


# ---- a write that timed out after it was applied: re-read, then reported as made -----------------
def test_a_quarantine_attachment_that_timed_out_is_re_read_and_reported_as_made(aws, iam, monkeypatch):
    receive = sqs_handler(aws, monkeypatch, role_quarantine.build, aws.settings(response_mode="enforce"))
    event = deletion_by(user("mallory"))
    timeout = TimeOut("iam:AttachUserPolicy").install(aws)

    assert not receive(event, 1)  # applied, but the answer never came
    assert timeout.times == 0 and attached(iam, "mallory") == [POLICY_ARN]
    assert receive(event, 2)
    (alert,) = alerts(aws)
    assert alert["title"] == "Quarantined mallory: Deleted role ConnectAgentFederation in 111122223333"
    assert [(a["operation"], a["status"]) for a in alert["actions"]] == [
        ("AttachUserPolicy", "taken"),
        ("TagUser", "taken"),  # written by the retry: the first attempt stopped before it
    ]
    assert any("completed by an earlier attempt" in r for r in alert["reasons"])


def test_a_rollback_that_timed_out_is_re_read_and_reported_as_made(aws, monkeypatch):
    instance = Instance(aws)
    receive = sqs_handler(aws, monkeypatch, profile_rollback.build, rollback_settings(aws, response_mode="enforce"))
    event = connect_event("UpdateUserSecurityProfiles", instance.escalate_user())
    TimeOut("connect:UpdateUserSecurityProfiles").install(aws)

    assert not receive(event, 1)
    assert instance.user_profiles() == {instance.agent}  # applied
    assert receive(event, 2)
    (alert,) = alerts(aws)
    assert alert["title"] == "Rolled back: Connect user m.garcia gained Admin"
    assert alert["actions"][0]["status"] == "taken"
    assert instance.updates().count("UpdateUserSecurityProfiles") == 2  # the escalation, one rollback


def test_a_deny_list_update_that_timed_out_is_re_read_and_reported_as_made(aws, iam, monkeypatch):
    center, settings = identity_center(aws, iam)
    receive = sqs_handler(aws, monkeypatch, role_quarantine.build, settings)
    event = deletion_by(assumed(SSO_ROLE, ZOE, SSO_PATH))
    TimeOut("organizations:UpdatePolicy").install(aws)

    assert not receive(event, 1)
    assert center.user_ids[ZOE] in denied(aws, center)  # applied
    assert receive(event, 2)
    (alert,) = alerts(aws)
    assert alert["title"].startswith(f"Quarantined {ZOE} via role {SSO_ROLE}")  # not "is already on" it
    assert any("added to the deny-list SCP" in r and "earlier attempt" in r for r in alert["reasons"])


# ---- the classification itself ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ServiceUnavailable", 503, True),
        ("Whatever", 502, True),  # any 5xx, named or not
        ("503", 503, True),  # a body botocore could not parse
        ("ThrottlingException", 400, True),
        ("TooManyRequestsException", 429, True),
        ("ConcurrentModificationException", 409, True),
        ("LimitExceeded", 409, False),  # IAM's quota: no retry makes room
        ("NoSuchEntity", 404, False),
        ("AccessDenied", 403, False),
        ("UnmodifiableEntity", 400, False),
    ],
)
def test_which_refusals_are_passing(code, status, expected):
    from botocore.exceptions import ClientError

    error = ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "AttachUserPolicy")
    assert transient(error) is expected
