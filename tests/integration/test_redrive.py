"""A redrive is safe: dedup records outlive every way a message can come back, and an old event
redriven from the DLQ is measured from when SQS first accepted it, which no forger can claim.

SQS gives a redriven message a new ID and enqueue time (its documentation says so), so the
records here carry the SentTimestamp each delivery would have: the first ones at the event's
time, the redrive ten days later."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connect_guard import runtime
from connect_guard.publisher import SnsPublisher
from connect_guard.responders import policy_alerts
from connect_guard.runtime import MAX_RECEIVE_COUNT
from connect_guard.settings import DEDUP_TTL_SECONDS
from tests.conftest import delivered_at, delivered_now, load_event, with_new_event_id
from tests.integration.runtime_support import ClockedContext, wire

ADMIN_ATTACH = "iam/attach-user-policy-administratoraccess.json"
NOW = datetime.now(UTC)
EVENT_TIME = NOW - timedelta(days=10)  # past the 48 h horizon, within the DLQ's 14 days
FAILED = {"batchItemFailures": [{"itemIdentifier": "m-day0"}]}


def container(aws: Any, monkeypatch: pytest.MonkeyPatch, clock: datetime | None = None) -> Any:
    """A new Lambda container of the deployed policy-alerts handler, its clock at `clock`."""
    if clock is not None:
        monkeypatch.setattr(runtime, "_utcnow", lambda: clock)
    else:
        monkeypatch.setattr(runtime, "_utcnow", lambda: datetime.now(UTC))
    return wire(aws, monkeypatch, policy_alerts.build, "PolicyAlerts", mode="detect", MAX_EVENT_AGE_HOURS="48")


def fail_every_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    def timeout(self: SnsPublisher, finding: Any) -> str:
        raise TimeoutError("SNS did not answer")

    monkeypatch.setattr(SnsPublisher, "publish", timeout)


def titles(aws: Any) -> list[str]:
    return [json.loads(m["Message"])["title"] for m in aws.inbox()]


def test_an_event_redriven_ten_days_later_is_processed_not_reported_as_forged(aws, monkeypatch):
    body = json.dumps(delivered_at(with_new_event_id(load_event(ADMIN_ATTACH)), EVENT_TIME))
    first_sent = EVENT_TIME + timedelta(minutes=1)

    # Day 0: SNS is down; every receive fails and SQS moves the message to the DLQ.
    with monkeypatch.context() as day0:
        fail_every_publish(day0)
        responder = container(aws, day0, clock=EVENT_TIME + timedelta(minutes=2))
        for receives in range(1, MAX_RECEIVE_COUNT + 1):
            record = responder.record(body, "m-day0", receives=receives, sent_at=first_sent)
            assert responder.handler(responder.batch(record), ClockedContext()) == FAILED
    assert aws.inbox() == []

    # Day 10: the operator redrives the DLQ. A new message: new ID, enqueue time now.
    responder = container(aws, monkeypatch)
    redriven = responder.record(body, "m-redriven", receives=1, sent_at=NOW)
    assert responder.handler(responder.batch(redriven), ClockedContext()) == {"batchItemFailures": []}

    assert titles(aws) == ["AdministratorAccess attached to user alice in 111122223333"]


def test_an_old_event_never_delivered_before_is_still_refused_as_out_of_scope(aws, monkeypatch):
    """Only exactly the message SQS accepted while it was fresh earns its first arrival: a new
    body with an old eventTime, or the recorded one changed by a byte, is measured from now."""
    event = delivered_at(with_new_event_id(load_event(ADMIN_ATTACH)), EVENT_TIME)
    with monkeypatch.context() as day0:
        fail_every_publish(day0)
        responder = container(aws, day0, clock=EVENT_TIME + timedelta(minutes=2))
        record = responder.record(json.dumps(event), "m-day0", sent_at=EVENT_TIME + timedelta(minutes=1))
        assert responder.handler(responder.batch(record), ClockedContext()) == FAILED

    responder = container(aws, monkeypatch)
    altered = {**event, "detail": {**event["detail"], "sourceIPAddress": "203.0.113.66"}}
    never_seen = delivered_at(with_new_event_id(load_event(ADMIN_ATTACH)), EVENT_TIME)
    for i, forged in enumerate((altered, never_seen)):
        record = responder.record(json.dumps(forged), f"m-{i}", sent_at=NOW)
        assert responder.handler(responder.batch(record), ClockedContext()) == {"batchItemFailures": []}

    reported = titles(aws)
    assert [t.split(":")[0] for t in reported] == ["Forged or out-of-scope event"] * 2
    assert all("is 10 days old (delivery horizon 48 h)" in t for t in reported)


def test_an_event_already_old_when_sqs_first_took_it_stays_out_of_scope_after_a_redrive(aws, monkeypatch):
    body = json.dumps(delivered_at(with_new_event_id(load_event(ADMIN_ATTACH)), EVENT_TIME))
    late = EVENT_TIME + timedelta(days=5)  # first accepted five days after the event: never EventBridge's
    with monkeypatch.context() as then:
        fail_every_publish(then)
        responder = container(aws, then, clock=late)
        record = responder.record(body, "m-day0", sent_at=late)
        assert responder.handler(responder.batch(record), ClockedContext()) == FAILED

    responder = container(aws, monkeypatch)
    redriven = responder.record(body, "m-redriven", sent_at=NOW)
    assert responder.handler(responder.batch(redriven), ClockedContext()) == {"batchItemFailures": []}
    (title,) = titles(aws)
    assert title.startswith("Forged or out-of-scope event: eventTime") and "5 days old" in title


def test_dedup_records_outlive_the_dlq_and_a_redrive(aws, monkeypatch):
    """The source queue keeps a message 4 days, the DLQ 14 from its first enqueue, a redrive
    makes a new message the source queue keeps 4 more: a redelivery inside 19 days is a duplicate."""
    responder = container(aws, monkeypatch)
    event = delivered_now(with_new_event_id(load_event(ADMIN_ATTACH)))
    record = responder.record(json.dumps(event), "m-0")
    assert responder.handler(responder.batch(record), ClockedContext()) == {"batchItemFailures": []}

    (claim,) = [
        item
        for item in aws.clients.dynamodb.scan(TableName=aws.table_name)["Items"]
        if item["id"]["S"].startswith("policy_alerts#")
    ]
    kept_for = int(claim["expiration"]["N"]) - time.time()
    assert kept_for > (1 + 14 + 4) * 86_400
    assert DEDUP_TTL_SECONDS == 20 * 86_400
