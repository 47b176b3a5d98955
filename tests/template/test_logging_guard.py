"""logging_guard's role: trails and flow logs read anywhere the suite reaches, restored only in
enforce mode, and the drift check's baseline-table access kept to its own keys."""

from __future__ import annotations

from typing import Any

from tests.template.stack import (
    OWN_TRAILS,
    TRAIL_LIST,
    TRAIL_READS,
    TRAIL_RESTORES,
    as_list,
    function_role,
    parameters,
    resolve,
    role_statements,
    target,
)

_, ROLE = function_role("LoggingGuardFunction")


def _statements(mode: str) -> list[dict[str, Any]]:
    """The role's statements as deployed in `mode` (Fn::If resolved)."""
    policies = resolve(ROLE["Policies"], parameters(ResponseMode=mode, MemberAccountIds="111122223333"))
    return [s for p in policies for s in as_list(p["PolicyDocument"]["Statement"])]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in as_list(s["Action"])}


def test_trails_are_read_in_every_mode_and_restored_only_in_enforce_mode() -> None:
    detect, enforce = _statements("detect"), _statements("enforce")
    assert _actions(detect) >= TRAIL_READS | TRAIL_LIST
    assert not _actions(detect) & TRAIL_RESTORES
    assert _actions(enforce) >= TRAIL_RESTORES
    # Never a way to stop, delete or create a trail, in any mode.
    assert not {a for a in _actions(enforce) if a.startswith("cloudtrail:")} - TRAIL_READS - TRAIL_LIST - TRAIL_RESTORES
    for statement in role_statements(ROLE):
        actions = set(as_list(statement["Action"]))
        if actions & (TRAIL_READS | TRAIL_RESTORES):
            assert as_list(statement["Resource"]) == [OWN_TRAILS], statement["Sid"]
        if actions & TRAIL_LIST:  # no resource type: "*", and alone
            assert actions == TRAIL_LIST and as_list(statement["Resource"]) == ["*"], statement["Sid"]


def test_the_baseline_table_is_read_by_key_and_written_only_under_the_unapproved_marker() -> None:
    on_baseline = [
        s for s in role_statements(ROLE) if target(s["Resource"]) == "BaselineTable" and s["Effect"] == "Allow"
    ]
    by_action: dict[str, list[str]] = {}
    for statement in on_baseline:
        for action in as_list(statement["Action"]):
            by_action.setdefault(action, []).extend(
                statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
            )
    # Snapshots (trails, storage) and the index readable; the only write is the "reported once"
    # mark: no snapshot can be written, and no Scan (dynamodb:LeadingKeys does not bind one).
    assert by_action == {
        "dynamodb:GetItem": ["trail#*", "key#*", "storage#*"],
        "dynamodb:Query": ["trail#index#*", "key#index#*"],
        "dynamodb:PutItem": ["trail#seen#*"],
    }


def test_the_drift_check_is_scheduled_on_the_logging_guard_function() -> None:
    from tests.template.stack import props

    schedule = props("LoggingDriftSchedule")
    assert target(schedule["Target"]["Arn"]) == "LoggingGuardFunction"
    assert schedule["ScheduleExpression"] == {"Ref": "LoggingDriftCheckSchedule"}
