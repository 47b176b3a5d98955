"""The audit archive resumes from one checkpoint however long it was down: no look-back window,
bounded per run, an alert when it falls behind, and an upgrade from the per-day markers of the
archiver before it that neither skips a record nor archives one twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connect_guard import archive as archive_module
from connect_guard.archive import (
    AUDIT_SETTLE_SECONDS,
    AuditCheckpointStore,
    JsonLinesArchiver,
    archive_cycle,
)
from connect_guard.audit import AuditLog

BUCKET = "connect-guard-archive"


@pytest.fixture
def s3(aws):
    client = aws.session.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def write(aws, at: datetime, finding_id: str) -> str:
    """One audit record stamped at `at` (its partition is that day); returns its key."""
    entry = AuditLog(aws.clients.dynamodb, aws.audit_table, clock=lambda: at).record(
        responder="role_quarantine",
        action="AttachUserPolicy",
        status="taken",
        actor="arn:aws:iam::111122223333:user/m",
        target="user/m",
        reason="test",
        before=None,
        after={},
        event_id=f"e-{finding_id}",
        finding_id=finding_id,
        mode="enforce",
    )
    return str(entry["sk"])


def created_day(aws) -> datetime:
    created = aws.clients.dynamodb.describe_table(TableName=aws.audit_table)["Table"]["CreationDateTime"]
    return created.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def run(aws, s3, now: datetime, **kwargs: Any) -> list[str]:
    archiver = JsonLinesArchiver(s3, BUCKET, clock=now.timestamp)
    return archiver.audit(aws.clients.dynamodb, aws.audit_table, aws.clients.dynamodb, aws.baseline_table, **kwargs)


def archived_ids(s3, keys: list[str]) -> list[str]:
    ids = []
    for key in keys:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        ids += [json.loads(line)["finding_id"] for line in body.splitlines()]
    return ids


def test_a_long_outage_is_caught_up_from_the_checkpoint_without_a_gap(aws, s3):
    day0 = created_day(aws)
    write(aws, day0 + timedelta(hours=1), "a")
    assert archived_ids(s3, run(aws, s3, day0 + timedelta(hours=2))) == ["a"]
    # Down for 45 days (far past the old 7-day look-back): records on days 3, 20 and 44.
    for day, finding in ((3, "b"), (20, "c"), (44, "d")):
        write(aws, day0 + timedelta(days=day, hours=5), finding)
    now = day0 + timedelta(days=45, hours=1)
    keys = run(aws, s3, now)
    assert archived_ids(s3, keys) == ["b", "c", "d"]
    # Keyed by the day they are written, not the records' days.
    assert all(k.startswith(f"audit/{now:%Y/%m/%d}/") for k in keys)
    checkpoint = AuditCheckpointStore(aws.clients.dynamodb, aws.baseline_table).get()
    assert checkpoint is not None and checkpoint.day == f"{now:%Y-%m-%d}" and checkpoint.legacy_until is None
    assert checkpoint.archived_to == int((now - timedelta(seconds=AUDIT_SETTLE_SECONDS)).timestamp() * 1000)
    assert run(aws, s3, now + timedelta(minutes=5)) == []  # nothing twice


def test_a_run_is_bounded_and_the_next_goes_on(aws, s3):
    day0 = created_day(aws)
    for day in range(4):
        write(aws, day0 + timedelta(days=day, hours=3), f"r{day}")
    now = day0 + timedelta(days=5)
    seen = []
    for _ in range(4):
        keys = run(aws, s3, now, max_days=1)  # one partition with records a run
        assert len(keys) == 1
        seen += archived_ids(s3, keys)
    assert seen == ["r0", "r1", "r2", "r3"]
    assert run(aws, s3, now, max_days=1) == []


def test_a_record_keyed_within_the_settling_time_waits_for_the_next_run(aws, s3):
    day0 = created_day(aws)
    at = day0 + timedelta(hours=10)
    write(aws, at, "early")
    write(aws, at + timedelta(minutes=20), "late")
    # 25 minutes after the first: only it is settled (a slower writer could still key one before the second).
    assert archived_ids(s3, run(aws, s3, at + timedelta(minutes=25))) == ["early"]
    assert archived_ids(s3, run(aws, s3, at + timedelta(minutes=40))) == ["late"]


def test_a_day_is_left_only_once_it_is_over_and_settled(aws, s3):
    day0 = created_day(aws)
    end = day0 + timedelta(days=1)
    write(aws, end - timedelta(minutes=1), "last-of-day")
    run(aws, s3, end + timedelta(minutes=5))  # the day is over, its last minute is not settled
    checkpoint = AuditCheckpointStore(aws.clients.dynamodb, aws.baseline_table).get()
    assert checkpoint is not None and checkpoint.day == f"{day0:%Y-%m-%d}"
    assert archived_ids(s3, run(aws, s3, end + timedelta(minutes=20))) == ["last-of-day"]
    checkpoint = AuditCheckpointStore(aws.clients.dynamodb, aws.baseline_table).get()
    assert checkpoint is not None and checkpoint.day == f"{end:%Y-%m-%d}"


def test_upgrade_from_per_day_markers_neither_skips_nor_repeats(aws, s3):
    day0 = created_day(aws)
    # The per-day archiver archived day 0 up to its second record, and all of day 1; then it was
    # replaced. Day 2 had no marker (nothing there when it last looked). Day 12 is past its 7 days.
    keys = [write(aws, day0 + timedelta(hours=h), f"d0-{h}") for h in (1, 2, 3)]
    day1 = write(aws, day0 + timedelta(days=1, hours=1), "d1")
    write(aws, day0 + timedelta(days=2, hours=1), "d2")
    write(aws, day0 + timedelta(days=12, hours=1), "d12")
    db = aws.clients.dynamodb
    for day, last in ((day0, keys[1]), (day0 + timedelta(days=1), day1)):
        db.put_item(
            TableName=aws.baseline_table,
            Item={"pk": {"S": "export#audit"}, "sk": {"S": f"{day:%Y-%m-%d}"}, "last_sk": {"S": last}},
        )
    upgraded = day0 + timedelta(days=13)
    assert archived_ids(s3, run(aws, s3, upgraded)) == ["d0-3", "d2", "d12"]
    checkpoint = AuditCheckpointStore(db, aws.baseline_table).get()
    # Markers are read up to the upgrade day (the old archiver may have run that day), then never.
    assert checkpoint is not None and checkpoint.legacy_until == f"{upgraded:%Y-%m-%d}"
    assert run(aws, s3, upgraded + timedelta(days=1, hours=1)) == []
    checkpoint = AuditCheckpointStore(db, aws.baseline_table).get()
    assert checkpoint is not None and checkpoint.legacy_until is None


def test_an_audit_archive_that_falls_behind_alerts(aws, s3, monkeypatch):
    day0 = created_day(aws)
    write(aws, day0 + timedelta(hours=1), "old")
    monkeypatch.setattr(archive_module, "AUDIT_PARTITIONS_PER_RUN", 2)  # a backlog one run can't clear
    settings = aws.settings(archive_bucket_name=BUCKET, checkpoint_table_name=aws.baseline_table, export_log_groups=())
    now = day0 + timedelta(days=10)
    report = archive_cycle(settings, aws.clients, clock=now.timestamp)
    ((source, hours),) = report.behind
    assert source == "audit records" and hours == pytest.approx(8 * 24, abs=0.1)
    (alert,) = aws.inbox()
    finding = json.loads(alert["Message"])
    assert finding["kind"] == "archive.export_problem" and finding["severity"] == "HIGH"
    assert "audit records: archive is 192.0 h behind" in finding["reasons"]
    # Caught up over the next runs: no alert once it is within ArchiveBehindAlertHours.
    for _ in range(5):
        report = archive_cycle(settings, aws.clients, clock=now.timestamp)
    assert report.behind == []
