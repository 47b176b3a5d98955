"""Scheduled runs (baseline sweep, role snapshot): a failed run tells the SOC before it raises.

EventBridge Scheduler invokes the functions asynchronously. Its RetryPolicy and dead-letter
queue cover only invocations it could not deliver: those never reach the code, and the DLQ
holds them. A run that fails inside the function is retried only by Lambda's async retries,
and both functions set them to 0 (EventInvokeConfig): a failed run is final, so it is alerted
once, here, and the next scheduled run is the retry. The finding is keyed on the Lambda
request ID, which a duplicate delivery of the same invocation shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard.clients import SCHEDULED_RETRY_CONFIG, AwsClients
from connect_guard.findings import Attempt, EventRef, Finding
from connect_guard.observability import logger, metrics
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.publisher import SnsPublisher
from connect_guard.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    name: str  # in the title: "Baseline sweep FAILED"
    responder: str  # the runbook and the finding's responder
    kind: str
    severity: Severity
    consequence: str  # what the SOC lacks until a run succeeds


BASELINE_SWEEP = Job(
    "Baseline sweep",
    "baseline_sweep",
    "connect.baseline_sweep_failed",
    # The real-time rollback still runs: what is lost is the drift check and a first baseline.
    Severity.HIGH,
    "Connect drift is not being detected or rolled back by the sweep, and an instance without a baseline gets none",
)
ROLE_SNAPSHOT = Job(
    "Role snapshot",
    "role_quarantine",
    "iam.role_snapshot_failed",
    # The quarantine still runs; a protected role deleted now may have no snapshot to restore from.
    Severity.HIGH,
    "protected roles changed since the last snapshot have no current restore source, and a "
    "tag-protected role deleted now may be unrecognised",
)

LIVENESS_CHECK = Job(
    "Canary check",
    "liveness",
    "suite.canary_check_failed",
    # Nothing else notices a blinded account or region: the check is the only one looking.
    Severity.HIGH,
    "an account or region whose events stopped arriving is not being detected",
)

LOGGING_DRIFT = Job(
    "Logging drift check",
    "logging_guard",
    "logging.drift_check_failed",
    # The event-driven restore still runs: what is lost is the net under missed events.
    Severity.HIGH,
    "trails and contact flow logs changed without a delivered event are not being detected or restored",
)


def invoke(job: Job, invocation_id: str, work: Callable[[Settings, AwsClients], T]) -> T:
    """A scheduled function's run: settings and clients as its container builds them (the
    patient SCHEDULED_RETRY_CONFIG: no SQS redelivery behind it), then `work` under run()."""
    settings = Settings.from_env()
    clients = AwsClients(settings.region, account_id=settings.own_account_id, config=SCHEDULED_RETRY_CONFIG)
    # A failed run is final (no Lambda retries): it is alerted, then raised for the errors alarm.
    return run(job, settings, clients.sns, invocation_id, lambda: work(settings, clients))


def check_or_records(
    check: dict[str, Any],
    job: Job,
    work: Callable[[Settings, AwsClients], Sequence[Finding]],
    records: Callable[[dict[str, Any], LambdaContext], Any],
    *,
    finished: str,
    key: str,
) -> Callable[[dict[str, Any], LambdaContext], Any]:
    """The handler of a function that takes both its queue's SQS batches (`records`, from
    runtime.lambda_handler_for) and a schedule whose Input is exactly `check`: that runs `work`
    as `job` (invoke) and answers `{key: [finding IDs]}`. Anything else goes to `records`, which
    refuses what is not an SQS batch from its own queue: only the exact Input is ever a check."""

    @metrics.log_metrics  # what the check emits, e.g. the canary age (liveness.CANARY_AGE_METRIC)
    @logger.inject_lambda_context(clear_state=True)
    def scheduled_check(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        found = invoke(job, context.aws_request_id, work)
        logger.info(finished, extra={key: [f.title for f in found]})
        return {key: [f.finding_id for f in found]}

    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
        if event == check:
            return scheduled_check(event, context)
        return records(event, context)

    return lambda_handler


def run(job: Job, settings: Settings, sns: Any, invocation_id: str, work: Callable[[], T]) -> T:
    """`work()`, or a published FAILED finding and the original error re-raised."""
    try:
        return work()
    except Exception as error:
        try:
            failed(job, settings, sns, invocation_id, error)
        except Exception as publish_error:  # the errors alarm still fires on the raise below
            logger.exception("could not publish the FAILED finding", extra={"error": str(publish_error)})
        raise


def failed(job: Job, settings: Settings, sns: Any, invocation_id: str, error: Exception) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    cause = f"{type(error).__name__}: {error}"
    finding = Finding(
        responder=job.responder,
        kind=job.kind,
        severity=job.severity,
        title=f"{job.name} FAILED in {settings.own_account_id}",
        summary=f"The scheduled {job.name.lower()} failed ({cause}). Lambda does not retry it; the next "
        "scheduled run does.",
        event=EventRef(
            f"{job.responder}-failed:{invocation_id}",
            job.name.replace(" ", ""),
            "connect-guard",
            now,
            settings.own_account_id,
            settings.region,
            "",
        ),
        actor=Actor.system(f"connect-guard {job.name.lower()}"),
        attempt=Attempt("failed", type(error).__name__, str(error)[:1000]),
        allowlisted=False,
        reasons=(
            f"{job.name.upper()} DID NOT COMPLETE: {cause}",
            f"until a run succeeds: {job.consequence}",
            "fix the cause (function logs) and invoke the function again, or wait for the next run",
        ),
        runbook_url=settings.runbook_url(job.responder),
        environment=settings.environment,
        mode=settings.response_mode,
    )
    logger.error(f"{job.name} failed: alerting", extra={"finding_id": finding.finding_id, "error": cause})
    return SnsPublisher(sns, settings.alert_topic_arn).publish(finding)
