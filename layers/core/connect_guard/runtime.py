"""The path every responder shares: parse → scope → dedup → decide/act → report.

`Pipeline.process` is what both the Lambda handler (per SQS record from the function's own
queue, or one event on a local direct invocation such as `sam local invoke -e events/...`) and
the local replay call, so they cannot drift apart. Every event is checked for scope first
(connect_guard.scope): one the suite must not act on is reported, and no responder sees it.

The handler classifies whatever a record raises (connect_guard.errors.classify): poison goes to
the function's DLQ on its first receive, transient and unclassified errors are retried by SQS,
and the last receive of an event whose action did not happen has the responder say so
(give_up). A deadline guard keeps every invocation inside its timeout (connect_guard.clients).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError
from pydantic_core import from_json, to_json

from connect_guard import scope
from connect_guard.clients import ATTEMPT_MS, DEADLINE, DEADLINE_MARGIN_MS, HUNG_CALL_MS, AwsClients
from connect_guard.dedup import Claimant, Dedup
from connect_guard.delivery import MAX_RECEIVE_COUNT, Arrivals, DeadLetters, Delivery
from connect_guard.errors import (
    ConfigurationError,
    DeadlineExceededError,
    DirectInvocationError,
    DuplicateInProgressError,
    ErrorClass,
    PoisonEventError,
    Verdict,
    bounded,
    classify,
)
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Finding
from connect_guard.observability import logger, metrics
from connect_guard.outcome import Alert, Outcome
from connect_guard.publisher import SnsPublisher, fit
from connect_guard.settings import Settings

__all__ = [
    "MAX_RECEIVE_COUNT",
    "LambdaHandler",
    "Pipeline",
    "build_pipeline",
    "init_in_lambda",
    "lambda_handler_for",
    "parse_event",
    "partial_batch_response",
]

# EventBridge drops events over 256 KB; anything bigger did not come from it.
MAX_EVENT_BYTES = 262_144
# Time held back while records are processed, for the FAILED alerts of the batch's last
# receives: one publish attempt.
FINAL_ALERTS_MS = ATTEMPT_MS + DEADLINE_MARGIN_MS
# A record is started only with time for one hung call and the final alerts after it (README,
# "Deadlines"): below that it is left to SQS's next receive.
RECORD_BUDGET_MS = HUNG_CALL_MS + FINAL_ALERTS_MS
# Log keys that belong to one record: cleared before the next, so none is misattributed.
RECORD_KEYS = ("event_id", "event_name", "correlation_id", "sqs_message_id")


class Responder(Protocol):
    name: str

    def handle(self, event: CloudTrailEvent) -> Outcome: ...


class Publisher(Protocol):
    def publish(self, finding: Finding) -> str: ...


class GivesUp(Protocol):
    """A responder that tells the SOC when its last attempt at an action failed."""

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None: ...


ResponderFactory = Callable[[Settings, AwsClients], Responder]
SqsRecord = dict[str, Any]  # one record of an SQS batch, as Lambda delivers it (delivery.Delivery reads it)


def partial_batch_response(records: object, handle: Callable[[SqsRecord], object]) -> dict[str, list[dict[str, str]]]:
    """Every record of an SQS batch through `handle`, in order, for a partial batch response.

    A record that raises is reported by its `messageId` (SQS retries exactly those and, after
    maxReceiveCount, moves them to the DLQ) and the next is still handled; a batch where every
    record failed is reported the same way, item by item, never raised. What Powertools'
    BatchProcessor (raise_on_entire_batch_failure=False) answers, without its import: asyncio and
    every event data class, ~20 ms of cold start (more when pydantic is imported first).
    """
    if not isinstance(records, list) or not records:
        raise DirectInvocationError("not an SQS batch: 'Records' must be a non-empty list")
    failed = []
    for record in records:
        try:
            handle(record)
        except Exception:
            failed.append(record)
    # A failed record without its messageId can't be reported alone: the invocation fails and
    # SQS retries the whole batch.
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in failed]}


def parse_event(body: str | bytes | dict[str, Any]) -> tuple[dict[str, Any], CloudTrailEvent]:
    """The raw envelope and its typed model; PoisonEventError with a readable reason otherwise.

    pydantic-core's parser refuses what no AWS service writes and Python's `json` accepts:
    nesting over 200 levels and lone UTF-16 surrogates (`"\\ud800"`), which would fail later in
    every UTF-8 encoder on the way (botocore, SNS, the log handler).
    """
    if isinstance(body, dict):  # a direct invocation or the replay: held to the same rules
        try:
            body = to_json(body).decode()
        except (ValueError, RecursionError) as error:
            raise PoisonEventError(f"event can't be encoded as JSON ({type(error).__name__})") from error
    if len(body) > MAX_EVENT_BYTES:
        raise PoisonEventError(f"event too large: {len(body):,} bytes (EventBridge maximum 256 KB)")
    try:
        raw = from_json(body)
    except ValueError as error:
        raise PoisonEventError(f"invalid JSON: {bounded(str(error), 200)}") from error
    if not isinstance(raw, dict):
        raise PoisonEventError(f"event is a JSON {type(raw).__name__}, not an object")
    try:
        return raw, CloudTrailEvent.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)[:5]
        )
        raise PoisonEventError(bounded(f"invalid CloudTrail event: {problems}")) from error


def _mark_duplicate(responder: str, parsed: CloudTrailEvent) -> dict[str, Any]:
    """A redelivery of an eventID another delivery claimed: reported as a duplicate, nothing done.
    (The claim holds no outcome: writing one would be a second write per event.)"""
    record = parsed.detail
    outcome = Outcome(responder, record.event_id, record.event_name, "duplicate", None, "eventID already processed")
    return outcome.to_dict()


@dataclass(frozen=True)
class DedupTable:
    """Where the claims live: the dedup table, through the function's DynamoDB client."""

    client: Any
    name: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _clear_record_keys() -> None:
    logger.remove_keys(RECORD_KEYS)


class Pipeline:
    def __init__(
        self,
        responder: Responder,
        persistence: DedupTable | None,
        ttl: int,
        *,
        settings: Settings,
        publisher: Publisher,
        clock: Callable[[], datetime] | None = None,
        arrivals: Arrivals | None = None,
    ) -> None:
        self.responder = responder
        self.settings = settings
        self.publisher = publisher
        self.clock = clock or _utcnow
        self.arrivals = arrivals
        self._events: Dedup | None = None
        self._rejections: Dedup | None = None
        if persistence is not None:
            # A claim stays in progress until the invocation's deadline (connect_guard.dedup).
            table = (persistence.client, persistence.name, ttl)
            self._events = Dedup(*table, responder.name, DEADLINE.remaining_ms)
            # Rejections are remembered apart: a forged copy of a real eventID must never claim
            # the real event's dedup record (nor the real one silence the rejection).
            self._rejections = Dedup(*table, f"{responder.name}.rejected", DEADLINE.remaining_ms)

    def out_of_scope(self, parsed: CloudTrailEvent, delivery: Delivery | None = None) -> str | None:
        return scope.out_of_scope(parsed, self.settings, self._received_at(parsed, delivery))

    def _received_at(self, parsed: CloudTrailEvent, delivery: Delivery | None) -> datetime:
        """When the delivery horizon is measured: now, or, for an old event redriven from the DLQ,
        when SQS first accepted exactly this message (delivery.Arrivals)."""
        now = self.clock()
        limit = self.settings.max_event_age_hours
        if delivery is None or self.arrivals is None or limit is None:
            return now
        if _utc(now) - _utc(parsed.detail.event_time) <= timedelta(hours=limit):
            return now  # within the horizon: no lookup
        first = self.arrivals.first_sent(delivery)
        if first is None or first >= _utc(now):
            return now
        logger.info(
            "event past the delivery horizon redelivered: its age is measured from its first arrival",
            extra={"first_arrival": first.isoformat(timespec="seconds")},
        )
        return first

    def _respond(self, parsed: CloudTrailEvent) -> dict[str, Any]:
        return self.responder.handle(parsed).to_dict()

    def _report_rejection(self, parsed: CloudTrailEvent, reason: str) -> dict[str, Any]:
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

    def process(self, body: str | bytes | dict[str, Any], delivery: Delivery | None = None) -> dict[str, Any]:
        """One event through parse → scope → dedup → respond. Raises PoisonEventError or a retryable error."""
        logger.remove_keys(("event_id", "event_name", "correlation_id"))
        _, parsed = parse_event(body)
        logger.append_keys(event_id=parsed.detail.event_id, event_name=parsed.detail.event_name)
        logger.set_correlation_id(parsed.id)
        reason = self.out_of_scope(parsed, delivery)
        if reason is not None:
            return self._once(self._rejections, parsed, delivery, lambda: self._report_rejection(parsed, reason))
        return self._once(self._events, parsed, delivery, lambda: self._respond(parsed))

    def _once(
        self,
        dedup: Dedup | None,
        parsed: CloudTrailEvent,
        delivery: Delivery | None,
        work: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """`work()` under the eventID's dedup claim: a duplicate is reported, not run; a caught
        failure releases the claim, the claim's own too (a put whose answer was lost may have been
        applied); a kill leaves it to its window (connect_guard.dedup)."""
        if dedup is None:
            return work()
        event_id, claimant = parsed.detail.event_id, Claimant.of(delivery)
        try:
            if not dedup.claim(event_id, claimant):
                return _mark_duplicate(self.responder.name, parsed)
            return work()
        except DuplicateInProgressError:
            raise  # the claim is the other receive's: it stays
        except Exception:
            try:
                dedup.release(event_id, claimant)
            except Exception as error:  # the claim then ends with its window; the first error stands
                logger.warning("dedup claim not released", extra={"error": classify(error).reason})
            raise


def build_pipeline(factory: ResponderFactory, settings: Settings, clients: AwsClients) -> Pipeline:
    responder = factory(settings, clients)
    return Pipeline(
        responder,
        DedupTable(clients.dynamodb, settings.dedup_table_name),
        settings.dedup_ttl_seconds,
        settings=settings,
        publisher=SnsPublisher(clients.sns, settings.alert_topic_arn),
        arrivals=Arrivals(clients.dynamodb, settings.dedup_table_name, settings.dedup_ttl_seconds, responder.name),
    )


@dataclass
class _Container:
    """What one Lambda container builds once (in INIT when deployed) and keeps while it lives."""

    settings: Settings
    clients: AwsClients
    pipeline: Pipeline

    @cached_property
    def dead_letters(self) -> DeadLetters | None:
        """Built on the first poison record: nothing else needs the SQS client (~8 ms to create)."""
        if not self.settings.dead_letter_queue_url:
            return None
        return DeadLetters(self.clients.sqs, self.settings.dead_letter_queue_url, self.pipeline.responder.name)


class LambdaHandler(Protocol):
    """A function's handler; `init()` builds the container's set-up now (app.py: in INIT)."""

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> Any: ...

    def init(self) -> object: ...


@dataclass(frozen=True)
class _Handler:
    invoke: Callable[[dict[str, Any], LambdaContext], Any]
    setup: Callable[[], _Container]

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> Any:
        return self.invoke(event, context)

    def init(self) -> _Container:
        return self.setup()


def in_lambda() -> bool:
    """Running as a deployed (or `sam local`) Lambda function: the runtime sets the function's name."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def init_in_lambda(handler: LambdaHandler) -> None:
    """The set-up in Lambda's INIT phase (the module's import), at full CPU, instead of inside the
    first invocation, where Lambda throttles CPU to the function's memory size. Elsewhere (tests,
    the replay) the handler builds it on its first call, after the caller set the environment."""
    if in_lambda():
        handler.init()


def _where(error: BaseException) -> str:
    """The innermost frame of connect-guard's own code (else the innermost): file:line in function."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if "connect_guard" in f.filename] or frames
    if not own:
        return "unknown"
    frame = own[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"


def lambda_handler_for(factory: ResponderFactory) -> LambdaHandler:
    """A Lambda handler: SQS batches from the function's own queue, with partial failures.

    A direct invocation (one EventBridge event, no `Records`) is accepted only in a local run
    (`sam local invoke`, or CONNECT_GUARD_ALLOW_DIRECT_INVOCATION): deployed, the queue is the
    only way in, so that its policy decides who may feed the function.
    """
    state: list[_Container] = []  # built once (init, else the first invocation), kept while the container lives

    def setup() -> _Container:
        if not state:
            try:
                settings = Settings.from_env()
                clients = AwsClients(settings.region, account_id=settings.own_account_id)
                pipeline = build_pipeline(factory, settings, clients)
            except ConfigurationError as error:
                # One line that names the setting, then the error: in INIT, Lambda reports an init
                # error and retries INIT with the next invocation; SQS keeps the batch meanwhile.
                logger.error("function not configured: no event can be processed", extra={"reason": str(error)})
                raise
            state.append(_Container(settings, clients, pipeline))
        return state[0]

    def handle(body: str | dict[str, Any]) -> dict[str, Any]:
        """A local direct invocation: any error fails the whole invocation."""
        result = setup().pipeline.process(body)
        _report(result)
        return result

    def _report(result: dict[str, Any]) -> None:
        metrics.add_metric(name=f"Outcome_{result['outcome']}", unit=MetricUnit.Count, value=1)
        fields = {k: result.get(k) for k in ("outcome", "severity", "reason", "responder")}
        if result.get("alerts"):  # the findings published for it (one line per event, not one more per finding)
            fields["finding_ids"] = [alert["finding_id"] for alert in result["alerts"]]
        logger.info("event processed", extra=fields)

    def note_arrival(container: _Container, delivery: Delivery) -> None:
        """Best effort: the first arrival of a message that may come back from the DLQ."""
        arrivals = container.pipeline.arrivals
        if arrivals is None:
            return
        try:
            arrivals.record(delivery)
        except Exception as error:  # never hide the record's own outcome behind this one
            logger.warning("first arrival not recorded", extra={"error": classify(error).reason})

    def give_up(container: _Container, delivery: Delivery, error: Exception) -> None:
        """The last receive failed: the responder tells the SOC what did not happen (never for
        poison, nor for an event the suite refused as out of scope)."""
        responder = container.pipeline.responder
        if not hasattr(responder, "give_up"):
            return
        try:
            _, parsed = parse_event(delivery.body)
        except PoisonEventError:
            return
        try:
            if container.pipeline.out_of_scope(parsed, delivery) is None:
                cast(GivesUp, responder).give_up(parsed, error)
        except Exception as failure:
            verdict = classify(failure)
            metrics.add_metric(name="FinalAlertFailures", unit=MetricUnit.Count, value=1)
            logger.error(
                "last receive: the FAILED alert could not be sent",
                extra={"error_type": verdict.error_type, "reason": verdict.reason},
            )

    def dead_letter(container: _Container, delivery: Delivery, verdict: Verdict) -> dict[str, Any]:
        """Poison: into the DLQ now, reported handled; if that fails, fail the item (SQS keeps it)."""
        metrics.add_metric(name="PoisonEvents", unit=MetricUnit.Count, value=1)
        extra: dict[str, Any] = {"reason": verdict.reason, "error_type": verdict.error_type}
        if container.dead_letters is None:
            logger.error("event rejected: it will end in the DLQ", extra={**extra, "dead_letter": "after its retries"})
            raise PoisonEventError(verdict.reason)
        try:
            message_id = container.dead_letters.send(delivery, verdict)
        except Exception as error:
            metrics.add_metric(name="DeadLetterSendFailures", unit=MetricUnit.Count, value=1)
            logger.error(
                "event rejected: it will end in the DLQ",
                extra={**extra, "dead_letter": f"after its retries (send failed: {classify(error).reason})"},
            )
            raise PoisonEventError(verdict.reason) from error
        metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)
        logger.error(
            "event rejected: it will end in the DLQ",
            extra={**extra, "dead_letter": "sent on its first receive", "dead_letter_message_id": message_id},
        )
        return {"outcome": "dead_lettered", "reason": verdict.reason, "dead_letter_message_id": message_id}

    def record_handler(record: SqsRecord) -> dict[str, Any]:
        _clear_record_keys()
        logger.append_keys(sqs_message_id=bounded(str(record["messageId"]), 128))
        container = setup()
        expected = container.settings.source_queue_arn
        delivery = Delivery.of(record)
        if delivery.source_queue_arn != expected:
            # Another queue wired to this function, or a hand-made batch: fail the item for good.
            # It ends in that queue's DLQ, never in this function's: it is none of its business.
            source = delivery.source_queue_arn or "no eventSourceARN"
            reason = bounded(f"record from {source}, not this function's queue {expected}")
            metrics.add_metric(name="ForeignRecords", unit=MetricUnit.Count, value=1)
            logger.error("record rejected: not from this function's queue", extra={"reason": reason})
            raise PoisonEventError(reason)
        noted = delivery.receive_count > 1
        if noted:  # a retry: whatever ended the last receive, this message may reach the DLQ
            note_arrival(container, delivery)
        remaining = DEADLINE.remaining_ms()
        if remaining is not None and remaining < RECORD_BUDGET_MS:
            metrics.add_metric(name="RecordsNotStarted", unit=MetricUnit.Count, value=1)
            logger.warning(
                "record not started: too little time left before the function's timeout; SQS will retry it",
                extra={"remaining_ms": remaining, "record_budget_ms": RECORD_BUDGET_MS},
            )
            skipped = DeadlineExceededError(
                f"not started: {remaining:,} ms left, a record may take {RECORD_BUDGET_MS:,}"
            )
            if not noted:
                note_arrival(container, delivery)
            if delivery.final:
                give_up(container, delivery, skipped)
            raise skipped
        try:
            with DEADLINE.keeping(FINAL_ALERTS_MS):
                result = container.pipeline.process(delivery.body, delivery)
        except Exception as error:
            verdict = classify(error)
            if not noted:
                note_arrival(container, delivery)
            if verdict.poison:
                return dead_letter(container, delivery, verdict)
            extra: dict[str, Any] = {
                "error_class": str(verdict.kind),
                "error_type": verdict.error_type,
                "reason": verdict.reason,
                "receive_count": delivery.receive_count,
            }
            metrics.add_metric(name="RetriedEvents", unit=MetricUnit.Count, value=1)
            if verdict.kind is ErrorClass.UNCLASSIFIED:
                metrics.add_metric(name="UnclassifiedErrors", unit=MetricUnit.Count, value=1)
                extra["where"] = _where(error)
            logger.warning("event failed; SQS will retry it", extra=extra)
            if delivery.final:
                give_up(container, delivery, error)
            raise
        _report(result)
        return result

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def invoke(event: dict[str, Any], context: LambdaContext) -> Any:
        container = setup()
        settings = container.settings
        with DEADLINE.of(context.get_remaining_time_in_millis):
            if "Records" in event:
                settings.require("source_queue_arn")  # fail loudly: no record can be attributed without it
                try:
                    return partial_batch_response(event["Records"], record_handler)
                finally:
                    _clear_record_keys()
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

    return _Handler(invoke, setup)
