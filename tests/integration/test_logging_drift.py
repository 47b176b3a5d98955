"""logging_guard's scheduled drift check on the trails and flow logs of events/demo-state.yaml:
drift that no event reported is found, named (setting, approved, now) and, in enforce mode,
restored as the event path restores it; what is as approved is not reported."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from connect_guard import scheduled
from connect_guard.drift import DriftIncompleteError
from connect_guard.responders import logging_drift, logging_guard
from connect_guard.runtime import build_pipeline
from connect_guard.trails import TrailGateway
from tests.conftest import load_event
from tests.integration.test_plumbing_drift import redeploy_deleted_rule

OWN = "123456789012"
MEMBER = "111122223333"
ARN = "arn:aws:cloudtrail:us-east-1:{}:trail/{}"
QUIET = ARN.format(OWN, "quiet-trail")
MEMBER_TRAIL = ARN.format(MEMBER, "member-trail")
INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"


def drift(aws, mode: str = "detect") -> dict[str, dict[str, Any]]:
    """One drift run; its findings by title, as published to the SOC inbox."""
    logging_drift.run(aws.settings(response_mode=mode), aws.clients)
    return {m["Subject"]: json.loads(m["Message"]) for m in aws.inbox()}


def trail(aws, account: str, name: str):
    cloudtrail = aws.account_session(account).client("cloudtrail", region_name="us-east-1")
    return TrailGateway(cloudtrail).state(ARN.format(account, name))


def titled(findings: dict[str, dict[str, Any]], text: str) -> dict[str, Any]:
    [finding] = [f for f in findings.values() if text in f["title"]]  # subjects are cut at 99 characters
    return finding


def put_back_approved_key_policy(aws) -> None:
    """The demo's transcripts key policy, replaced with no restore possible, put back by hand."""
    from connect_guard.kms_keys import KeySnapshots

    arn = f"arn:aws:kms:us-east-1:{MEMBER}:key/1d5f6b2c-8e3a-4f9b-8c4d-6a7b8c9d0e12"
    snapshot = KeySnapshots(aws.clients.dynamodb, aws.baseline_table).get(arn)
    assert snapshot is not None and snapshot.policy is not None
    kms = aws.account_session(MEMBER).client("kms", region_name="us-east-1")
    kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=snapshot.policy)


def test_drift_no_event_reported_is_found_and_named_and_only_proposed_in_detect_mode(aws):
    findings = drift(aws)
    quiet = titled(findings, "Trail drifted: CloudTrail trail quiet-trail")
    assert quiet["severity"] == "CRITICAL" and quiet["target"]["arn"] == QUIET
    assert 's3_bucket: approved "cg-demo-quiet-trail-logs", now "cg-demo-quiet-sink"' in quiet["reasons"]
    assert "no event reported this change" in quiet["reasons"][0]
    [action] = quiet["actions"]
    assert (action["operation"], action["status"]) == ("UpdateTrail", "proposed")
    assert action["parameters"]["S3BucketName"] == "cg-demo-quiet-trail-logs"
    # A member account's trail, read through the member read role; the flow logs of its instance.
    assert titled(findings, "Trail drifted: CloudTrail trail member-trail")["event"]["account_id"] == MEMBER
    assert titled(findings, f"Contact flow logs off: Connect instance {INSTANCE}")["severity"] == "HIGH"
    # A snapshot whose trail is gone, and a trail never approved.
    deleted = titled(findings, "Trail deleted: CloudTrail trail legacy-trail")
    assert deleted["severity"] == "CRITICAL" and any("last snapshot" in r for r in deleted["reasons"])
    assert titled(findings, "Unapproved trail: CloudTrail trail sandbox-trail")["severity"] == "LOW"
    # Detect mode changes nothing and audits nothing.
    assert trail(aws, OWN, "quiet-trail").s3_bucket == "cg-demo-quiet-sink"
    assert not trail(aws, MEMBER, "member-trail").is_logging
    assert aws.connect.attribute(INSTANCE, "CONTACTFLOW_LOGS") == "false"
    assert aws.audit_records() == []


def test_an_unapproved_trail_is_reported_once(aws):
    assert any("Unapproved trail" in s for s in drift(aws))
    assert not any("Unapproved trail" in s for s in drift(aws))


def test_enforce_restores_each_drift_journaled_and_audited_and_the_next_run_reports_nothing_restored(aws):
    findings = drift(aws, "enforce")
    restored = titled(findings, "Trail drift restored: CloudTrail trail quiet-trail")
    assert restored["actions"][0]["status"] == "taken"
    assert trail(aws, OWN, "quiet-trail").s3_bucket == "cg-demo-quiet-trail-logs"
    assert trail(aws, MEMBER, "member-trail").is_logging  # through the member rollback role
    assert trail(aws, OWN, "org-trail").is_logging
    assert aws.connect.attribute(INSTANCE, "CONTACTFLOW_LOGS") == "true"
    audits = {(a["target"]["S"], a["action"]["S"]) for a in aws.audit_records()}
    assert {(QUIET, "UpdateTrail"), (MEMBER_TRAIL, "StartLogging")} <= audits
    assert (f"arn:aws:connect:us-east-1:{MEMBER}:instance/{INSTANCE}", "UpdateInstanceAttribute") in audits
    # As approved now: only what cannot be restored is reported again (the deleted trail, a key
    # policy, which is never written back: responders/key_drift.py, and the suite rule the demo
    # deleted: tests/integration/test_plumbing_drift.py).
    written = len(aws.audit_records())
    again = drift(aws, "enforce")
    assert sorted(s for s in again if "Suite rule changed" not in s) == [
        "[CRITICAL] Key policy changed: KMS key 1d5f6b2c-8e3a-4f9b-8c4d-6a7b8c9d0e12",
        "[CRITICAL] Trail deleted: CloudTrail trail legacy-trail",
    ]
    assert len(aws.audit_records()) == written


def test_nothing_is_reported_when_every_setting_is_as_approved(aws):
    drift(aws, "enforce")  # everything restorable put back; the unapproved trail seen once
    legacy = ARN.format(OWN, "legacy-trail")  # retired on purpose: its snapshot and index entry removed
    for key in ({"pk": f"trail#{legacy}", "sk": "snapshot"}, {"pk": f"trail#index#{OWN}", "sk": legacy}):
        aws.clients.dynamodb.delete_item(TableName=aws.baseline_table, Key={k: {"S": v} for k, v in key.items()})
    put_back_approved_key_policy(aws)  # by hand, as the runbook says: the suite never writes one
    redeploy_deleted_rule(aws)  # the suite rule the demo deleted, as the stack creates it
    audits = len(aws.audit_records())
    for mode in ("detect", "enforce"):
        assert drift(aws, mode) == {}
    assert len(aws.audit_records()) == audits


def test_the_suites_restore_on_the_event_path_is_not_reported_again_by_the_drift_check(aws):
    pipeline = build_pipeline(logging_guard.build, aws.settings(response_mode="enforce"), aws.clients)
    assert pipeline.process(load_event("logging/stop-logging-by-name.json"))["outcome"] == "restored"
    aws.inbox()
    findings = drift(aws, "enforce")
    assert not any("org-trail" in subject for subject in findings)


def test_a_run_that_died_after_restoring_is_reported_by_the_next_run_once(aws, monkeypatch):
    real = TrailGateway.call

    def write_then_die(self: TrailGateway, operation: str, parameters: dict[str, Any]) -> None:
        real(self, operation, parameters)
        if parameters.get("Name") == QUIET:
            raise TimeoutError("the function timed out")

    monkeypatch.setattr(TrailGateway, "call", write_then_die)
    with pytest.raises(DriftIncompleteError, match="TimeoutError: the function timed out"):
        drift(aws, "enforce")
    monkeypatch.setattr(TrailGateway, "call", real)
    assert not any("quiet-trail" in s for s in aws.inbox())  # restored, not reported
    findings = drift(aws, "enforce")
    earlier = titled(findings, "Drift restored by an earlier check: CloudTrail trail quiet-trail")
    assert earlier["actions"][0]["operation"] == "UpdateTrail" and earlier["actions"][0]["status"] == "taken"
    assert (QUIET, "UpdateTrail") in {(a["target"]["S"], a["action"]["S"]) for a in aws.audit_records()}
    assert not any("quiet-trail" in s for s in drift(aws, "enforce"))


def test_an_unreachable_member_account_is_critical_not_assessed_and_left_alone(aws):
    # Its read role refuses us (deleted, or its trust policy rewritten); the security account is still checked.
    with Stubber(aws.clients.sts) as sts:
        for _ in range(4):  # trails, flow logs, storage configs, KMS keys
            sts.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
        findings = drift(aws, "enforce")
    blind = [f for s, f in findings.items() if "Drift check not assessed" in s]
    assert {f["event"]["account_id"] for f in blind} == {MEMBER}
    assert {f["severity"] for f in blind} == {"CRITICAL"} and len(blind) == 4
    assert not trail(aws, MEMBER, "member-trail").is_logging
    assert aws.connect.attribute(INSTANCE, "CONTACTFLOW_LOGS") == "false"
    assert trail(aws, OWN, "quiet-trail").s3_bucket == "cg-demo-quiet-trail-logs"  # restored here


def test_an_indexed_trail_whose_snapshot_is_gone_is_alerted_and_not_restored(aws):
    key = {"pk": {"S": f"trail#{QUIET}"}, "sk": {"S": "snapshot"}}
    aws.clients.dynamodb.delete_item(TableName=aws.baseline_table, Key=key)
    finding = titled(drift(aws, "enforce"), "Trail snapshot missing: CloudTrail trail quiet-trail")
    assert finding["severity"] == "CRITICAL" and finding["actions"] == []
    assert trail(aws, OWN, "quiet-trail").s3_bucket == "cg-demo-quiet-sink"


def test_a_failed_scope_does_not_stop_the_others_and_the_run_is_alerted_failed(aws, monkeypatch):
    def throttled(self: TrailGateway, region: str, account: str) -> list[str]:
        raise TimeoutError("CloudTrail did not answer")

    monkeypatch.setattr(TrailGateway, "home_trails", throttled)
    settings = aws.settings(response_mode="enforce")
    with pytest.raises(DriftIncompleteError):
        scheduled.run(
            scheduled.LOGGING_DRIFT,
            settings,
            aws.clients.sns,
            "req-1",
            lambda: logging_drift.run(settings, aws.clients),
        )
    subjects = [m["Subject"] for m in aws.inbox()]
    assert f"[HIGH] Logging drift check FAILED in {OWN}" in subjects
    assert any("Contact flow logs restored" in s for s in subjects)  # the flow logs were still checked


def test_a_run_near_the_functions_timeout_stops_and_still_has_time_to_say_it_failed(aws):
    from connect_guard.clients import DEADLINE, REREAD_RESERVE_MS

    settings = aws.settings(response_mode="enforce")
    left = REREAD_RESERVE_MS + 1_000  # room for one publish, none for the checks' calls
    with DEADLINE.of(lambda: left), pytest.raises(DriftIncompleteError, match="DeadlineExceeded"):
        scheduled.run(
            scheduled.LOGGING_DRIFT, settings, aws.clients.sns, "r", lambda: logging_drift.run(settings, aws.clients)
        )
    assert [m["Subject"] for m in aws.inbox()] == [f"[HIGH] Logging drift check FAILED in {OWN}"]
    assert trail(aws, OWN, "quiet-trail").s3_bucket == "cg-demo-quiet-sink"  # nothing half-done


def test_storage_configs_drifted_with_no_event_are_found_and_put_back_to_the_snapshot(aws):
    from connect_guard.connect import ConnectGateway, InstanceRef
    from connect_guard.connect_storage import RESOURCE_TYPES, StorageSnapshots
    from connect_guard.connect_storage import drift as storage_drift

    instance = InstanceRef(MEMBER, "us-east-1", INSTANCE)
    reader = ConnectGateway(aws.clients.for_account("connect", MEMBER, "us-east-1", aws.settings(), "read"), instance)
    approved = StorageSnapshots(aws.clients.dynamodb, aws.baseline_table).get(instance.arn)
    assert approved is not None and storage_drift(approved.configs, reader.storage_state(RESOURCE_TYPES).configs)
    detect = drift(aws)
    recordings = titled(detect, f"Connect storage drifted: CALL_RECORDINGS of Connect instance {INSTANCE}")
    assert recordings["severity"] == "CRITICAL" and recordings["actions"][0]["status"] == "proposed"
    assert titled(detect, "Connect storage drifted: AGENT_EVENTS")["severity"] == "HIGH"
    enforce = drift(aws, "enforce")
    assert titled(enforce, "Connect storage drift restored: CALL_RECORDINGS")["actions"][0]["status"] == "taken"
    assert storage_drift(approved.configs, reader.storage_state(RESOURCE_TYPES).configs) == ()
    assert not any("storage" in subject for subject in drift(aws, "enforce"))
