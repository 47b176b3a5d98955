"""Inputs are authenticated: only the function's own queue feeds it, only local runs invoke it
directly, and an out-of-scope event is reported (CRITICAL) without any responder acting on it.

Each test shows what the SOC receives and that the IAM or Connect state did not change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from connect_guard.errors import ConfigurationError, DirectInvocationError
from connect_guard.responders import policy_alerts, profile_rollback, role_quarantine
from connect_guard.runtime import MAX_RECEIVE_COUNT, build_pipeline, lambda_handler_for
from tests.conftest import delivered_at, delivered_now, load_event, with_new_event_id

ACCOUNT = "111122223333"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:connect-guard-dev-{}"
QUARANTINE_QUEUE = QUEUE.format("QuarantineQueue")
POLICY_QUEUE = QUEUE.format("PolicyAlertsQueue")
ROLLBACK_QUEUE = QUEUE.format("ProfileRollbackQueue")
SLR_ATTEMPT = "quarantine/delete-role-connect-slr-denied-iam-user.json"  # IAM user mallory.ops
ADMIN_ATTACH = "iam/attach-user-policy-administratoraccess.json"
QUARANTINE_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/connect-guard/connect-guard-quarantine"
FORGED_TIME = datetime(2099, 1, 1, 9, 0, tzinfo=UTC)  # far enough never to become the present


def sqs_batch(*bodies: str, source: str | None, receives: int = 1) -> dict[str, Any]:
    records = []
    for i, body in enumerate(bodies):
        record = {
            "messageId": f"m-{i}",
            "receiptHandle": f"rh-{i}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": str(receives)},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "awsRegion": "us-east-1",
        }
        if source is not None:
            record["eventSourceARN"] = source
        records.append(record)
    return {"Records": records}


@pytest.fixture
def handler_for(aws, monkeypatch) -> Callable[..., Any]:
    """A responder's Lambda handler configured as template.yaml configures it."""

    def make(module: Any, queue: str | None, mode: str = "enforce") -> Any:
        settings = aws.settings()
        env = {
            "ALERT_TOPIC_ARN": settings.alert_topic_arn,
            "DEDUP_TABLE_NAME": settings.dedup_table_name,
            "BASELINE_TABLE_NAME": aws.baseline_table,
            "AUDIT_TABLE_NAME": aws.audit_table,
            "MEMBER_ACCOUNT_IDS": ",".join(settings.member_account_ids),
            "RESPONSE_MODE": mode,
            "SOURCE_QUEUE_ARN": queue or "",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        from connect_guard import runtime
        from connect_guard.clients import AwsClients

        # The handler builds its clients from a new session: give it the one the Connect fake is on.
        monkeypatch.setattr(
            runtime, "AwsClients", lambda region, account_id: AwsClients(region, aws.session, account_id)
        )
        return lambda_handler_for(module.build)

    return make


SEEDED = ([], {"team": "contact-centre"})  # mallory.ops in events/demo-state.yaml


def mallory(aws) -> tuple[list[str], dict[str, str]]:
    """What a quarantine changes on IAM user mallory.ops: attached policies and tags."""
    iam = aws.account_session(ACCOUNT).client("iam")
    policies = [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName="mallory.ops")["AttachedPolicies"]]
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="mallory.ops")["Tags"]}
    return policies, tags


def findings(aws) -> list[dict[str, Any]]:
    return [json.loads(m["Message"]) for m in aws.inbox()]


# ---- only the function's own queue ---------------------------------------------------------------
def test_a_record_from_another_queue_fails_alone_and_is_never_processed(aws, handler_for, lambda_context, caplog):
    handler = handler_for(role_quarantine, QUARANTINE_QUEUE)
    body = json.dumps(delivered_now(load_event(SLR_ATTEMPT)))
    own = sqs_batch(body, source=QUARANTINE_QUEUE)["Records"][0]
    foreign = {**sqs_batch(body, source=POLICY_QUEUE)["Records"][0], "messageId": "m-foreign"}
    missing = {**sqs_batch(body, source=None)["Records"][0], "messageId": "m-unsourced"}

    response = handler({"Records": [foreign, missing]}, lambda_context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-foreign"}, {"itemIdentifier": "m-unsourced"}]}
    assert aws.inbox() == [] and mallory(aws) == SEEDED  # nothing published, nobody quarantined
    rejected = [r for r in caplog.records if r.getMessage() == "record rejected: not from this function's queue"]
    assert [r.levelname for r in rejected] == ["ERROR", "ERROR"]
    assert rejected[0].reason == (  # type: ignore[attr-defined]
        f"record from {POLICY_QUEUE}, not this function's queue {QUARANTINE_QUEUE}"
    )
    assert rejected[1].reason.startswith("record from no eventSourceARN")  # type: ignore[attr-defined]

    # The same record from the function's own queue is processed: the check is what stopped it.
    assert handler({"Records": [own]}, lambda_context) == {"batchItemFailures": []}
    assert mallory(aws)[0] == [QUARANTINE_POLICY]


def test_an_sqs_batch_without_a_configured_source_queue_fails_loudly(aws, handler_for, lambda_context):
    handler = handler_for(policy_alerts, None)
    with pytest.raises(ConfigurationError, match="SOURCE_QUEUE_ARN"):
        handler(sqs_batch(json.dumps(delivered_now(load_event(ADMIN_ATTACH))), source=POLICY_QUEUE), lambda_context)
    assert aws.inbox() == []


# ---- no direct invocation outside a local run ----------------------------------------------------
def test_a_direct_invocation_is_refused_without_a_local_run_flag(aws, handler_for, lambda_context, caplog):
    handler = handler_for(role_quarantine, QUARANTINE_QUEUE)
    with pytest.raises(DirectInvocationError, match="direct invocation refused"):
        handler(delivered_now(load_event(SLR_ATTEMPT)), lambda_context)
    assert aws.inbox() == [] and mallory(aws) == SEEDED
    assert aws.clients.dynamodb.scan(TableName=aws.table_name)["Items"] == []  # not even a dedup claim
    (refused,) = [r for r in caplog.records if r.getMessage() == "invocation refused"]
    assert "AWS_SAM_LOCAL" in refused.reason  # type: ignore[attr-defined]


def test_a_direct_invocation_is_processed_when_explicitly_allowed(aws, handler_for, lambda_context, monkeypatch):
    monkeypatch.setenv("CONNECT_GUARD_ALLOW_DIRECT_INVOCATION", "true")
    handler = handler_for(policy_alerts, POLICY_QUEUE)
    result = handler(delivered_now(load_event(ADMIN_ATTACH)), lambda_context)
    assert (result["outcome"], result["severity"]) == ("alerted", "CRITICAL")
    # Only sam local lifts the age limit: the dated sample as is is out of scope here.
    stale = handler(with_new_event_id(load_event(ADMIN_ATTACH)), lambda_context)
    assert stale["outcome"] == "rejected" and "delivery horizon 48 h" in stale["reason"]


# ---- out-of-scope events: reported, never acted on ------------------------------------------------
def test_a_quarantine_event_dated_2099_quarantines_nobody_and_alerts_critical(aws, handler_for, lambda_context):
    handler = handler_for(role_quarantine, QUARANTINE_QUEUE)
    forged = json.dumps(delivered_at(load_event(SLR_ATTEMPT), FORGED_TIME))

    assert handler(sqs_batch(forged, source=QUARANTINE_QUEUE), lambda_context) == {"batchItemFailures": []}

    assert mallory(aws) == SEEDED  # enforce mode, and still: no policy, no tag
    assert aws.audit_records() == []  # no audit record: no action
    (message,) = aws.inbox()
    finding = json.loads(message["Message"])
    assert message["Subject"].startswith("[CRITICAL] Forged or out-of-scope event: eventTime 2099-01-01T09:00:00Z")
    assert finding["severity"] == "CRITICAL" and finding["kind"] == "suite.forged_event"
    assert finding["reasons"][0].startswith("eventTime 2099-01-01T09:00:00Z is ")
    assert finding["reasons"][0].endswith(" days in the future")
    assert finding["reasons"][1] == "received by role_quarantine; no responder ran, no action was taken"
    assert finding["actions"] == []
    assert finding["actor"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/mallory.ops"  # the claim, for the analyst
    attributes = {k: v["Value"] for k, v in message["MessageAttributes"].items()}
    assert attributes["responder"] == "event_scope" and attributes["kind"] == "suite.forged_event"


def test_a_forged_event_is_reported_once_and_never_claims_the_real_events_dedup_record(aws):
    pipeline = build_pipeline(role_quarantine.build, aws.settings(response_mode="enforce"), aws.clients)
    real = delivered_now(with_new_event_id(load_event(SLR_ATTEMPT)))
    forged = delivered_at(real, FORGED_TIME)  # the same eventID, a forged time

    first = pipeline.process(forged)
    again = pipeline.process(forged)
    assert (first["outcome"], first["severity"]) == ("rejected", "CRITICAL")
    assert again["outcome"] == "duplicate" and again["alerts"] == []
    assert pipeline.process(real)["outcome"] == "quarantined"  # the real event still acts
    assert pipeline.process(real)["outcome"] == "duplicate"
    assert [f["kind"] for f in findings(aws)] == ["suite.forged_event", "iam.protected_role_deletion"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"account": "999988887777", "recipientAccountId": "999988887777"},
            "account 999988887777 is not enrolled (MemberAccountIds)",
        ),
        (
            {"recipientAccountId": "444455556666"},
            "recipientAccountId 444455556666 is not the event's account 111122223333",
        ),
    ],
    ids=["unenrolled account", "recipient account differs"],
)
def test_an_event_for_another_account_is_rejected_without_reading_or_changing_iam(aws, change, reason):
    pipeline = build_pipeline(role_quarantine.build, aws.settings(response_mode="enforce"), aws.clients)
    event = delivered_now(with_new_event_id(load_event(SLR_ATTEMPT)))
    if "account" in change:
        event["account"] = change["account"]
    event["detail"]["recipientAccountId"] = change["recipientAccountId"]
    aws.recorder.clear()

    result = pipeline.process(event)

    assert (result["outcome"], result["severity"], result["reason"]) == ("rejected", "CRITICAL", reason)
    assert [c["operation"] for c in aws.recorder.calls] == ["PutItem", "Publish"]  # the dedup claim, the alert
    assert mallory(aws) == SEEDED
    (finding,) = findings(aws)
    assert finding["title"] == f"Forged or out-of-scope event: {reason}"


def test_a_policy_change_in_an_unenrolled_account_is_not_analysed(aws):
    pipeline = build_pipeline(policy_alerts.build, aws.settings(), aws.clients)
    event = with_new_event_id(load_event("iam/attach-group-policy-customer-managed.json"))  # reads the policy
    event["account"] = event["detail"]["recipientAccountId"] = "999988887777"
    aws.recorder.clear()
    assert pipeline.process(event)["outcome"] == "rejected"
    assert not [c for c in aws.recorder.calls if c["service"] in ("iam", "sts")]


def test_a_forged_rollback_event_never_says_the_rollback_failed(aws, handler_for, lambda_context, monkeypatch):
    """Even when its report can't be published on the last attempt: the responder never speaks for it."""
    from connect_guard.publisher import SnsPublisher

    handler = handler_for(profile_rollback, ROLLBACK_QUEUE)
    forged = delivered_at(load_event("connect/update-user-security-profiles-iam-user.json"), FORGED_TIME)
    published: list[str] = []

    def publish(self: SnsPublisher, finding: Any) -> str:
        if finding.kind == "suite.forged_event":
            raise TimeoutError("SNS timed out")
        published.append(finding.title)
        return "m-1"

    monkeypatch.setattr(SnsPublisher, "publish", publish)
    batch = sqs_batch(json.dumps(forged), source=ROLLBACK_QUEUE, receives=MAX_RECEIVE_COUNT)
    assert handler(batch, lambda_context) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert published == []  # no "Rollback FAILED" for an event the suite refused
