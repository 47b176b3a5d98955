"""The archive as Athena reads it (stacks/archive-query.yaml): after the demo corpus is replayed
(enforcing, so there are audit records) and one archive cycle has run, every object under
findings/, audit/ and logs/ lies in a partition the tables project, and every line reads through
the table's columns. A key the projection misses is evidence no query can see."""

from __future__ import annotations

import gzip
import io
import json
import re
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connect_guard_tools import cli
from connect_guard_tools.config import replay_parameters, settings_values
from connect_guard_tools.inputs import iter_inputs
from connect_guard_tools.local_aws import LocalAws
from connect_guard_tools.replay import Replayer
from connect_guard_tools.template import PROJECT_ROOT
from tests.archive_tables import FINDING_JSON_TEXT, TABLES, conforms
from tests.conftest import EVENTS


class Archive:
    def __init__(self, bucket: str, objects: dict[str, bytes], today: date, sources: set[tuple[str, str, str]]) -> None:
        self.bucket = bucket
        self.objects = objects
        self.today = today  # the archive cycle's clock: the projection's NOW is at least that
        self.sources = sources  # (account, region, log group) of every log group there is

    def under(self, prefix: str) -> dict[str, bytes]:
        return {k: v for k, v in self.objects.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def archive() -> Archive:
    parameters = replay_parameters("default", {"ResponseMode": "enforce"})
    with LocalAws.for_replay() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        settings = aws.settings(**settings_values(parameters))
        replayer = Replayer(aws, settings, on_first_event=True)
        for item in iter_inputs([EVENTS], root=PROJECT_ROOT):
            if not replayer.is_noise(item):
                replayer.replay(item)
        out = io.StringIO()
        cli._export(aws, replayer, out)  # the replay's --export: one cycle, its clock past the lag
        shifted = time.time() + cli.export_shift_hours(settings) * 3600
        s3 = aws.session.client("s3")
        objects = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=aws.archive_bucket):
            for entry in page.get("Contents", []):
                objects[entry["Key"]] = s3.get_object(Bucket=aws.archive_bucket, Key=entry["Key"])["Body"].read()
        # Every log group of every (account, region) the demo has: what an export may name.
        sources: set[tuple[str, str, str]] = set()
        for account in {settings.own_account_id, *(i.account_id for i in aws.instances)}:
            for region in {settings.region, *(i.region for i in aws.instances)}:
                logs = aws.account_session(account).client("logs", region_name=region)
                for page in logs.get_paginator("describe_log_groups").paginate():
                    sources |= {(account, region, g["logGroupName"]) for g in page["logGroups"]}
        return Archive(aws.archive_bucket, objects, datetime.fromtimestamp(shifted, UTC).date(), sources)


def test_the_demo_archived_findings_audit_records_and_logs(archive: Archive) -> None:
    for prefix in ("findings/", "audit/", "logs/"):
        assert archive.under(prefix), f"nothing under {prefix}: the checks below would hold vacuously"


@pytest.mark.parametrize("table", ["findings", "audit"])
def test_every_json_lines_object_is_in_the_partition_of_its_day(archive: Archive, table: str) -> None:
    outside = [
        k for k in archive.under(f"{table}/") if TABLES[table].partition_of(k, archive.today, archive.bucket) is None
    ]
    assert outside == []
    for key in archive.under(f"{table}/"):
        (dt,) = TABLES[table].partition_of(key, archive.today, archive.bucket).values()  # type: ignore[union-attr]
        assert re.fullmatch(rf"{table}/{re.escape(dt)}/\d{{6}}-[0-9a-f]{{8}}\.jsonl", key)


def test_every_archived_finding_reads_through_the_findings_columns(archive: Archive) -> None:
    findings = TABLES["findings"]
    columns = {n: t for n, t in findings.columns.items() if n not in findings.partition_keys}
    lines = [json.loads(line) for body in archive.under("findings/").values() for line in body.decode().splitlines()]
    assert len(lines) > 50 and len({f["kind"] for f in lines}) > 5  # the demo's variety
    problems = [f"{f['kind']}: extra {sorted(set(f) - set(columns))}" for f in lines if set(f) - set(columns)]
    problems += [
        p for f in lines for k, v in f.items() if k in columns for p in conforms(v, columns[k], k, FINDING_JSON_TEXT)
    ]
    assert problems == []


def test_every_archived_audit_record_reads_through_the_audit_columns(archive: Archive) -> None:
    audit = TABLES["audit"]
    columns = {n: t for n, t in audit.columns.items() if n not in audit.partition_keys}
    lines = [json.loads(line) for body in archive.under("audit/").values() for line in body.decode().splitlines()]
    assert lines
    assert [sorted(set(r) - set(columns)) for r in lines if set(r) - set(columns)] == []
    assert [p for r in lines for k, v in r.items() for p in conforms(v, columns[k], k)] == []


def test_every_exported_log_line_splits_into_time_and_message(archive: Archive) -> None:
    regex = re.compile(TABLES["logs"].serde["Parameters"]["input.regex"])
    lines = [
        line
        for key, body in archive.under("logs/").items()
        if key.endswith(".gz")
        for line in gzip.decompress(body).decode().splitlines()
    ]
    assert lines
    for line in lines:
        match = regex.fullmatch(line)
        assert match, line
        datetime.fromisoformat(match[1].replace("Z", "+00:00"))


def test_every_exported_log_object_is_in_the_partition_of_its_account_region_group_and_day(archive: Archive) -> None:
    logs = TABLES["logs"]
    problems: list[Any] = []
    for key in archive.under("logs/"):
        values = logs.partition_of(key, archive.today, archive.bucket)
        if values is None:
            problems.append((key, "in no partition"))
            continue
        source = (values["account"], values["region"], "/" + values["log_group"])
        if source not in archive.sources:
            problems.append((key, f"{source} is no log group of the embedded AWS"))
    assert problems == []
