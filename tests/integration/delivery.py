"""Delivering an event as SQS and Lambda do, with faults: kills, refusals, timeouts.

Shared by the crash-safety, final-attempt, transient-write and unreachable-actor tests. Faults
are botocore hooks on the embedded AWS's session, so every client made after they are set
(a new container's) carries them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from connect_guard.clients import AwsClients
from connect_guard.delivery import Delivery
from connect_guard.findings import finding_id_of
from connect_guard.runtime import MAX_RECEIVE_COUNT, Pipeline
from connect_guard.settings import Settings
from connect_guard_tools.local_aws import SECURITY_ACCOUNT, LocalAws
from tests.conftest import FakeLambdaContext, sqs_batch

WRITES_ARE_NOT = ("Get", "List", "Describe", "Search", "Query", "Scan", "BatchGet", "Head", "Receive", "AssumeRole")


def _name(model: Any) -> str:
    return f"{model.service_model.endpoint_prefix}:{model.name}"


class Killed(BaseException):
    """The invocation dies: not an Exception, so no handler in the code under test sees it."""


@dataclass
class Kill:
    """A botocore hook on every client: the invocation dies right after its n-th applied write."""

    after: int | None
    writes: list[str] = field(default_factory=list)  # every applied write, over every delivery
    fired: str | None = None

    def __call__(self, model: Any, http_response: Any, **_: Any) -> None:
        if model.name.startswith(WRITES_ARE_NOT) or http_response.status_code >= 300:
            return
        self.writes.append(_name(model))
        if self.fired is None and len(self.writes) == self.after:
            self.fired = self.writes[-1]
            raise Killed(f"killed after {self.fired}")

    def count(self, write: str) -> int:
        return self.writes.count(write)


def deadline_passed(aws: LocalAws) -> None:
    """What time does to a dead invocation's dedup claim before SQS delivers the message again
    (after the visibility timeout): its in-progress window (the invocation's deadline) has ended."""
    db = aws.clients.dynamodb
    for item in db.scan(TableName=aws.table_name)["Items"]:
        if "in_progress_expiration" in item:
            db.update_item(
                TableName=aws.table_name,
                Key={"id": item["id"]},
                UpdateExpression="SET in_progress_expiration = :past",
                ExpressionAttributeValues={":past": {"N": "1"}},
            )


@dataclass
class Run:
    kill: Kill
    result: dict[str, Any]
    receives: int
    alerts: list[dict[str, Any]]  # the findings the SOC inbox received, in order

    @property
    def where(self) -> str:
        return f"killed after write {self.kill.after} ({self.kill.fired})"


def deliver(aws: LocalAws, build: Callable[[AwsClients], Pipeline], event: dict[str, Any], after: int | None) -> Run:
    """Deliver the event as SQS does: one message, again after each killed receive (its receive
    count up by one), each time in a new container."""
    kill = Kill(after)
    aws.session.events.register("after-call", kill)
    body = json.dumps(event)
    try:
        receives, result = 0, None
        while result is None:
            receives += 1
            assert receives <= MAX_RECEIVE_COUNT, f"still killed after {MAX_RECEIVE_COUNT} receives"
            pipeline = build(AwsClients(aws.region, aws.session, SECURITY_ACCOUNT))  # clients with the hook
            delivery = Delivery("m-killed", body, QUEUE, receives, None)
            try:
                result = pipeline.process(body, delivery)
            except Killed:
                deadline_passed(aws)
    finally:
        aws.session.events.unregister("after-call", kill)
    return Run(kill, result, receives, [json.loads(m["Message"]) for m in aws.inbox()])


def restore_writes(action: str) -> list[str]:
    """The writes of a clean run that acts once (`action`, as service:Operation), in the order
    that survives a kill between any two: journaled before the action, audited before the finding."""
    return [
        "dynamodb:PutItem",  # the dedup claim
        "dynamodb:PutItem",  # the action journal, before the action
        action,
        "dynamodb:TransactWriteItems",  # its audit record, and the journal marked audited
        "sns:Publish",  # the finding (the dedup claim needs no completion)
    ]


def audit_of(aws: LocalAws, event: dict[str, Any], responder: str) -> list[tuple[str, str]]:
    """The (action, status) of every action audited for the responder's finding on `event`: a
    record's own, or each of its `steps` (one record for the actions of one event)."""
    finding = finding_id_of(responder, event["detail"]["eventID"])
    audited = []
    for r in aws.audit_records():
        if r["finding_id"]["S"] != finding:
            continue
        steps = json.loads(r["steps"]["S"]) if "steps" in r else None
        audited += [(s["operation"], s["status"]) for s in steps] if steps else [(r["action"]["S"], r["status"]["S"])]
    return sorted(audited)


def audit_items_of(aws: LocalAws, event: dict[str, Any], responder: str) -> int:
    """How many audit items the responder's finding on `event` wrote."""
    finding = finding_id_of(responder, event["detail"]["eventID"])
    return sum(1 for r in aws.audit_records() if r["finding_id"]["S"] == finding)


@dataclass
class Refuse:
    """The next `times` calls of `operation` ("iam:AttachUserPolicy") are refused with `code`
    and HTTP `status` before the service sees them (nothing applied)."""

    operation: str
    code: str
    status: int
    times: int = 1
    skip: int = 0  # calls let through first

    def __call__(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.times <= 0 or _name(model) != self.operation:
            return None
        if self.skip > 0:
            self.skip -= 1
            return None
        self.times -= 1
        error = {"Code": self.code, "Message": f"injected {self.code}"}
        return AWSResponse(None, self.status, {}, None), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": self.status, "HTTPHeaders": {}},
        }

    def install(self, aws: LocalAws) -> Refuse:
        aws.session.events.register_first("before-call", self)  # before moto and the Connect fake answer
        return self


@dataclass
class TimeOut:
    """The next `times` calls of `operation` are applied, then the answer never arrives."""

    operation: str
    times: int = 1

    def __call__(self, model: Any, http_response: Any, **_: Any) -> None:
        if self.times <= 0 or _name(model) != self.operation or http_response.status_code >= 300:
            return
        self.times -= 1
        raise ReadTimeoutError(endpoint_url=f"https://{model.service_model.endpoint_prefix}.amazonaws.com/")

    def install(self, aws: LocalAws) -> TimeOut:
        aws.session.events.register("after-call", self)
        return self


# ---- through the deployed handler: SQS batches, receive counts, the last receive's give_up -------
QUEUE = "arn:aws:sqs:us-east-1:123456789012:responder-queue"


def sqs_handler(
    aws: LocalAws, monkeypatch: Any, factory: Any, settings: Settings
) -> Callable[[dict[str, Any], int], bool]:
    """The function's Lambda handler in one container on the embedded AWS, as `receive(event, n)`:
    the n-th receive of the event's message; True when the handler acked it (no batch failure)."""
    from connect_guard import runtime

    deployed = settings.model_copy(update={"source_queue_arn": QUEUE})
    monkeypatch.setattr(runtime.Settings, "from_env", classmethod(lambda cls, *_: deployed))
    monkeypatch.setattr(runtime, "AwsClients", lambda region, account_id: AwsClients(region, aws.session, account_id))
    handler = runtime.lambda_handler_for(factory)

    def receive(event: dict[str, Any], receives: int) -> bool:
        response = handler(sqs_batch(json.dumps(event), receives, QUEUE), FakeLambdaContext())
        return not response["batchItemFailures"]

    return receive


def until_acked(receive: Callable[[dict[str, Any], int], bool], event: dict[str, Any]) -> int | None:
    """Receives until the handler acks the message: their number, or None (it went to the DLQ)."""
    for receives in range(1, MAX_RECEIVE_COUNT + 1):
        if receive(event, receives):
            return receives
    return None
