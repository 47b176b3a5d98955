"""logging_guard's scheduled drift check on the suite's own plumbing (events/demo-state.yaml
`plumbing`, left as its samples found it, with no event replayed): every difference from the
stack's known state is found, named (approved vs now) and, in enforce mode, put back with the
event path's exact calls, journaled and audited; the known state unreadable: not assessed."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from connect_guard.plumbing import KnownPlumbing
from connect_guard.responders import logging_drift
from connect_guard.responders.plumbing_drift import KIND, PlumbingDrift
from connect_guard_tools.plumbing import rule_name
from tests.integration.plumbing_support import group, rule

OWN = "123456789012"
SUITE_LOGS = "/connect-guard/dev/logging-guard"


def drift(aws, mode: str = "detect") -> dict[str, dict[str, Any]]:
    """One drift run; its plumbing findings by title, as the SOC inbox received them."""
    logging_drift.run(aws.settings(response_mode=mode), aws.clients)
    findings = (json.loads(m["Message"]) for m in aws.inbox())
    return {f["title"]: f for f in findings if f["kind"] == KIND}


def known(aws) -> KnownPlumbing:
    ssm = aws.session.client("ssm")
    return KnownPlumbing.parse(ssm.get_parameter(Name=aws.plumbing.parameter)["Parameter"]["Value"])


def redeploy_deleted_rule(aws) -> None:
    """LivenessCanaryRule, deleted in the demo state, as the stack would create it again."""
    name = rule_name("LivenessCanaryRule")
    events = aws.session.client("events")
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["connect-guard.canary"]}), State="ENABLED")
    dlq = known(aws).dead_letter_arn
    events.put_targets(Rule=name, Targets=[t.config(dlq) for t in known(aws).rules[name]])


def titled(findings: dict[str, dict[str, Any]], text: str) -> dict[str, Any]:
    [finding] = [f for title, f in findings.items() if text in title]
    return finding


def test_drift_no_event_reported_is_found_and_named_and_only_proposed_in_detect_mode(aws):
    findings = drift(aws)
    disabled = titled(findings, "Suite rule drifted: eventbridge rule " + rule_name("LoggingGuardRule"))
    assert disabled["severity"] == "CRITICAL"
    assert 'state: approved "ENABLED", now "DISABLED"' in disabled["reasons"]
    assert "no event reported this change" in disabled["reasons"][0]
    assert [(a["operation"], a["status"]) for a in disabled["actions"]] == [("EnableRule", "proposed")]
    lowered = titled(findings, f"Log group drifted: log group {SUITE_LOGS}")
    assert "retention_days: approved 365, now 1" in lowered["reasons"]
    assert lowered["change"]["before"] == ["retention_days=1"] and lowered["change"]["after"] == ["retention_days=365"]
    archive = titled(findings, "Archive bucket drifted: s3 bucket connect-guard-archive")
    assert {a["operation"] for a in archive["actions"]} == {
        "PutBucketVersioning",
        "PutBucketLifecycleConfiguration",
        "PutBucketEncryption",
    }
    deleted = titled(findings, "Suite rule changed: eventbridge rule " + rule_name("LivenessCanaryRule"))
    assert any("no longer exists" in r and "redeploy" in r for r in deleted["reasons"]) and not deleted["actions"]
    # Every finding is about the security account, and detect mode changes nothing.
    assert {f["event"]["account_id"] for f in findings.values()} == {OWN}
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED"
    assert group(aws, SUITE_LOGS)["retentionInDays"] == 1
    assert aws.audit_records() == []


def test_enforce_restores_exactly_journaled_and_audited_and_the_next_run_reports_only_what_needs_a_redeploy(aws):
    findings = drift(aws, "enforce")
    restored = titled(findings, "Suite rule drift restored: eventbridge rule " + rule_name("LoggingGuardRule"))
    assert restored["actions"] == [
        {"service": "events", "operation": "EnableRule", "parameters": {"Name": rule_name("LoggingGuardRule")},
         "status": "taken"},
    ]  # fmt: skip
    assert rule(aws, "LoggingGuardRule")[0] == "ENABLED"
    # The foreign target removed, the suite's put back exactly (retry policy, dead-letter queue).
    assert [t["Id"] for t in rule(aws, "ProfileRollbackRule")[1]] == ["ProfileRollbackQueue"]
    [target] = rule(aws, "PolicyAttachmentRule")[1]
    assert target["DeadLetterConfig"] == {"Arn": aws.plumbing.dead_letter_arn}
    assert group(aws, SUITE_LOGS)["retentionInDays"] == 365
    assert group(aws, "/aws/connect/acme-contact-centre")["retentionInDays"] == 365
    recreated = group(aws, "/connect-guard/dev/liveness")
    assert recreated is not None and recreated["retentionInDays"] == 365
    assert recreated["kmsKeyId"] == aws.plumbing.suite_key_arn
    s3 = aws.session.client("s3")
    assert s3.get_bucket_versioning(Bucket="connect-guard-archive")["Status"] == "Enabled"
    assert s3.get_bucket_encryption(Bucket="connect-guard-archive")  # put back (it was deleted)
    audits = {(a["target"]["S"], a["action"]["S"]) for a in aws.audit_records()}
    rule_arn = f"arn:aws:events:us-east-1:{OWN}:rule/{rule_name('LoggingGuardRule')}"
    assert (rule_arn, "EnableRule") in audits
    assert (f"arn:aws:logs:us-east-1:{OWN}:log-group:{SUITE_LOGS}", "PutRetentionPolicy") in audits
    assert ("arn:aws:s3:::connect-guard-archive", "PutBucketVersioning") in audits
    journaled = {item["pk"]["S"] for item in aws.journal()}
    assert any(logging_drift.journal_key(rule_arn) in pk for pk in journaled), journaled
    written = len(aws.audit_records())
    again = drift(aws, "enforce")
    assert list(again) == ["Suite rule changed: eventbridge rule " + rule_name("LivenessCanaryRule")]
    assert len(aws.audit_records()) == written


def test_as_the_template_says_nothing_is_reported_or_changed(aws):
    drift(aws, "enforce")
    redeploy_deleted_rule(aws)
    audits = len(aws.audit_records())
    for mode in ("detect", "enforce"):
        assert drift(aws, mode) == {}
    assert len(aws.audit_records()) == audits


def test_a_target_forged_with_the_suites_id_is_put_back_to_the_suites_queue(aws):
    drift(aws, "enforce")
    redeploy_deleted_rule(aws)
    name = rule_name("LoggingGuardRule")
    [real] = rule(aws, "LoggingGuardRule")[1]
    forged = {**real, "Arn": "arn:aws:sqs:us-east-1:444455556666:collector"}
    aws.session.client("events").put_targets(Rule=name, Targets=[forged])
    found = titled(drift(aws, "enforce"), f"Suite rule drift restored: eventbridge rule {name}")
    assert found["severity"] == "CRITICAL" and "collector" in " ".join(found["reasons"])
    assert rule(aws, "LoggingGuardRule")[1] == [real]


def test_unreadable_known_state_is_critical_not_assessed_and_nothing_is_changed(aws):
    aws.session.client("ssm").delete_parameter(Name=aws.plumbing.parameter)
    findings = drift(aws, "enforce")
    [finding] = findings.values()
    assert finding["severity"] == "CRITICAL" and "not assessed" in finding["title"]
    assert "could not be read (ParameterNotFound)" in finding["reasons"][0]
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED"
    assert group(aws, SUITE_LOGS)["retentionInDays"] == 1
    assert not [a for a in aws.audit_records() if ":rule/" in a["target"]["S"] or ":log-group:" in a["target"]["S"]]


def test_unusable_known_state_is_not_assessed(aws):
    aws.session.client("ssm").put_parameter(Name=aws.plumbing.parameter, Value="{not json", Overwrite=True)
    [finding] = drift(aws, "enforce").values()
    assert "not assessed" in finding["title"] and "is unusable" in finding["reasons"][0]
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED"


def test_denied_plumbing_reads_are_not_assessed_and_nothing_is_changed(aws, monkeypatch):
    def denied(self: PlumbingDrift, _known: KnownPlumbing) -> list[Any]:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeRule")

    monkeypatch.setattr(PlumbingDrift, "_rules", denied)
    logging_drift.run(aws.settings(response_mode="enforce"), aws.clients)
    titles = [json.loads(m["Message"])["title"] for m in aws.inbox()]
    assert f"Drift check not assessed: suite_plumbing in {OWN} (us-east-1)" in titles
    assert group(aws, SUITE_LOGS)["retentionInDays"] == 1  # nothing restored in that scope
