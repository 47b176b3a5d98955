"""Pure decisions of the profile rollback and the drift sweep."""

import pytest

from connect_guard.baseline import BaselineMeta, InstanceBaseline, ProfileBaseline, UserBaseline, incomplete
from connect_guard.connect import ConnectUser, InstanceRef
from connect_guard.errors import ConnectResourceNotFoundError
from connect_guard.policy import Severity
from connect_guard.responders.profile_rollback import Rules, plan_profile, plan_user
from connect_guard.settings import DEFAULT_PRIVILEGED_PERMISSIONS
from connect_guard.sweep import diff

RULES = Rules(frozenset(DEFAULT_PRIVILEGED_PERMISSIONS), frozenset({"admin"}), "Agent")
NAMES = {"p-agent": "Agent", "p-admin": "Admin", "p-qa": "QualityAnalyst", "p-mgr": "CallCenterManager"}
PERMS = {
    "p-agent": frozenset({"BasicAgentAccess", "OutboundCallAccess"}),
    "p-admin": frozenset({"Users.Edit", "Users.EditPermission", "SecurityProfiles.Edit"}),
    "p-qa": frozenset({"ListenCallRecordings", "AccessMetrics"}),
    "p-mgr": frozenset({"AccessMetrics", "Users.View"}),
}


def user(*profiles: str) -> ConnectUser:
    return ConnectUser("u-1", "m.garcia", frozenset(profiles))


def test_gaining_admin_restores_the_approved_profiles():
    plan = plan_user(
        user("p-agent", "p-admin"), UserBaseline("u-1", "m.garcia", frozenset({"p-agent"})), NAMES, PERMS, RULES
    )
    assert plan is not None
    assert plan.target == {"p-agent"} and plan.gained == ("Admin",) and plan.baseline == "approved"
    assert RULES.severity(plan.gained) == Severity.CRITICAL


def test_gaining_a_profile_with_recordings_access_is_high():
    plan = plan_user(user("p-agent", "p-qa"), UserBaseline("u-1", "m", frozenset({"p-agent"})), NAMES, PERMS, RULES)
    assert plan is not None and plan.gained == ("ListenCallRecordings",)
    assert RULES.severity(plan.gained) == Severity.HIGH


def test_privileged_permissions_already_held_through_approved_profiles_are_not_an_escalation():
    approved = UserBaseline("u-1", "m", frozenset({"p-qa"}))
    qa_copy = {**PERMS, "p-qa2": PERMS["p-qa"]}
    assert plan_user(user("p-qa", "p-qa2"), approved, {**NAMES, "p-qa2": "QA2"}, qa_copy, RULES) is None


def test_non_privileged_moves_are_left_to_the_drift_report():
    assert plan_user(user("p-mgr"), UserBaseline("u-1", "m", frozenset({"p-agent"})), NAMES, PERMS, RULES) is None


def test_user_without_baseline_loses_privileged_profiles_and_falls_back_when_none_remain():
    plan = plan_user(user("p-admin"), None, NAMES, PERMS, RULES)
    assert plan is not None and plan.target == {"p-agent"} and plan.baseline == "none"
    assert "fallback" in plan.reasons[-1]
    keeps = plan_user(user("p-admin", "p-mgr"), None, NAMES, PERMS, RULES)
    assert keeps is not None and keeps.target == {"p-mgr"}


def test_missing_fallback_profile_is_an_error_not_a_guess():
    with pytest.raises(ConnectResourceNotFoundError, match="fallback"):
        plan_user(user("p-admin"), None, {"p-admin": "Admin"}, PERMS, RULES)


def test_already_restored_state_needs_no_action():
    assert plan_user(user("p-agent"), UserBaseline("u-1", "m", frozenset({"p-agent"})), NAMES, PERMS, RULES) is None


def test_profile_rollback_strips_the_privileged_gain_and_keeps_other_changes():
    approved = ProfileBaseline("p-mgr", "CallCenterManager", frozenset({"AccessMetrics", "Users.View"}))
    current = frozenset({"Users.View", "DownloadCallRecordings", "ListenCallRecordings", "Reports.View"})
    plan = plan_profile(current, approved, RULES)
    assert plan is not None
    # Reports.View (added) stays, AccessMetrics (removed since) is not re-added: only the escalation is undone.
    assert plan.target == {"Users.View", "Reports.View"}
    assert plan.gained == ("DownloadCallRecordings", "ListenCallRecordings")


def test_user_rollback_removes_the_privileged_profiles_only():
    approved = UserBaseline("u-1", "m", frozenset({"p-agent"}))
    plan = plan_user(user("p-mgr", "p-admin"), approved, NAMES, PERMS, RULES)
    assert plan is not None and plan.target == {"p-mgr"} and plan.gained == ("Admin",)
    # Nothing else would remain: the approved profiles, not the fallback.
    only_admin = plan_user(user("p-admin"), UserBaseline("u-1", "m", frozenset({"p-qa"})), NAMES, PERMS, RULES)
    assert only_admin is not None and only_admin.target == {"p-qa"}


def test_new_profile_without_baseline_is_stripped_of_privileged_permissions_only():
    plan = plan_profile(frozenset({"Users.Create", "SecurityProfiles.Edit", "AccessMetrics"}), None, RULES)
    assert plan is not None and plan.target == {"AccessMetrics"} and plan.baseline == "none"
    assert plan_profile(frozenset({"AccessMetrics"}), None, RULES) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7c1d5a8e-2f4b", InstanceRef("111122223333", "us-east-1", "7c1d5a8e-2f4b")),
        ("arn:aws:connect:eu-west-2:444455556666:instance/abc", InstanceRef("444455556666", "eu-west-2", "abc")),
        (
            "arn%3Aaws%3Aconnect%3Aeu-west-2%3A444455556666%3Ainstance%2Fabc",
            InstanceRef("444455556666", "eu-west-2", "abc"),
        ),
    ],
)
def test_instance_ids_arns_and_url_encoded_arns(value, expected):
    assert InstanceRef.parse(value, "111122223333", "us-east-1") == expected


def test_drift_lists_added_removed_and_new_items():
    approved = InstanceBaseline("arn")
    approved.profiles["p-agent"] = ProfileBaseline("p-agent", "Agent", PERMS["p-agent"])
    approved.users["u-1"] = UserBaseline("u-1", "m", frozenset({"p-agent"}))
    current = InstanceBaseline("arn")
    current.profiles["p-agent"] = ProfileBaseline("p-agent", "Agent", PERMS["p-agent"] | {"ManagerListenIn"})
    current.profiles["p-new"] = ProfileBaseline("p-new", "New", frozenset({"AccessMetrics"}))
    current.users["u-1"] = UserBaseline("u-1", "m", frozenset({"p-agent"}))
    drift = {d.id: d for d in diff(current, approved)}
    assert set(drift) == {"p-agent", "p-new"}
    assert drift["p-agent"].added == {"ManagerListenIn"} and not drift["p-agent"].new
    assert drift["p-new"].new


def test_a_baseline_is_complete_only_when_its_counts_match_the_items():
    meta = BaselineMeta("2026-11-20T00:00:00+00:00", "soc", 3, 2)
    assert incomplete(meta, 3, 2) is None
    assert incomplete(None, 0, 0) == "no approved baseline (meta item missing)"
    assert "approved 3 profiles and 2 users, the table holds 3 and 1" in (incomplete(meta, 3, 1) or "")
    assert "records no counts" in (incomplete(BaselineMeta(None, None, None, None), 3, 2) or "")
