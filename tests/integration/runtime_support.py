"""The deployed path as SQS drives it: a responder's handler with its template environment, its
own queue and DLQ in the embedded AWS, records with receive counts and send times, a Lambda
context whose clock the test moves, and the handler's log lines as CloudWatch would get them."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from connect_guard_tools.local_aws import LocalAws

ACCOUNT = "123456789012"
REGION = "us-east-1"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def sqs_record(
    body: str,
    message_id: str,
    *,
    source: str,
    receives: int = 1,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """One record as Lambda's SQS event source delivers it."""
    sent = sent_at or datetime.now(UTC)
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receives),
            "SentTimestamp": str(int(sent.timestamp() * 1000)),
            "SenderId": "AIDAEVENTBRIDGE",
            "ApproximateFirstReceiveTimestamp": str(int(sent.timestamp() * 1000)),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": source,
        "awsRegion": REGION,
    }


@dataclass
class ClockedContext:
    """A Lambda context on a clock the test advances (a hung call costs clock time, not wall time)."""

    timeout_ms: int = 30_000
    elapsed_ms: int = 0
    function_name: str = "connect-guard-dev-responder"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:connect-guard-dev-responder"
    aws_request_id: str = "5f0c5b8e-0000-4000-8000-000000000002"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms - self.elapsed_ms


@dataclass
class Responder:
    """A responder's handler wired as template.yaml wires it, on the embedded AWS."""

    aws: LocalAws
    handler: Callable[[dict[str, Any], Any], Any]
    queue_arn: str
    dlq_url: str

    def batch(self, *records: dict[str, Any]) -> dict[str, Any]:
        return {"Records": list(records)}

    def record(self, body: str, message_id: str, **kwargs: Any) -> dict[str, Any]:
        return sqs_record(body, message_id, source=kwargs.pop("source", self.queue_arn), **kwargs)

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every message in the DLQ: body and attributes (name → value)."""
        sqs = self.aws.session.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                attributes = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
                found.append({"body": message["Body"], "attributes": attributes})
                sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"])


def set_function_environment(aws: LocalAws, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """What template.yaml gives every function (the embedded AWS's topic and tables), then `env`."""
    settings = aws.settings()
    for name, value in {
        "ALERT_TOPIC_ARN": settings.alert_topic_arn,
        "DEDUP_TABLE_NAME": settings.dedup_table_name,
        "BASELINE_TABLE_NAME": aws.baseline_table,
        "AUDIT_TABLE_NAME": aws.audit_table,
        "MEMBER_ACCOUNT_IDS": ",".join(settings.member_account_ids),
        **env,
    }.items():
        monkeypatch.setenv(name, value)


def wire(
    aws: LocalAws,
    monkeypatch: pytest.MonkeyPatch,
    factory: Any,
    name: str,
    *,
    mode: str = "enforce",
    dead_letter_queue: bool = True,
    **env: str,
) -> Responder:
    """The handler of the responder built by `factory`, reading `<name>Queue` with `<name>DLQ`."""
    from connect_guard import runtime
    from connect_guard.clients import AwsClients
    from connect_guard.runtime import lambda_handler_for

    settings = aws.settings()
    sqs = aws.session.client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"connect-guard-dev-{name}DLQ")["QueueUrl"]
    values = {
        "ALERT_TOPIC_ARN": settings.alert_topic_arn,
        "DEDUP_TABLE_NAME": settings.dedup_table_name,
        "BASELINE_TABLE_NAME": aws.baseline_table,
        "AUDIT_TABLE_NAME": aws.audit_table,
        "MEMBER_ACCOUNT_IDS": ",".join(settings.member_account_ids),
        "CONNECT_INSTANCE_ARNS": ",".join(settings.connect_instance_arns),
        "RESPONSE_MODE": mode,
        "SOURCE_QUEUE_ARN": queue_arn(f"connect-guard-dev-{name}Queue"),
        "DEAD_LETTER_QUEUE_URL": dlq_url if dead_letter_queue else "",
        "POWERTOOLS_SERVICE_NAME": name,
        **env,
    }
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    # The handler builds its clients from a new session: give it the embedded AWS's.
    monkeypatch.setattr(runtime, "AwsClients", lambda region, account_id: AwsClients(region, aws.session, account_id))
    return Responder(aws, lambda_handler_for(factory), values["SOURCE_QUEUE_ARN"], dlq_url)


@dataclass
class LogLines:
    """The handler's log output, one JSON object per line, as the Lambda runtime ships it."""

    stream: io.StringIO = field(default_factory=io.StringIO)

    @property
    def raw(self) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if line]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw]

    def with_message(self, message: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("message") == message]


@contextmanager
def captured_logs() -> Iterator[LogLines]:
    """Powertools writes to the stream its handler got at import: swap the stream, keep the formatter."""
    from connect_guard.observability import logger

    handler = logger.registered_handler
    lines = LogLines()
    previous = handler.setStream(lines.stream)  # type: ignore[attr-defined]
    try:
        yield lines
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
