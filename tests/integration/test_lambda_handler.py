"""The deployed path: SQS batches into the Lambda handler, against the embedded AWS."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from connect_guard.responders import policy_alerts
from connect_guard.runtime import lambda_handler_for
from tests.conftest import ROOT, delivered_now, load_event, with_new_event_id

ADMIN_ATTACH = "iam/attach-user-policy-administratoraccess.json"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:connect-guard-dev-PolicyAlertsQueue"


def fresh(relative: str) -> str:
    return json.dumps(delivered_now(load_event(relative)))


def sqs_batch(*bodies: str, source: str = QUEUE_ARN, first: int = 0, receives: int = 1) -> dict[str, Any]:
    """One record per body, messages m-<first>, m-<first + 1>, ..."""
    return {
        "Records": [
            {
                "messageId": f"m-{first + i}",
                "receiptHandle": f"rh-{first + i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receives)},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": source,
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


@pytest.fixture
def handler(aws, monkeypatch):
    settings = aws.settings()
    monkeypatch.setenv("ALERT_TOPIC_ARN", settings.alert_topic_arn)
    monkeypatch.setenv("DEDUP_TABLE_NAME", settings.dedup_table_name)
    monkeypatch.setenv("MEMBER_ACCOUNT_IDS", ",".join(settings.member_account_ids))
    monkeypatch.setenv("SOURCE_QUEUE_ARN", QUEUE_ARN)
    monkeypatch.setenv("ALLOWLISTED_PRINCIPALS", "arn:aws:iam::111122223333:role/ConnectChangePipeline")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "policy-alerts")
    return lambda_handler_for(policy_alerts.build)


def test_the_function_module_exposes_the_handler():
    sys.path.insert(0, str(ROOT / "functions" / "policy_alerts"))
    try:
        import app  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    assert callable(app.lambda_handler)


def test_a_malformed_record_fails_alone_and_is_logged_with_its_reason(aws, handler, lambda_context, caplog):
    good = fresh(ADMIN_ATTACH)
    other = fresh("iam/put-user-policy-inline-notaction.json")
    response = handler(sqs_batch(good, '{"version": "0", "detail-type": "AWS API Call', other), lambda_context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    inbox = aws.inbox()
    assert sorted(json.loads(m["Message"])["severity"] for m in inbox) == ["CRITICAL", "HIGH"]
    rejected = [r for r in caplog.records if r.getMessage() == "event rejected: it will end in the DLQ"]
    assert len(rejected) == 1
    assert rejected[0].levelname == "ERROR"
    assert rejected[0].reason.startswith("invalid JSON")  # type: ignore[attr-defined]


def test_the_same_event_twice_publishes_one_alert(aws, handler, lambda_context):
    body = fresh(ADMIN_ATTACH)
    assert handler(sqs_batch(body), lambda_context) == {"batchItemFailures": []}
    # EventBridge's second delivery: another SQS message with the same eventID.
    assert handler(sqs_batch(body, first=1), lambda_context) == {"batchItemFailures": []}
    assert len(aws.inbox()) == 1


def test_both_copies_in_one_batch_publish_one_alert_and_both_are_acked(aws, handler, lambda_context):
    body = fresh(ADMIN_ATTACH)
    assert handler(sqs_batch(body, body), lambda_context) == {"batchItemFailures": []}
    assert len(aws.inbox()) == 1


def test_the_same_message_received_again_while_its_claim_is_in_progress_is_retried(aws, handler, lambda_context):
    """SQS delivered one message twice at once: the second receive waits for the first to settle."""
    body = fresh(ADMIN_ATTACH)
    assert handler(sqs_batch(body), lambda_context) == {"batchItemFailures": []}
    again = handler(sqs_batch(body, receives=2), lambda_context)
    assert again == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert len(aws.inbox()) == 1


def test_published_alert_carries_attributes_subject_and_both_renderings(aws, handler, lambda_context):
    handler(sqs_batch(fresh(ADMIN_ATTACH)), lambda_context)
    (message,) = aws.inbox()
    attributes = {k: v["Value"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "severity": "CRITICAL",
        "event_name": "AttachUserPolicy",
        "account": "111122223333",
        "responder": "policy_alerts",
        "kind": "iam.policy_change",
    }
    finding = json.loads(message["Message"])  # SQS subscribers get the JSON finding
    assert finding["schema"] == "connect-guard/finding" and finding["schema_version"] == "1.2"
    assert finding["policy"]["arn"] == "arn:aws:iam::aws:policy/AdministratorAccess"
    assert finding["target"] == {"kind": "user", "name": "alice", "arn": None}
    assert finding["event"]["console_url"].endswith(f"#/events/{finding['event']['event_id']}")
    assert finding["runbook_url"].endswith("/policy-alerts.md")
    assert message["Subject"] == "[CRITICAL] AdministratorAccess attached to user alice in 111122223333"


def test_direct_invocation_processes_one_event_under_sam_local_invoke(aws, handler, lambda_context, monkeypatch):
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")  # what `sam local invoke` sets
    result = handler(load_event(ADMIN_ATTACH), lambda_context)  # the sample as is: history is fine locally
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert len(aws.inbox()) == 1


def test_retryable_failure_releases_the_dedup_claim_so_the_retry_alerts(aws, handler, lambda_context, monkeypatch):
    from connect_guard.publisher import SnsPublisher

    body = json.dumps(delivered_now(with_new_event_id(load_event(ADMIN_ATTACH))))
    original = SnsPublisher.publish
    monkeypatch.setattr(
        SnsPublisher, "publish", lambda self, finding: (_ for _ in ()).throw(TimeoutError("SNS timed out"))
    )
    assert handler(sqs_batch(body), lambda_context) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    monkeypatch.setattr(SnsPublisher, "publish", original)
    assert handler(sqs_batch(body), lambda_context) == {"batchItemFailures": []}
    assert len(aws.inbox()) == 1


def test_missing_configuration_fails_the_batch_loudly(aws, monkeypatch, lambda_context):
    monkeypatch.delenv("ALERT_TOPIC_ARN", raising=False)
    monkeypatch.setenv("DEDUP_TABLE_NAME", "connect-guard-dedup")
    handler = lambda_handler_for(policy_alerts.build)
    from connect_guard.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="ALERT_TOPIC_ARN"):
        handler(sqs_batch(json.dumps(load_event(ADMIN_ATTACH))), lambda_context)
