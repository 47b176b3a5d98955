"""logging_guard killed between any two of its writes, then delivered again (as
test_crash_safety.py does for the other responders): the trail and the flow logs restored
exactly once, the restore journaled before it is made, and the restore always reported, by the
attempt that made it or by the retry (from the journal) when that one died before its finding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connect_guard.clients import AwsClients
from connect_guard.findings import finding_id_of
from connect_guard.responders import logging_guard
from connect_guard.runtime import Pipeline, build_pipeline
from connect_guard.trails import TrailGateway
from connect_guard_tools.local_aws import LocalAws
from tests.conftest import load_event, with_new_event_id
from tests.integration.delivery import Run, audit_of, deliver, restore_writes

ARN = "arn:aws:cloudtrail:us-east-1:123456789012:trail/{}"
DEMO_INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"


def pipeline_for(aws: LocalAws):
    settings = aws.settings(response_mode="enforce")

    def build(clients: AwsClients) -> Pipeline:
        return build_pipeline(logging_guard.build, settings, clients)

    return build


def reset(aws: LocalAws) -> None:
    """Between kill points: the trail stopped, flow logs off, the SOC inbox and the audit emptied."""
    aws.session.client("cloudtrail").stop_logging(Name=ARN.format("org-trail"))
    aws.connect.set_attribute(DEMO_INSTANCE, "CONTACTFLOW_LOGS", "false")
    aws.inbox()
    db = aws.session.client("dynamodb")
    for row in aws.audit_records():
        db.delete_item(TableName=aws.audit_table, Key={"pk": row["pk"], "sk": row["sk"]})


def reported(run: Run, event: dict[str, Any], title: str, operation: str) -> dict[str, Any]:
    assert run.alerts, f"{run.where}: no alert reached the SOC"
    assert {a["finding_id"] for a in run.alerts} == {finding_id_of("logging_guard", event["detail"]["eventID"])}
    finding = run.alerts[-1]
    assert finding["title"] == title, run.where
    assert [(a["operation"], a["status"]) for a in finding["actions"]] == [(operation, "taken")], run.where
    return finding


def restores_once_through_every_kill(
    aws: LocalAws, sample: str, write: str, title: str, is_restored: Callable[[], bool]
) -> None:
    """Killed after each write of the clean run in turn, then delivered again: restored once
    (`write`, service:Operation), reported and audited every time."""
    build = pipeline_for(aws)
    operation = write.split(":")[1]

    def restored(after: int | None) -> Run:
        reset(aws)
        event = with_new_event_id(load_event(sample))
        run = deliver(aws, build, event, after)
        assert run.result["outcome"] in ("restored", "duplicate"), run.where
        assert run.kill.count(write) == 1, f"{run.where}: not exactly one {operation}"
        assert is_restored(), run.where
        reported(run, event, title, operation)
        assert audit_of(aws, event, "logging_guard") == [(operation, "taken")], run.where
        return run

    clean = restored(None)
    steps = restore_writes(write)
    assert clean.kill.writes == steps  # journaled before the restore, audited before the finding
    for after in range(1, len(steps) + 1):
        restored(after)


def test_a_kill_between_any_two_steps_of_a_trail_restore_still_restores_once_and_reports_it(aws):
    restores_once_through_every_kill(
        aws,
        "logging/stop-logging-by-name.json",
        "cloudtrail:StartLogging",
        "Trail restored: CloudTrail trail org-trail (StopLogging)",
        lambda: TrailGateway(aws.session.client("cloudtrail")).state(ARN.format("org-trail")).is_logging,
    )


def test_a_kill_between_any_two_steps_of_a_flow_logs_restore_still_restores_once_and_reports_it(aws):
    restores_once_through_every_kill(
        aws,
        "logging/update-instance-attribute-flow-logs-off.json",
        "connect:UpdateInstanceAttribute",
        f"Contact flow logs restored: Connect instance {DEMO_INSTANCE}",
        lambda: aws.connect.attribute(DEMO_INSTANCE, "CONTACTFLOW_LOGS") == "true",
    )


def test_a_restore_killed_halfway_is_finished_by_the_retry_and_reported_and_audited_whole(aws):
    """The trail stopped and redirected: two calls. Killed after the first (UpdateTrail), the
    retry finds only StartLogging still due; the finding and the audit still show both."""
    build = pipeline_for(aws)
    cloudtrail = aws.session.client("cloudtrail")
    cloudtrail.update_trail(Name=ARN.format("org-trail"), S3BucketName="cg-demo-attacker-sink")
    event = with_new_event_id(load_event("logging/stop-logging-by-name.json"))
    run = deliver(aws, build, event, after=3)  # the dedup claim, the journal, UpdateTrail
    assert run.kill.fired == "cloudtrail:UpdateTrail" and run.result["outcome"] == "restored"
    assert run.kill.count("cloudtrail:UpdateTrail") == run.kill.count("cloudtrail:StartLogging") == 1
    state = TrailGateway(cloudtrail).state(ARN.format("org-trail"))
    assert state.is_logging and state.s3_bucket == "cg-demo-org-trail-logs"
    (finding,) = run.alerts
    assert [(a["operation"], a["status"]) for a in finding["actions"]] == [
        ("UpdateTrail", "taken"),
        ("StartLogging", "taken"),
    ]
    assert {c.split("=")[0] for c in finding["change"]["gained"]} >= {"is_logging", "s3_bucket"}
    assert audit_of(aws, event, "logging_guard") == [("StartLogging", "taken"), ("UpdateTrail", "taken")]
