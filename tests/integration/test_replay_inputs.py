"""The replay over the inputs people have: what the SOC sees from a lookup-events page, a Lake
export and a zip of a trail's logs, and the count of the records that are not API calls."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

from connect_guard_tools import cli
from connect_guard_tools.inputs import InputItem, envelope_from_record
from connect_guard_tools.local_aws import LocalAws
from connect_guard_tools.replay import Replayer
from connect_guard_tools.routing import Router
from connect_guard_tools.template import RuleRoute
from tests.conftest import with_new_event_id
from tests.unit.test_replay_inputs import (
    ATTACH,
    INSIGHT_END,
    INSIGHT_START,
    PUT,
    READ,
    SERVICE_EVENT,
    SIGN_IN_RECORD,
    eventbridge,
    lake_results,
    lookup_events,
    pretty,
)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    args = cli._parser().parse_args(["replay", *argv, "--no-progress"])
    return cli.replay(args, out), out.getvalue()


def fresh(record: dict) -> dict:
    """The record with a new eventID: the dedup table of one replay sees each once."""
    return with_new_event_id({"detail": record})["detail"]


def test_a_mixed_export_alerts_on_the_api_calls_and_counts_what_is_not_one(tmp_path):
    attach, put, read = fresh(ATTACH), fresh(PUT), fresh(READ)
    (tmp_path / "lookup.json").write_text(pretty(lookup_events(attach, SERVICE_EVENT, SIGN_IN_RECORD)))
    (tmp_path / "lake.json").write_text(pretty(lake_results(put, INSIGHT_START)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("AWSLogs/insight.json.gz", gzip.compress(json.dumps({"Records": [INSIGHT_END]}).encode()))
        archive.writestr("AWSLogs/log.json.gz", gzip.compress(json.dumps({"Records": [read]}).encode()))
    (tmp_path / "trail.zip").write_bytes(buffer.getvalue())
    (tmp_path / "schedule.json").write_text(json.dumps(eventbridge("Scheduled Event", "aws.events", {})))

    code, text = run(str(tmp_path))
    assert code == 0
    assert "alert: [CRITICAL] AdministratorAccess attached to user alice in 111122223333" in text
    assert "alert: [HIGH] inline policy EverythingButIam" in text
    assert (
        "8 events, 2 matched a rule: 2 alerted (alerts: CRITICAL 1, HIGH 1), 2 ignored, 0 duplicate, 0 error, "
        "4 skipped (not API calls: Insights 2, other EventBridge events 1, service events 1)\n"
    ) in text
    assert "/lake.json#1\n      AWS Insight via CloudTrail  no rule  => skipped\n" in text
    assert "reason: not an API call: Insights" in text
    assert "no rule  => ignored" not in text
    assert (
        "[-] 2 event(s) matched no rule (counted, not listed), by event name:\n"
        "      1  GetUserPolicy (iam.amazonaws.com)\n"
        "      1  ConsoleLogin (signin.amazonaws.com)\n\n"
    ) in text

    _, lines = run(str(tmp_path), "--format", "json")
    objects = [json.loads(line) for line in lines.splitlines()]
    rows = {r["source"].removeprefix(f"{tmp_path}/"): r for r in objects if r["kind"] == "event"}
    summary = objects[-1]
    assert summary["kind"] == "summary" and summary["outcomes"]["skipped"] == 4
    assert summary["skipped"] == {"Insights": 2, "other EventBridge events": 1, "service events": 1}
    assert rows["lookup.json#0"]["outcome"] == "alerted" and rows["lookup.json#0"]["severity"] == "CRITICAL"
    assert rows["lookup.json#1"] == {**rows["lookup.json#1"], "outcome": "skipped", "event_name": "RotateKey"}
    assert rows["lookup.json#1"]["reason"] == "not an API call: service events"
    assert rows["trail.zip!AWSLogs/insight.json.gz#0"]["outcome"] == "skipped"
    assert [r["outcome"] for r in rows.values()].count("skipped") == 4
    # A console sign-in is routed and no rule wants it; nor the read: counted, not listed.
    assert "lookup.json#2" not in rows and "trail.zip!AWSLogs/log.json.gz#0" not in rows
    (unmatched,) = [o for o in objects if o["kind"] == "unmatched"]
    assert unmatched["events"] == summary["outcomes"]["ignored"] == 2
    assert sorted((t["event_source"], t["event_name"], t["events"]) for t in unmatched["top"]) == [
        ("iam.amazonaws.com", "GetUserPolicy", 1),
        ("signin.amazonaws.com", "ConsoleLogin", 1),
    ]


def test_a_skip_is_a_label_a_rule_that_matches_the_event_still_gets_it():
    # Were a rule ever to watch service events, the replay would replay them, not skip them.
    watch = RuleRoute(
        "ServiceEventRule",
        {"detail-type": ["AWS Service Event via CloudTrail"], "source": ["aws.kms"]},
        "LoggingGuardQueue",
        "LoggingGuardFunction",
        "logging_guard",
    )
    event = envelope_from_record(SERVICE_EVENT, "AWS Service Event via CloudTrail")
    with LocalAws() as aws:
        replayer = Replayer(aws, aws.settings(member_account_ids=("111122223333",)), Router([watch]))
        result = replayer.replay(InputItem("r.json", event, skipped="service events"))
        assert (result.rules, result.outcome != "skipped") == (["ServiceEventRule"], True)
        skipped = replayer.replay(InputItem("i.json", None, skipped="network activity events"))
        assert (skipped.outcome, skipped.reason) == ("skipped", "not an API call: network activity events")
