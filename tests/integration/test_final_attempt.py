"""The last receive's FAILED alert: for every action that was due and is not in place, and only those.

Driven through the deployed handler, five receives of one message (the queues' maxReceiveCount),
with a dependency refusing throughout. On the last receive the responder decides again from the
state as it is then: a rollback or quarantine an earlier receive made is reported as made; one
that was due and is not in place is a CRITICAL FAILED alert saying so; an event that called for
no action publishes nothing (the DLQ and its alarm keep it).
"""

from __future__ import annotations

import json
from typing import Any

from connect_guard.responders import profile_rollback, role_quarantine
from connect_guard.runtime import MAX_RECEIVE_COUNT
from tests.integration import test_role_quarantine
from tests.integration.delivery import Refuse, sqs_handler, until_acked
from tests.integration.test_profile_rollback import INSTANCE, PIPELINE, Instance, connect_event
from tests.integration.test_profile_rollback import assumed as connect_assumed
from tests.integration.test_profile_rollback import settings as rollback_settings
from tests.integration.test_role_quarantine import POLICY_ARN, attached, iam_event, user

iam = test_role_quarantine.iam  # the fixture: IAM with the sample users and roles
EVERY_RECEIVE = MAX_RECEIVE_COUNT  # a refusal on each receive; the last receive's give_up gets through


def alerts(aws) -> list[dict[str, Any]]:
    return [json.loads(m["Message"]) for m in aws.inbox()]


def rollback_handler(aws, monkeypatch, **overrides: Any):
    settings = rollback_settings(aws, response_mode="enforce", **overrides)
    return sqs_handler(aws, monkeypatch, profile_rollback.build, settings)


def quarantine_handler(aws, monkeypatch, mode: str = "enforce"):
    return sqs_handler(aws, monkeypatch, role_quarantine.build, aws.settings(response_mode=mode))


def as_body(event: Any) -> dict[str, Any]:
    return event.model_dump(mode="json", by_alias=True)


# ---- a rollback made is never reported FAILED -----------------------------------------------------
def test_a_rollback_made_before_every_publish_failed_is_reported_as_made_not_failed(aws, monkeypatch):
    instance = Instance(aws)
    receive = rollback_handler(aws, monkeypatch)
    event = connect_event("UpdateUserSecurityProfiles", instance.escalate_user())
    Refuse("sns:Publish", "InternalError", 500, times=EVERY_RECEIVE).install(aws)

    assert until_acked(receive, event) is None  # every receive failed: the message is in the DLQ
    (alert,) = alerts(aws)  # the last receive's, once SNS took it
    assert alert["severity"] == "CRITICAL"
    assert alert["title"] == "Rolled back: Connect user m.garcia gained Admin"
    assert "FAILED" not in alert["title"]
    assert "completed by an earlier attempt" in alert["reasons"][-1]
    assert alert["change"]["before"] == ["Admin", "Agent"] and alert["change"]["after"] == ["Agent"]
    assert instance.updates().count("UpdateUserSecurityProfiles") == 2  # the escalation, one rollback
    assert instance.user_profiles() == {instance.agent}


def test_a_rollback_whose_audit_write_kept_failing_is_reported_and_audited_on_a_redrive(aws, monkeypatch):
    instance = Instance(aws)
    receive = rollback_handler(aws, monkeypatch)
    event = connect_event("UpdateUserSecurityProfiles", instance.escalate_user())
    Refuse("dynamodb:TransactWriteItems", "InternalServerError", 500, times=EVERY_RECEIVE + 1).install(aws)

    assert until_acked(receive, event) is None
    (alert,) = alerts(aws)  # the last receive: the finding goes out though its audit record could not
    assert alert["title"] == "Rolled back: Connect user m.garcia gained Admin"
    assert [r for r in aws.audit_records() if r["finding_id"]["S"] == alert["finding_id"]] == []
    (journal,) = [j for j in aws.journal() if j["pk"]["S"] == f"finding#{alert['finding_id']}"]
    assert journal["status"]["S"] == "started"  # the record waits in the journal

    assert receive(event, MAX_RECEIVE_COUNT + 1)  # redriven from the DLQ: audited, reported again
    (audit,) = [r for r in aws.audit_records() if r["finding_id"]["S"] == alert["finding_id"]]
    assert (audit["action"]["S"], audit["status"]["S"]) == ("UpdateUserSecurityProfiles", "taken")
    assert "completed by an earlier attempt" in audit["reason"]["S"]
    assert [a["finding_id"] for a in alerts(aws)] == [alert["finding_id"]]  # the same finding again
    assert instance.updates().count("UpdateUserSecurityProfiles") == 2


def test_a_rollback_due_and_not_made_is_failed_with_the_state_re_read(aws, monkeypatch):
    instance = Instance(aws)
    receive = rollback_handler(aws, monkeypatch)
    event = connect_event("UpdateUserSecurityProfiles", instance.escalate_user())
    instance.fake.fail_next("UpdateUserSecurityProfiles", "InternalServiceException", times=EVERY_RECEIVE)

    assert until_acked(receive, event) is None
    (alert,) = alerts(aws)
    assert alert["title"] == (
        "Rollback FAILED for UpdateUserSecurityProfiles in 111122223333: the escalation is NOT rolled back"
    )
    assert "re-read now, the escalation is still in place: user m.garcia has Admin" in alert["reasons"][1]
    assert alert["target"]["name"] == "m.garcia" and alert["connect"]["instance_id"] == INSTANCE
    assert instance.user_profiles() == {instance.agent, instance.admin}


def test_a_rollback_whose_state_cannot_be_re_read_is_unconfirmed_and_says_so(aws, monkeypatch):
    instance = Instance(aws)
    receive = rollback_handler(aws, monkeypatch)
    event = connect_event("UpdateUserSecurityProfiles", instance.escalate_user())
    # Every receive, then the last attempt's re-read and its one retry.
    instance.fake.fail_next("DescribeUser", "InternalServiceException", times=EVERY_RECEIVE + 2)

    assert until_acked(receive, event) is None
    (alert,) = alerts(aws)
    # Neither "rolled back" nor "NOT rolled back": the state said nothing either way.
    assert alert["title"] == (
        "Rollback UNCONFIRMED for UpdateUserSecurityProfiles in 111122223333: "
        "whether the escalation is rolled back is unknown"
    )
    assert alert["severity"] == "CRITICAL"
    assert "the state could not be re-read" in alert["reasons"][1]
    assert "the escalation may still be in place" in alert["reasons"][1]


def test_the_last_attempt_re_reads_once_more_after_a_transient_failure(aws, monkeypatch):
    instance = Instance(aws)
    receive = rollback_handler(aws, monkeypatch)
    event = connect_event("UpdateUserSecurityProfiles", instance.escalate_user())
    instance.fake.fail_next("DescribeUser", "InternalServiceException", times=EVERY_RECEIVE + 1)

    assert until_acked(receive, event) is None
    (alert,) = alerts(aws)
    assert alert["title"].startswith("Rollback FAILED for UpdateUserSecurityProfiles")
    assert "re-read now, the escalation is still in place" in alert["reasons"][1]


# ---- no FAILED alert when no rollback was due -----------------------------------------------------
def test_an_allowlisted_escalation_that_kept_failing_is_not_a_failed_rollback(aws, monkeypatch):
    instance = Instance(aws)
    receive = rollback_handler(aws, monkeypatch, allowlisted_principals=(PIPELINE,))
    params = instance.escalate_user()
    event = connect_event("UpdateUserSecurityProfiles", params, connect_assumed("ConnectChangePipeline", "deploy-1"))
    Refuse("sns:Publish", "InternalError", 500, times=EVERY_RECEIVE).install(aws)

    assert until_acked(receive, event) is None
    assert alerts(aws) == []  # never acted on, so nothing failed to happen
    assert instance.user_profiles() == {instance.agent, instance.admin}


def test_a_change_with_no_privileged_gain_that_kept_failing_is_not_a_failed_rollback(aws, monkeypatch):
    instance = Instance(aws)
    receive = rollback_handler(aws, monkeypatch)
    instance.client.update_user_security_profiles(
        InstanceId=INSTANCE, UserId=instance.user, SecurityProfileIds=[instance.manager]
    )
    params = {"InstanceId": INSTANCE, "UserId": instance.user, "SecurityProfileIds": [instance.manager]}
    event = connect_event("UpdateUserSecurityProfiles", params)
    Refuse("dynamodb:PutItem", "InternalServerError", 500, times=EVERY_RECEIVE).install(aws)  # the dedup claim

    assert until_acked(receive, event) is None
    assert alerts(aws) == []
    assert instance.updates() == ["UpdateUserSecurityProfiles"]  # the change itself, nothing since


# ---- quarantines -------------------------------------------------------------------------------
def test_a_quarantine_made_before_every_publish_failed_is_reported_as_made_not_failed(aws, iam, monkeypatch):
    receive = quarantine_handler(aws, monkeypatch)
    event = as_body(iam_event("DeleteRole", user("mallory"), {"roleName": "ConnectAgentFederation"}))
    Refuse("sns:Publish", "InternalError", 500, times=EVERY_RECEIVE).install(aws)

    assert until_acked(receive, event) is None
    (alert,) = alerts(aws)
    assert alert["title"] == "Quarantined mallory: Deleted role ConnectAgentFederation in 111122223333"
    assert [(a["operation"], a["status"]) for a in alert["actions"]] == [
        ("AttachUserPolicy", "taken"),
        ("TagUser", "taken"),
    ]
    assert any("completed by an earlier attempt" in r for r in alert["reasons"])
    assert attached(iam, "mallory") == [POLICY_ARN]


def test_a_quarantine_due_and_never_attached_is_failed_with_the_state_re_read(aws, iam, monkeypatch):
    receive = quarantine_handler(aws, monkeypatch)
    event = as_body(iam_event("DeleteRole", user("mallory"), {"roleName": "ConnectAgentFederation"}))
    Refuse("iam:AttachUserPolicy", "ServiceUnavailable", 503, times=EVERY_RECEIVE).install(aws)

    assert until_acked(receive, event) is None  # a 503 is retried, never taken for a final refusal
    (alert,) = alerts(aws)
    assert alert["title"] == (
        "Quarantine FAILED for mallory (DeleteRole on role ConnectAgentFederation) in 111122223333: "
        "the principal is NOT quarantined"
    )
    assert alert["reasons"][1] == "re-read now, the quarantine is not in place"
    assert attached(iam, "mallory") == []


def test_an_unprotected_role_deletion_that_kept_failing_is_not_a_failed_quarantine(aws, iam, monkeypatch):
    receive = quarantine_handler(aws, monkeypatch)
    event = as_body(iam_event("DeleteRole", user("mallory"), {"roleName": "tmp-build"}))  # not protected
    Refuse("dynamodb:PutItem", "InternalServerError", 500, times=EVERY_RECEIVE).install(aws)  # the dedup claim

    assert until_acked(receive, event) is None
    assert alerts(aws) == []  # no quarantine was ever due
    assert attached(iam, "mallory") == []


def test_a_quarantine_whose_state_cannot_be_re_read_is_unconfirmed_and_says_so(aws, iam, monkeypatch):
    receive = quarantine_handler(aws, monkeypatch)
    event = as_body(iam_event("DeleteRole", user("mallory"), {"roleName": "ConnectAgentFederation"}))
    Refuse("iam:ListRoleTags", "ServiceUnavailable", 503, times=EVERY_RECEIVE + 2).install(aws)

    assert until_acked(receive, event) is None
    (alert,) = alerts(aws)
    assert alert["kind"] == "iam.quarantine_unconfirmed" and alert["severity"] == "CRITICAL"
    assert alert["title"].endswith("whether the principal is quarantined is unknown")
    assert alert["reasons"][1].startswith("whether a quarantine was due could not be re-read (ClientError")


def test_an_actor_that_cannot_be_quarantined_is_failed_with_the_reason_when_every_alert_failed(aws, iam, monkeypatch):
    receive = quarantine_handler(aws, monkeypatch)
    event = as_body(iam_event("DeleteRole", user("ghost"), {"roleName": "ConnectAgentFederation"}))  # no such user
    Refuse("sns:Publish", "InternalError", 500, times=EVERY_RECEIVE).install(aws)

    assert until_acked(receive, event) is None
    (alert,) = alerts(aws)
    assert alert["title"].endswith("the principal is NOT quarantined")
    assert alert["reasons"][1].startswith("user ghost does not exist in account 111122223333 (NoSuchEntity")
