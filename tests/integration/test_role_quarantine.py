"""Quarantine end to end against moto IAM: the IAM state after, exclusions, release, restore."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from connect_guard.events import CloudTrailEvent
from connect_guard.quarantine import SUITE_TAG_KEYS, RoleSnapshots, restore_role, take_snapshot
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


def attached_to_role(iam, name: str) -> list[str]:
    return [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]


def role_tags(iam, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]}


def tamper(iam, document: dict[str, Any]) -> None:
    """What an attacker with iam:CreatePolicyVersion does to the quarantine policy."""
    iam.create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(document), SetAsDefault=True)


def reasons(outcome) -> str:
    return "\n".join(outcome.finding["reasons"])


ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
SSO_DELETION = ("DeleteRole", {"roleName": "ConnectAgentFederation"})


def test_denied_slr_deletion_by_a_user_attaches_the_quarantine_policy_and_tags_them(aws, iam):
    outcome = responder(aws).handle(iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED))
    assert outcome.outcome == "quarantined" and outcome.severity == "CRITICAL"
    assert attached(iam, "mallory") == [POLICY_ARN]
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="mallory")["Tags"]}
    assert tags["connect-guard:quarantined"] == outcome.event_id
    assert outcome.finding["target"]["name"] == SLR  # from the error message: denied calls carry no parameters
    (message,) = aws.inbox()
    assert message["Subject"].startswith("[CRITICAL] Quarantined mallory: Attempt to delete role " + SLR)
    (audit,) = aws.audit_records()  # one item for the event, listing its actions
    assert (audit["action"]["S"], audit["status"]["S"]) == ("AttachUserPolicy", "taken")
    steps = [(s["operation"], s["status"]) for s in json.loads(audit["steps"]["S"])]
    assert steps == [("AttachUserPolicy", "taken"), ("TagUser", "taken")]


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


def test_assumed_role_gets_the_quarantine_policy_on_its_role_and_the_person_is_named(aws, iam):
    actor = assumed("ConnectOps", "j.smith@example.com", sourceIdentity="j.smith")
    outcome = responder(aws).handle(iam_event("DeleteRole", actor, {"roleName": "ConnectAgentFederation"}))
    assert outcome.outcome == "quarantined" and outcome.severity == "CRITICAL"
    # The deny-all is attached to the role: every session, the attacker's next one included.
    assert attached_to_role(iam, "ConnectOps") == [POLICY_ARN]
    assert iam.list_role_policies(RoleName="ConnectOps")["PolicyNames"] == []  # no inline policy written
    assert role_tags(iam, "ConnectOps")["connect-guard:quarantined"] == outcome.event_id
    assert outcome.finding["actor"]["display"] == "j.smith via role ConnectOps"
    assert "every session of the role, current and new" in reasons(outcome)
    assert [(a["operation"], a["status"]) for a in outcome.finding["actions"]] == [
        ("AttachRolePolicy", "taken"),
        ("TagRole", "taken"),
    ]


SSO_PATH = "/aws-reserved/sso.amazonaws.com/"


@pytest.mark.parametrize("mode", ["enforce", "detect"])
def test_an_identity_center_session_is_not_claimed_revoked_and_identity_center_steps_are_given(aws, iam, mode):
    role = "AWSReservedSSO_ConnectAdmin_0a1b2c3d4e5f6a7b"
    with aws.unmodifiable_roles.aws_side():  # IAM Identity Center provisions it
        iam.create_role(RoleName=role, Path=SSO_PATH, AssumeRolePolicyDocument="{}")
    aws.recorder.clear()
    actor = assumed(role, "zoe@example.com", SSO_PATH, sourceIdentity="zoe@example.com")
    outcome = responder(aws, mode).handle(iam_event("DeleteRole", actor, {"roleName": "ConnectAgentFederation"}))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert outcome.finding["actions"] == []  # IAM would refuse it: not even attempted or proposed
    assert not [c for c in aws.recorder.calls if c["service"] == "iam"]
    assert attached_to_role(iam, role) == [] and role_tags(iam, role) == {}
    assert not outcome.finding["title"].startswith("Quarantined")
    (note,) = [r for r in outcome.finding["reasons"] if r.startswith("not quarantined, nothing revoked")]
    assert f"{role} is an IAM Identity Center permission-set role" in note
    assert "remove zoe@example.com's account assignment or disable the user" in note
    assert "attach the quarantine policy to the permission set" in note
    assert aws.audit_records() == []


def test_a_second_attempt_through_a_quarantined_role_adds_nothing(aws, iam):
    quarantine = responder(aws)
    actor = assumed("ConnectOps", "x")
    quarantine.handle(iam_event("DeleteRole", actor, {"roleName": "ConnectAgentFederation"}))
    again = quarantine.handle(iam_event("DeleteRole", actor, {"roleName": "ConnectAgentFederation"}))
    assert again.outcome == "alerted" and again.finding["actions"] == []
    assert "role ConnectOps is already quarantined" in reasons(again)
    assert attached_to_role(iam, "ConnectOps") == [POLICY_ARN]


def test_a_tampered_quarantine_policy_is_never_attached_and_the_alert_says_what_it_allows(aws, iam):
    tamper(iam, ALLOW_ALL)
    outcome = responder(aws).handle(iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert attached(iam, "mallory") == [] and iam.list_user_tags(UserName="mallory")["Tags"] == []
    assert outcome.finding["actions"] == []
    reason = reasons(outcome)
    assert f"the quarantine policy {POLICY_ARN} was tampered with" in reason
    assert "default version v2 allows * on *" in reason and "nothing attached, act by hand" in reason
    assert outcome.finding["target"]["name"] == SLR  # the rest of the finding as usual
    (message,) = aws.inbox()
    assert message["Subject"].startswith("[CRITICAL] Attempt to delete role " + SLR)


def test_a_narrowed_deny_is_tampering_too(aws, iam):
    tamper(
        iam,
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}],
        },
    )
    outcome = responder(aws).handle(iam_event(*SSO_DELETION[:1], assumed("ConnectOps", "x"), SSO_DELETION[1]))
    assert outcome.severity == "CRITICAL" and attached_to_role(iam, "ConnectOps") == []
    assert "no longer denies everything: Deny every action except iam:* on *" in reasons(outcome)


def test_a_missing_quarantine_policy_is_critical_and_nothing_is_attached(aws, iam):
    iam.delete_policy(PolicyArn=POLICY_ARN)
    event = iam_event("DeleteRolePolicy", user("mallory"), {"roleName": "ConnectAgentFederation", "policyName": "saml"})
    outcome = responder(aws, quarantine_on_tampering=True).handle(event)  # tampering alone would be HIGH
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert f"the quarantine policy {POLICY_ARN} is missing" in reasons(outcome)
    assert attached(iam, "mallory") == [] and outcome.finding["actions"] == []


def test_detect_mode_checks_the_policy_before_proposing_it(aws, iam):
    tamper(iam, ALLOW_ALL)
    outcome = responder(aws, "detect").handle(iam_event(*SSO_DELETION[:1], assumed("ConnectOps", "x"), SSO_DELETION[1]))
    assert outcome.severity == "CRITICAL" and outcome.finding["actions"] == []
    assert "was tampered with" in reasons(outcome)


def test_a_burst_reads_the_policy_document_once_and_a_later_tampering_is_still_caught(aws, iam):
    reads: list[str] = []
    aws.session.events.register("before-call.iam.GetPolicyVersion", lambda **_: reads.append("read"))
    quarantine = responder(aws)
    quarantine.handle(iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED))
    quarantine.handle(iam_event(*SSO_DELETION[:1], assumed("ConnectOps", "x"), SSO_DELETION[1]))
    assert len(reads) == 1  # the second quarantine trusted the first check of the same version
    assert attached(iam, "mallory") == [POLICY_ARN] and attached_to_role(iam, "ConnectOps") == [POLICY_ARN]

    tamper(iam, ALLOW_ALL)  # a new default version: the cached check does not cover it
    outcome = quarantine.handle(iam_event(*SSO_DELETION[:1], assumed("tmp-build", "y"), SSO_DELETION[1]))
    assert len(reads) == 2 and attached_to_role(iam, "tmp-build") == []
    assert outcome.severity == "CRITICAL" and "tampered" in reasons(outcome)


def test_a_role_with_no_room_for_another_managed_policy_is_reported_not_quarantined(aws, iam):
    for n in range(10):  # IAM's default quota: 10 managed policies per role
        arn = iam.create_policy(PolicyName=f"ops-{n}", PolicyDocument=json.dumps(ALLOW_ALL))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="ConnectOps", PolicyArn=arn)
    outcome = responder(aws).handle(iam_event(*SSO_DELETION[:1], assumed("ConnectOps", "x"), SSO_DELETION[1]))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert POLICY_ARN not in attached_to_role(iam, "ConnectOps") and len(attached_to_role(iam, "ConnectOps")) == 10
    (action,) = outcome.finding["actions"]  # no quarantine tag either: it would claim a quarantine
    assert (action["operation"], action["status"]) == ("AttachRolePolicy", "failed")
    assert action["parameters"]["error"].startswith("LimitExceeded: Cannot exceed quota for PoliciesPerRole: 10")
    (reason,) = [r for r in outcome.finding["reasons"] if r.startswith("role ConnectOps not quarantined")]
    assert reason.startswith("role ConnectOps not quarantined: AttachRolePolicy LimitExceeded")
    assert "no room left" in reason and reason.endswith("act by hand")
    assert "connect-guard:quarantined" not in role_tags(iam, "ConnectOps")
    audit = aws.audit_records()
    assert [(a["action"]["S"], a["status"]["S"]) for a in audit] == [("AttachRolePolicy", "failed")]


def test_succeeded_deletion_carries_the_snapshot_and_restore_recreates_the_role(aws, iam):
    snapshots = RoleSnapshots(aws.clients.dynamodb, aws.baseline_table)
    snapshots.put(take_snapshot(iam, ACCOUNT, "ConnectAgentFederation", quarantine_policy_arn=POLICY_ARN))
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


OWN_QUARANTINE_ROLE = assumed("connect-guard-dev-member-quarantine", "connect-guard", "/connect-guard/")


def test_the_suites_release_is_info_and_unprotected_roles_are_ignored(aws, iam):
    release = iam_event("DetachRolePolicy", OWN_QUARANTINE_ROLE, {"roleName": SLR, "policyArn": POLICY_ARN})
    outcome = responder(aws).handle(release)
    assert outcome.outcome == "alerted" and outcome.severity == "INFO"  # `release` published its own finding
    (alert,) = aws.inbox()
    assert alert["Subject"].startswith(f"[INFO] Quarantine released: role {SLR}")
    other = responder(aws).handle(iam_event("DeleteRole", user("mallory"), {"roleName": "tmp-build"}))
    assert other.outcome == "ignored" and "not protected" in (other.reason or "")
    assert aws.inbox() == [] and attached(iam, "mallory") == []


@pytest.mark.parametrize("role", [SLR, "tmp-build"])
def test_a_role_deletion_by_the_suites_own_role_is_critical_and_never_self_quarantined(aws, iam, role):
    # The suite deletes no role: its role doing so (protected target or not) is compromised.
    outcome = responder(aws).handle(iam_event("DeleteRole", OWN_QUARANTINE_ROLE, {"roleName": role}))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert outcome.finding["actions"] == []
    assert any("treat the role as compromised" in r for r in outcome.finding["reasons"])


SUITE_ROLES_HERE = [
    "connect-guard-dev-member-read",
    "connect-guard-dev-member-rollback",
    "connect-guard-dev-member-forward",
]


@pytest.mark.parametrize("role", SUITE_ROLES_HERE)
@pytest.mark.parametrize("event_name", ["DeleteRole", "UpdateAssumeRolePolicy", "DetachRolePolicy"])
def test_any_change_to_the_suites_own_roles_is_critical_and_quarantines_in_enforce_mode(aws, iam, role, event_name):
    iam.create_user(UserName="eve")
    outcome = responder(aws).handle(iam_event(event_name, user("eve"), {"roleName": role}))
    assert outcome.severity == "CRITICAL"
    assert any("one of connect-guard's own roles" in r for r in outcome.finding["reasons"])
    # Tampering with the suite quarantines without QuarantineOnTampering: it is as grave as a deletion.
    assert attached(iam, "eve") == [POLICY_ARN]


def test_a_change_to_the_suites_roles_by_an_allowlisted_actor_stays_critical_but_is_not_acted_on(aws, iam):
    quarantine = responder(aws, allowlisted_principals=(f"arn:aws:iam::{ACCOUNT}:role/ConnectBreakGlass",))
    actor = assumed("ConnectBreakGlass", "incident-7")
    outcome = quarantine.handle(iam_event("DeleteRole", actor, {"roleName": "connect-guard-dev-member-read"}))
    assert outcome.severity == "CRITICAL" and outcome.finding["actions"] == []


def test_a_look_alike_suite_role_name_in_an_account_that_is_not_enrolled_is_not_protected(aws, iam):
    outcome = responder(aws, member_account_ids=()).handle(
        iam_event("DeleteRole", user("mallory"), {"roleName": "connect-guard-dev-member-read"})
    )
    assert outcome.outcome == "alerted"  # unenrolled: protection can't be read, review by hand
    assert not any("connect-guard's own roles" in r for r in outcome.finding["reasons"])


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
    outcome = responder(aws, member_account_ids=()).handle(event)  # the account is not enrolled: unreadable
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"  # unreachable: the suite is blind
    assert "member account unreachable: could not tell whether SomeRole is protected" in outcome.finding["reasons"][0]
    assert attached(iam, "mallory") == []


def test_release_lifts_the_quarantine_and_records_who_and_why(aws, iam):
    quarantine = responder(aws)
    quarantine.handle(iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED))
    quarantine.handle(iam_event("DeleteRole", assumed("ConnectOps", "x"), {"roleName": "ConnectAgentFederation"}))
    role_quarantine.release(
        quarantine, ACCOUNT, user="mallory", role=None, by="soc@example.com", reason="false positive"
    )
    role_quarantine.release(quarantine, ACCOUNT, user=None, role="ConnectOps", by="soc@example.com", reason="rotated")
    assert attached(iam, "mallory") == [] and attached_to_role(iam, "ConnectOps") == []
    assert not set(SUITE_TAG_KEYS) & set(role_tags(iam, "ConnectOps"))
    releases = [a for a in aws.audit_records() if a["mode"]["S"] == "release"]
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


def test_in_the_security_account_its_own_quarantine_policy_is_checked_and_attached(aws):
    from connect_guard_tools.local_aws import SECURITY_ACCOUNT

    own = aws.session.client("iam")
    own.create_user(UserName="insider")
    here = {**DENIED, "recipientAccountId": SECURITY_ACCOUNT}
    actor = {**user("insider"), "arn": f"arn:aws:iam::{SECURITY_ACCOUNT}:user/insider", "accountId": SECURITY_ACCOUNT}
    outcome = responder(aws).handle(iam_event("DeleteServiceLinkedRole", actor, None, **here))
    policy = f"arn:aws:iam::{SECURITY_ACCOUNT}:policy/connect-guard/connect-guard-quarantine"
    assert outcome.outcome == "quarantined" and attached(own, "insider") == [policy]

    own.create_policy_version(PolicyArn=policy, PolicyDocument=json.dumps(ALLOW_ALL), SetAsDefault=True)
    own.create_user(UserName="accomplice")
    actor = {**actor, "arn": f"arn:aws:iam::{SECURITY_ACCOUNT}:user/accomplice"}
    outcome = responder(aws).handle(iam_event("DeleteServiceLinkedRole", actor, None, **here))
    assert outcome.severity == "CRITICAL" and attached(own, "accomplice") == []
    assert f"the quarantine policy {policy} was tampered with" in reasons(outcome)


def test_a_change_to_the_suites_roles_through_cloudformation_is_high_and_not_acted_on(aws, iam):
    deployer = {**user("mallory"), "invokedBy": "cloudformation.amazonaws.com"}
    outcome = responder(aws).handle(
        iam_event("UpdateAssumeRolePolicy", deployer, {"roleName": "connect-guard-dev-member-read"})
    )
    assert outcome.severity == "HIGH" and outcome.finding["actions"] == []
    assert attached(iam, "mallory") == []


@pytest.mark.parametrize(
    ("role", "path"),
    [
        # (IAM role names are unique per account whatever the path: the member stack's own names
        # can't be taken while it exists, and its roles are matched by exact ARN.)
        ("connect-guard-dev-member-quarantine-2", "/connect-guard/"),  # a name like the write role's
        ("build-agent", "/connect-guard/"),  # the suite's path, chosen by whoever made the role
    ],
)
def test_a_look_alike_of_the_suite_is_quarantined_like_anyone(aws, iam, role, path):
    iam.create_role(RoleName=role, Path=path, AssumeRolePolicyDocument="{}")
    outcome = responder(aws).handle(iam_event("DeleteRole", assumed(role, "connect-guard", path), {"roleName": SLR}))
    assert outcome.outcome == "quarantined" and outcome.severity == "CRITICAL"
    assert attached_to_role(iam, role) == [POLICY_ARN]
