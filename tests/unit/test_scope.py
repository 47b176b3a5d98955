"""Scope checks (connect_guard.scope): which events the suite may act on, and the finding for
those it refuses. Pure: a fixed clock, no AWS."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connect_guard.errors import ConfigurationError
from connect_guard.events import CloudTrailEvent
from connect_guard.policy import Severity
from connect_guard.scope import KIND, NAME, TITLE, out_of_scope, rejection_finding
from connect_guard.settings import Settings
from tests.conftest import ROOT, delivered_at, load_event

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
MEMBER = "111122223333"
SECURITY = "123456789012"
SETTINGS = Settings(
    alert_topic_arn=f"arn:aws:sns:us-east-1:{SECURITY}:alerts",
    dedup_table_name="dedup",
    member_account_ids=(MEMBER,),
)


def event(moment: datetime = NOW - timedelta(minutes=2), **changes: Any) -> CloudTrailEvent:
    raw = delivered_at(load_event("quarantine/delete-role-connect-slr-denied-iam-user.json"), moment)
    raw = copy.deepcopy(raw)
    for dotted, value in changes.items():
        node = raw
        *path, last = dotted.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    return CloudTrailEvent.model_validate(raw)


def test_a_fresh_event_from_an_enrolled_account_is_in_scope() -> None:
    assert out_of_scope(event(), SETTINGS, NOW) is None


def test_the_security_account_is_always_in_scope() -> None:
    own = event(account=SECURITY, detail__recipientAccountId=SECURITY)
    assert out_of_scope(own, SETTINGS, NOW) is None


def test_an_unenrolled_account_is_out_of_scope() -> None:
    stranger = event(account="999988887777", detail__recipientAccountId="999988887777")
    assert out_of_scope(stranger, SETTINGS, NOW) == ("account 999988887777 is not enrolled (MemberAccountIds)")


def test_a_record_in_another_accounts_envelope_is_out_of_scope() -> None:
    moved = event(detail__recipientAccountId="444455556666")
    assert (
        out_of_scope(moved, SETTINGS, NOW) == "recipientAccountId 444455556666 is not the event's account 111122223333"
    )


def test_a_record_without_recipient_account_is_judged_by_its_envelope() -> None:
    raw = delivered_at(load_event("quarantine/delete-role-connect-slr-denied-iam-user.json"), NOW)
    del raw["detail"]["recipientAccountId"]
    assert out_of_scope(CloudTrailEvent.model_validate(raw), SETTINGS, NOW) is None


def test_a_future_event_is_out_of_scope_beyond_five_minutes_of_skew() -> None:
    assert out_of_scope(event(NOW + timedelta(minutes=4)), SETTINGS, NOW) is None
    reason = out_of_scope(event(datetime(2030, 1, 1, 9, 0, tzinfo=UTC)), SETTINGS, NOW)
    assert reason == "eventTime 2030-01-01T09:00:00Z is 1126 days in the future"
    assert out_of_scope(event(NOW + timedelta(minutes=6)), SETTINGS, NOW) == (
        "eventTime 2026-12-01T09:36:00Z is 6 min in the future"
    )


def test_an_event_past_the_delivery_horizon_is_out_of_scope_unless_the_limit_is_lifted() -> None:
    assert out_of_scope(event(NOW - timedelta(hours=47)), SETTINGS, NOW) is None
    old = event(NOW - timedelta(hours=49))
    assert out_of_scope(old, SETTINGS, NOW) == "eventTime 2026-11-29T08:30:00Z is 49 h old (delivery horizon 48 h)"
    history = SETTINGS.model_copy(update={"max_event_age_hours": None})  # the replay's setting
    assert out_of_scope(old, history, NOW) is None
    assert out_of_scope(event(datetime(2030, 1, 1, tzinfo=UTC)), history, NOW) is not None  # the future still is


def test_an_envelope_time_far_from_event_time_is_out_of_scope() -> None:
    assert out_of_scope(event(time="2026-12-01T09:40:00Z"), SETTINGS, NOW) is None  # 12 min: delivery
    rewritten = event(time="2026-12-01T06:00:00Z")
    assert out_of_scope(rewritten, SETTINGS, NOW) == (
        "envelope time 2026-12-01T06:00:00Z is 3 h from eventTime 2026-12-01T09:28:00Z"
    )


def test_times_without_a_zone_are_read_as_utc() -> None:
    naive = event(time="2026-12-01T09:28:00", detail__eventTime="2026-12-01T09:28:00")
    assert out_of_scope(naive, SETTINGS, NOW) is None


def test_the_rejection_finding_tells_the_soc_what_was_claimed_and_why_it_was_refused() -> None:
    forged = event(datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
    reason = out_of_scope(forged, SETTINGS, NOW)
    assert reason
    finding = rejection_finding(forged, reason, "role_quarantine", SETTINGS)
    assert (finding.responder, finding.kind, finding.severity) == (NAME, KIND, Severity.CRITICAL)
    assert finding.title == f"{TITLE}: {reason}"
    assert finding.subject.startswith("[CRITICAL] Forged or out-of-scope event: eventTime 2030-01-01T09:00:00Z")
    assert finding.reasons[0] == reason
    assert "no responder ran, no action was taken" in finding.reasons[1]
    assert finding.actions == () and not finding.allowlisted
    assert finding.actor.display == "mallory.ops"  # what the event claims, shown as a claim
    assert finding.event.event_id == forged.detail.event_id
    assert finding.runbook_url.endswith("/event-scope.md")
    assert (ROOT / "docs" / "runbooks" / "event-scope.md").is_file()
    # Never the real event's finding ID: a forged copy must not overwrite it downstream.
    assert finding.finding_id != replace(finding, responder="role_quarantine").finding_id


def test_settings_read_the_input_checks_from_the_environment() -> None:
    base = {"ALERT_TOPIC_ARN": f"arn:aws:sns:us-east-1:{SECURITY}:alerts", "DEDUP_TABLE_NAME": "dedup"}
    deployed = Settings.from_env(
        {**base, "SOURCE_QUEUE_ARN": f"arn:aws:sqs:us-east-1:{SECURITY}:connect-guard-dev-QuarantineQueue-1AB"}
    )
    assert deployed.source_queue_arn == f"arn:aws:sqs:us-east-1:{SECURITY}:connect-guard-dev-QuarantineQueue-1AB"
    assert deployed.max_event_age_hours == 48
    assert not deployed.local_run
    assert Settings.from_env({**base, "SOURCE_QUEUE_ARN": ""}).source_queue_arn is None
    assert Settings.from_env({**base, "CONNECT_GUARD_ALLOW_DIRECT_INVOCATION": "true"}).local_run
    assert Settings.from_env({**base, "MAX_EVENT_AGE_HOURS": "72"}).max_event_age_hours == 72
    # `sam local invoke` runs the dated sample corpus: no age limit unless one is asked for.
    sam = Settings.from_env({**base, "AWS_SAM_LOCAL": "true"})
    assert sam.local_run and sam.max_event_age_hours is None
    assert Settings.from_env({**base, "AWS_SAM_LOCAL": "true", "MAX_EVENT_AGE_HOURS": "6"}).max_event_age_hours == 6
    with pytest.raises(ConfigurationError, match="SOURCE_QUEUE_ARN"):
        Settings.from_env({**base, "SOURCE_QUEUE_ARN": "arn:aws:sns:us-east-1:123456789012:not-a-queue"})
    with pytest.raises(ConfigurationError, match="MAX_EVENT_AGE_HOURS"):
        Settings.from_env({**base, "MAX_EVENT_AGE_HOURS": "0"})
