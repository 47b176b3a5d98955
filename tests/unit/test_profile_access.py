"""Pure decisions on a whole security profile: access-control restrictions and applications
loosened (an escalation) or narrowed (kept), the restore, its severity, deletion and drift."""

from __future__ import annotations

import pytest

from connect_guard.baseline import InstanceBaseline, ProfileBaseline
from connect_guard.policy import Severity
from connect_guard.profile_access import ProfileAccess, loosened, restored, update_fields
from connect_guard.responders.profile_deletion import deleted_severity, snapshot_of
from connect_guard.responders.profile_rollback import Rules, plan_profile
from connect_guard.settings import DEFAULT_PRIVILEGED_PERMISSIONS
from connect_guard.sweep import diff

RULES = Rules(frozenset(DEFAULT_PRIVILEGED_PERMISSIONS), frozenset({"admin"}), "Agent")
SUPERVISOR = frozenset({"AccessMetrics", "Users.View", "Users.Edit"})  # Users.Edit: privileged
ANALYST = frozenset({"AccessMetrics", "MetricsReports.View"})
CRM = ("acme.crm", "THIRD_PARTY_APPLICATION")
APPROVED = ProfileAccess(
    tags=(("Department", "Sales"),),
    tag_restricted=frozenset({"User", "Queue"}),
    hierarchy_restricted=frozenset({"User"}),
    hierarchy_group="hg-emea",
    applications=frozenset({(*CRM, "ACCESS")}),
)


def baseline(permissions: frozenset[str], access: ProfileAccess | None = APPROVED) -> ProfileBaseline:
    return ProfileBaseline("p-1", "SalesSupervisor", permissions, access)


def with_(**changes) -> ProfileAccess:
    fields = {
        "tags": APPROVED.tags,
        "tag_restricted": APPROVED.tag_restricted,
        "hierarchy_restricted": APPROVED.hierarchy_restricted,
        "hierarchy_group": APPROVED.hierarchy_group,
        "applications": APPROVED.applications,
    }
    return ProfileAccess(**(fields | changes))


# ---- loosened, narrowed, unchanged ------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (with_(tags=()), ("AllowedAccessControlTags: Department=Sales removed",)),
        (
            with_(tags=(("Department", "Support"),)),
            ("AllowedAccessControlTags: Department=Sales changed to Department=Support",),
        ),
        (with_(tag_restricted=frozenset({"Queue"})), ("TagRestrictedResources: User removed",)),
        (with_(hierarchy_restricted=frozenset()), ("HierarchyRestrictedResources: User removed",)),
        (with_(hierarchy_group=""), ("AllowedAccessControlHierarchyGroupId: hg-emea removed",)),
        (with_(hierarchy_group="hg-root"), ("AllowedAccessControlHierarchyGroupId: hg-emea changed to hg-root",)),
    ],
)
def test_a_loosened_restriction_is_named_and_put_back_as_approved(now, expected):
    restrictions, applications = loosened(now, APPROVED)
    assert restrictions == expected and applications == ()
    assert restored(now, APPROVED) == APPROVED


def test_gained_applications_and_application_permissions_are_removed():
    now = with_(applications=APPROVED.applications | {(*CRM, "EXPORT"), ("mcp.tools", "MCP", "delete_contact")})
    restrictions, applications = loosened(now, APPROVED)
    assert restrictions == ()
    assert applications == ("Applications: acme.crm gained EXPORT", "Applications: mcp.tools added with delete_contact")
    assert restored(now, APPROVED).applications == APPROVED.applications


def test_narrowing_is_not_an_escalation_and_is_kept_by_a_restore():
    narrowed = with_(
        tags=(("Department", "Sales"), ("Region", "EMEA")),  # one more tag: fewer resources match
        tag_restricted=APPROVED.tag_restricted | {"RoutingProfile"},
        applications=frozenset(),  # the application removed
    )
    assert loosened(narrowed, APPROVED) == ((), ())
    # Loosened elsewhere at the same time: only that is put back, the narrowing stays.
    mixed = ProfileAccess(narrowed.tags, narrowed.tag_restricted, frozenset(), "hg-emea", frozenset())
    target = restored(mixed, APPROVED)
    assert target == narrowed
    assert update_fields(mixed, target) == {"HierarchyRestrictedResources": ["User"]}


def test_unchanged_access_plans_nothing():
    assert loosened(APPROVED, APPROVED) == ((), ())
    assert plan_profile(SUPERVISOR, baseline(SUPERVISOR), RULES, APPROVED) is None


def test_over_an_api_maximum_the_approved_value_is_restored_whole():
    four = tuple((f"k{i}", "v") for i in range(4))  # four other tags (the maximum) and Department dropped
    target = restored(with_(tags=four), APPROVED)
    assert target.tags == APPROVED.tags


def test_update_fields_send_only_what_changes_each_whole():
    now = with_(tags=(), applications=APPROVED.applications | {(*CRM, "EXPORT")})
    fields = update_fields(now, restored(now, APPROVED))
    assert fields == {
        "AllowedAccessControlTags": {"Department": "Sales"},
        "Applications": [{"Namespace": "acme.crm", "ApplicationPermissions": ["ACCESS"], "Type": CRM[1]}],
    }


def test_api_shapes_round_trip():
    described = {
        "AllowedAccessControlTags": {"Department": "Sales"},
        "TagRestrictedResources": ["User", "Queue"],
        "HierarchyRestrictedResources": ["User"],
        "AllowedAccessControlHierarchyGroupId": "hg-emea",
    }
    apps = [{"Namespace": "acme.crm", "ApplicationPermissions": ["ACCESS"], "Type": CRM[1]}]
    access = ProfileAccess.from_api(described, apps)
    assert access == APPROVED
    assert ProfileAccess.from_stored(access.to_api()) == access
    assert ProfileAccess.from_api({}, []) == ProfileAccess()  # Connect omits what a profile does not set


# ---- the plan and its severity ----------------------------------------------------------------


def test_a_dropped_restriction_on_a_privileged_profile_is_critical():
    plan = plan_profile(SUPERVISOR, baseline(SUPERVISOR), RULES, with_(tags=()))
    assert plan is not None and plan.critical and RULES.severity_of(plan) == Severity.CRITICAL
    assert plan.target == SUPERVISOR  # the permissions are sent as they are
    assert plan.fields == {"AllowedAccessControlTags": {"Department": "Sales"}}
    assert "holds Users.Edit" in plan.reasons[-1]


def test_a_dropped_restriction_elsewhere_and_a_gained_application_are_high():
    dropped = plan_profile(ANALYST, baseline(ANALYST), RULES, with_(hierarchy_group=""))
    assert dropped is not None and not dropped.critical and RULES.severity_of(dropped) == Severity.HIGH
    app = plan_profile(
        SUPERVISOR, baseline(SUPERVISOR), RULES, with_(applications=frozenset({(*CRM, "ACCESS"), (*CRM, "X")}))
    )
    assert app is not None and not app.critical and RULES.severity_of(app) == Severity.HIGH


def test_permissions_and_restrictions_loosened_together_are_restored_in_one_plan():
    now = SUPERVISOR | {"SecurityProfiles.Edit"}
    plan = plan_profile(now, baseline(SUPERVISOR), RULES, with_(tag_restricted=frozenset()))
    assert plan is not None
    assert plan.target == SUPERVISOR and plan.gained[0] == "SecurityProfiles.Edit"
    assert plan.fields == {"TagRestrictedResources": ["Queue", "User"]}


def test_an_older_baseline_item_without_access_never_restores_it():
    # Fail closed: what was never approved can't be restored; the responder alerts (UNCHECKED_ACCESS).
    assert plan_profile(SUPERVISOR, baseline(SUPERVISOR, None), RULES, ProfileAccess()) is None
    perms_only = plan_profile(SUPERVISOR | {"Users.Delete"}, baseline(SUPERVISOR, None), RULES, ProfileAccess())
    assert perms_only is not None and perms_only.access is None and perms_only.fields == {}


def test_a_profile_outside_the_baseline_has_no_approved_access_to_restore():
    assert plan_profile(ANALYST, None, RULES, ProfileAccess(applications=frozenset({(*CRM, "ACCESS")}))) is None


# ---- deletion ---------------------------------------------------------------------------------


def test_deleting_an_approved_profile_is_high_critical_when_privileged_medium_when_unknown():
    privileged, admins = RULES.privileged_permissions, RULES.privileged_profiles
    assert deleted_severity(baseline(ANALYST), privileged, admins) == Severity.HIGH
    assert deleted_severity(baseline(SUPERVISOR), privileged, admins) == Severity.CRITICAL
    assert deleted_severity(ProfileBaseline("p", "Admin", frozenset()), privileged, admins) == Severity.CRITICAL
    assert deleted_severity(None, privileged, admins) == Severity.MEDIUM


def test_the_deletion_snapshot_is_what_recreating_the_profile_takes():
    snapshot = snapshot_of(baseline(SUPERVISOR), "2026-11-20T06:00:00+00:00")
    assert snapshot["Permissions"] == sorted(SUPERVISOR)
    assert snapshot["AllowedAccessControlTags"] == {"Department": "Sales"}
    assert snapshot["AllowedAccessControlHierarchyGroupId"] == "hg-emea"
    older = snapshot_of(baseline(SUPERVISOR, None), None)
    assert "re-approve" in older["access"] and "AllowedAccessControlTags" not in older


# ---- drift ------------------------------------------------------------------------------------


def test_drift_covers_restrictions_applications_deleted_and_unchecked_profiles():
    approved, current = InstanceBaseline("arn"), InstanceBaseline("arn")
    approved.profiles["p-1"] = baseline(SUPERVISOR)
    current.profiles["p-1"] = baseline(SUPERVISOR, with_(tags=()))
    approved.profiles["p-old"] = ProfileBaseline("p-old", "Old", ANALYST, None)  # an older item
    current.profiles["p-old"] = ProfileBaseline("p-old", "Old", ANALYST, ProfileAccess())
    approved.profiles["p-gone"] = ProfileBaseline("p-gone", "Gone", ANALYST, ProfileAccess())
    approved.profiles["p-same"] = current.profiles["p-same"] = ProfileBaseline("p-same", "Same", ANALYST, APPROVED)
    drift = {d.id: d for d in diff(current, approved)}
    assert set(drift) == {"p-1", "p-old", "p-gone"}
    assert drift["p-1"].removed == {"tag:Department=Sales"} and not drift["p-1"].added
    assert drift["p-old"].unchecked and not drift["p-old"].added and not drift["p-old"].removed
    assert drift["p-gone"].deleted and drift["p-gone"].removed == ANALYST
