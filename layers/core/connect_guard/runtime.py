"""The path every responder shares: parse → scope → dedup → decide/act → report.

`Pipeline.process` is what both the Lambda handler (per SQS record from the function's own
queue, or one event on a local direct invocation such as `sam local invoke -e events/...`) and
the local replay call, so they cannot drift apart. Every event is checked for scope first
(connect_guard.scope): one the suite must not act on is reported, and no responder sees it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from aws_lambda_powertools.metrics import MetricUnit

# Before anything imports pydantic (see functions/*/app.py): keeps Powertools' batch models unloaded.
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from connect_guard import scope
from connect_guard.clients import AwsClients
from connect_guard.errors import DirectInvocationError, PoisonEventError
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Finding
from connect_guard.observability import logger, metrics
from connect_guard.outcome import Alert, Outcome
from connect_guard.publisher import SnsPublisher, fit
from connect_guard.settings import Settings

# EventBridge drops events over 256 KB; anything bigger did not come from it.
MAX_EVENT_BYTES = 262_144


class Responder(Protocol):
    name: str

    def handle(self, event: CloudTrailEvent) -> Outcome: ...


class Publisher(Protocol):
    def publish(self, finding: Finding) -> str: ...


class GivesUp(Protocol):
    """A responder that tells the SOC when its last attempt at an action failed."""

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None: ...


# Must equal the queues' redrive maxReceiveCount in template.yaml (a template test checks it).
MAX_RECEIVE_COUNT = 5


ResponderFactory = Callable[[Settings, AwsClients], Responder]


def parse_event(body: str | bytes | dict[str, Any]) -> tuple[dict[str, Any], CloudTrailEvent]:
    """The raw envelope and its typed model; PoisonEventError with a readable reason otherwise."""
    if isinstance(body, str | bytes):
        if len(body) > MAX_EVENT_BYTES:
            raise PoisonEventError(f"event too large: {len(body):,} bytes (EventBridge maximum 256 KB)")
        try:
            body = json.loads(body)
        except json.JSONDecodeError as error:
            raise PoisonEventError(f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from error
    if not isinstance(body, dict):
        raise PoisonEventError(f"event is a JSON {type(body).__name__}, not an object")
    try:
        return body, CloudTrailEvent.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in error.errors()[:5])
        raise PoisonEventError(f"invalid CloudTrail event: {problems}") from error


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools returns the stored outcome on a redelivery: report it as a duplicate."""
    return {**response, "outcome": "duplicate", "alerts": [], "reason": "eventID already processed"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Pipeline:
    def __init__(
        self,
        responder: Responder,
        persistence: DynamoDBPersistenceLayer | None,
        ttl: int,
        *,
        settings: Settings,
        publisher: Publisher,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.responder = responder
        self.settings = settings
        self.publisher = publisher
        self.clock = clock
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="detail.eventID",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=ttl,
            response_hook=_mark_duplicate,
        )
        self._run: Callable[..., dict[str, Any]] = self._respond
        self._reject: Callable[..., dict[str, Any]] = self._report_rejection
        if persistence is not None:
            self._run = idempotent_function(
                self._respond,
                data_keyword_argument="event",
                persistence_store=persistence,
                config=self.idempotency,
                key_prefix=responder.name,
            )
            # Rejections are remembered apart: a forged copy of a real eventID must never claim
            # the real event's dedup record (nor the real one silence the rejection).
            self._reject = idempotent_function(
                self._report_rejection,
                data_keyword_argument="event",
                persistence_store=persistence,
                config=self.idempotency,
                key_prefix=f"{responder.name}.rejected",
            )

    def out_of_scope(self, parsed: CloudTrailEvent) -> str | None:
        return scope.out_of_scope(parsed, self.settings, self.clock())

    def _respond(self, *, event: dict[str, Any], parsed: CloudTrailEvent) -> dict[str, Any]:
        return self.responder.handle(parsed).to_dict()

    def _report_rejection(self, *, event: dict[str, Any], parsed: CloudTrailEvent, reason: str) -> dict[str, Any]:
        finding = scope.rejection_finding(parsed, reason, self.responder.name, self.settings)
        message_id = self.publisher.publish(finding)
        metrics.add_metric(name="OutOfScopeEvents", unit=MetricUnit.Count, value=1)
        logger.warning(
            "event out of scope: reported, not acted on", extra={"reason": reason, "finding_id": finding.finding_id}
        )
        record = parsed.detail
        severity = str(finding.severity)
        outcome = Outcome(self.responder.name, record.event_id, record.event_name, "rejected", severity, reason)
        outcome.alerts.append(Alert(finding.subject, severity, finding.finding_id, message_id))
        outcome.finding = fit(finding).to_dict()  # as published
        return outcome.to_dict()

    def process(self, body: str | bytes | dict[str, Any]) -> dict[str, Any]:
        """One event through parse → scope → dedup → respond. Raises PoisonEventError or a retryable error."""
        raw, parsed = parse_event(body)
        logger.append_keys(event_id=parsed.detail.event_id, event_name=parsed.detail.event_name)
        logger.set_correlation_id(parsed.id)
        reason = self.out_of_scope(parsed)
        if reason is not None:
            return self._reject(event=raw, parsed=parsed, reason=reason)
        return self._run(event=raw, parsed=parsed)


def build_pipeline(factory: ResponderFactory, settings: Settings, clients: AwsClients) -> Pipeline:
    responder = factory(settings, clients)
    persistence = DynamoDBPersistenceLayer(table_name=settings.dedup_table_name, boto3_client=clients.dynamodb)
    return Pipeline(
        responder,
        persistence,
        settings.dedup_ttl_seconds,
        settings=settings,
        publisher=SnsPublisher(clients.sns, settings.alert_topic_arn),
    )


def lambda_handler_for(factory: ResponderFactory) -> Callable[[dict[str, Any], LambdaContext], Any]:
    """A Lambda handler: SQS batches from the function's own queue, with partial failures.

    A direct invocation (one EventBridge event, no `Records`) is accepted only in a local run
    (`sam local invoke`, or CONNECT_GUARD_ALLOW_DIRECT_INVOCATION): deployed, the queue is the
    only way in, so that its policy decides who may feed the function.
    """
    # Report every failed item, even when the whole batch failed: SQS retries exactly those and,
    # after maxReceiveCount, moves them to the DLQ.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    state: list[tuple[Settings, Pipeline]] = []  # built on the first invocation, kept while the container lives

    def setup() -> tuple[Settings, Pipeline]:
        if not state:
            settings = Settings.from_env()
            clients = AwsClients(settings.region, account_id=settings.own_account_id)
            state.append((settings, build_pipeline(factory, settings, clients)))
        return state[0]

    def handle(body: str | dict[str, Any], final_attempt: bool = False) -> dict[str, Any]:
        pipeline = setup()[1]
        try:
            result = pipeline.process(body)
        except PoisonEventError as error:
            metrics.add_metric(name="PoisonEvents", unit=MetricUnit.Count, value=1)
            logger.error("event rejected: it will end in the DLQ", extra={"reason": str(error)})
            raise
        except Exception as error:
            logger.warning("event failed; SQS will retry it", extra={"error": f"{type(error).__name__}: {error}"})
            responder = pipeline.responder
            if final_attempt and hasattr(responder, "give_up"):
                _, parsed = parse_event(body)
                if pipeline.out_of_scope(parsed) is None:  # never speak for an event the suite refused
                    cast(GivesUp, responder).give_up(parsed, error)
            raise
        metrics.add_metric(name=f"Outcome_{result['outcome']}", unit=MetricUnit.Count, value=1)
        logger.info(
            "event processed",
            extra={k: result.get(k) for k in ("outcome", "severity", "reason", "responder")},
        )
        return result

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        logger.append_keys(sqs_message_id=record.message_id)
        expected = setup()[0].source_queue_arn
        source = record.get("eventSourceARN")
        if source != expected:
            # Another queue wired to this function, or a hand-made batch: fail the item for good.
            reason = f"record from {source or 'no eventSourceARN'}, not this function's queue {expected}"
            metrics.add_metric(name="ForeignRecords", unit=MetricUnit.Count, value=1)
            logger.error("record rejected: not from this function's queue", extra={"reason": reason})
            raise PoisonEventError(reason)
        receives = int(record.attributes.approximate_receive_count or 1)
        return handle(record.body, final_attempt=receives >= MAX_RECEIVE_COUNT)

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
        settings, pipeline = setup()
        pipeline.idempotency.register_lambda_context(context)
        if "Records" in event:
            settings.require("source_queue_arn")  # fail loudly: no record can be attributed without it
            return process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        if not settings.local_run:
            metrics.add_metric(name="RefusedInvocations", unit=MetricUnit.Count, value=1)
            reason = (
                "direct invocation refused: this function takes only SQS batches from its own queue "
                "(for a local run: sam local invoke sets AWS_SAM_LOCAL=true, or set "
                "CONNECT_GUARD_ALLOW_DIRECT_INVOCATION=true)"
            )
            logger.error("invocation refused", extra={"reason": reason})
            raise DirectInvocationError(reason)
        return handle(event)  # local direct invocation: an error fails the whole invocation

    return lambda_handler
