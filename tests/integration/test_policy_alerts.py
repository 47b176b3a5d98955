"""Responder decisions that the corpus alone does not pin down."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.stub import Stubber

from connect_guard.clients import AwsClients
from connect_guard.events import CloudTrailEvent
from connect_guard.iam import PolicyReader
from connect_guard.publisher import SnsPublisher
from connect_guard.responders import policy_alerts
from tests.conftest import load_event, with_new_event_id

CUSTOMER_MANAGED = "iam/attach-group-policy-customer-managed.json"


def event(relative: str, **identity_changes) -> CloudTrailEvent:
    raw = with_new_event_id(load_event(relative))
    raw["detail"]["userIdentity"].update(identity_changes)
    return CloudTrailEvent.model_validate(raw)


def by_role(role_arn: str, session: str = "quarantine") -> dict[str, Any]:
    account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{account}:assumed-role/{name}/{session}",
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account}},
    }


OWN_QUARANTINE_ROLE = "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-role-quarantine"


def quarantine_attachment(account: str = "111122223333") -> CloudTrailEvent:
    raw = with_new_event_id(load_event("iam/attach-user-policy-administratoraccess.json"))
    raw["detail"]["requestParameters"]["policyArn"] = (
        f"arn:aws:iam::{account}:policy/connect-guard/connect-guard-quarantine"
    )
    raw["detail"]["userIdentity"] = by_role(OWN_QUARANTINE_ROLE)
    return CloudTrailEvent.model_validate(raw)


def test_the_suites_own_quarantine_attachment_publishes_nothing(aws):
    assert OWN_QUARANTINE_ROLE in aws.settings().suite_role_arns
    outcome = policy_alerts.build(aws.settings(), aws.clients).handle(quarantine_attachment())
    assert outcome.outcome == "ignored" and "connect-guard itself" in (outcome.reason or "")
    assert aws.inbox() == []


def test_anything_else_the_suites_role_does_is_critical(aws):
    # The suite's roles can only attach the quarantine policy: anything else means a compromise.
    responder = policy_alerts.build(aws.settings(), aws.clients)
    outcome = responder.handle(event("iam/attach-role-policy-root.json", **by_role(OWN_QUARANTINE_ROLE)))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert "treat the role as compromised" in outcome.finding["reasons"][0]


@pytest.mark.parametrize(
    "role_arn",
    [
        # Under the suite's path, named like a suite role, in the security account.
        "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-QuarantineRole-1A2B",
        # The member write role's exact name and path, in an account that is not enrolled.
        "arn:aws:iam::999988887777:role/connect-guard/connect-guard-dev-member-quarantine",
    ],
)
def test_a_look_alike_of_the_suite_is_alerted_like_anyone(aws, role_arn):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    outcome = responder.handle(event("iam/attach-role-policy-root.json", **by_role(role_arn, "connect-guard")))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    (message,) = aws.inbox()
    assert "AdministratorAccess" in message["Subject"]


def test_allowlisted_actor_alerts_at_info_and_says_what_it_would_have_been(aws):
    responder = policy_alerts.build(
        aws.settings(allowlisted_principals=("arn:aws:iam::111122223333:role/ConnectChangePipeline",)),
        aws.clients,
    )
    outcome = responder.handle(event("iam/attach-role-policy-allowlisted-pipeline.json"))
    assert outcome.severity == "INFO"
    assert outcome.finding["actor"]["allowlisted"] is True
    assert "would otherwise be HIGH" in outcome.finding["reasons"][0]


def test_policy_in_an_account_that_is_not_enrolled_is_high_and_says_why(aws):
    responder = policy_alerts.build(aws.settings(member_account_ids=()), aws.clients)
    outcome = responder.handle(event(CUSTOMER_MANAGED))
    assert outcome.severity == "HIGH"
    assert outcome.finding["policy"]["document_source"] == "unavailable"
    assert "account 111122223333 is not enrolled" in outcome.finding["reasons"][0]


def test_document_read_uses_the_member_role_and_reports_the_version(aws):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    outcome = responder.handle(event(CUSTOMER_MANAGED))
    assert outcome.finding["policy"]["document_source"] == "api"
    assert outcome.finding["policy"]["version_id"] == "v2"
    assert "connect:UpdateUserSecurityProfiles" in outcome.finding["reasons"][0]


def test_deleted_policy_is_reported_not_retried(aws):
    raw = with_new_event_id(load_event(CUSTOMER_MANAGED))
    raw["detail"]["requestParameters"]["policyArn"] = "arn:aws:iam::111122223333:policy/AlreadyGone"
    outcome = policy_alerts.build(aws.settings(), aws.clients).handle(CloudTrailEvent.model_validate(raw))
    assert outcome.severity == "HIGH"
    assert "NoSuchEntity" in outcome.finding["reasons"][0]


def test_throttled_policy_read_raises_so_sqs_retries(aws):
    settings = aws.settings()
    clients = AwsClients("us-east-1", aws.session, "123456789012")
    iam = clients.member_client("iam", settings.member_role_arn("111122223333", "read"))
    stubber = Stubber(iam)
    stubber.add_client_error("get_policy", service_error_code="Throttling", http_status_code=400)
    responder = policy_alerts.PolicyAlertResponder(
        settings, SnsPublisher(clients.sns, settings.alert_topic_arn), PolicyReader(clients, settings)
    )
    with stubber, pytest.raises(Exception, match="Throttling"):
        responder.handle(event(CUSTOMER_MANAGED))
    assert aws.inbox() == []


def test_denied_attempt_without_parameters_is_an_attempt_with_unknown_target(aws):
    outcome = policy_alerts.build(aws.settings(), aws.clients).handle(event("iam/attach-user-policy-denied.json"))
    finding = outcome.finding
    assert finding["attempt"]["status"] == "denied" and finding["attempt"]["error_code"] == "AccessDenied"
    assert finding["target"] is None and finding["policy"] is None
    assert finding["title"].startswith("Denied attempt: AttachUserPolicy by ")
    assert outcome.severity == "MEDIUM"


def test_unsupported_event_name_is_rejected_as_poison(aws):
    from connect_guard.errors import PoisonEventError

    raw = copy.deepcopy(load_event(CUSTOMER_MANAGED))
    raw["detail"]["eventName"] = "DetachGroupPolicy"
    with pytest.raises(PoisonEventError, match="unsupported event"):
        policy_alerts.build(aws.settings(), aws.clients).handle(CloudTrailEvent.model_validate(raw))


def role_attachment(role: str, **identity_changes: Any) -> CloudTrailEvent:
    raw = with_new_event_id(load_event("iam/attach-role-policy-allowlisted-pipeline.json"))
    raw["detail"]["requestParameters"]["roleName"] = role
    raw["detail"]["userIdentity"].update(identity_changes)
    return CloudTrailEvent.model_validate(raw)


@pytest.mark.parametrize(
    "role", ["connect-guard-dev-member-read", "connect-guard-dev-member-forward", "CONNECT-GUARD-DEV-MEMBER-QUARANTINE"]
)
def test_a_change_to_the_suites_own_roles_is_critical_even_from_an_allowlisted_actor(aws, role):
    pipeline_role = "arn:aws:iam::111122223333:role/ConnectChangePipeline"
    responder = policy_alerts.build(aws.settings(allowlisted_principals=(pipeline_role,)), aws.clients)
    outcome = responder.handle(role_attachment(role))
    assert outcome.severity == "CRITICAL"
    assert "one of connect-guard's own roles" in outcome.finding["reasons"][0]


def test_a_suite_role_name_in_an_account_that_is_not_enrolled_is_judged_as_usual(aws):
    responder = policy_alerts.build(aws.settings(member_account_ids=()), aws.clients)
    outcome = responder.handle(role_attachment("connect-guard-dev-member-read"))
    assert not any("connect-guard's own roles" in r for r in outcome.finding["reasons"])


def test_a_suite_role_changed_through_cloudformation_is_high_and_asks_to_confirm(aws):
    outcome = policy_alerts.build(aws.settings(), aws.clients).handle(
        role_attachment("connect-guard-dev-member-read", invokedBy="cloudformation.amazonaws.com")
    )
    assert outcome.severity == "HIGH"
    assert "confirm it was a deployment" in outcome.finding["reasons"][0]


def test_a_new_version_of_the_quarantine_policy_is_critical(aws):
    raw = with_new_event_id(load_event("iam/create-policy-version-iam-put-wildcard.json"))
    raw["detail"]["requestParameters"]["policyArn"] = (
        "arn:aws:iam::111122223333:policy/connect-guard/connect-guard-quarantine"
    )
    outcome = policy_alerts.build(aws.settings(), aws.clients).handle(CloudTrailEvent.model_validate(raw))
    assert outcome.severity == "CRITICAL"
    assert "quarantine policy changed" in outcome.finding["reasons"][0]
