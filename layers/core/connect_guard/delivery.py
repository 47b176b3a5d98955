"""What SQS delivered, and the two records the runtime keeps about deliveries.

- `DeadLetters` puts a poison record into the function's own DLQ on its first receive, with
  message attributes saying why and where it came from, instead of letting it burn the
  queue's five receives.
- `Arrivals` remembers when SQS first accepted a message that did not succeed at once (its
  `SentTimestamp`, which SQS sets and no sender can), keyed by the body's SHA-256. A redrive
  gives the message a new ID and enqueue time (SQS documents this), so only this record can
  tell an old event redriven from the DLQ apart from an old event sent now: the delivery
  horizon (scope.py, `MAX_EVENT_AGE_HOURS`) is measured from the first arrival when one is on
  record for exactly this body. A forger can't use it: the record exists only for a body SQS
  accepted while it was fresh, and then the event is the one SQS delivered back then.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, cached_property
from typing import Any

from connect_guard.errors import Verdict, bounded

# Must equal the queues' redrive maxReceiveCount in template.yaml (a template test checks it).
MAX_RECEIVE_COUNT = 5
ATTRIBUTE_PREFIX = "connect_guard."
# Characters SQS accepts in a message (and a string attribute); anything else is replaced.
# Compiled on first use (a poison record): its ranges cost ~10 ms of cold start to compile.
_NOT_SQS_TEXT = "[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


@dataclass(frozen=True)
class Delivery:
    """One SQS record as Lambda delivered it: its body and what SQS says about it."""

    message_id: str
    body: str
    source_queue_arn: str
    receive_count: int
    sent_at: datetime | None  # SentTimestamp: when this queue accepted the message

    @classmethod
    def of(cls, record: Any) -> Delivery:
        """From one record of an SQS batch, as Lambda delivers it."""
        attributes = record.get("attributes") or {}
        sent = str(attributes.get("SentTimestamp") or "")
        return cls(
            message_id=str(record.get("messageId") or ""),
            body=str(record.get("body") or ""),
            source_queue_arn=str(record.get("eventSourceARN") or ""),
            receive_count=int(attributes.get("ApproximateReceiveCount") or 1),
            sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent.isdigit() else None,
        )

    @property
    def final(self) -> bool:
        """The receive after which SQS moves the message to the DLQ."""
        return self.receive_count >= MAX_RECEIVE_COUNT

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.body.encode("utf-8", "surrogatepass")).hexdigest()


@cache
def _not_sqs_text() -> re.Pattern[str]:
    return re.compile(_NOT_SQS_TEXT)


def _text(value: str) -> str:
    return _not_sqs_text().sub("?", bounded(value)) or "-"


class DeadLetters:
    """The function's own DLQ (sqs:SendMessage to it alone)."""

    def __init__(self, sqs_client: Any, queue_url: str, responder: str) -> None:
        self._sqs = sqs_client
        self._url = queue_url
        self._responder = responder

    def send(self, delivery: Delivery, verdict: Verdict) -> str:
        """Put `delivery`'s body, unchanged, into the DLQ; its attributes say why. The message ID."""
        attributes = {
            "reason": verdict.reason,
            "error_class": str(verdict.kind),
            "error_type": verdict.error_type,
            "responder": self._responder,
            "source_queue": delivery.source_queue_arn,
            "source_message_id": delivery.message_id,
        }
        message_attributes: dict[str, dict[str, str]] = {
            f"{ATTRIBUTE_PREFIX}{name}": {"DataType": "String", "StringValue": _text(value)}
            for name, value in attributes.items()
        }
        message_attributes[f"{ATTRIBUTE_PREFIX}receive_count"] = {
            "DataType": "Number",
            "StringValue": str(delivery.receive_count),
        }
        if delivery.sent_at is not None:
            message_attributes[f"{ATTRIBUTE_PREFIX}sent_timestamp"] = {
                "DataType": "Number",
                "StringValue": str(int(delivery.sent_at.timestamp() * 1000)),
            }
        response = self._sqs.send_message(
            QueueUrl=self._url, MessageBody=delivery.body, MessageAttributes=message_attributes
        )
        return str(response["MessageId"])


class Arrivals:
    """First arrivals of the messages that did not succeed at once, in the dedup table.

    Items `<responder>.arrival#<sha256 of the body>` with the earliest SentTimestamp seen (epoch
    ms) and the dedup table's TTL attribute, kept as long as the dedup records.
    """

    def __init__(self, dynamodb_client: Any, table_name: str, ttl_seconds: int, responder: str) -> None:
        self._dynamodb = dynamodb_client
        self._table = table_name
        self._ttl = ttl_seconds
        self._prefix = f"{responder}.arrival#"

    def record(self, delivery: Delivery) -> None:
        if delivery.sent_at is None:
            return
        self._dynamodb.update_item(
            TableName=self._table,
            Key={"id": {"S": self._prefix + delivery.digest}},
            # The earliest wins: a redriven copy (sent later) never moves the first arrival.
            UpdateExpression="SET first_sent = if_not_exists(first_sent, :sent), expiration = :expires",
            ExpressionAttributeValues={
                ":sent": {"N": str(int(delivery.sent_at.timestamp() * 1000))},
                ":expires": {"N": str(int(time.time()) + self._ttl)},
            },
        )

    def first_sent(self, delivery: Delivery) -> datetime | None:
        item = self._dynamodb.get_item(
            TableName=self._table,
            Key={"id": {"S": self._prefix + delivery.digest}},
            ProjectionExpression="first_sent",
            ConsistentRead=True,
        ).get("Item")
        if not item or "first_sent" not in item:
            return None
        return datetime.fromtimestamp(int(item["first_sent"]["N"]) / 1000, UTC)
