"""IAM escalation without an attachment (responders/iam_escalation.py): what the corpus alone
does not pin down. Forged identities, look-alikes, missing snapshots, refused and throttled
reads, the last attempt, the organization."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from connect_guard.clients import AwsClients
from connect_guard.events import CloudTrailEvent
from connect_guard.iam import PolicyReader
from connect_guard.publisher import SnsPublisher
from connect_guard.responders import policy_alerts
from tests.conftest import load_event, with_new_event_id

OTHER_USER_KEY = "iam/create-access-key-other-user.json"
SELF_KEY = "iam/create-access-key-self-service.json"
TRUST_STAR = "iam/update-assume-role-policy-star.json"
ORG = "o-a1b2c3d4e5"


def event(relative: str, identity: dict[str, Any] | None = None, **params: Any) -> CloudTrailEvent:
    raw = with_new_event_id(load_event(relative))
    if identity is not None:
        raw["detail"]["userIdentity"] = identity
    if params:
        raw["detail"]["requestParameters"] = {**(raw["detail"]["requestParameters"] or {}), **params}
    return CloudTrailEvent.model_validate(raw)


def iam_user(name: str, account: str = "111122223333") -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEEXAMPLE01",
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "userName": name,
    }


def session(role: str, name: str, account: str = "111122223333") -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEEXAMPLE01:{name}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role.rsplit('/', 1)[-1]}/{name}",
        "accountId": account,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEEXAMPLE01",
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
            }
        },
    }


def handle(aws: Any, ev: CloudTrailEvent, **settings: Any) -> Any:
    return policy_alerts.build(aws.settings(**settings), aws.clients).handle(ev)


def writes(aws: Any) -> list[str]:
    """IAM calls that are not reads (none: the control only alerts)."""
    return [c for c in aws.recorder.calls if c["service"] == "iam"]


# ---- credentials for another user: a forged "self" is not self --------------------------------
def test_an_iam_users_own_key_is_low_and_reads_nothing(aws):
    aws.recorder.clear()
    outcome = handle(aws, event(SELF_KEY))
    assert outcome.severity == "LOW"
    assert outcome.finding["reasons"][0].startswith("self-service: IAM user ext.contractor made an access key")
    assert [c["operation"] for c in aws.recorder.calls] == ["Publish"]


def test_self_service_ignores_the_case_of_the_user_name(aws):
    # IAM user names are unique regardless of case: EXT.Contractor is the caller.
    outcome = handle(aws, event(SELF_KEY, iam_user("ext.contractor"), userName="EXT.Contractor"))
    assert outcome.severity == "LOW"


@pytest.mark.parametrize(
    "identity",
    [
        # The same user name in another account.
        iam_user("svc.ivr-deploy", account="999988887777"),
        # A role session named like the user.
        session("ConnectPlatformAdmin", "svc.ivr-deploy"),
        # A role named like the user.
        session("svc.ivr-deploy", "svc.ivr-deploy"),
    ],
    ids=["user-of-another-account", "session-named-like-the-user", "role-named-like-the-user"],
)
def test_a_forged_self_is_another_user(aws, identity):
    outcome = handle(aws, event(OTHER_USER_KEY, identity))
    assert outcome.severity == "HIGH"  # from svc.ivr-deploy's own policies
    assert "for another user" in outcome.finding["reasons"][0]
    assert not any(r.startswith("self-service") for r in outcome.finding["reasons"])


def test_a_key_for_a_user_is_judged_by_its_groups_too(aws):
    # dana.ops has no policy of its own: connect-admins (AdministratorAccess) makes it CRITICAL.
    outcome = handle(aws, event(OTHER_USER_KEY, userName="dana.ops"))
    assert outcome.severity == "CRITICAL"
    assert outcome.finding["reasons"][1].startswith("group connect-admins: AdministratorAccess")


def test_a_user_without_any_policy_is_low(aws):
    outcome = handle(aws, event(OTHER_USER_KEY, userName="mallory.ops"))
    assert outcome.severity == "LOW"
    assert "has no policies today" in outcome.finding["reasons"][1]


def test_a_user_that_no_longer_exists_is_high_and_says_why(aws):
    outcome = handle(aws, event(OTHER_USER_KEY, userName="gone.user"))
    assert outcome.severity == "HIGH"
    assert "NoSuchEntity" in outcome.finding["reasons"][0]


# ---- the suite itself, look-alikes, allowlist -----------------------------------------------
def test_a_session_named_like_the_suite_is_not_the_suite(aws):
    identity = session("ConnectPlatformAdmin", "connect-guard")
    outcome = handle(aws, event("iam/add-user-to-group-admins.json", identity))
    assert outcome.severity == "CRITICAL"  # the group's AdministratorAccess, not a compromise
    assert not any("connect-guard's own role" in r for r in outcome.finding["reasons"])


def test_the_suites_role_path_in_an_account_that_is_not_enrolled_is_not_the_suite(aws):
    identity = session("connect-guard/connect-guard-dev-member-quarantine", "connect-guard", "999988887777")
    outcome = handle(aws, event("iam/add-user-to-group-admins.json", identity))
    assert not any("connect-guard's own role" in r for r in outcome.finding["reasons"])


@pytest.mark.parametrize("role", ["connect-guard-dev-member-read", "CONNECT-GUARD-DEV-MEMBER-QUARANTINE"])
def test_a_trust_change_on_a_suite_role_is_critical_even_when_allowlisted(aws, role):
    pipeline = "arn:aws:iam::111122223333:role/ConnectChangePipeline"
    identity = session("ConnectChangePipeline", "deploy-1")
    outcome = handle(aws, event(TRUST_STAR, identity, roleName=role), allowlisted_principals=(pipeline,))
    assert outcome.severity == "CRITICAL"
    assert "one of connect-guard's own roles" in outcome.finding["reasons"][0]


def test_a_look_alike_of_a_suite_role_is_judged_by_its_trust_policy(aws):
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    outcome = handle(aws, event(TRUST_STAR, roleName="connect-guard-dev-member-read-copy", policyDocument=trust))
    assert outcome.severity == "HIGH"  # a new in-account principal, no snapshot
    assert not any("connect-guard's own roles" in r for r in outcome.finding["reasons"])


# ---- trust policies ---------------------------------------------------------------------------
def trust_of(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ANY_IN_ORG = {
    "Effect": "Allow",
    "Principal": {"AWS": "*"},
    "Action": "sts:AssumeRole",
    "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG}},
}


def test_anyone_in_the_organization_is_high_when_the_organization_is_known(aws):
    outcome = handle(aws, event(TRUST_STAR, policyDocument=trust_of(ANY_IN_ORG)), organization_id=ORG)
    assert outcome.severity == "HIGH"
    assert outcome.finding["reasons"][0] == "new since the snapshot of 2026-11-20T06:00:00+00:00: AWS: *"


def test_anyone_in_another_organization_or_an_unknown_one_is_critical(aws):
    other = {**ANY_IN_ORG, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-zzzzzzzzzz"}}}
    assert handle(aws, event(TRUST_STAR, policyDocument=trust_of(other)), organization_id=ORG).severity == "CRITICAL"
    assert handle(aws, event(TRUST_STAR, policyDocument=trust_of(ANY_IN_ORG))).severity == "CRITICAL"


def test_an_organization_condition_that_admits_more_than_the_organization_is_not_a_bound(aws):
    # A wildcard, a list naming another organization too, or a negated operator admit outsiders.
    for condition in (
        {"StringLike": {"aws:PrincipalOrgID": "o-*"}},
        {"StringEquals": {"aws:PrincipalOrgID": [ORG, "o-zzzzzzzzzz"]}},
        {"StringNotEquals": {"aws:PrincipalOrgID": "o-zzzzzzzzzz"}},
        {"StringEquals": {"aws:PrincipalOrgPaths": f"{ORG}/*"}},
    ):
        forged = {**ANY_IN_ORG, "Condition": condition}
        outcome = handle(aws, event(TRUST_STAR, policyDocument=trust_of(forged)), organization_id=ORG)
        assert outcome.severity == "CRITICAL", condition


def test_an_enrolled_or_snapshot_account_is_inside(aws):
    partner = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole"}
    assert handle(aws, event(TRUST_STAR, policyDocument=trust_of(partner))).severity == "CRITICAL"
    outcome = handle(aws, event(TRUST_STAR, policyDocument=trust_of(partner)), snapshot_account_ids=("444455556666",))
    assert outcome.severity == "HIGH"


def test_a_role_without_a_snapshot_lists_every_principal_and_nothing_is_changed(aws):
    aws.recorder.clear()
    outcome = handle(aws, event(TRUST_STAR, roleName="ConnectFlowAutomation"))
    assert outcome.severity == "CRITICAL"  # "*" is CRITICAL with or without a snapshot
    assert any(
        r.startswith("role ConnectFlowAutomation has no snapshot: what is new can't be told; it now trusts Service: ")
        for r in outcome.finding["reasons"]
    )
    assert writes(aws) == []


def test_the_snapshots_trust_again_is_low_and_a_changed_condition_medium(aws):
    lambda_only = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    same = handle(aws, event(TRUST_STAR, policyDocument=trust_of(lambda_only)))
    assert same.severity == "LOW"
    conditioned = {**lambda_only, "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333"}}}
    changed = handle(aws, event(TRUST_STAR, policyDocument=trust_of(conditioned)))
    assert changed.severity == "MEDIUM"
    assert "its conditions or actions changed" in changed.finding["reasons"][-1]


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "%7B%22Statement%22",
        json.dumps(["a list"]),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "arn:aws:iam::1:root", "Action": "*"}]}),
    ],
)
def test_an_unreadable_trust_policy_is_high(aws, document):
    outcome = handle(aws, event(TRUST_STAR, policyDocument=document))
    assert outcome.severity == "HIGH"
    assert outcome.finding["reasons"][0].startswith("the new trust policy could not be read")


def test_a_url_encoded_trust_policy_is_read(aws):
    from urllib.parse import quote

    star = {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}
    outcome = handle(aws, event(TRUST_STAR, policyDocument=quote(trust_of(star))))
    assert outcome.severity == "CRITICAL"
    assert outcome.finding["reasons"][0] == "the role now trusts any principal: AWS: *"


# ---- boundaries ---------------------------------------------------------------------------------
def test_a_narrow_boundary_lowers_the_severity_to_what_both_grant(aws):
    ev = event(
        "iam/put-user-permissions-boundary-administratoraccess.json",
        permissionsBoundary="arn:aws:iam::aws:policy/AmazonConnectReadOnlyAccess",
    )
    outcome = handle(aws, ev)
    assert outcome.severity == "MEDIUM"  # read-only boundary over Connect-write policies
    assert outcome.finding["policy"]["document_source"] == "api"
    assert not any("bounds nothing" in r for r in outcome.finding["reasons"])


def test_a_boundary_that_cannot_be_read_is_high(aws):
    ev = event(
        "iam/put-user-permissions-boundary-administratoraccess.json",
        permissionsBoundary="arn:aws:iam::111122223333:policy/NoSuchBoundary",
    )
    outcome = handle(aws, ev)
    assert outcome.severity == "HIGH"
    assert "could not be read" in outcome.finding["reasons"][0]


# ---- faults: refused, throttled, the last attempt ------------------------------------------------
def test_a_source_account_that_is_not_enrolled_is_high_and_names_it(aws):
    outcome = handle(aws, event("iam/add-user-to-group-admins.json"), member_account_ids=())
    assert outcome.severity == "HIGH"
    assert "account 111122223333 is not enrolled" in outcome.finding["reasons"][0]


def _stubbed(aws: Any) -> tuple[policy_alerts.PolicyAlertResponder, Stubber]:
    settings = aws.settings()
    clients = AwsClients("us-east-1", aws.session, "123456789012")
    iam = clients.for_account("iam", "111122223333", "us-east-1", settings, "read")
    responder = policy_alerts.PolicyAlertResponder(
        settings, SnsPublisher(clients.sns, settings.alert_topic_arn), PolicyReader(clients, settings)
    )
    return responder, Stubber(iam)


def test_a_throttled_read_mid_assessment_raises_so_sqs_retries_and_publishes_nothing(aws):
    responder, stubber = _stubbed(aws)
    stubber.add_response(
        "list_attached_group_policies",
        {"AttachedPolicies": [], "IsTruncated": False},
        {"GroupName": "connect-admins"},
    )
    stubber.add_client_error("list_group_policies", service_error_code="Throttling", http_status_code=400)
    with stubber, pytest.raises(Exception, match="Throttling"):
        responder.handle(event("iam/add-user-to-group-admins.json"))
    assert aws.inbox() == []


def test_a_refused_read_is_high_not_retried(aws):
    responder, stubber = _stubbed(aws)
    stubber.add_client_error("list_attached_group_policies", service_error_code="AccessDenied", http_status_code=403)
    with stubber:
        outcome = responder.handle(event("iam/add-user-to-group-admins.json"))
    assert outcome.severity == "HIGH"
    assert "IAM AccessDenied reading the policies of group connect-admins" in outcome.finding["reasons"][0]


def test_the_last_attempt_still_tells_the_soc(aws):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    responder.give_up(event("iam/add-user-to-group-admins.json"), RuntimeError("Throttling"))
    (message,) = aws.inbox()
    finding = json.loads(message["Message"])
    assert finding["severity"] == "HIGH" and finding["kind"] == "iam.escalation"
    assert finding["reasons"][0].startswith("NOT ASSESSED: RuntimeError: Throttling")


def test_the_last_attempt_of_a_policy_attachment_adds_nothing(aws):
    # A plain policy change keeps its behaviour: no final alert of its own (the DLQ alarm says it).
    responder = policy_alerts.build(aws.settings(), aws.clients)
    responder.give_up(event("iam/attach-role-policy-root.json"), RuntimeError("Throttling"))
    assert aws.inbox() == []


def test_the_suites_own_role_at_the_last_attempt_is_still_critical(aws):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    responder.give_up(event("iam/add-user-to-group-by-suite.json"), RuntimeError("boom"))
    (message,) = aws.inbox()
    assert json.loads(message["Message"])["severity"] == "CRITICAL"
