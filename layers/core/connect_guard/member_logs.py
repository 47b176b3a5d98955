"""Member accounts' log groups, pulled into the central archive (README "Log archive").

CloudWatch Logs export tasks write only to a bucket in the log group's own region (one task per
account at a time), and a member stack runs no code. So the security account's LogExport
function pulls: it assumes each enrolled account's `connect-guard-<env>-member-logs` role in
each region of ConnectInstanceArns, reads every log group there window by window with
FilterLogEvents, and writes each window as one gzip object in CloudWatch's export format
(`<ISO-8601 UTC ms>Z <message>` a line) under `logs/<account>/<region>/<group>/<yyyy>/<mm>/<dd>/`.
The bucket admits no member principal: only the suite's own role writes there.

A source's checkpoint moves only after its window's object is written (an empty window writes
none: the checkpoint is the record). A role that can't be assumed or a read that fails leaves
it where it was, so a member down for a day is caught up later, window by window, with no gap.
"""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from connect_guard.archive import HOUR_MS, Checkpoint, CheckpointStore, ExportReport, next_window
from connect_guard.errors import ErrorClass, MemberAccessError, classify
from connect_guard.settings import Settings, member_export_parameter

DAY_MS = 24 * HOUR_MS
# A client acting in (account, region) through the member-logs role (our own role at home).
ClientFor = Callable[[str, str, str], Any]  # (service, account, region) -> client


@dataclass(frozen=True)
class Target:
    """An enrolled (account, region) with Connect instances to archive the flow logs of."""

    account_id: str
    region: str
    instance_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.account_id}/{self.region}"


@dataclass(frozen=True)
class LogSource:
    account_id: str
    region: str
    log_group: str

    @property
    def name(self) -> str:
        """`<account>/<region>/<group without its leading />`: its checkpoint key and its S3 prefix."""
        return f"{self.account_id}/{self.region}/{self.log_group.lstrip('/')}"


def targets(settings: Settings) -> list[Target]:
    """Every enrolled (account, region) of ConnectInstanceArns but the stack's own region of the
    security account, whose log groups export tasks archive (connect_guard.archive.LogExporter)."""
    found: dict[tuple[str, str], list[str]] = {}
    for arn in settings.connect_instance_arns:
        parts = arn.split(":", 5)
        if len(parts) != 6 or not parts[5].startswith("instance/"):
            continue
        region, account = parts[3], parts[4]
        if (account, region) == (settings.own_account_id, settings.region) or not settings.enrolled(account):
            continue
        found.setdefault((account, region), []).append(parts[5].split("/")[1])
    return [Target(a, r, tuple(ids)) for (a, r), ids in sorted(found.items())]


def object_key(source: LogSource, start_ms: int, end_ms: int) -> str:
    """`logs/<account>/<region>/<group>/<yyyy>/<mm>/<dd>/<HH>00-<HH>00.log.gz` (a window within one day)."""
    day = datetime.fromtimestamp(start_ms / 1000, UTC)
    midnight = start_ms // DAY_MS * DAY_MS
    end_hour = (end_ms - midnight) // HOUR_MS  # 24 for a window that ends at midnight
    return f"logs/{source.name}/{day:%Y/%m/%d}/{day:%H}00-{end_hour:02d}00.log.gz"


def export_line(timestamp_ms: int, message: str) -> str:
    """One event as CloudWatch Logs' export writes it: `2026-11-20T10:00:00.123Z message`."""
    moment = datetime.fromtimestamp(timestamp_ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{timestamp_ms % 1000:03d}Z {message.removesuffix(chr(10))}\n"


class SourceRegistry:
    """The log groups last found per (account, region) (`pk = export#sources/<account>/<region>`):
    when a member can't be reached, its sources still count (behind alerts, the sealing watermark)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def _key(self, target: Target) -> dict[str, Any]:
        return {"pk": {"S": f"export#sources/{target.name}"}, "sk": {"S": "log-groups"}}

    def get(self, target: Target) -> tuple[str, ...]:
        item = self._db.get_item(TableName=self._table, Key=self._key(target), ConsistentRead=True).get("Item")
        return tuple(json.loads(item["log_groups"]["S"])) if item else ()

    def put(self, target: Target, log_groups: tuple[str, ...]) -> None:
        self._db.put_item(
            TableName=self._table, Item={**self._key(target), "log_groups": {"S": json.dumps(list(log_groups))}}
        )


def _reason(error: BaseException) -> str:
    """A refusal (role not assumable, access denied, a group gone) is said at once; a transient
    failure is "FAILED: ..." and alerts only when it persists (archive._problems)."""
    if isinstance(error, MemberAccessError | LookupError):
        return str(error)
    verdict = classify(error)
    return f"FAILED: {verdict.reason}" if verdict.kind is ErrorClass.TRANSIENT else verdict.reason


class MemberLogPuller:
    def __init__(
        self,
        client_for: ClientFor,
        s3: Any,
        store: CheckpointStore,
        registry: SourceRegistry,
        bucket: str,
        environment: str,
        *,
        lag_hours: int,
        max_window_hours: int,
        behind_alert_hours: int,
        clock: Callable[[], float] = time.time,
        budget_seconds: float = 90.0,
    ) -> None:
        self.client_for = client_for
        self.s3 = s3
        self.store = store
        self.registry = registry
        self.bucket = bucket
        self.parameter = member_export_parameter(environment)
        self.lag_hours = lag_hours
        self.max_window_hours = max_window_hours
        self.behind_alert_hours = behind_alert_hours
        self.clock = clock
        self.budget_seconds = budget_seconds

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def discover(self, target: Target) -> tuple[str, ...]:
        """Each instance's flow-log group, then the groups the member stack lists (its SSM parameter)."""
        connect = self.client_for("connect", target.account_id, target.region)
        groups = [
            f"/aws/connect/{connect.describe_instance(InstanceId=i)['Instance']['InstanceAlias']}"
            for i in target.instance_ids
        ]
        ssm = self.client_for("ssm", target.account_id, target.region)
        try:
            value = ssm.get_parameter(Name=self.parameter)["Parameter"]["Value"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ParameterNotFound":
                raise
            value = "{}"  # a member stack from before ExportLogGroups: its instances' groups only
        listed = json.loads(value).get("log_groups") or []
        groups += [g for g in listed if isinstance(g, str) and g.startswith("/")]
        return tuple(dict.fromkeys(groups))

    def _initial(self, source: LogSource, logs: Any) -> Checkpoint | None:
        """A new source starts at its group's creation (hour-aligned): nothing is skipped. An
        instance whose flow logs never ran has no group yet: nothing to archive (None)."""
        found = logs.describe_log_groups(logGroupNamePrefix=source.log_group).get("logGroups", [])
        created = next((g["creationTime"] for g in found if g["logGroupName"] == source.log_group), None)
        if created is None:
            if source.log_group.startswith("/aws/connect/"):
                return None
            raise LookupError(f"log group {source.log_group} does not exist")
        return Checkpoint(source.name, int(created) // HOUR_MS * HOUR_MS)

    def _events(self, logs: Any, group: str, start: int, end: int) -> Iterator[tuple[int, str]]:
        """Every event of [start, end), page by page (FilterLogEvents' endTime is inclusive)."""
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start, "endTime": end - 1}
        while True:
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                yield int(event["timestamp"]), str(event.get("message", ""))
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                return
            kwargs["nextToken"] = token

    def _pull(self, source: LogSource, logs: Any, start: int, end: int) -> str | None:
        """One window as one gzip object; None when it holds no event. Compressed as it is read."""
        body, count = io.BytesIO(), 0
        with gzip.GzipFile(fileobj=body, mode="wb", mtime=0) as out:  # mtime 0: same events, same bytes
            for timestamp, message in self._events(logs, source.log_group, start, end):
                out.write(export_line(timestamp, message).encode())
                count += 1
        if not count:
            return None
        key = object_key(source, start, end)
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body.getvalue(),
            ContentType="application/gzip",
            ChecksumAlgorithm="SHA256",
        )
        return key

    def _window(self, checkpoint: Checkpoint) -> tuple[int, int] | None:
        window = next_window(checkpoint.exported_to, self._now_ms(), self.lag_hours, self.max_window_hours)
        if window is None:
            return None
        start, end = window
        return start, min(end, (start // DAY_MS + 1) * DAY_MS)  # an object never spans two days

    def run(self, targets: list[Target]) -> ExportReport:
        report = ExportReport()
        deadline = self.clock() + self.budget_seconds
        active: dict[str, tuple[LogSource, Checkpoint, Any]] = {}
        known: list[Checkpoint] = []  # every source's checkpoint, reached this run or not
        unreached = False  # a source whose checkpoint could not be known this run
        for target in targets:
            try:
                groups = self.discover(target)
                if groups != self.registry.get(target):
                    self.registry.put(target, groups)
                logs = self.client_for("logs", target.account_id, target.region)
            except Exception as error:  # one source's failure never stops the others
                report.failed.append((target.name, _reason(error)))
                registered = self.registry.get(target)
                # Never reached: what it holds is unknown, so no day may be sealed without it.
                unreached = unreached or not registered
                for group in registered:
                    source = LogSource(target.account_id, target.region, group)
                    if (checkpoint := self.store.get(source.name)) is not None:
                        known.append(checkpoint)
                continue
            for group in groups:
                source = LogSource(target.account_id, target.region, group)
                try:
                    checkpoint = self.store.get(source.name) or self._initial(source, logs)
                except Exception as error:  # one source's failure never stops the others
                    report.failed.append((source.name, _reason(error)))
                    # Its start is unknown (unless the group does not exist): no day may be sealed.
                    unreached = unreached or not isinstance(error, LookupError)
                    continue
                if checkpoint is not None:
                    known.append(checkpoint)
                    active[source.name] = (source, checkpoint, logs)
        first = True  # one window per run even without time
        while active and (first or self.clock() < deadline):
            first = False
            candidates = [(name, w) for name, (_, c, _) in active.items() if (w := self._window(c))]
            if not candidates:
                break
            name, (start, end) = min(candidates, key=lambda nw: active[nw[0]][1].exported_to)  # furthest behind
            source, checkpoint, logs = active[name]
            try:
                key = self._pull(source, logs, start, end)
            except Exception as error:  # one source's failure never stops the others
                checkpoint.failures += 1
                checkpoint.last_error = _reason(error)
                report.failed.append((name, checkpoint.last_error))
                self.store.put(checkpoint)  # the window stays: tried again next run
                active.pop(name)
                continue
            checkpoint.exported_to, checkpoint.failures, checkpoint.last_error = end, 0, None
            self.store.put(checkpoint)
            report.completed.append((name, start, end))
            if key:
                report.archived_objects.append(key)
        now = self._now_ms()
        for checkpoint in known:
            behind = (now - checkpoint.exported_to) / HOUR_MS
            if behind > self.behind_alert_hours + self.lag_hours:
                report.behind.append((checkpoint.log_group, round(behind, 1)))
        report.low_watermark_ms = 0 if unreached else min((c.exported_to for c in known), default=None)
        return report


def pull_member_logs(
    settings: Settings, clients: Any, store: CheckpointStore, clock: Callable[[], float] = time.time
) -> ExportReport:
    """The archive cycle's member part: every enrolled (account, region) through its member-logs role."""
    assert settings.archive_bucket_name and settings.checkpoint_table_name

    def client_for(service: str, account: str, region: str) -> Any:
        return clients.for_account(service, account, region, settings, "logs")

    puller = MemberLogPuller(
        client_for,
        clients.client("s3"),
        store,
        SourceRegistry(clients.dynamodb, settings.checkpoint_table_name),
        settings.archive_bucket_name,
        settings.environment,
        lag_hours=settings.export_lag_hours,
        max_window_hours=settings.export_max_window_hours,
        behind_alert_hours=settings.archive_behind_alert_hours,
        clock=clock,
    )
    return puller.run(targets(settings))
