"""Whole security profiles end to end: access-control restrictions and applications loosened are
rolled back (and narrowing kept), an older baseline item fails closed, DeleteSecurityProfile is
alerted with the approved snapshot; against the embedded AWS and the Connect fake."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard.baseline import BaselineStore, ProfileBaseline
from connect_guard.events import CloudTrailEvent
from connect_guard.profile_access import ProfileAccess
from connect_guard.responders import profile_rollback
from connect_guard.sweep import build as build_sweep
from tests.integration.test_profile_rollback import (
    ACCOUNT,
    INSTANCE,
    Instance,
    assumed,
    connect_event,
    pipeline,
    settings,
)

APPROVED = {
    "AllowedAccessControlTags": {"Department": "Sales"},
    "TagRestrictedResources": ["Queue", "User"],
    "HierarchyRestrictedResources": ["User"],
    "AllowedAccessControlHierarchyGroupId": "hg-emea",
}
CRM = {"Namespace": "acme.crm", "ApplicationPermissions": ["ACCESS"], "Type": "THIRD_PARTY_APPLICATION"}
SUPERVISOR = ["AccessMetrics", "Users.Edit", "Users.View"]  # Users.Edit: privileged
ACCESS_KEYS = (*APPROVED, "Applications")


class Restricted(Instance):
    """The small instance plus SalesSupervisor: a user administrator restricted by tag and hierarchy."""

    def __init__(self, aws, recorded: bool = True) -> None:
        super().__init__(aws)
        self.fake.add_hierarchy_group(INSTANCE, "EMEA", "hg-emea")
        self.supervisor = self.fake.add_security_profile(
            INSTANCE, "SalesSupervisor", SUPERVISOR, applications=[CRM], access=APPROVED
        )
        view = self.fake.profile(INSTANCE, self.supervisor)
        access = ProfileAccess.from_api(view, view["Applications"]) if recorded else None  # None: an older item
        approved = ProfileBaseline(self.supervisor, "SalesSupervisor", frozenset(SUPERVISOR), access)
        self.store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
        self.store.approve_profile(self.arn, approved, "test")

    def update(self, **fields: Any) -> dict[str, Any]:
        """The change has happened; the event's parameters as CloudTrail records them."""
        params = {"InstanceId": INSTANCE, "SecurityProfileId": self.supervisor, **fields}
        self.client.update_security_profile(**params)
        return params

    def profile(self) -> dict[str, Any]:
        return self.fake.profile(INSTANCE, self.supervisor)


@pytest.fixture
def restricted(aws):
    return Restricted(aws)


def update_event(params: dict[str, Any], identity: dict[str, Any] | None = None) -> dict[str, Any]:
    return connect_event("UpdateSecurityProfile", params, **({"identity": identity} if identity else {}))


def test_enforce_puts_back_the_dropped_tag_restriction_and_keeps_the_narrowing(aws, restricted):
    # The tag restriction is dropped; in the same call the profile is restricted to another resource.
    params = restricted.update(AllowedAccessControlTags={}, TagRestrictedResources=["Queue", "RoutingProfile", "User"])
    result = pipeline(aws).process(update_event(params))

    assert result["outcome"] == "rolled_back" and result["severity"] == "CRITICAL"  # it holds Users.Edit
    now = restricted.profile()
    assert now["AllowedAccessControlTags"] == {"Department": "Sales"}
    assert now["TagRestrictedResources"] == ["Queue", "RoutingProfile", "User"]  # the narrowing stays
    assert now["Permissions"] == SUPERVISOR and now["Applications"] == [CRM]
    ((_, sent),) = [c for c in restricted.fake.calls if c[0] == "UpdateSecurityProfile"][1:]
    assert set(sent) == {"InstanceId", "SecurityProfileId", "Permissions", "AllowedAccessControlTags"}
    (audit,) = aws.audit_records()
    assert "tag:Department=Sales" in audit["after"]["S"] and "tag:Department=Sales" not in audit["before"]["S"]


def test_detect_reports_the_exact_call_and_changes_nothing(aws, restricted):
    params = restricted.update(HierarchyRestrictedResources=[], AllowedAccessControlHierarchyGroupId="")
    outcome = profile_rollback.build(settings(aws, response_mode="detect"), aws.clients).handle(
        CloudTrailEvent.model_validate(update_event(params))
    )
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    (action,) = outcome.finding["actions"]
    assert action["status"] == "proposed"
    assert action["parameters"] == {
        "InstanceId": INSTANCE,
        "SecurityProfileId": restricted.supervisor,
        "Permissions": SUPERVISOR,
        "HierarchyRestrictedResources": ["User"],
        "AllowedAccessControlHierarchyGroupId": "hg-emea",
    }
    assert restricted.profile()["HierarchyRestrictedResources"] == []  # unchanged: still dropped
    assert restricted.profile().get("AllowedAccessControlHierarchyGroupId") is None
    assert aws.audit_records() == []


def test_a_gained_application_permission_is_removed_high_and_other_changes_stay(aws, instance_with_analyst):
    instance, analyst = instance_with_analyst
    params = {
        "InstanceId": INSTANCE,
        "SecurityProfileId": analyst,
        "Applications": [{**CRM, "ApplicationPermissions": ["ACCESS", "EXPORT"]}],
    }
    instance.client.update_security_profile(**params, Description="moved to the CRM team")
    result = pipeline(aws).process(update_event(params))
    assert result["outcome"] == "rolled_back" and result["severity"] == "HIGH"
    now = instance.fake.profile(INSTANCE, analyst)
    assert now["Applications"] == [CRM] and now["Description"] == "moved to the CRM team"


@pytest.fixture
def instance_with_analyst(aws):
    instance = Instance(aws)
    analyst = instance.fake.add_security_profile(INSTANCE, "Analyst", ["AccessMetrics"], applications=[CRM])
    view = instance.fake.profile(INSTANCE, analyst)
    access = ProfileAccess.from_api(view, view["Applications"])
    store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
    store.approve_profile(instance.arn, ProfileBaseline(analyst, "Analyst", frozenset({"AccessMetrics"}), access), "t")
    return instance, analyst


def test_a_profile_that_cannot_be_read_is_alerted_with_the_access_the_event_claims(aws, restricted):
    params = {
        "InstanceId": INSTANCE,
        "SecurityProfileId": "p-gone",
        "AllowedAccessControlTags": {},
        "Applications": [CRM],
    }
    result = pipeline(aws).process(update_event(params))
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"
    reasons = json.loads(aws.inbox()[0]["Message"])["reasons"]
    assert "the event claims AllowedAccessControlTags: {}" in reasons
    assert any(r.startswith("the event claims Applications: {'Namespace': 'acme.crm'") for r in reasons)


def test_narrowing_alone_is_no_escalation(aws, restricted):
    params = restricted.update(AllowedAccessControlTags={"Department": "Sales", "Region": "EMEA"}, Applications=[])
    result = pipeline(aws).process(update_event(params))
    assert result["outcome"] == "ignored" and aws.inbox() == []


def test_an_older_baseline_item_is_alerted_and_its_access_never_restored(aws):
    older = Restricted(aws, recorded=False)
    params = older.update(AllowedAccessControlTags={})
    result = pipeline(aws).process(update_event(params))
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"
    (alert,) = aws.inbox()
    finding = json.loads(alert["Message"])
    assert "re-approve the baseline" in finding["reasons"][0] and finding["actions"] == []
    assert older.profile()["AllowedAccessControlTags"] == {}  # never acted on
    # A permission gain on it is still rolled back, its access left alone, and the finding says why.
    params = older.update(Permissions=[*SUPERVISOR, "SecurityProfiles.Edit"])
    again = pipeline(aws).process(update_event(params))
    assert again["outcome"] == "rolled_back"
    assert older.profile()["Permissions"] == SUPERVISOR and older.profile()["AllowedAccessControlTags"] == {}
    assert any("re-approve the baseline" in r for r in json.loads(aws.inbox()[-1]["Message"])["reasons"])


@pytest.mark.parametrize(
    ("role", "path"),
    [("connect-guard-dev-member-rollback", "/"), ("anything", "/connect-guard/")],
)
def test_a_forged_own_change_is_rolled_back_like_anyone(aws, restricted, role, path):
    params = restricted.update(AllowedAccessControlTags={})
    result = pipeline(aws).process(update_event(params, assumed(role, "connect-guard", path)))
    assert result["outcome"] == "rolled_back"
    assert restricted.profile()["AllowedAccessControlTags"] == {"Department": "Sales"}


def test_the_suites_own_restore_is_never_assessed(aws, restricted):
    params = restricted.update(AllowedAccessControlTags={})
    own = assumed("connect-guard-dev-member-rollback", "connect-guard", "/connect-guard/")
    assert pipeline(aws).process(update_event(params, own))["outcome"] == "ignored"
    assert restricted.profile()["AllowedAccessControlTags"] == {}


def test_a_fault_mid_rollback_is_retried_and_the_last_attempt_says_what_is_still_loose(aws, restricted):
    params = restricted.update(TagRestrictedResources=[])
    event = CloudTrailEvent.model_validate(update_event(params))
    responder = profile_rollback.build(settings(aws, response_mode="enforce"), aws.clients)
    restricted.fake.fail_next("UpdateSecurityProfile", "InternalServiceException", times=10)
    with pytest.raises(ClientError):
        responder.handle(event)
    responder.give_up(event, RuntimeError("InternalServiceException after 5 attempts"))
    (alert,) = aws.inbox()
    assert alert["Subject"].startswith("[CRITICAL] Rollback FAILED for UpdateSecurityProfile")
    assert "TagRestrictedResources: Queue removed" in alert["Message"]
    # Connect answers again: the redriven event restores it.
    restricted.fake._failures.clear()
    assert responder.handle(event).outcome == "rolled_back"
    assert restricted.profile()["TagRestrictedResources"] == ["Queue", "User"]


def test_an_approvers_change_records_the_profiles_access_in_the_baseline(aws, restricted):
    params = restricted.update(AllowedAccessControlTags={"Department": "Support"})
    approver = f"arn:aws:iam::{ACCOUNT}:role/ConnectChangePipeline"
    result = pipeline(aws, baseline_approvers=(approver,)).process(
        update_event(params, assumed("ConnectChangePipeline", "deploy-9"))
    )
    assert result["outcome"] == "alerted"
    approved = restricted.store.profile(restricted.arn, restricted.supervisor)
    assert approved is not None and approved.access is not None
    assert approved.access.tags == (("Department", "Support"),)
    assert approved.access.applications == {("acme.crm", "THIRD_PARTY_APPLICATION", "ACCESS")}


# ---- DeleteSecurityProfile -------------------------------------------------------------------


def delete_params(profile_id: str | None) -> dict[str, Any] | None:
    return None if profile_id is None else {"InstanceId": INSTANCE, "SecurityProfileId": profile_id}


def delete_event(profile_id: str | None, **detail: Any) -> dict[str, Any]:
    return connect_event("DeleteSecurityProfile", delete_params(profile_id), **detail)


def test_a_deleted_approved_profile_is_alerted_with_its_snapshot(aws, restricted):
    restricted.client.delete_security_profile(InstanceId=INSTANCE, SecurityProfileId=restricted.supervisor)
    result = pipeline(aws).process(delete_event(restricted.supervisor))
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"  # it held Users.Edit
    (alert,) = aws.inbox()
    finding = json.loads(alert["Message"])
    snapshot = finding["snapshot"]
    assert snapshot["Permissions"] == SUPERVISOR and snapshot["Applications"] == [CRM]
    assert {k: snapshot[k] for k in APPROVED} == {**APPROVED, "TagRestrictedResources": ["Queue", "User"]}
    assert finding["actions"] == [] and finding["target"]["name"] == "SalesSupervisor"


def test_a_deletion_naming_the_profile_by_arn_is_judged_by_its_id(aws, restricted):
    arn = f"{restricted.arn}/security-profile/{restricted.supervisor}"
    result = pipeline(aws).process(delete_event(arn))
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    # Another profile's ID in the same shape is not the approved one: no snapshot, MEDIUM.
    other = pipeline(aws).process(delete_event(f"{restricted.arn}/security-profile/{restricted.supervisor}-x"))
    assert other["severity"] == "MEDIUM" and json.loads(aws.inbox()[-1]["Message"])["snapshot"] is None


def test_deletions_of_unknown_profiles_and_denied_attempts_are_medium(aws, restricted):
    unknown = pipeline(aws).process(delete_event("p-never-approved"))
    assert unknown["outcome"] == "alerted" and unknown["severity"] == "MEDIUM"
    denied = pipeline(aws).process(delete_event(None, errorCode="AccessDenied", errorMessage="not authorized"))
    assert denied["outcome"] == "alerted" and denied["severity"] == "MEDIUM"
    assert "an attempt, not a change" in json.loads(aws.inbox()[-1]["Message"])["reasons"][0]
    assert [op for op, _ in restricted.fake.calls if op.startswith("Delete")] == []  # nothing read or acted on


def test_a_deletion_by_the_suites_own_role_is_critical_and_a_look_alike_is_judged_like_anyone(aws, restricted):
    own = assumed("connect-guard-dev-member-rollback", "connect-guard", "/connect-guard/")
    # No suite role deletes a profile: even an unknown one is CRITICAL (the role is compromised).
    result = pipeline(aws).process(connect_event("DeleteSecurityProfile", delete_params("p-never-approved"), own))
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "treat the role as compromised" in json.loads(aws.inbox()[-1]["Message"])["reasons"][0]
    look_alike = assumed("connect-guard-dev-member-rollback", "connect-guard", "/")  # not under /connect-guard/
    other = pipeline(aws).process(connect_event("DeleteSecurityProfile", delete_params("p-never-approved"), look_alike))
    assert other["severity"] == "MEDIUM"


def test_the_last_attempt_of_a_deletion_still_alerts_without_its_snapshot(aws, restricted):
    event = CloudTrailEvent.model_validate(delete_event(restricted.supervisor))
    responder = profile_rollback.build(settings(aws), aws.clients)
    responder.give_up(event, RuntimeError("ProvisionedThroughputExceededException after 5 attempts"))
    (alert,) = aws.inbox()
    finding = json.loads(alert["Message"])
    assert finding["severity"] == "HIGH" and finding["target"]["name"] == restricted.supervisor
    assert finding["reasons"][0].startswith("NOT ASSESSED: RuntimeError: ProvisionedThroughputExceededException")


def test_a_deletion_with_a_partial_baseline_is_critical_and_says_so(aws, restricted):
    aws.clients.dynamodb.delete_item(
        TableName=aws.baseline_table,
        Key={"pk": {"S": f"instance#{restricted.arn}"}, "sk": {"S": f"profile#{restricted.agent}"}},
    )
    result = pipeline(aws).process(delete_event(restricted.supervisor))
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "baseline partial" in json.loads(aws.inbox()[0]["Message"])["reasons"][0]


def test_connect_keeps_a_profile_its_users_hold(restricted):
    with pytest.raises(ClientError, match="ResourceInUseException"):
        restricted.client.delete_security_profile(InstanceId=INSTANCE, SecurityProfileId=restricted.agent)
    with pytest.raises(ClientError, match="HierarchyRestrictedResources"):
        restricted.update(HierarchyRestrictedResources=["Queue"])  # only User can be hierarchy-restricted


# ---- the sweep --------------------------------------------------------------------------------


def drift_findings(aws) -> list[dict[str, Any]]:
    """The sweep's findings (instance discovery, which runs after it, publishes its own)."""
    return [f for m in aws.inbox() if (f := json.loads(m["Message"]))["kind"] == "connect.baseline_drift"]


def sweep(aws, restricted, mode: str):
    return build_sweep(aws.settings(response_mode=mode, connect_instance_arns=(restricted.arn,)), aws.clients)


def test_the_sweep_restores_loosened_access_in_enforce_and_reports_a_deletion(aws, restricted):
    restricted.update(
        AllowedAccessControlTags={}, Applications=[{**CRM, "ApplicationPermissions": ["ACCESS", "EXPORT"]}]
    )
    detect = sweep(aws, restricted, "detect").run()[0]
    (_, plan, status) = next(p for p in detect.plans if p[0].id == restricted.supervisor)
    assert status == "proposed" and set(plan.fields) == {"AllowedAccessControlTags", "Applications"}
    enforced = sweep(aws, restricted, "enforce").run()[0]
    assert any(i.id == restricted.supervisor and s == "taken" for i, _, s in enforced.plans)
    assert restricted.profile()["AllowedAccessControlTags"] == {"Department": "Sales"}
    assert restricted.profile()["Applications"] == [CRM]
    assert sweep(aws, restricted, "enforce").run()[0].drift == []  # converged

    restricted.client.delete_security_profile(InstanceId=INSTANCE, SecurityProfileId=restricted.supervisor)
    gone = sweep(aws, restricted, "enforce").run()[0]
    (deleted,) = gone.drift
    assert deleted.deleted and gone.plans == []
    finding = drift_findings(aws)[-1]
    assert finding["severity"] == "CRITICAL" and "deleted profile SalesSupervisor" in finding["reasons"][0]


def test_the_sweep_reports_an_older_baseline_item_as_unchecked(aws):
    older = Restricted(aws, recorded=False)
    result = sweep(aws, older, "enforce").run()[0]
    (item,) = result.drift
    assert item.unchecked and result.plans == []
    (finding,) = drift_findings(aws)
    assert finding["severity"] == "MEDIUM" and any("re-approve the baseline" in r for r in finding["reasons"])


def test_a_restore_naming_a_deleted_hierarchy_group_is_refused_and_said(aws, restricted):
    # The restriction dropped, then its group deleted: Connect refuses a restore that names it.
    params = restricted.update(HierarchyRestrictedResources=[], AllowedAccessControlHierarchyGroupId="")
    restricted.fake._instance(INSTANCE).hierarchy_groups.pop("hg-emea")
    responder = profile_rollback.build(settings(aws, response_mode="enforce"), aws.clients)
    outcome = responder.handle(CloudTrailEvent.model_validate(update_event(params)))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    (alert,) = aws.inbox()
    finding = json.loads(alert["Message"])
    assert finding["reasons"][0] == "ROLLBACK DID NOT HAPPEN: UpdateSecurityProfile: Hierarchy group not found: hg-emea"
    assert [a["status"] for a in finding["actions"]] == ["failed"]
    assert restricted.profile()["HierarchyRestrictedResources"] == []  # still loose: the SOC must act
