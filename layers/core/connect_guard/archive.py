"""Log archive: export log groups to S3 window by window, checkpointed and gap-free, and land
the suite's own findings and audit records there as JSON Lines, so evidence outlives log
retention.

CloudWatch Logs runs one export task per account at a time (running or pending), and data can
take hours to become exportable. So: at most one task of ours is in flight; a log group's
checkpoint moves only when its task COMPLETED; FAILED or CANCELLED windows are simply tried
again; windows are bounded (catch-up after downtime) and stop `lag` hours before now.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from connect_guard.clients import AwsClients
from connect_guard.findings import Attempt, EventRef, Finding
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.publisher import SnsPublisher
from connect_guard.settings import Settings

HOUR_MS = 3_600_000
ACTIVE = {"PENDING", "RUNNING", "PENDING_CANCEL"}
FAILURES_BEFORE_ALERT = 3


@dataclass
class Checkpoint:
    log_group: str
    exported_to: int  # epoch ms: everything before this is in the archive
    task_id: str | None = None  # the export task in flight for [exported_to, pending_to)
    pending_to: int | None = None
    failures: int = 0
    last_error: str | None = None


class CheckpointStore:
    """One item per log group (`pk = export#<log group>`), in the baseline table."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def get(self, log_group: str) -> Checkpoint | None:
        item = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"export#{log_group}"}, "sk": {"S": "checkpoint"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        body = json.loads(item["checkpoint"]["S"])
        return Checkpoint(**body)

    def put(self, checkpoint: Checkpoint) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"export#{checkpoint.log_group}"},
                "sk": {"S": "checkpoint"},
                "checkpoint": {"S": json.dumps(checkpoint.__dict__)},
            },
        )


@dataclass
class ExportReport:
    started: list[tuple[str, int, int]] = field(default_factory=list)  # (log group, from, to)
    completed: list[tuple[str, int, int]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (log group, reason)
    waiting: str | None = None  # why no new task was started
    behind: list[tuple[str, float]] = field(default_factory=list)  # (log group, hours behind)
    archived_objects: list[str] = field(default_factory=list)
    # The smallest `exported_to` of every log source this cycle knows (own export checkpoints and
    # member pull checkpoints, failed ones included); None without any source. A day is sealable
    # once it is over and its end is at or before this.
    low_watermark_ms: int | None = None
    manifests: list[str] = field(default_factory=list)  # manifest keys written this cycle
    manifest_errors: list[str] = field(default_factory=list)


def _lowest(*marks: int | None) -> int | None:
    return min((m for m in marks if m is not None), default=None)


def prefix_for(log_group: str, start_ms: int, account_id: str, region: str) -> str:
    """`logs/<account>/<region>/<log group>/<yyyy>/<mm>/<dd>`, the day the window starts (UTC):
    the same layout as the member accounts' pulled windows (connect_guard.member_logs)."""
    day = datetime.fromtimestamp(start_ms / 1000, UTC)
    return f"logs/{account_id}/{region}/{log_group.strip('/')}/{day:%Y/%m/%d}"


def next_window(exported_to: int, now_ms: int, lag_hours: int, max_window_hours: int) -> tuple[int, int] | None:
    """The next [from, to) window after the checkpoint: whole hours, bounded, clear of the lag (pure).

    Whole hours keep windows (and their S3 prefixes) stable while the clock moves on.
    """
    ceiling = (now_ms - lag_hours * HOUR_MS) // HOUR_MS * HOUR_MS
    end = min(exported_to + max_window_hours * HOUR_MS, ceiling)
    return (exported_to, end) if end > exported_to else None


class LogExporter:
    def __init__(
        self,
        logs: Any,
        store: CheckpointStore,
        bucket: str,
        log_groups: tuple[str, ...],
        *,
        lag_hours: int,
        max_window_hours: int,
        behind_alert_hours: int,
        account_id: str,
        region: str,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 5.0,
        budget_seconds: float = 240.0,
    ) -> None:
        self.logs = logs
        self.account_id = account_id
        self.region = region
        self.store = store
        self.bucket = bucket
        self.log_groups = log_groups
        self.lag_hours = lag_hours
        self.max_window_hours = max_window_hours
        self.behind_alert_hours = behind_alert_hours
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.budget_seconds = budget_seconds

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _status(self, task_id: str) -> tuple[str, str]:
        tasks = self.logs.describe_export_tasks(taskId=task_id).get("exportTasks", [])
        if not tasks:
            return "CANCELLED", "export task no longer exists"
        status = tasks[0].get("status", {})
        return str(status.get("code", "RUNNING")), str(status.get("message", ""))

    def _settle(self, checkpoint: Checkpoint, report: ExportReport, deadline: float) -> bool:
        """Wait (within the budget) for the task in flight; True when it is no longer active."""
        assert checkpoint.task_id is not None and checkpoint.pending_to is not None
        while True:
            code, message = self._status(checkpoint.task_id)
            if code == "COMPLETED":
                report.completed.append((checkpoint.log_group, checkpoint.exported_to, checkpoint.pending_to))
                checkpoint.exported_to, checkpoint.failures, checkpoint.last_error = checkpoint.pending_to, 0, None
            elif code in ("FAILED", "CANCELLED"):
                # The checkpoint stays: the same window is exported again on the next attempt.
                checkpoint.failures += 1
                checkpoint.last_error = f"{code}: {message}"
                report.failed.append((checkpoint.log_group, checkpoint.last_error))
            elif code in ACTIVE and self.clock() + self.poll_seconds < deadline:
                time.sleep(self.poll_seconds)
                continue
            else:
                report.waiting = f"export task {checkpoint.task_id} for {checkpoint.log_group} is {code}"
                return False
            checkpoint.task_id, checkpoint.pending_to = None, None
            self.store.put(checkpoint)
            return True

    def _initial(self, log_group: str) -> Checkpoint:
        """A new log group starts at its creation (hour-aligned): nothing is skipped."""
        groups = self.logs.describe_log_groups(logGroupNamePrefix=log_group).get("logGroups", [])
        created = next((g["creationTime"] for g in groups if g["logGroupName"] == log_group), None)
        if created is None:
            raise LookupError(f"log group {log_group} does not exist")
        return Checkpoint(log_group, int(created) // HOUR_MS * HOUR_MS)

    def run(self) -> ExportReport:
        report = ExportReport()
        deadline = self.clock() + self.budget_seconds
        checkpoints: dict[str, Checkpoint] = {}
        for group in self.log_groups:
            try:
                checkpoints[group] = self.store.get(group) or self._initial(group)
            except LookupError as error:
                report.failed.append((group, str(error)))
        known = list(checkpoints.values())  # also those dropped below after a failure: the sealing watermark
        # Settle whatever is in flight first: never start a second task beside it.
        for checkpoint in checkpoints.values():
            if checkpoint.task_id and not self._settle(checkpoint, report, deadline):
                return self._finish(checkpoints, report, known)
        first = True  # one task per run even without time to wait for it
        while first or self.clock() < deadline:
            first = False
            candidates = [
                (c, w)
                for c in checkpoints.values()
                if (w := next_window(c.exported_to, self._now_ms(), self.lag_hours, self.max_window_hours))
            ]
            if not candidates:
                break
            checkpoint, (start, end) = min(candidates, key=lambda cw: cw[0].exported_to)  # furthest behind first
            try:
                task_id = self.logs.create_export_task(
                    taskName=f"connect-guard-{uuid.uuid4().hex[:12]}",
                    logGroupName=checkpoint.log_group,
                    fromTime=start,
                    to=end - 1,  # `to` is inclusive; windows are half-open so they never overlap
                    destination=self.bucket,
                    destinationPrefix=prefix_for(checkpoint.log_group, start, self.account_id, self.region),
                )["taskId"]
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code == "LimitExceededException":
                    report.waiting = "another export task is running in this account; trying next run"
                    break
                checkpoint.failures += 1
                checkpoint.last_error = f"{code}: {error.response['Error'].get('Message', '')}"
                report.failed.append((checkpoint.log_group, checkpoint.last_error))
                self.store.put(checkpoint)
                checkpoints.pop(checkpoint.log_group)  # untouched checkpoint; other groups go on
                continue
            checkpoint.task_id, checkpoint.pending_to = task_id, end
            self.store.put(checkpoint)
            report.started.append((checkpoint.log_group, start, end))
            if not self._settle(checkpoint, report, deadline):
                break
            if checkpoint.task_id is None and checkpoint.last_error:
                checkpoints.pop(checkpoint.log_group)  # failed this run: retried next run, not in a loop
        return self._finish(checkpoints, report, known)

    def _finish(
        self, checkpoints: dict[str, Checkpoint], report: ExportReport, known: list[Checkpoint]
    ) -> ExportReport:
        report.low_watermark_ms = min((c.exported_to for c in known), default=None)
        now = self._now_ms()
        for checkpoint in checkpoints.values():
            behind = (now - checkpoint.exported_to) / HOUR_MS
            if behind > self.behind_alert_hours + self.lag_hours:
                report.behind.append((checkpoint.log_group, round(behind, 1)))
        return report


# The audit archive's position: one item (`export#audit`, `checkpoint`) in the checkpoint table.
# The archiver before it kept one marker per day partition (`export#audit`, `<yyyy-mm-dd>`).
AUDIT_CHECKPOINT_KEY = {"pk": {"S": "export#audit"}, "sk": {"S": "checkpoint"}}
# A record is keyed by the time just before its write (AuditLog.stamp), by a function that runs
# 15 minutes at most (Lambda's limit): a key older than that can no longer be overtaken by a
# record keyed before it, so the archive reads only keys that old and skips nothing.
AUDIT_SETTLE_SECONDS = 900
AUDIT_DAYS_PER_RUN = 31  # day partitions with records archived per run; the next run goes on
AUDIT_PARTITIONS_PER_RUN = 400  # partitions read per run, empty ones included (one Query each)
AUDIT_RECORDS_PER_OBJECT = 5000  # bounds memory: a busy day lands as several objects
# Findings held before one object is written: SNS messages are at most 256 KiB each.
FINDINGS_PER_OBJECT = 500
FINDINGS_BYTES_PER_OBJECT = 16 * 1024 * 1024


@dataclass
class AuditCheckpoint:
    day: str  # yyyy-mm-dd: every day partition before it is archived
    last_sk: str = ""  # and, in this one, every record keyed up to this
    archived_to: int = 0  # epoch ms: every record keyed before this is archived
    legacy_until: str | None = None  # days up to this may hold a marker of the per-day archiver


class AuditCheckpointStore:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def get(self) -> AuditCheckpoint | None:
        item = self._db.get_item(TableName=self._table, Key=AUDIT_CHECKPOINT_KEY, ConsistentRead=True).get("Item")
        return AuditCheckpoint(**json.loads(item["checkpoint"]["S"])) if item else None

    def put(self, checkpoint: AuditCheckpoint) -> None:
        self._db.put_item(
            TableName=self._table, Item={**AUDIT_CHECKPOINT_KEY, "checkpoint": {"S": json.dumps(checkpoint.__dict__)}}
        )

    def legacy_marker(self, day: str) -> str:
        """The last key the per-day archiver reached in that day's partition ("" when none)."""
        key = {"pk": {"S": "export#audit"}, "sk": {"S": day}}
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return str(item["last_sk"]["S"]) if item else ""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class JsonLinesArchiver:
    """Findings (drained from the topic's archive queue) and audit records as JSON Lines in S3,
    keyed by the day each object is written (UTC): a day's prefix is complete once it is over."""

    def __init__(self, s3: Any, bucket: str, clock: Callable[[], float] = time.time) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.clock = clock

    def _put(self, kind: str, lines: list[str]) -> str:
        now = datetime.fromtimestamp(self.clock(), UTC)
        key = f"{kind}/{now:%Y/%m/%d}/{now:%H%M%S}-{uuid.uuid4().hex[:8]}.jsonl"
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=("\n".join(lines) + "\n").encode(),
            ContentType="application/x-ndjson",
            ChecksumAlgorithm="SHA256",
        )
        return key

    def findings(self, sqs: Any, queue_url: str, max_batches: int = 100) -> list[str]:
        """Drain the queue; a message is deleted only after the object holding it is written.

        Every receipt is deleted within the run, so within the queue's visibility timeout (longer
        than the function's): a message is never read twice by one run, nor lost by one."""
        keys: list[str] = []
        held: list[dict[str, Any]] = []
        size = 0

        def flush() -> None:
            nonlocal held, size
            if held:
                keys.append(self._put("findings", [m["Body"] for m in held]))
                for start in range(0, len(held), 10):
                    sqs.delete_message_batch(
                        QueueUrl=queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(held[start : start + 10])
                        ],
                    )
            held, size = [], 0

        for _ in range(max_batches):
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                break
            held += messages
            size += sum(len(m["Body"]) for m in messages)
            if len(held) >= FINDINGS_PER_OBJECT or size >= FINDINGS_BYTES_PER_OBJECT:
                flush()
        flush()
        return keys

    def audit(
        self,
        dynamodb: Any,
        audit_table: str,
        store_db: Any,
        checkpoint_table: str,
        max_days: int = AUDIT_DAYS_PER_RUN,
    ) -> list[str]:
        """Audit records after the checkpoint, day partition by day partition, however long ago it
        stopped: at most `max_days` partitions with records a run, the next run goes on."""
        store = AuditCheckpointStore(store_db, checkpoint_table)
        now = datetime.fromtimestamp(self.clock(), UTC)
        settled = now - timedelta(seconds=AUDIT_SETTLE_SECONDS)
        checkpoint = store.get() or self._first(dynamodb, audit_table, now)
        keys: list[str] = []
        days_written = 0
        for _ in range(AUDIT_PARTITIONS_PER_RUN):
            start = datetime.fromisoformat(checkpoint.day).replace(tzinfo=UTC)
            if start > settled:
                break
            end = start + timedelta(days=1)
            upto = min(settled, end)
            after = checkpoint.last_sk
            if checkpoint.legacy_until is not None and checkpoint.day <= checkpoint.legacy_until:
                after = max(after, store.legacy_marker(checkpoint.day))  # archived before the upgrade
            wrote = False
            for records in self._records(dynamodb, audit_table, checkpoint.day, after, upto):
                lines = [json.dumps({k: v.get("S", v) for k, v in r.items()}, sort_keys=True) for r in records]
                keys.append(self._put("audit", lines))
                checkpoint.last_sk = records[-1]["sk"]["S"]
                store.put(checkpoint)  # after the object: a crash re-reads, never skips
                wrote = True
            checkpoint.archived_to = max(checkpoint.archived_to, _ms(upto))
            if upto == end:  # the day is over and settled: no record can join it any more
                checkpoint.day, checkpoint.last_sk = f"{end:%Y-%m-%d}", ""
                if checkpoint.legacy_until is not None and checkpoint.day > checkpoint.legacy_until:
                    checkpoint.legacy_until = None
            store.put(checkpoint)
            days_written += wrote
            if upto < end or days_written >= max_days:
                break
        return keys

    @staticmethod
    def _first(dynamodb: Any, audit_table: str, now: datetime) -> AuditCheckpoint:
        """No checkpoint yet: start at the audit table's creation day (no record is older, and it
        takes one DescribeTable, no Scan). Markers of the per-day archiver, if this is an upgrade,
        say where each partition up to today was left."""
        created = dynamodb.describe_table(TableName=audit_table)["Table"]["CreationDateTime"]
        day = created.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return AuditCheckpoint(f"{day:%Y-%m-%d}", archived_to=_ms(day), legacy_until=f"{now:%Y-%m-%d}")

    @staticmethod
    def _records(
        dynamodb: Any, audit_table: str, day: str, after: str, upto: datetime
    ) -> Iterator[list[dict[str, Any]]]:
        """The partition's records keyed after `after` and before `upto`, in key order, in chunks."""
        before = upto.isoformat(timespec="microseconds")
        if after and after >= before:
            return
        values = {":pk": {"S": f"audit#{day}"}, ":before": {"S": before}}
        if after:  # BETWEEN is inclusive: the record at `after` is dropped below
            condition, values[":after"] = "pk = :pk AND sk BETWEEN :after AND :before", {"S": after}
        else:
            condition = "pk = :pk AND sk < :before"
        kwargs: dict[str, Any] = {
            "TableName": audit_table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        chunk: list[dict[str, Any]] = []
        while True:
            page = dynamodb.query(**kwargs)
            for item in page.get("Items", []):
                if item["sk"]["S"] == after:
                    continue
                chunk.append(item)
                if len(chunk) >= AUDIT_RECORDS_PER_OBJECT:
                    yield chunk
                    chunk = []
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if chunk:
            yield chunk


def archive_cycle(settings: Settings, clients: AwsClients, clock: Callable[[], float] = time.time) -> ExportReport:
    """One scheduled run: export log windows, archive findings and audit records, alert on trouble."""
    settings.require("archive_bucket_name", "checkpoint_table_name")
    assert settings.archive_bucket_name and settings.checkpoint_table_name
    store = CheckpointStore(clients.dynamodb, settings.checkpoint_table_name)
    exporter = LogExporter(
        clients.client("logs"),
        store,
        settings.archive_bucket_name,
        settings.export_log_groups,
        lag_hours=settings.export_lag_hours,
        max_window_hours=settings.export_max_window_hours,
        behind_alert_hours=settings.archive_behind_alert_hours,
        account_id=settings.own_account_id,
        region=settings.region,
        clock=clock,
        budget_seconds=150.0,  # the rest of the 300 s run: member pulls, findings and audit
    )
    report = exporter.run()
    _merge(report, _pull_member_logs(settings, clients, store, clock))
    archiver = JsonLinesArchiver(clients.client("s3"), settings.archive_bucket_name, clock)
    if settings.findings_archive_queue_url:
        report.archived_objects += archiver.findings(clients.client("sqs"), settings.findings_archive_queue_url)
    if settings.audit_table_name:
        report.archived_objects += archiver.audit(
            clients.dynamodb, settings.audit_table_name, clients.dynamodb, settings.checkpoint_table_name
        )
        audit = AuditCheckpointStore(clients.dynamodb, settings.checkpoint_table_name).get()
        behind = (clock() * 1000 - audit.archived_to) / HOUR_MS if audit else 0.0
        if behind > settings.archive_behind_alert_hours:
            report.behind.append(("audit records", round(behind, 1)))
    _seal(settings, clients, report, clock)
    problems = _problems(report, store)
    if problems:
        _alert(settings, clients, problems, clock)
    return report


def _pull_member_logs(
    settings: Settings, clients: AwsClients, store: CheckpointStore, clock: Callable[[], float]
) -> ExportReport:
    from connect_guard.member_logs import pull_member_logs  # it builds on this module

    return pull_member_logs(settings, clients, store, clock)


def _merge(report: ExportReport, pulled: ExportReport) -> None:
    """The member accounts' pulls into the cycle's report (their sources named `<account>/<region>/...`)."""
    report.completed += pulled.completed
    report.failed += pulled.failed
    report.behind += pulled.behind
    report.archived_objects += pulled.archived_objects
    report.low_watermark_ms = _lowest(report.low_watermark_ms, pulled.low_watermark_ms)


def _problems(report: ExportReport, store: CheckpointStore) -> list[str]:
    problems = []
    for group, reason in report.failed:
        checkpoint = store.get(group)
        persistent = checkpoint is None or checkpoint.failures >= FAILURES_BEFORE_ALERT
        transient = reason.startswith(("FAILED", "CANCELLED"))
        if persistent or not transient:  # missing group, bucket policy or KMS denial: say so at once
            problems.append(f"{group}: export failed ({reason}); its checkpoint did not move")
    problems += [f"{group}: archive is {hours} h behind" for group, hours in report.behind]
    problems += report.manifest_errors
    return problems


def _seal(settings: Settings, clients: AwsClients, report: ExportReport, clock: Callable[[], float]) -> None:
    """Seal the days now complete; a failure is alerted and leaves the rest of the cycle done."""
    from connect_guard.manifests import ManifestStore, seal_days

    if not settings.archive_signing_key_arn:
        return
    assert settings.archive_bucket_name and settings.checkpoint_table_name
    try:
        sealed = seal_days(
            clients.client("s3"),
            clients.client("kms"),
            settings.archive_bucket_name,
            settings.archive_signing_key_arn,
            ManifestStore(clients.dynamodb, settings.checkpoint_table_name),
            report.low_watermark_ms,
            clock(),
        )
    except Exception as error:  # any failure: alerted, and the next run seals again
        report.manifest_errors.append(f"manifests: sealing failed ({type(error).__name__}: {error})")
        return
    report.manifests += sealed.sealed


def _alert(settings: Settings, clients: AwsClients, problems: list[str], clock: Callable[[], float]) -> None:
    now = datetime.fromtimestamp(clock(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    finding = Finding(
        responder="log_export",
        kind="archive.export_problem",
        severity=Severity.HIGH,
        title=f"Log archive needs attention: {len(problems)} problem(s)",
        summary="The scheduled export to the archive bucket could not complete: "
        "evidence may expire before it is archived.",
        event=EventRef(
            f"export:{now}", "LogExport", "connect-guard", now, settings.own_account_id, settings.region, ""
        ),
        actor=Actor.system("connect-guard log export"),
        attempt=Attempt("succeeded"),
        allowlisted=False,
        reasons=tuple(problems[:50]),
        runbook_url=settings.runbook_url("log_export"),
        environment=settings.environment,
        mode=settings.response_mode,
    )
    SnsPublisher(clients.sns, settings.alert_topic_arn).publish(finding)
