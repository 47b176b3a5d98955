"""IAM Identity Center revocation through the deny-list SCP, against moto Organizations and
Identity Store: the SCP after a quarantine and a release, forged and broken deny-lists, limits."""

from __future__ import annotations

import json

import pytest

from connect_guard.events import CloudTrailEvent
from connect_guard.identity_center import DENY_SID, NOBODY, SCP_MAX_CHARACTERS
from connect_guard.responders import role_quarantine
from tests.integration import test_role_quarantine
from tests.integration.test_role_quarantine import ACCOUNT, assumed, iam_event, reasons

iam = test_role_quarantine.iam  # the fixture: IAM with the sample users and roles

SSO_PATH = "/aws-reserved/sso.amazonaws.com/"
ROLE = "AWSReservedSSO_ConnectAdmin_0a1b2c3d4e5f6a7b"
ZOE = "zoe@example.com"
DELETION = ("DeleteRole", {"roleName": "ConnectAgentFederation"})


@pytest.fixture
def center(aws, iam):
    with aws.unmodifiable_roles.aws_side():  # IAM Identity Center provisions it
        iam.create_role(RoleName=ROLE, Path=SSO_PATH, AssumeRolePolicyDocument="{}")
    return aws.prepare_identity_center([ZOE, "yann@example.com"])


def responder(aws, center, mode: str = "enforce"):
    settings = aws.settings(
        response_mode=mode,
        identity_center_account_id=center.account_id,
        identity_store_id=center.identity_store_id,
        sso_deny_list_policy_id=center.policy_id,
    )
    return role_quarantine.build(settings, aws.clients)


def scp(aws, center) -> dict:
    policy = aws.session.client("organizations").describe_policy(PolicyId=center.policy_id)["Policy"]
    return json.loads(policy["Content"])


def denied(aws, center) -> list[str]:
    (ours,) = [s for s in scp(aws, center)["Statement"] if s["Sid"] == DENY_SID]
    return ours["Condition"]["StringEquals"]["identitystore:userId"]


def write_scp(aws, center, document: dict | str) -> None:
    content = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
    aws.session.client("organizations").update_policy(PolicyId=center.policy_id, Content=content)


def sso_deletion(session: str = ZOE, account: str = ACCOUNT) -> CloudTrailEvent:
    event = iam_event(*DELETION[:1], assumed(ROLE, session, SSO_PATH), DELETION[1])
    if account == ACCOUNT:
        return event
    body = json.dumps(event.model_dump(mode="json", by_alias=True, exclude_none=True))
    return CloudTrailEvent.model_validate(json.loads(body.replace(ACCOUNT, account)))


def test_the_person_behind_a_session_is_denied_by_the_scp_and_the_finding_says_so(aws, center):
    outcome = responder(aws, center).handle(sso_deletion())
    assert outcome.outcome == "quarantined" and outcome.severity == "CRITICAL"
    assert denied(aws, center) == [center.user_ids[ZOE]]
    assert outcome.finding["title"].startswith(f"Quarantined {ZOE} via role {ROLE}")
    note = reasons(outcome)
    assert f"IAM Identity Center user {ZOE} ({center.user_ids[ZOE]}) added to the deny-list SCP" in note
    assert "in every session and permission set" in note and "connect-guard release --sso-user" in note
    (action,) = outcome.finding["actions"]
    assert (action["service"], action["operation"], action["status"]) == ("organizations", "UpdatePolicy", "taken")
    (audit,) = aws.audit_records()
    assert audit["target"]["S"] == f"identity-center-user/{center.user_ids[ZOE]}"
    assert audit["finding_id"]["S"] == outcome.finding["finding_id"]
    # IAM still refuses the role itself: nothing was attempted there.
    source = aws.account_session(ACCOUNT).client("iam")
    assert source.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []


def test_a_second_person_is_added_and_a_repeat_changes_nothing(aws, center):
    quarantine = responder(aws, center)
    quarantine.handle(sso_deletion())
    quarantine.handle(sso_deletion("yann@example.com"))
    again = quarantine.handle(sso_deletion())
    assert sorted(denied(aws, center)) == sorted(center.user_ids.values())
    assert again.finding["actions"] == [] and "is already on the deny-list SCP" in reasons(again)


def test_the_operators_statements_are_kept(aws, center):
    theirs = {"Sid": "DenyLeavingOrg", "Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}
    document = scp(aws, center)
    write_scp(aws, center, {**document, "Statement": [theirs, *document["Statement"]]})
    responder(aws, center).handle(sso_deletion())
    assert theirs in scp(aws, center)["Statement"]
    assert denied(aws, center) == [center.user_ids[ZOE]]


def test_release_takes_the_person_off_the_deny_list_and_is_audited(aws, center):
    quarantine = responder(aws, center)
    quarantine.handle(sso_deletion())
    done = role_quarantine.release(quarantine, "", sso_user=ZOE, by="soc@example.com", reason="password reset")
    assert [(a.operation, a.status) for a in done] == [("UpdatePolicy", "taken")]
    assert denied(aws, center) == [NOBODY]  # the statement stays, naming no one
    items = aws.audit_records()
    assert {i["mode"]["S"] for i in items} == {"enforce", "release"}
    released = [json.loads(m["Message"]) for m in aws.inbox()][-1]
    assert released["kind"] == "iam.quarantine_release" and released["target"]["name"] == ZOE


def test_a_decoy_statement_under_the_suites_sid_is_rewritten_and_reported(aws, center):
    # An attacker who can edit the SCP turns the suite's statement into one that denies nothing.
    decoy = {
        "Sid": DENY_SID,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringEquals": {"identitystore:userId": center.user_ids[ZOE], "aws:PrincipalTag/x": "never"}},
    }
    write_scp(aws, center, {"Version": "2012-10-17", "Statement": [decoy]})
    outcome = responder(aws, center).handle(sso_deletion())
    assert outcome.outcome == "quarantined" and outcome.severity == "CRITICAL"
    assert "the deny-list SCP had been altered" in reasons(outcome)
    (ours,) = scp(aws, center)["Statement"]
    assert ours["Condition"] == {"StringEquals": {"identitystore:userId": [center.user_ids[ZOE]]}}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not a JSON document"),
        ('["a list"]', "is not a policy document"),
    ],
)
def test_a_broken_deny_list_is_never_overwritten_and_nothing_is_claimed(aws, center, content, expected):
    write_scp(aws, center, content)
    outcome = responder(aws, center).handle(sso_deletion())
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert f"nothing revoked: the deny-list SCP {center.policy_id} {expected}" in reasons(outcome)
    assert "act in IAM Identity Center now" in reasons(outcome)
    policy = aws.session.client("organizations").describe_policy(PolicyId=center.policy_id)["Policy"]
    assert policy["Content"] == content


def test_a_detached_deny_list_binds_no_one_and_says_so(aws, center):
    organizations = aws.session.client("organizations")
    root = organizations.list_roots()["Roots"][0]["Id"]
    organizations.detach_policy(PolicyId=center.policy_id, TargetId=root)
    outcome = responder(aws, center).handle(sso_deletion())
    assert outcome.severity == "CRITICAL" and outcome.outcome == "alerted"
    assert "is attached to nothing: it would bind no one" in reasons(outcome)


def test_an_unknown_user_is_not_guessed(aws, center):
    outcome = responder(aws, center).handle(sso_deletion("ghost@example.com"))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert "user 'ghost@example.com' not found in identity store" in reasons(outcome)
    assert denied(aws, center) == [NOBODY]


def test_a_full_deny_list_is_reported_not_truncated(aws, center):
    filler = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(1, 200)]
    fits = []
    for user_id in filler:
        candidate = {"Version": "2012-10-17", "Statement": [_statement([*fits, user_id])]}
        if len(json.dumps(candidate, separators=(",", ":"))) > SCP_MAX_CHARACTERS:
            break
        fits.append(user_id)
    write_scp(aws, center, {"Version": "2012-10-17", "Statement": [_statement(fits)]})
    outcome = responder(aws, center).handle(sso_deletion())
    assert outcome.severity == "CRITICAL" and outcome.outcome == "alerted"
    assert f"would exceed {SCP_MAX_CHARACTERS} characters" in reasons(outcome)
    assert center.user_ids[ZOE] not in denied(aws, center)


def test_the_embedded_organizations_refuses_an_scp_over_its_size_limit(aws, center):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="ConstraintViolationException"):
        write_scp(aws, center, {"Version": "2012-10-17", "Statement": [_statement([])], "Padding": "x" * 5200})


def test_the_management_account_is_named_as_not_bound(aws, center):
    management = aws.session.client("iam")  # the organization is managed from the security account
    tag = [{"Key": "connect-guard:protected", "Value": "true"}]
    management.create_role(RoleName="ConnectAgentFederation", AssumeRolePolicyDocument="{}", Tags=tag)
    with aws.unmodifiable_roles.aws_side():
        management.create_role(RoleName=ROLE, Path=SSO_PATH, AssumeRolePolicyDocument="{}")
    outcome = responder(aws, center).handle(sso_deletion(account=center.account_id))
    assert "which SCPs do not bind: the person is NOT contained there" in reasons(outcome)


def test_detect_mode_only_proposes_and_calls_nothing(aws, center):
    aws.recorder.clear()
    outcome = responder(aws, center, "detect").handle(sso_deletion())
    assert outcome.outcome == "alerted"
    (action,) = outcome.finding["actions"]
    assert (action["operation"], action["status"]) == ("UpdatePolicy", "proposed")
    assert "detect mode: enforce mode adds IAM Identity Center user zoe@example.com" in reasons(outcome)
    assert not [c for c in aws.recorder.calls if c["service"] in ("organizations", "identitystore")]
    assert denied(aws, center) == [NOBODY]


def test_a_look_alike_role_outside_the_reserved_path_is_quarantined_in_iam(aws, center, iam):
    # Anyone can name a role AWSReservedSSO_*; only AWS creates it under the reserved path.
    iam.create_role(RoleName="AWSReservedSSO_Fake_0a1b2c3d4e5f6a7b", AssumeRolePolicyDocument="{}")
    actor = assumed("AWSReservedSSO_Fake_0a1b2c3d4e5f6a7b", ZOE)
    outcome = responder(aws, center).handle(iam_event(*DELETION[:1], actor, DELETION[1]))
    assert outcome.finding["actions"][0]["operation"] == "AttachRolePolicy"
    assert denied(aws, center) == [NOBODY]


def test_identity_center_settings_go_together(aws):
    from connect_guard.errors import ConfigurationError
    from connect_guard.settings import Settings

    with pytest.raises(ConfigurationError, match="go together"):
        Settings.from_env(
            {
                "ALERT_TOPIC_ARN": aws.topic_arn,
                "DEDUP_TABLE_NAME": aws.table_name,
                "SSO_DENY_LIST_POLICY_ID": "p-abcdefgh",
            }
        )


def _statement(user_ids: list[str]) -> dict:
    from connect_guard.identity_center import deny_statement

    return deny_statement(user_ids)
