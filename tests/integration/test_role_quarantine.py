"""Quarantine end to end against moto IAM: the IAM state after, exclusions, release, restore."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from connect_guard.events import CloudTrailEvent
from connect_guard.quarantine import REVOKE_POLICY_NAME, RoleSnapshots, restore_role, take_snapshot
from connect_guard.responders import role_quarantine

ACCOUNT = "111122223333"
SLR = "AWSServiceRoleForAmazonConnect_Qx7"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/connect-guard/connect-guard-quarantine"


def iam_event(name: str, actor: dict[str, Any], params: dict[str, Any] | None, **detail: Any) -> CloudTrailEvent:
    return CloudTrailEvent.model_validate(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.iam",
            "account": ACCOUNT,
            "time": "2026-11-20T10:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "userIdentity": actor,
                "eventTime": "2026-11-20T10:00:00Z",
                "eventSource": "iam.amazonaws.com",
                "eventName": name,
                "awsRegion": "us-east-1",
                "requestParameters": params,
                "eventID": str(uuid.uuid4()),
                "recipientAccountId": ACCOUNT,
                **detail,
            },
        }
    )


def user(name: str) -> dict[str, Any]:
    return {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}", "accountId": ACCOUNT, "userName": name}


def assumed(role: str, session: str, path: str = "/", **extra: Any) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role{path}{role}"},
            **extra,
        },
    }


DENIED = {
    "errorCode": "AccessDenied",
    "errorMessage": f"User is not authorized to perform: iam:DeleteServiceLinkedRole on resource: "
    f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/connect.amazonaws.com/{SLR} with an explicit "
    "deny in a service control policy",
}


@pytest.fixture
def iam(aws):
    client = aws.account_session(ACCOUNT).client("iam")
    client.create_user(UserName="mallory")
    client.create_access_key(UserName="mallory")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    client.create_role(RoleName="ConnectOps", AssumeRolePolicyDocument=trust)
    client.create_role(
        RoleName="ConnectAgentFederation",
        AssumeRolePolicyDocument=trust,
        Tags=[{"Key": "connect-guard:protected", "Value": "true"}],
    )
    client.put_role_policy(
        RoleName="ConnectAgentFederation",
        PolicyName="saml",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "connect:GetFederationToken", "Resource": "*"}],
            }
        ),
    )
    client.create_role(RoleName="tmp-build", AssumeRolePolicyDocument=trust)
    return client


def responder(aws, mode: str = "enforce", **overrides: Any):
    return role_quarantine.build(aws.settings(response_mode=mode, **overrides), aws.clients)


def attached(iam, name: str) -> list[str]:
    return [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]]


def test_denied_slr_deletion_by_a_user_attaches_the_quarantine_policy_and_tags_them(aws, iam):
    outcome = responder(aws).handle(iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED))
    assert outcome.outcome == "quarantined" and outcome.severity == "CRITICAL"
    assert attached(iam, "mallory") == [POLICY_ARN]
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="mallory")["Tags"]}
    assert tags["connect-guard:quarantined"] == outcome.event_id
    assert outcome.finding["target"]["name"] == SLR  # from the error message: denied calls carry no parameters
    (message,) = aws.inbox()
    assert message["Subject"].startswith("[CRITICAL] Quarantined mallory: Attempt to delete role " + SLR)
    audit = aws.clients.dynamodb.scan(TableName=aws.audit_table)["Items"]
    assert sorted(a["action"]["S"] for a in audit) == ["AttachUserPolicy", "TagUser"]


def test_a_second_attempt_by_a_quarantined_user_adds_nothing(aws, iam):
    quarantine = responder(aws)
    quarantine.handle(iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED))
    again = quarantine.handle(iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED))
    assert again.outcome == "alerted" and again.finding["actions"] == []
    assert "already quarantined" in again.finding["reasons"][-1]
    assert attached(iam, "mallory") == [POLICY_ARN]


def test_access_keys_are_deactivated_when_configured(aws, iam):
    responder(aws, deactivate_access_keys=True).handle(
        iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED)
    )
    assert [k["Status"] for k in iam.list_access_keys(UserName="mallory")["AccessKeyMetadata"]] == ["Inactive"]


def test_assumed_role_sessions_are_revoked_and_the_person_is_named(aws, iam):
    actor = assumed("ConnectOps", "j.smith@example.com", sourceIdentity="j.smith")
    outcome = responder(aws).handle(iam_event("DeleteRole", actor, {"roleName": "ConnectAgentFederation"}))
    assert outcome.outcome == "quarantined"
    document = iam.get_role_policy(RoleName="ConnectOps", PolicyName=REVOKE_POLICY_NAME)["PolicyDocument"]
    statement = document["Statement"][0]
    assert statement["Effect"] == "Deny" and statement["Action"] == "*"
    assert statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"] > "2026-11-20T10:00:00Z"
    assert outcome.finding["actor"]["display"] == "j.smith via role ConnectOps"


def test_succeeded_deletion_carries_the_snapshot_and_restore_recreates_the_role(aws, iam):
    snapshots = RoleSnapshots(aws.clients.dynamodb, aws.baseline_table)
    snapshots.put(take_snapshot(iam, ACCOUNT, "ConnectAgentFederation"))
    iam.delete_role_policy(RoleName="ConnectAgentFederation", PolicyName="saml")
    iam.delete_role(RoleName="ConnectAgentFederation")

    outcome = responder(aws, "detect").handle(
        iam_event("DeleteRole", assumed("ConnectOps", "x"), {"roleName": "ConnectAgentFederation"})
    )
    assert outcome.severity == "CRITICAL"  # protected by a tag it no longer has: the snapshot remembers it
    assert (
        outcome.finding["snapshot"]["inline_policies"]["saml"]["Statement"][0]["Action"] == "connect:GetFederationToken"
    )
    assert outcome.finding["actions"][0]["status"] == "proposed"

    steps = restore_role(iam, snapshots.get(ACCOUNT, "ConnectAgentFederation"))
    assert steps == ["created role /ConnectAgentFederation", "put inline policy saml"]
    assert iam.get_role_policy(RoleName="ConnectAgentFederation", PolicyName="saml")["PolicyDocument"]["Statement"]


@pytest.mark.parametrize(
    ("actor", "severity", "why"),
    [
        ({"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT}, "CRITICAL", "root user"),
        ({**user("mallory"), "invokedBy": "cloudformation.amazonaws.com"}, "HIGH", "AWS service"),
        (
            assumed("AWSServiceRoleForSupport", "x", "/aws-service-role/support.amazonaws.com/"),
            "HIGH",
            "service-linked",
        ),
        (assumed("ConnectBreakGlass", "incident-7"), "HIGH", "break-glass"),
    ],
)
def test_excluded_principals_are_alerted_never_quarantined(aws, iam, actor, severity, why):
    quarantine = responder(aws, allowlisted_principals=(f"arn:aws:iam::{ACCOUNT}:role/ConnectBreakGlass",))
    outcome = quarantine.handle(iam_event("DeleteRole", actor, {"roleName": "ConnectAgentFederation"}))
    assert outcome.outcome == "alerted" and outcome.severity == severity
    assert outcome.finding["actions"] == []
    assert any(why in reason for reason in outcome.finding["reasons"])
    assert attached(iam, "mallory") == []


def test_suite_changes_and_unprotected_roles_are_ignored(aws, iam):
    own = assumed("connect-guard-member", "connect-guard")
    assert responder(aws).handle(iam_event("DeleteRole", own, {"roleName": SLR})).outcome == "ignored"
    other = responder(aws).handle(iam_event("DeleteRole", user("mallory"), {"roleName": "tmp-build"}))
    assert other.outcome == "ignored" and "not protected" in (other.reason or "")
    assert aws.inbox() == [] and attached(iam, "mallory") == []


def test_tampering_alerts_high_and_quarantines_only_when_configured(aws, iam):
    event = iam_event("DeleteRolePolicy", user("mallory"), {"roleName": "ConnectAgentFederation", "policyName": "saml"})
    assert responder(aws).handle(event).severity == "HIGH"
    assert attached(iam, "mallory") == []
    responder(aws, quarantine_on_tampering=True).handle(
        iam_event("DeleteRolePolicy", user("mallory"), {"roleName": "ConnectAgentFederation", "policyName": "saml"})
    )
    assert attached(iam, "mallory") == [POLICY_ARN]


def test_unreadable_protection_fails_closed(aws, iam):
    event = iam_event("DeleteRole", user("mallory"), {"roleName": "SomeRole"})
    outcome = responder(aws, member_role_name=None).handle(event)  # the member account can't be read
    assert outcome.outcome == "alerted" and outcome.severity == "HIGH"
    assert "could not tell whether SomeRole is protected" in outcome.finding["reasons"][0]
    assert attached(iam, "mallory") == []


def test_release_lifts_the_quarantine_and_records_who_and_why(aws, iam):
    quarantine = responder(aws)
    quarantine.handle(iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED))
    quarantine.handle(iam_event("DeleteRole", assumed("ConnectOps", "x"), {"roleName": "ConnectAgentFederation"}))
    role_quarantine.release(
        quarantine, ACCOUNT, user="mallory", role=None, by="soc@example.com", reason="false positive"
    )
    role_quarantine.release(quarantine, ACCOUNT, user=None, role="ConnectOps", by="soc@example.com", reason="rotated")
    assert attached(iam, "mallory") == []
    assert iam.list_role_policies(RoleName="ConnectOps")["PolicyNames"] == []
    releases = [a for a in aws.clients.dynamodb.scan(TableName=aws.audit_table)["Items"] if a["mode"]["S"] == "release"]
    assert {a["actor"]["S"] for a in releases} == {"soc@example.com"}
    assert any("false positive" in a["reason"]["S"] for a in releases)
    subjects = [m["Subject"] for m in aws.inbox()]
    assert "[CRITICAL] Quarantine released: user/mallory in 111122223333 by soc@example.com" in subjects


def test_scheduled_snapshot_covers_protected_roles_only(aws, iam):
    taken = role_quarantine.snapshot_protected_roles(responder(aws, snapshot_account_ids=(ACCOUNT,)))
    assert "ConnectAgentFederation" in taken[ACCOUNT]  # by tag
    assert "AWSServiceRoleForAmazonConnect_4vQy7ZkR2mXbTn8LpWd3" in taken[ACCOUNT]  # by name (demo state)
    assert not {"ConnectOps", "tmp-build"} & set(taken[ACCOUNT])
    snapshot = RoleSnapshots(aws.clients.dynamodb, aws.baseline_table).get(ACCOUNT, "ConnectAgentFederation")
    assert snapshot is not None and snapshot.tags == {"connect-guard:protected": "true"}
    assert "saml" in snapshot.inline_policies


def test_quarantine_on_tampering_is_critical(aws, iam):
    event = iam_event("DeleteRolePolicy", user("mallory"), {"roleName": "ConnectAgentFederation", "policyName": "saml"})
    assert responder(aws, quarantine_on_tampering=True).handle(event).severity == "CRITICAL"


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (user("mallory"), ("user", "mallory")),
        (
            assumed("AWSReservedSSO_Admin_0a1b", "zoe@example.com", "/aws-reserved/sso.amazonaws.com/"),
            ("role", "AWSReservedSSO_Admin_0a1b"),
        ),
        (
            {
                "type": "FederatedUser",
                "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/bob",
                "accountId": ACCOUNT,
                "sessionContext": {"sessionIssuer": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/broker"}},
            },
            ("user", "broker"),
        ),
        ({"type": "WebIdentityUser", "principalId": "cognito:x"}, None),
    ],
)
def test_who_gets_quarantined_for_each_principal_type(identity, expected):
    from connect_guard.principals import Actor

    record = iam_event("DeleteRole", identity, {"roleName": "x"}).detail
    assert role_quarantine.principal_to_quarantine(Actor.from_record(record)) == expected
