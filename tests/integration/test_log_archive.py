"""Log archive: gap-free, one-at-a-time exports with checkpoints, plus findings and audit records
as JSON Lines. moto finishes export tasks at once and lets two run together, so the states AWS
really has (PENDING, RUNNING, FAILED, CANCELLED, the one-task limit) are simulated explicitly."""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard.archive import HOUR_MS, CheckpointStore, JsonLinesArchiver, LogExporter, archive_cycle, next_window

GROUP, OTHER = "/connect-guard/dev/policy-alerts", "/aws/connect/acme-contact-centre"


def test_windows_are_bounded_contiguous_and_clear_of_the_lag():
    now = 100 * HOUR_MS
    assert next_window(0, now, lag_hours=12, max_window_hours=24) == (0, 24 * HOUR_MS)
    assert next_window(80 * HOUR_MS, now, 12, 24) == (80 * HOUR_MS, 88 * HOUR_MS)  # stops 12 h before now
    assert next_window(88 * HOUR_MS, now, 12, 24) is None  # nothing exportable yet


class ScriptedLogs:
    """moto's logs client, with export-task states AWS has and moto doesn't."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.statuses: list[str] = []  # next DescribeExportTasks answers, then COMPLETED
        self.limit_exceeded = False
        self.created: list[dict[str, Any]] = []

    def create_export_task(self, **kwargs: Any) -> dict[str, Any]:
        if self.limit_exceeded:
            raise ClientError(
                {"Error": {"Code": "LimitExceededException", "Message": "one task at a time"}}, "CreateExportTask"
            )
        self.created.append(kwargs)
        return dict(self.real.create_export_task(**kwargs))

    def describe_export_tasks(self, taskId: str) -> dict[str, Any]:
        code = self.statuses.pop(0) if self.statuses else "COMPLETED"
        return {"exportTasks": [{"taskId": taskId, "status": {"code": code, "message": f"simulated {code}"}}]}

    def describe_log_groups(self, **kwargs: Any) -> dict[str, Any]:
        return dict(self.real.describe_log_groups(**kwargs))


@pytest.fixture
def archive(aws):
    s3 = aws.session.client("s3")
    s3.create_bucket(Bucket="connect-guard-archive")
    logs = aws.session.client("logs")
    for group in (GROUP, OTHER):
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):  # the plumbing's, seeded
            logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="s")
    created = logs.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"][0]["creationTime"]
    logs.put_log_events(
        logGroupName=GROUP,
        logStreamName="s",
        logEvents=[{"timestamp": created + 60_000, "message": "finding published"}],
    )
    return {"s3": s3, "logs": ScriptedLogs(logs), "created": created // HOUR_MS * HOUR_MS}


def exporter(aws, archive, clock: float, groups=(GROUP,)) -> LogExporter:
    return LogExporter(
        archive["logs"],
        CheckpointStore(aws.clients.dynamodb, aws.baseline_table),
        "connect-guard-archive",
        groups,
        lag_hours=12,
        max_window_hours=24,
        behind_alert_hours=48,
        account_id="123456789012",
        region="us-east-1",
        clock=lambda: clock,
        poll_seconds=0,
        budget_seconds=60,
    )


def own_logs_scripted(aws, archive):
    """The security account's own logs client scripted; a member role's clients (credentials) as they are."""

    def client(service: str, region: str | None = None, **credentials: str) -> Any:
        if service == "logs" and not credentials:
            return archive["logs"]
        return aws.session.client(service, region_name=region, **credentials)

    return client


def checkpoint(aws, group=GROUP):
    return CheckpointStore(aws.clients.dynamodb, aws.baseline_table).get(group)


def test_catch_up_exports_contiguous_windows_and_lands_objects_by_day(aws, archive):
    start = archive["created"]
    report = exporter(aws, archive, (start + 70 * HOUR_MS) / 1000).run()
    windows = [(f, t) for _, f, t in report.completed]
    assert windows == [
        (start, start + 24 * HOUR_MS),
        (start + 24 * HOUR_MS, start + 48 * HOUR_MS),
        (start + 48 * HOUR_MS, start + 58 * HOUR_MS),
    ]
    assert [c["to"] for c in archive["logs"].created] == [t - 1 for _, t in windows]  # inclusive `to`: no overlap
    assert checkpoint(aws).exported_to == start + 58 * HOUR_MS
    keys = [o["Key"] for o in archive["s3"].list_objects_v2(Bucket="connect-guard-archive")["Contents"]]
    day = time.strftime("%Y/%m/%d", time.gmtime(start / 1000))
    # Under the account and region, as the member accounts' pulled windows are.
    prefix = f"logs/123456789012/us-east-1/connect-guard/dev/policy-alerts/{day}/"
    assert any(k.startswith(prefix) and k.endswith(".gz") for k in keys)
    assert archive["logs"].created[0]["destinationPrefix"] == prefix.rstrip("/")


def test_checkpoint_waits_for_completion_and_never_starts_a_second_task(aws, archive):
    start, logs = archive["created"], archive["logs"]
    logs.statuses = ["PENDING", "RUNNING"]
    run = exporter(aws, archive, (start + 40 * HOUR_MS) / 1000)
    run.budget_seconds = 0  # no time to wait in this run
    report = run.run()
    assert len(logs.created) == 1 and report.completed == []
    assert checkpoint(aws).exported_to == start and checkpoint(aws).task_id
    report = exporter(aws, archive, (start + 40 * HOUR_MS) / 1000).run()  # RUNNING, then COMPLETED
    assert report.completed[0][1:] == (start, start + 24 * HOUR_MS)
    assert checkpoint(aws).exported_to >= start + 24 * HOUR_MS


def test_failed_and_cancelled_windows_are_retried_from_the_same_point(aws, archive):
    start, logs = archive["created"], archive["logs"]
    logs.statuses = ["FAILED"]
    report = exporter(aws, archive, (start + 40 * HOUR_MS) / 1000).run()
    assert report.failed == [(GROUP, "FAILED: simulated FAILED")]
    assert checkpoint(aws).exported_to == start and checkpoint(aws).failures == 1
    logs.statuses = ["CANCELLED"]
    exporter(aws, archive, (start + 40 * HOUR_MS) / 1000).run()
    assert checkpoint(aws).exported_to == start and checkpoint(aws).failures == 2
    exporter(aws, archive, (start + 40 * HOUR_MS) / 1000).run()
    assert [(c["fromTime"]) for c in logs.created] == [start, start, start, start + 24 * HOUR_MS]
    assert checkpoint(aws).exported_to == start + 28 * HOUR_MS and checkpoint(aws).failures == 0


def test_the_account_limit_leaves_every_checkpoint_untouched(aws, archive):
    archive["logs"].limit_exceeded = True
    report = exporter(aws, archive, (archive["created"] + 40 * HOUR_MS) / 1000).run()
    assert "another export task" in (report.waiting or "")
    assert checkpoint(aws) is None or checkpoint(aws).exported_to == archive["created"]


def test_missing_group_and_persistent_failures_alert_and_the_rest_goes_on(aws, archive, monkeypatch):
    settings = aws.settings(
        archive_bucket_name="connect-guard-archive",
        checkpoint_table_name=aws.baseline_table,
        export_log_groups=(GROUP, "/aws/connect/deleted-instance"),
    )
    monkeypatch.setattr(
        aws.clients,
        "client",
        own_logs_scripted(aws, archive),
    )
    report = archive_cycle(settings, aws.clients, clock=lambda: (archive["created"] + 40 * HOUR_MS) / 1000)
    assert report.completed and report.failed == [
        ("/aws/connect/deleted-instance", "log group /aws/connect/deleted-instance does not exist")
    ]
    (alert,) = aws.inbox()
    finding = json.loads(alert["Message"])
    assert finding["kind"] == "archive.export_problem" and "checkpoint did not move" in finding["reasons"][0]


def test_findings_and_audit_records_land_as_json_lines_by_archival_day(aws, archive):
    sqs = aws.session.client("sqs")
    queue = sqs.create_queue(QueueName="findings-archive")["QueueUrl"]
    for n in range(3):  # created on an earlier day: keyed by the day they are archived
        sqs.send_message(
            QueueUrl=queue, MessageBody=json.dumps({"finding_id": f"cg-{n}", "created_at": "2026-11-20T10:00:00+00:00"})
        )
    from connect_guard.audit import AuditLog

    AuditLog(aws.clients.dynamodb, aws.audit_table).record(
        responder="role_quarantine",
        action="AttachUserPolicy",
        status="taken",
        actor="arn:x",
        target="user/m",
        reason="test",
        before=None,
        after={},
        event_id="e-1",
        finding_id="cg-1",
        mode="enforce",
    )
    later = time.time() + 3600  # past the settling time of the record just written
    archiver = JsonLinesArchiver(archive["s3"], "connect-guard-archive", clock=lambda: later)
    (findings_key,) = archiver.findings(sqs, queue)
    assert findings_key.startswith(f"findings/{time.strftime('%Y/%m/%d', time.gmtime(later))}/")
    assert re.fullmatch(r"findings/\d{4}/\d{2}/\d{2}/\d{6}-[0-9a-f]{8}\.jsonl", findings_key)
    body = archive["s3"].get_object(Bucket="connect-guard-archive", Key=findings_key)["Body"].read().decode()
    assert [json.loads(line)["finding_id"] for line in body.splitlines()] == ["cg-0", "cg-1", "cg-2"]
    assert sqs.receive_message(QueueUrl=queue).get("Messages") is None  # deleted only after the write
    (audit_key,) = archiver.audit(aws.clients.dynamodb, aws.audit_table, aws.clients.dynamodb, aws.baseline_table)
    assert audit_key.startswith(f"audit/{time.strftime('%Y/%m/%d', time.gmtime(later))}/")
    assert (
        archiver.audit(aws.clients.dynamodb, aws.audit_table, aws.clients.dynamodb, aws.baseline_table) == []
    )  # checkpointed


def test_windows_are_whole_hours_so_a_moving_clock_adds_no_slivers():
    now = 100 * HOUR_MS + 59 * 60_000
    assert next_window(80 * HOUR_MS, now, 12, 24) == (80 * HOUR_MS, 88 * HOUR_MS)
    assert next_window(88 * HOUR_MS, now + 1, 12, 24) is None


@pytest.mark.parametrize("code", ["AccessDeniedException", "InvalidParameterException"])  # bucket policy, KMS
def test_a_refused_export_alerts_at_once_and_keeps_the_checkpoint(aws, archive, monkeypatch, code):
    def refuse(**kwargs: Any) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": code, "Message": "refused by the bucket policy or KMS key"}}, "CreateExportTask"
        )

    monkeypatch.setattr(archive["logs"], "create_export_task", refuse)
    settings = aws.settings(
        archive_bucket_name="connect-guard-archive",
        checkpoint_table_name=aws.baseline_table,
        export_log_groups=(GROUP,),
    )
    monkeypatch.setattr(
        aws.clients,
        "client",
        own_logs_scripted(aws, archive),
    )
    archive_cycle(settings, aws.clients, clock=lambda: (archive["created"] + 40 * HOUR_MS) / 1000)
    assert checkpoint(aws).exported_to == archive["created"] and checkpoint(aws).task_id is None
    (alert,) = aws.inbox()
    assert code in json.loads(alert["Message"])["reasons"][0]


def test_an_archive_that_falls_behind_alerts(aws, archive):
    logs = archive["logs"]
    logs.limit_exceeded = True  # someone else's export holds the account's only slot for days
    report = exporter(aws, archive, (archive["created"] + 80 * HOUR_MS) / 1000).run()
    assert report.behind == [(GROUP, 80.0)]


def test_findings_land_in_bounded_objects_and_a_failed_write_deletes_nothing(aws, archive, monkeypatch):
    from connect_guard import archive as archive_module

    sqs = aws.session.client("sqs")
    # Visible again at once after a failed run (the deployed queue waits 360 s).
    queue = sqs.create_queue(QueueName="findings-backlog", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    for n in range(25):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"finding_id": f"cg-{n}"}))
    monkeypatch.setattr(archive_module, "FINDINGS_PER_OBJECT", 10)
    archiver = JsonLinesArchiver(archive["s3"], "connect-guard-archive")

    def refuse(**kwargs: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "PutObject")

    real_put = archive["s3"].put_object
    monkeypatch.setattr(archive["s3"], "put_object", refuse)
    with pytest.raises(ClientError):
        archiver.findings(sqs, queue)
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "25"  # all still there, none lost
    monkeypatch.setattr(archive["s3"], "put_object", real_put)
    # As deployed: longer than a run, so one run never receives a message it holds a second time.
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "360"})
    keys = archiver.findings(sqs, queue)
    assert len(keys) == 3  # 10, 10 and 5: memory stays bounded however deep the backlog
    ids = []
    for key in keys:
        head = archive["s3"].head_object(Bucket="connect-guard-archive", Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"]  # S3 checked the body it stored
        body = archive["s3"].get_object(Bucket="connect-guard-archive", Key=key)["Body"].read().decode()
        ids += [json.loads(line)["finding_id"] for line in body.splitlines()]
    assert sorted(ids) == sorted(f"cg-{n}" for n in range(25))  # each once
    assert sqs.receive_message(QueueUrl=queue).get("Messages") is None
