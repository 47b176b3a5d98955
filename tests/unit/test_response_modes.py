"""Settings.mode_for: does a control act on an account, and why (README "Response modes")."""

from __future__ import annotations

import dataclasses

import pytest

from connect_guard.errors import ConfigurationError
from connect_guard.findings import Attempt, EventRef, Finding, render_text
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.settings import ModeDecision, Settings
from connect_guard.slack import render

TOPIC = "arn:aws:sns:us-east-1:123456789012:connect-guard-alerts"
PILOT, OTHER = "111122223333", "444455556666"


def settings(**values: object) -> Settings:
    return Settings.model_validate({"alert_topic_arn": TOPIC, "dedup_table_name": "dedup", **values})


@pytest.mark.parametrize(
    ("values", "control", "expected"),
    [
        # Left at inherit: exactly ResponseMode, as before the per-control modes.
        ({}, "quarantine", ModeDecision("detect", "ResponseMode=detect (QuarantineMode inherits)")),
        (
            {"response_mode": "enforce"},
            "profile_rollback",
            ModeDecision("enforce", "ResponseMode=enforce (ProfileRollbackMode inherits)"),
        ),
        # A control's own mode wins over ResponseMode, either way.
        ({"quarantine_mode": "enforce"}, "quarantine", ModeDecision("enforce", "QuarantineMode=enforce")),
        (
            {"response_mode": "enforce", "logging_guard_mode": "detect"},
            "logging_guard",
            ModeDecision("detect", "LoggingGuardMode=detect"),
        ),
        # ... and only for that control.
        (
            {"quarantine_mode": "enforce"},
            "baseline_sweep",
            ModeDecision("detect", "ResponseMode=detect (BaselineSweepMode inherits)"),
        ),
    ],
)
def test_each_control_follows_its_own_mode_or_inherits_response_mode(values, control, expected) -> None:
    assert settings(**values).mode_for(control, OTHER) == expected


def test_a_detect_only_account_is_detect_whatever_the_modes_say() -> None:
    s = settings(response_mode="enforce", quarantine_mode="enforce", detect_only_account_ids=f"{PILOT},{OTHER}")
    for control in ("profile_rollback", "baseline_sweep", "quarantine", "logging_guard"):
        decision = s.mode_for(control, PILOT)
        assert decision.mode == "detect" and not decision.enforces
        assert decision.reason.startswith(f"account {PILOT} is in DetectOnlyAccountIds; ")
    assert s.mode_for("quarantine", PILOT).reason.endswith("; QuarantineMode=enforce")
    assert settings(response_mode="enforce", detect_only_account_ids=PILOT).mode_for("quarantine", OTHER).enforces


def test_an_unknown_account_is_never_enforced() -> None:
    decision = settings(response_mode="enforce").mode_for("profile_rollback", None)
    assert decision.mode == "detect" and decision.reason.startswith("the account is not known")


def test_a_detect_mode_stays_detect_in_a_detect_only_account_with_its_own_reason() -> None:
    decision = settings(detect_only_account_ids=PILOT).mode_for("quarantine", PILOT)
    assert decision == ModeDecision("detect", "ResponseMode=detect (QuarantineMode inherits)")


def test_modes_and_detect_only_accounts_come_from_the_environment_and_are_validated() -> None:
    env = {"ALERT_TOPIC_ARN": TOPIC, "DEDUP_TABLE_NAME": "dedup", "RESPONSE_MODE": "enforce"}
    s = Settings.from_env({**env, "QUARANTINE_MODE": "detect", "DETECT_ONLY_ACCOUNT_IDS": PILOT})
    assert s.quarantine_mode == "detect" and s.detect_only_account_ids == (PILOT,)
    assert s.profile_rollback_mode == "inherit"
    with pytest.raises(ConfigurationError, match="QUARANTINE_MODE"):
        Settings.from_env({**env, "QUARANTINE_MODE": "on"})
    with pytest.raises(ConfigurationError, match="DETECT_ONLY_ACCOUNT_IDS"):
        Settings.from_env({**env, "DETECT_ONLY_ACCOUNT_IDS": "1111-2222-3333"})


def _finding(mode: str, reason: str) -> Finding:
    return Finding(
        responder="role_quarantine",
        kind="iam.protected_role_deletion",
        severity=Severity.CRITICAL,
        title="Attempt to delete role X",
        summary="...",
        event=EventRef("e-1", "DeleteRole", "iam.amazonaws.com", "2026-11-20T10:00:00Z", PILOT, "us-east-1", ""),
        actor=Actor.system("test"),
        attempt=Attempt("denied"),
        allowlisted=False,
        reasons=("r",),
        runbook_url="https://runbooks.example/role-quarantine.md",
        environment="dev",
        mode=mode,
        mode_reason=reason,
    )


def test_the_email_and_slack_say_which_mode_applied_and_why() -> None:
    reason = f"account {PILOT} is in DetectOnlyAccountIds; QuarantineMode=enforce"
    finding = _finding("detect", reason)
    assert f"Mode              detect ({reason})" in render_text(finding)
    assert finding.to_dict()["mode_reason"] == reason and finding.to_dict()["schema_version"] == "1.2"
    footer = render(finding.to_dict())["attachments"][0]["blocks"][-1]["elements"][0]["text"]
    assert f"mode detect ({reason})" in footer
    # A responder without a mode decision (the alerts) shows no Mode line.
    assert "Mode " not in render_text(dataclasses.replace(finding, mode_reason=""))
