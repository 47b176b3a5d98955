"""Dedup on the CloudTrail eventID: one conditional PutItem per event, nothing more when it succeeds.

A claim is the item `<prefix>#<md5 of the eventID as JSON>` (Powertools Idempotency's key, so
records written before this module still count) naming the SQS message that made it, that
message's receive count and the end of its in-progress window (the invocation's deadline). No
completion is written: SQS itself says whether the claimant finished, because a message whose
record succeeded is deleted and never comes back (docs/reliability.md, "Dedup"). So a delivery
runs the responder when the claim is held by

- nobody yet (or its TTL passed): the event is new, the responder runs;
- the same message, whose window has ended: that receive failed or died (the visibility timeout,
  six times the function's, always outlasts the window), so this one runs the responder again.
  The responders re-read the state before they act and journal their actions: a re-run acts at
  most once and at worst publishes the same finding again (alerts are at least once per finding ID);
- a final receive whose window has ended (the fifth, or a direct invocation: nothing redelivers
  either): the message may be in a DLQ and come back redriven, under a new message ID, so
  another message may run the event again rather than lose it.

Anything else is a duplicate: another message with the same eventID (EventBridge delivers at least
once) while the claimant is running or after it succeeded, or, should the claimant fail, while
SQS still holds it for its retry. The same message while its window is open (SQS delivered it
twice at once) raises DuplicateInProgressError, which SQS retries. A caught failure releases the
claim (a DeleteItem on the failure path only), so any copy may run next.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from connect_guard.delivery import MAX_RECEIVE_COUNT, Delivery
from connect_guard.errors import DuplicateInProgressError

# Powertools' status attribute: its in-progress records may still be in a table written before.
_LEGACY_IN_PROGRESS = "INPROGRESS"
_CONDITION = (
    "attribute_not_exists(#id) OR #expiration < :now OR (#window < :now_ms AND "
    "(#message = :message OR #receives >= :final OR #status = :in_progress))"
)
_NAMES = {
    "#id": "id",
    "#expiration": "expiration",
    "#window": "in_progress_expiration",
    "#message": "message_id",
    "#receives": "receive_count",
    "#status": "status",
}


@dataclass(frozen=True)
class Claimant:
    """Who claims an eventID: one receive of one SQS message, or one direct invocation."""

    message_id: str
    receive_count: int

    @classmethod
    def of(cls, delivery: Delivery | None) -> Claimant:
        if delivery is None or not delivery.message_id:
            # A direct invocation or the replay: no message, nothing redelivers it (a final receive).
            return cls(f"direct-{uuid.uuid4()}", MAX_RECEIVE_COUNT)
        return cls(delivery.message_id, delivery.receive_count)


def dedup_key(prefix: str, event_id: str) -> str:
    """Powertools Idempotency's key for `event_id` under `prefix` (md5 of the value as JSON)."""
    return f"{prefix}#{hashlib.md5(json.dumps(event_id).encode(), usedforsecurity=False).hexdigest()}"


class Dedup:
    """The claims of one key prefix (a responder's events, or its rejections) in the dedup table."""

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        ttl_seconds: int,
        prefix: str,
        window_ms: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._db = dynamodb
        self._table = table_name
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._window_ms = window_ms  # what is left of the invocation, if one is running

    def claim(self, event_id: str, claimant: Claimant) -> bool:
        """True: `claimant` holds the eventID now and runs the responder. False: a duplicate.
        DuplicateInProgressError: this message's other receive may still be running."""
        now_ms = int(time.time() * 1000)
        expires = now_ms // 1000 + self._ttl
        window = self._window_ms()
        # Outside an invocation (the replay, a test) nothing bounds the claimant: in progress
        # until the claim expires, as Powertools had it without a Lambda context.
        window_end = expires * 1000 if window is None else now_ms + window
        item = {
            "id": {"S": dedup_key(self._prefix, event_id)},
            "message_id": {"S": claimant.message_id},
            "receive_count": {"N": str(claimant.receive_count)},
            "in_progress_expiration": {"N": str(window_end)},
            "expiration": {"N": str(expires)},
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=_CONDITION,
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    ":now": {"N": str(now_ms // 1000)},
                    ":now_ms": {"N": str(now_ms)},
                    ":message": {"S": claimant.message_id},
                    ":final": {"N": str(MAX_RECEIVE_COUNT)},
                    ":in_progress": {"S": _LEGACY_IN_PROGRESS},
                },
                # The claim that stands, in the same answer: no second read.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if (error.response.get("Error") or {}).get("Code") != "ConditionalCheckFailedException":
                raise
            held = error.response.get("Item")
            if held is None:  # the claim that stands is unknown: retry rather than drop the event
                raise DuplicateInProgressError("the dedup claim that stands could not be read") from error
            if held.get("message_id", {}).get("S") == claimant.message_id or (
                held.get("status", {}).get("S") == _LEGACY_IN_PROGRESS
            ):
                raise DuplicateInProgressError("another receive of this event is being processed") from error
            return False
        return True

    def release(self, event_id: str, claimant: Claimant) -> None:
        """A caught failure: the claim goes, so that the retry, or another copy, runs the event.
        Only the claim this receive made: one another message, or another receive, made stays."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"id": {"S": dedup_key(self._prefix, event_id)}},
                ConditionExpression="#message = :message AND #receives = :receives",
                ExpressionAttributeNames={"#message": "message_id", "#receives": "receive_count"},
                ExpressionAttributeValues={
                    ":message": {"S": claimant.message_id},
                    ":receives": {"N": str(claimant.receive_count)},
                },
            )
        except ClientError as error:
            if (error.response.get("Error") or {}).get("Code") != "ConditionalCheckFailedException":
                raise
