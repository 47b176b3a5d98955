"""Shared fixtures: the embedded AWS, a fake Lambda context, sample events from events/."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connect_guard_tools.local_aws import LocalAws

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def load_event(relative: str) -> dict[str, Any]:
    return json.loads((EVENTS / relative).read_text())


def with_new_event_id(event: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["id"] = str(uuid.uuid4())
    event["detail"]["eventID"] = str(uuid.uuid4())
    return event


def delivered_at(event: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """The event as CloudTrail and EventBridge would have stamped it at `moment`."""
    event = copy.deepcopy(event)
    stamp = moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    event["time"] = stamp
    event["detail"]["eventTime"] = stamp
    return event


def delivered_now(event: dict[str, Any], ago: timedelta = timedelta(seconds=5)) -> dict[str, Any]:
    """A sample as the deployed path sees it: fresh (the handler refuses events past the horizon)."""
    return delivered_at(event, datetime.now(UTC) - ago)


def sqs_batch(body: str, receives: int, queue_arn: str, message_id: str = "m-0") -> dict[str, Any]:
    """One SQS record as Lambda's event source mapping delivers it (the receive count matters)."""
    record = {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": body,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "attributes": {"ApproximateReceiveCount": str(receives)},
        "messageAttributes": {},
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }
    return {"Records": [record]}


@dataclass
class FakeLambdaContext:
    function_name: str = "connect-guard-dev-PolicyAlertsFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:connect-guard-dev-PolicyAlertsFunction"
    aws_request_id: str = "5f0c5b8e-0000-4000-8000-000000000001"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def aws() -> Iterator[LocalAws]:
    with LocalAws() as local:
        local.seed(EVENTS / "demo-state.yaml")
        yield local


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
