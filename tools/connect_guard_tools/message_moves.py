"""SQS message-move tasks (StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask) in
the embedded AWS: moto 5.2.5 has none of them.

As SQS documents them: a task moves a dead-letter queue's messages (body and message
attributes; each arrives as a new message, new ID and enqueue time) to a destination queue,
the DLQ's original source queue by default; only a queue that is the DLQ of some SQS queue
can be a source (an EventBridge, SNS or Lambda DLQ is not); one active task per source queue;
ApproximateNumberOfMessagesToMove is the DLQ's depth when the task starts; a task ends
COMPLETED, FAILED (with a FailureReason; what it moved stays moved) or CANCELLED. It sends with
its caller's permissions: a destination whose queue policy denies the caller fails the task
(connect_guard_tools.queue_policies).

A task is asynchronous in SQS. Here it advances by `batch` messages each time its source's
tasks are listed, so a caller polling ListMessageMoveTasks sees it run; `hold()` keeps tasks
RUNNING (a second redrive meanwhile), `fail_after(source, n, reason)` makes one fail part-way.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from moto.core.responses import ActionResult
from moto.sqs.exceptions import QueueDoesNotExist, SQSException
from moto.sqs.models import Queue, SQSBackend, sqs_backends
from moto.sqs.responses import SQSResponse

from connect_guard_tools.backend_patches import BackendPatches
from connect_guard_tools.queue_policies import Caller, denied

ACTIVE = ("RUNNING", "CANCELLING")


class ResourceNotFound(SQSException):
    def __init__(self, message: str) -> None:
        super().__init__("ResourceNotFoundException", message)


class UnsupportedOperation(SQSException):
    def __init__(self, message: str) -> None:
        super().__init__("AWS.SimpleQueueService.UnsupportedOperation", message)


@dataclass
class MoveTask:
    handle: str
    source_arn: str
    destination_arn: str | None  # None: each message back to the DLQ's source queue
    rate: int | None
    to_move: int
    started_ms: int
    moved: int = 0
    status: str = "RUNNING"
    failure_reason: str | None = None
    caller: Caller | None = None  # whose permissions the task sends with (the destination's policy applies)

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":  # SQS returns the handle of a running task only
            entry["TaskHandle"] = self.handle
        if self.destination_arn:
            entry["DestinationArn"] = self.destination_arn
        if self.rate is not None:
            entry["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure_reason:
            entry["FailureReason"] = self.failure_reason
        return entry


def _queue(arn: str) -> tuple[SQSBackend, Queue]:
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ResourceNotFound(f"The resource that you specified for the SourceArn parameter doesn't exist: {arn}")
    backend = sqs_backends[parts[4]][parts[3]]
    try:
        return backend, backend.get_queue(parts[5])
    except QueueDoesNotExist:
        raise ResourceNotFound(f"The resource that you specified doesn't exist: {arn}") from None


@dataclass
class MessageMoves(BackendPatches):
    """The tasks of every source queue, most recent last; started and stopped with the mock."""

    batch: int = 10  # messages a running task moves per ListMessageMoveTasks of its source
    tasks: dict[str, list[MoveTask]] = field(default_factory=dict)
    held: bool = False
    failures: dict[str, tuple[int, str]] = field(default_factory=dict)  # source ARN → (after n moved, reason)

    # ---- test controls ----------------------------------------------------------------------
    def hold(self, held: bool = True) -> None:
        self.held = held

    def fail_after(self, source_arn: str, moved: int, reason: str) -> None:
        self.failures[source_arn] = (moved, reason)

    # ---- the API ----------------------------------------------------------------------------
    def start_task(
        self, source_arn: str, destination_arn: str | None, rate: int | None, caller: Caller | None = None
    ) -> str:
        backend, source = _queue(source_arn)
        if source.fifo_queue:
            raise UnsupportedOperation("Only standard queues support redrive.")
        if not backend.list_dead_letter_source_queues(source.name):
            raise UnsupportedOperation("Source queue must be configured as a Dead Letter Queue of an Amazon SQS queue.")
        if destination_arn:
            _, destination = _queue(destination_arn)
            if destination.fifo_queue:
                raise UnsupportedOperation("The destination queue must be a standard queue, as the source is.")
        if rate is not None and not 1 <= rate <= 500:
            raise SQSException("InvalidParameterValue", "MaxNumberOfMessagesPerSecond must be between 1 and 500.")
        if any(t.status in ACTIVE for t in self.tasks.get(source_arn, [])):
            raise UnsupportedOperation(
                "There is already a task running. Only one active task is allowed for a source queue arn at a "
                "given time."
            )
        handle = base64.b64encode(json.dumps({"taskId": str(uuid.uuid4()), "sourceArn": source_arn}).encode())
        task = MoveTask(
            handle.decode(),
            source_arn,
            destination_arn or None,
            rate,
            to_move=source.approximate_number_of_messages,
            started_ms=int(time.time() * 1000),
            caller=caller,
        )
        self.tasks.setdefault(source_arn, []).append(task)
        return task.handle

    def list_tasks(self, source_arn: str, max_results: int | None) -> list[dict[str, Any]]:
        _queue(source_arn)
        limit = 1 if max_results is None else int(max_results)
        if not 1 <= limit <= 10:
            raise SQSException("InvalidParameterValue", "MaxResults must be between 1 and 10.")
        for task in self.tasks.get(source_arn, []):
            if task.status == "RUNNING" and not self.held:
                self._advance(task)
        return [t.entry() for t in reversed(self.tasks.get(source_arn, []))][:limit]

    def cancel_task(self, handle: str) -> int:
        for task in (t for tasks in self.tasks.values() for t in tasks):
            if task.handle == handle:
                if task.status != "RUNNING":
                    raise UnsupportedOperation(f"The task is {task.status}: only a RUNNING task can be cancelled.")
                task.status = "CANCELLED"
                return task.moved
        raise ResourceNotFound("The task handle does not name a task.")

    def _advance(self, task: MoveTask) -> None:
        backend, source = _queue(task.source_arn)
        for _ in range(self.batch):
            failure = self.failures.get(task.source_arn)
            if failure and task.moved >= failure[0]:
                task.status, task.failure_reason = "FAILED", failure[1]
                return
            if task.moved >= task.to_move or not source.messages:
                task.status = "COMPLETED"
                return
            try:
                destination = self._destination(backend, source, task)
            except ResourceNotFound:
                task.status, task.failure_reason = "FAILED", "AWS.SimpleQueueService.NonExistentQueue"
                return
            if task.caller is not None and denied(destination[1], task.caller.context()):
                task.status, task.failure_reason = "FAILED", "AccessDenied"  # the caller may not send there
                return
            message = source.messages[0]
            with source._messages_lock:
                source._messages.remove(message)
            # A new message in the destination: new ID, enqueue time and receive count.
            destination[0].send_message(
                destination[1].name, message.body, message_attributes=dict(message.message_attributes)
            )
            task.moved += 1
        if task.moved >= task.to_move or not source.messages:
            task.status = "COMPLETED"

    @staticmethod
    def _destination(backend: SQSBackend, source: Queue, task: MoveTask) -> tuple[SQSBackend, Queue]:
        if task.destination_arn:
            return _queue(task.destination_arn)
        origins = backend.list_dead_letter_source_queues(source.name)
        if not origins:
            raise ResourceNotFound("The DLQ's source queue no longer exists.")
        return backend, origins[0]

    # ---- wiring -----------------------------------------------------------------------------
    def patches(self) -> list[Any]:
        moves = self

        def start_message_move_task(response: SQSResponse) -> ActionResult:
            rate = response._get_param("MaxNumberOfMessagesPerSecond")
            handle = moves.start_task(
                response._get_param("SourceArn"),
                response._get_param("DestinationArn"),
                None if rate is None else int(rate),
                Caller.of(response),
            )
            return ActionResult({"TaskHandle": handle})

        def list_message_move_tasks(response: SQSResponse) -> ActionResult:
            results = moves.list_tasks(response._get_param("SourceArn"), response._get_param("MaxResults"))
            return ActionResult({"Results": results})

        def cancel_message_move_task(response: SQSResponse) -> ActionResult:
            moved = moves.cancel_task(response._get_param("TaskHandle"))
            return ActionResult({"ApproximateNumberOfMessagesMoved": moved})

        operations: dict[str, Callable[[SQSResponse], ActionResult]] = {
            "start_message_move_task": start_message_move_task,
            "list_message_move_tasks": list_message_move_tasks,
            "cancel_message_move_task": cancel_message_move_task,
        }
        return [mock.patch.object(SQSResponse, n, f, create=True) for n, f in operations.items()]

    def stop(self) -> None:
        super().stop()
        self.tasks.clear()
        self.failures.clear()
        self.held = False
