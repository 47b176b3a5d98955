"""IAM Identity Center permission sets (policy_alerts' sub-control): what the corpus alone does not pin
down. The embedded AWS holds demo-state.yaml's Identity Center (111122223333, us-east-1)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from botocore.stub import Stubber

from connect_guard.errors import PoisonEventError
from connect_guard.events import CloudTrailEvent
from connect_guard.responders import policy_alerts
from tests.conftest import load_event, with_new_event_id
from tests.integration.call_counts import CallCounter

ASSIGNMENT = "sso/create-account-assignment-admin-set.json"
ATTACH_ADMIN = "sso/attach-managed-policy-administratoraccess.json"
PROVISION = "sso/provision-permission-set.json"
CENTER = "111122223333"
OWN_QUARANTINE_ROLE = "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-role-quarantine"
SUPERVISORS = "arn:aws:sso:::permissionSet/ssoins-7223a1b2c3d4e5f6/ps-a1b2c3d4e5f60002"


def event(relative: str, parameters: dict[str, Any] | None = None, **detail: Any) -> CloudTrailEvent:
    raw = with_new_event_id(load_event(relative))
    raw["detail"].update(detail)
    if parameters:
        raw["detail"]["requestParameters"].update(parameters)
    return CloudTrailEvent.model_validate(raw)


def attach(policy_arn: str, **detail: Any) -> CloudTrailEvent:
    return event(ATTACH_ADMIN, {"managedPolicyArn": policy_arn}, **detail)


def by_role(role_arn: str, session: str = "connect-guard") -> dict[str, Any]:
    account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{account}:assumed-role/{name}/{session}",
        "accountId": account,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account}},
    }


def handle(aws, ev: CloudTrailEvent, **settings: Any):
    return policy_alerts.build(aws.settings(**settings), aws.clients).handle(ev)


def sso_calls(aws) -> list[str]:
    return [f"{c['service']}:{c['operation']}" for c in aws.recorder.calls if c["service"] == "sso-admin"]


# ---- fail closed ------------------------------------------------------------------------------
def test_without_the_integration_an_assignment_is_high_could_not_read(aws):
    outcome = handle(aws, event(ASSIGNMENT), identity_center_account_id=None, identity_center_region=None)
    assert outcome.severity == "HIGH"
    assert outcome.finding["reasons"][1].startswith(
        "could not read the permission set (the Identity Center integration"
    )
    assert outcome.finding["policy"]["document_source"] == "unavailable"


def test_without_the_integration_never_lower_than_the_events_own_document(aws):
    # AdministratorAccess is CRITICAL from its name: nothing needs reading.
    outcome = handle(aws, event(ATTACH_ADMIN), identity_center_account_id=None)
    assert outcome.severity == "CRITICAL"
    # A read-only policy alone would be MEDIUM: the unread set keeps it at HIGH.
    outcome = handle(aws, attach("arn:aws:iam::aws:policy/ReadOnlyAccess"), identity_center_account_id=None)
    assert outcome.severity == "HIGH"
    assert "could not read the permission set" in outcome.finding["reasons"][0]


def test_an_event_from_another_account_than_identity_centers_is_not_read_there(aws):
    # The same call in the security account: another Identity Center than the one configured.
    ev = event(ASSIGNMENT, recipientAccountId="123456789012")
    ev = ev.model_copy(update={"account": "123456789012"})
    outcome = handle(aws, ev)
    assert outcome.severity == "HIGH"
    assert "permission sets are read in 111122223333 (us-east-1)" in outcome.finding["reasons"][1]


def test_an_identity_center_account_that_is_not_enrolled_fails_closed(aws):
    outcome = handle(aws, event(ASSIGNMENT), member_account_ids=())
    assert outcome.severity == "HIGH"
    assert "account 111122223333 is not enrolled" in outcome.finding["reasons"][1]


def test_a_refused_read_is_high_and_a_throttled_one_is_retried(aws):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    sso = aws.clients.for_account("sso-admin", CENTER, "us-east-1", aws.settings(), "read")
    with Stubber(sso) as stubber:
        stubber.add_client_error("list_managed_policies_in_permission_set", "AccessDeniedException")
        outcome = responder.handle(event(ASSIGNMENT))
    assert outcome.severity == "HIGH"
    assert "sso-admin AccessDeniedException" in outcome.finding["reasons"][1]
    # A fault mid-read (the second of three): raised for SQS to retry, nothing published.
    assert len(aws.inbox()) == 1  # the refused read's alert (and the inbox drained)
    with Stubber(sso) as stubber:
        stubber.add_response(
            "list_managed_policies_in_permission_set",
            {"AttachedManagedPolicies": []},
            {"InstanceArn": "arn:aws:sso:::instance/ssoins-7223a1b2c3d4e5f6", "PermissionSetArn": SUPERVISORS},
        )
        stubber.add_client_error("get_inline_policy_for_permission_set", "ThrottlingException", http_status_code=400)
        with pytest.raises(Exception, match="ThrottlingException"):
            responder.handle(event(PROVISION))
    assert aws.inbox() == []


def test_the_last_attempt_of_a_throttled_read_still_alerts_not_assessed(aws):
    """The final receive failed on a throttled read: the SOC hears of the change before the DLQ."""
    responder = policy_alerts.build(aws.settings(), aws.clients)
    error = RuntimeError("ThrottlingException: Rate exceeded")
    responder.give_up(event(PROVISION), error)
    responder.give_up(event(ATTACH_ADMIN), error)
    provisioned, attached = (json.loads(m["Message"]) for m in aws.inbox())
    assert provisioned["severity"] == "HIGH"  # never lower than HIGH: the set was not read
    assert provisioned["reasons"][0].startswith("NOT ASSESSED: RuntimeError: ThrottlingException")
    assert provisioned["policy"]["document_source"] == "unavailable"
    assert attached["severity"] == "CRITICAL"  # the event's own document still decides the floor
    assert sso_calls(aws) == []


# ---- what the set grants ----------------------------------------------------------------------
def test_the_assigned_set_is_read_in_three_calls_and_nothing_is_written(aws):
    with CallCounter(aws) as counter, counter.counting() as calls:
        outcome = handle(aws, event(ASSIGNMENT))
    assert outcome.severity == "CRITICAL"
    assert Counter(c for c in calls if c != "sts:AssumeRole") == Counter(
        {
            "sso:ListManagedPoliciesInPermissionSet": 1,
            "sso:GetInlinePolicyForPermissionSet": 1,
            "sso:ListCustomerManagedPolicyReferencesInPermissionSet": 1,
            "sns:Publish": 1,
        }
    )


def test_a_critical_event_document_reads_nothing_more(aws):
    with CallCounter(aws) as counter, counter.counting() as calls:
        outcome = handle(aws, event("sso/put-inline-policy-iam-star.json"))
    assert outcome.severity == "CRITICAL"
    assert [c for c in calls if c != "sts:AssumeRole"] == ["sns:Publish"]


def test_a_small_attachment_to_an_admin_set_is_critical_what_the_set_grants(aws):
    admin_set = "arn:aws:sso:::permissionSet/ssoins-7223a1b2c3d4e5f6/ps-a1b2c3d4e5f60001"
    ev = event(
        ATTACH_ADMIN, {"managedPolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess", "permissionSetArn": admin_set}
    )
    outcome = handle(aws, ev)
    assert outcome.severity == "CRITICAL"
    assert "the permission set grants CRITICAL-grade access" in outcome.finding["reasons"]
    assert outcome.finding["policy"]["name"] == "ReadOnlyAccess"


def test_a_customer_managed_policy_of_an_account_that_is_not_enrolled_is_left_for_review(aws):
    outcome = handle(aws, event(PROVISION, {"targetId": "999988887777"}))
    assert outcome.severity == "HIGH"
    reason = next(r for r in outcome.finding["reasons"] if "ConnectAgentTools" in r)
    assert "account 999988887777 is not enrolled" in reason


def test_provisioning_to_all_accounts_cannot_resolve_a_customer_managed_policy(aws):
    outcome = handle(aws, event(PROVISION, {"targetType": "ALL_PROVISIONED_ACCOUNTS", "targetId": None}))
    assert outcome.severity == "HIGH"
    assert outcome.finding["title"].endswith("provisioned to all its accounts")
    assert any("review it there by hand" in r for r in outcome.finding["reasons"])


def test_an_inline_policy_the_event_does_not_show_is_read_from_the_set(aws):
    # If CloudTrail hides the document, the set's own inline policy (read) decides.
    sso = aws.account_session(CENTER).client("sso-admin")
    reporting = "arn:aws:sso:::permissionSet/ssoins-7223a1b2c3d4e5f6/ps-a1b2c3d4e5f60003"
    sso.put_inline_policy_to_permission_set(
        InstanceArn="arn:aws:sso:::instance/ssoins-7223a1b2c3d4e5f6",
        PermissionSetArn=reporting,
        InlinePolicy=json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )
    outcome = handle(
        aws, event("sso/put-inline-policy-iam-star.json", {"inlinePolicy": "HIDDEN_DUE_TO_SECURITY_REASONS"})
    )
    assert outcome.severity == "CRITICAL"
    assert outcome.finding["reasons"][0].startswith("policy could not be analysed")
    assert "the set's inline policy: full administrator access (Action * on Resource *)" in outcome.finding["reasons"]


# ---- who did it ---------------------------------------------------------------------------------
def test_the_suites_own_role_is_critical_even_allowlisted(aws):
    ev = attach("arn:aws:iam::aws:policy/ReadOnlyAccess", userIdentity=by_role(OWN_QUARANTINE_ROLE))
    outcome = handle(aws, ev, allowlisted_principals=(OWN_QUARANTINE_ROLE,))
    assert outcome.severity == "CRITICAL"
    assert "treat the role as compromised" in outcome.finding["reasons"][0]


@pytest.mark.parametrize(
    "role_arn",
    [
        # Under the suite's path, named like a suite role, in the security account.
        "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-role-quarantine-2",
        # The member write role's exact name and path, in an account that is not enrolled.
        "arn:aws:iam::999988887777:role/connect-guard/connect-guard-dev-member-quarantine",
        # The suite role's name, off its path.
        "arn:aws:iam::123456789012:role/connect-guard-dev-role-quarantine",
    ],
)
def test_a_forged_own_change_is_alerted_like_anyone(aws, role_arn):
    outcome = handle(aws, event(ASSIGNMENT, userIdentity=by_role(role_arn)))
    assert outcome.severity == "CRITICAL"  # what the set grants, not who
    assert not any("connect-guard's own role" in r for r in outcome.finding["reasons"])


def test_a_denied_attempt_reads_nothing(aws):
    ev = event(ASSIGNMENT, errorCode="AccessDenied", errorMessage="not authorized")
    outcome = handle(aws, ev)
    assert outcome.severity == "MEDIUM"
    assert outcome.finding["reasons"][:2] == [
        "assigned to USER 94482488-3041-7026-18f3-2c7d1f4e9a01 in account 111122223333",
        "the call was denied (AccessDenied): an attempt, not a change",
    ]
    assert sso_calls(aws) == []


def test_an_iam_event_with_a_permission_set_events_name_is_poison(aws):
    # Only sso.amazonaws.com's own calls are permission-set events: IAM has no such call.
    raw = with_new_event_id(load_event(ASSIGNMENT))
    raw["source"], raw["detail"]["eventSource"] = "aws.iam", "iam.amazonaws.com"
    with pytest.raises(PoisonEventError):
        handle(aws, CloudTrailEvent.model_validate(raw))


# ---- configuration ------------------------------------------------------------------------------
def test_the_account_alone_configures_reads_and_revocation_still_needs_all_three(aws):
    from connect_guard.errors import ConfigurationError
    from connect_guard.settings import Settings

    base = {"ALERT_TOPIC_ARN": aws.topic_arn, "DEDUP_TABLE_NAME": aws.table_name}
    reads = Settings.from_env({**base, "IDENTITY_CENTER_ACCOUNT_ID": CENTER})
    assert reads.identity_center_home == (CENTER, "us-east-1")  # the stack's region when not given
    assert not reads.identity_center  # nobody is revoked without the deny-list SCP
    elsewhere = Settings.from_env({**base, "IDENTITY_CENTER_ACCOUNT_ID": CENTER, "IDENTITY_CENTER_REGION": "eu-west-1"})
    assert elsewhere.identity_center_home == (CENTER, "eu-west-1")
    assert Settings.from_env(base).identity_center_home is None
    for partial in (
        {"IDENTITY_STORE_ID": "d-906700a1b2", "SSO_DENY_LIST_POLICY_ID": "p-abcdefgh"},  # no account
        {"IDENTITY_CENTER_ACCOUNT_ID": CENTER, "IDENTITY_STORE_ID": "d-906700a1b2"},  # no SCP
    ):
        with pytest.raises(ConfigurationError, match="go together"):
            Settings.from_env({**base, **partial})
