"""Connect user takeover paths end to end (connect_user_guard, through profile_rollback):
UpdateUserIdentityInfo, UpdateUserHierarchy and a user's tags, against the Connect fake."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard.baseline import BaselineStore, InstanceBaseline, ProfileBaseline, UserBaseline
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import finding_id_of
from connect_guard.responders import profile_rollback
from tests.integration.test_profile_rollback import ACCOUNT, INSTANCE, REGION, assumed, connect_event, settings

ADMIN_GROUP, SALES_GROUP = "a1a1a1a1-0000-4000-8000-000000000001", "b2b2b2b2-0000-4000-8000-000000000002"
PIPELINE = f"arn:aws:iam::{ACCOUNT}:role/ConnectChangePipeline"
IDENTITY = ("FirstName", "LastName", "Email", "SecondaryEmail")


class Users:
    """An instance with an admin (privileged) and an agent, their identity, group and tags approved."""

    def __init__(self, aws: Any, *, record: bool = True) -> None:
        fake = self.fake = aws.connect
        self.client = aws.session.client("connect", region_name=REGION)
        self.arn = fake.add_instance(ACCOUNT, REGION, INSTANCE, "test-centre")
        fake.add_hierarchy_group(INSTANCE, "Administration", ADMIN_GROUP)
        fake.add_hierarchy_group(INSTANCE, "Sales", SALES_GROUP)
        self.agent_profile = fake.add_security_profile(INSTANCE, "Agent", ["BasicAgentAccess"])
        self.admin_profile = fake.add_security_profile(INSTANCE, "Admin", ["Users.Edit", "Users.EditPermission"])
        self.admin = fake.add_user(
            INSTANCE,
            "a.admin",
            [self.admin_profile],
            first_name="Ada",
            last_name="Admin",
            email="a.admin@example.com",
            hierarchy_group_id=ADMIN_GROUP,
            tags={"Department": "Administration"},
        )
        self.agent = fake.add_user(
            INSTANCE, "b.agent", [self.agent_profile], first_name="Ben", last_name="Agent", email="b.agent@example.com"
        )
        baseline = InstanceBaseline(self.arn)
        for pid in (self.agent_profile, self.admin_profile):
            p = fake.profile(INSTANCE, pid)
            baseline.profiles[pid] = ProfileBaseline(pid, p["SecurityProfileName"], frozenset(p["Permissions"]))
        for uid in (self.admin, self.agent):
            u = fake.user(INSTANCE, uid)
            identity = {f: u["IdentityInfo"].get(f, "") for f in IDENTITY}
            baseline.users[uid] = UserBaseline(
                uid,
                u["Username"],
                frozenset(u["SecurityProfileIds"]),
                tuple(sorted(identity.items())) if record else None,
                u.get("HierarchyGroupId", "") if record else None,
                tuple(sorted(u["Tags"].items())) if record else None,
            )
        self.store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
        self.store.approve_instance(baseline, "test")
        fake.calls.clear()

    def identity(self, uid: str) -> dict[str, str]:
        return dict(self.fake.user(INSTANCE, uid)["IdentityInfo"])

    def user(self, uid: str) -> dict[str, Any]:
        return self.fake.user(INSTANCE, uid)

    def agent_arn(self, uid: str) -> str:
        return f"{self.arn}/agent/{uid}"

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [(op, p) for op, p in self.fake.calls if not op.startswith(("Describe", "List", "Search"))]

    def set_email(self, uid: str, email: str) -> dict[str, Any]:
        """The change has happened (CloudTrail records it after); the record hides the values."""
        current = self.identity(uid)
        self.client.update_user_identity_info(InstanceId=INSTANCE, UserId=uid, IdentityInfo={**current, "Email": email})
        self.fake.calls.clear()
        hidden = "HIDDEN_DUE_TO_SECURITY_REASONS"
        return {"InstanceId": INSTANCE, "UserId": uid, "IdentityInfo": {"Email": hidden, "FirstName": hidden}}


@pytest.fixture
def users(aws: Any) -> Users:
    return Users(aws)


def responder(aws: Any, mode: str = "enforce", **overrides: Any) -> Any:
    overrides.setdefault("organization_email_domains", ("example.com",))
    return profile_rollback.build(settings(aws, response_mode=mode, **overrides), aws.clients)


def handle(aws: Any, event: dict[str, Any], mode: str = "enforce", **overrides: Any) -> Any:
    return responder(aws, mode, **overrides).handle(CloudTrailEvent.model_validate(event))


# ---- UpdateUserIdentityInfo ----------------------------------------------------------------------
def test_enforce_restores_a_privileged_users_approved_email_and_keeps_the_rest(aws, users):
    params = users.set_email(users.admin, "helpdesk@attacker.example.net")
    outcome = handle(aws, connect_event("UpdateUserIdentityInfo", params))

    assert (outcome.outcome, outcome.severity) == ("restored", "CRITICAL")
    assert users.identity(users.admin) == {"FirstName": "Ada", "LastName": "Admin", "Email": "a.admin@example.com"}
    ((operation, call),) = users.writes()
    assert operation == "UpdateUserIdentityInfo" and call["UserId"] == users.admin
    reasons = outcome.finding["reasons"]
    assert "email outside the organization's domains: helpdesk@attacker.example.net" in reasons
    assert outcome.finding["runbook_url"].endswith("profile-rollback.md#connect-user-takeover")
    (audit,) = aws.audit_records()
    assert audit["action"]["S"] == "UpdateUserIdentityInfo" and audit["status"]["S"] == "taken"
    assert "helpdesk@attacker.example.net" in audit["before"]["S"]


def test_detect_mode_reports_the_exact_call_and_changes_nothing(aws, users):
    params = users.set_email(users.admin, "a.admin@example-support.com")
    outcome = handle(aws, connect_event("UpdateUserIdentityInfo", params), mode="detect")

    assert (outcome.outcome, outcome.severity) == ("alerted", "CRITICAL")  # privileged, whatever the domain
    (action,) = outcome.finding["actions"]
    assert action == {
        "service": "connect",
        "operation": "UpdateUserIdentityInfo",
        "parameters": {
            "InstanceId": INSTANCE,
            "UserId": users.admin,
            "IdentityInfo": {"Email": "a.admin@example.com", "FirstName": "Ada", "LastName": "Admin"},
        },
        "status": "proposed",
    }
    assert users.identity(users.admin)["Email"] == "a.admin@example-support.com"
    assert users.writes() == [] and aws.audit_records() == []


def test_an_unprivileged_users_change_is_alerted_never_restored(aws, users):
    users.client.update_user_identity_info(
        InstanceId=INSTANCE, UserId=users.agent, IdentityInfo={**users.identity(users.agent), "LastName": "Agent-Two"}
    )
    users.fake.calls.clear()
    renamed = handle(aws, connect_event("UpdateUserIdentityInfo", {"InstanceId": INSTANCE, "UserId": users.agent}))
    assert (renamed.outcome, renamed.severity) == ("alerted", "MEDIUM")
    assert renamed.finding["actions"] == [] and users.writes() == []
    assert users.identity(users.agent)["LastName"] == "Agent-Two"

    # Outside the organization's domains: CRITICAL, still alert only.
    params = users.set_email(users.agent, "ben@freemail.example.org")
    outside = handle(aws, connect_event("UpdateUserIdentityInfo", params))
    assert (outside.outcome, outside.severity) == ("alerted", "CRITICAL")
    assert outside.finding["actions"] == [] and users.writes() == []
    # With no domain list, an agent's email change is MEDIUM.
    other = handle(aws, connect_event("UpdateUserIdentityInfo", params), organization_email_domains=())
    assert other.severity == "MEDIUM"


def test_no_recorded_identity_alerts_and_acts_on_nothing(aws):
    users = Users(aws, record=False)  # a baseline approved before identity info was recorded
    params = users.set_email(users.admin, "x@attacker.example.net")
    outcome = handle(aws, connect_event("UpdateUserIdentityInfo", params))
    assert (outcome.outcome, outcome.severity) == ("alerted", "CRITICAL")
    assert outcome.finding["actions"] == [] and users.writes() == []
    assert any(r.startswith("no approved value recorded for FirstName") for r in outcome.finding["reasons"])


def test_a_user_not_in_the_baseline_and_a_missing_baseline_alert_only(aws, users):
    newcomer = users.fake.add_user(INSTANCE, "c.new", [users.admin_profile], email="c.new@evil.example.net")
    event = connect_event("UpdateUserIdentityInfo", {"InstanceId": INSTANCE, "UserId": newcomer})
    outcome = handle(aws, event)
    assert (outcome.outcome, outcome.severity) == ("alerted", "CRITICAL")
    assert outcome.finding["actions"] == [] and users.writes() == []
    # The instance's baseline deleted: fail closed, nothing read from Connect.
    aws.clients.dynamodb.delete_item(
        TableName=aws.baseline_table, Key={"pk": {"S": f"instance#{users.arn}"}, "sk": {"S": "meta"}}
    )
    params = users.set_email(users.admin, "x@attacker.example.net")
    lost = handle(aws, connect_event("UpdateUserIdentityInfo", params))
    assert (lost.outcome, lost.severity) == ("alerted", "CRITICAL")
    assert users.fake.calls == [] and users.identity(users.admin)["Email"] == "x@attacker.example.net"


def test_the_suites_own_restore_is_ignored_and_a_look_alike_is_not(aws, users):
    params = users.set_email(users.admin, "x@attacker.example.net")
    own = assumed("connect-guard-dev-member-rollback", "connect-guard", "/connect-guard/")
    assert handle(aws, connect_event("UpdateUserIdentityInfo", params, own)).outcome == "ignored"
    assert users.fake.calls == []
    lookalike = assumed("connect-guard-dev-member-rollback", "connect-guard", "/")  # no member-stack path
    assert handle(aws, connect_event("UpdateUserIdentityInfo", params, lookalike)).outcome == "restored"
    assert users.identity(users.admin)["Email"] == "a.admin@example.com"


def test_allowlisted_is_info_and_not_acted_on_and_denied_is_medium(aws, users):
    params = users.set_email(users.admin, "x@attacker.example.net")
    pipeline = assumed("ConnectChangePipeline", "d-1")
    allowed = handle(aws, connect_event("UpdateUserIdentityInfo", params, pipeline), allowlisted_principals=(PIPELINE,))
    assert (allowed.outcome, allowed.severity) == ("alerted", "INFO")
    assert allowed.finding["actor"]["allowlisted"] is True and users.writes() == []
    users.fake.calls.clear()
    denied = handle(aws, connect_event("UpdateUserIdentityInfo", None, errorCode="AccessDenied"))
    assert (denied.outcome, denied.severity) == ("alerted", "MEDIUM")
    assert users.fake.calls == []


def test_a_baseline_approvers_change_becomes_the_approved_identity(aws, users):
    params = users.set_email(users.admin, "ada@example.com")
    # The approver is allowlisted too; approval wins: the new email is approved, nothing restored.
    outcome = handle(
        aws,
        connect_event("UpdateUserIdentityInfo", params, assumed("ConnectChangePipeline", "d-2")),
        baseline_approvers=(PIPELINE,),
        allowlisted_principals=(PIPELINE,),
    )
    assert (outcome.outcome, outcome.severity) == ("alerted", "INFO")
    approved = users.store.user(users.arn, users.admin)
    assert approved is not None and dict(approved.identity or ())["Email"] == "ada@example.com"
    assert approved.hierarchy_group_id == ADMIN_GROUP and dict(approved.tags or ()) == {"Department": "Administration"}
    assert users.writes() == []


# ---- UpdateUserHierarchy and tags ----------------------------------------------------------------
def test_a_privileged_user_moved_to_another_group_is_put_back(aws, users):
    users.client.update_user_hierarchy(InstanceId=INSTANCE, UserId=users.admin, HierarchyGroupId=SALES_GROUP)
    users.fake.calls.clear()
    params = {"InstanceId": INSTANCE, "UserId": users.admin, "HierarchyGroupId": SALES_GROUP}
    outcome = handle(aws, connect_event("UpdateUserHierarchy", params))
    assert (outcome.outcome, outcome.severity) == ("restored", "HIGH")
    assert users.user(users.admin)["HierarchyGroupId"] == ADMIN_GROUP
    # Out of every group (approved: none): the restore names no group.
    users.client.update_user_hierarchy(InstanceId=INSTANCE, UserId=users.agent, HierarchyGroupId=SALES_GROUP)
    agent = handle(aws, connect_event("UpdateUserHierarchy", {"InstanceId": INSTANCE, "UserId": users.agent}))
    assert (agent.outcome, agent.severity) == ("alerted", "MEDIUM")  # unprivileged: alert only
    assert users.user(users.agent)["HierarchyGroupId"] == SALES_GROUP


def test_a_privileged_users_group_removed_is_restored_and_a_hierarchy_change_back_is_ignored(aws, users):
    users.client.update_user_hierarchy(InstanceId=INSTANCE, UserId=users.admin)  # out of every group
    event = connect_event("UpdateUserHierarchy", {"InstanceId": INSTANCE, "UserId": users.admin})
    assert handle(aws, event).outcome == "restored"
    assert users.user(users.admin)["HierarchyGroupId"] == ADMIN_GROUP
    again = connect_event("UpdateUserHierarchy", {"InstanceId": INSTANCE, "UserId": users.admin})
    assert handle(aws, again).outcome == "ignored"


def test_a_privileged_users_tags_are_put_back_added_ones_removed(aws, users):
    arn = users.agent_arn(users.admin)
    users.client.tag_resource(resourceArn=arn, tags={"Department": "Sales", "Team": "floor"})
    users.fake.calls.clear()
    encoded = arn.replace(":", "%3A").replace("/", "%2F")
    outcome = handle(aws, connect_event("TagResource", {"resourceArn": encoded, "tags": {"Department": "Sales"}}))
    assert (outcome.outcome, outcome.severity) == ("restored", "HIGH")
    assert users.client.list_tags_for_resource(resourceArn=arn)["tags"] == {"Department": "Administration"}
    assert [op for op, _ in users.writes()] == ["TagResource", "UntagResource"]
    # An approved tag removed: UntagResource is judged the same way.
    users.client.untag_resource(resourceArn=arn, tagKeys=["Department"])
    untag = handle(aws, connect_event("UntagResource", {"resourceArn": arn, "tagKeys": ["Department"]}))
    assert untag.outcome == "restored" and users.user(users.admin)["Tags"] == {"Department": "Administration"}


def test_tags_of_other_resources_are_ignored_with_no_connect_call(aws, users):
    for arn in (users.arn, f"{users.arn}/queue/q-1", f"{users.arn}/agent-group/{SALES_GROUP}"):
        outcome = handle(aws, connect_event("TagResource", {"resourceArn": arn, "tags": {"k": "v"}}))
        assert outcome.outcome == "ignored" and "not a user" in (outcome.reason or ""), arn
    assert users.fake.calls == [] and aws.inbox() == []


def test_a_user_of_another_account_named_by_the_event_is_not_read(aws, users):
    other = users.agent_arn(users.admin).replace(ACCOUNT, "444455556666")
    outcome = handle(aws, connect_event("TagResource", {"resourceArn": other, "tags": {"k": "v"}}))
    assert (outcome.outcome, outcome.severity) == ("alerted", "HIGH")
    assert "names a user of account 444455556666" in outcome.finding["reasons"][0]
    assert users.fake.calls == []


# ---- faults --------------------------------------------------------------------------------------
def test_a_throttled_restore_is_retried_and_the_last_attempt_says_failed(aws, users):
    params = users.set_email(users.admin, "x@attacker.example.net")
    event = CloudTrailEvent.model_validate(connect_event("UpdateUserIdentityInfo", params))
    guard = responder(aws)
    users.fake.fail_next("UpdateUserIdentityInfo", "ThrottlingException", times=10)
    with pytest.raises(ClientError) as raised:
        guard.handle(event)
    guard.give_up(event, raised.value)
    (failed,) = [json.loads(m["Message"]) for m in aws.inbox()]
    assert failed["severity"] == "CRITICAL" and "restore FAILED" in failed["title"]
    assert users.identity(users.admin)["Email"] == "x@attacker.example.net"


def test_a_restore_made_before_a_crash_is_reported_by_the_retry(aws, users):
    params = users.set_email(users.admin, "x@attacker.example.net")
    event = CloudTrailEvent.model_validate(connect_event("UpdateUserIdentityInfo", params))
    guard = responder(aws)
    publish = guard.publisher.publish

    def crash(*_: Any, **__: Any) -> Any:
        raise ConnectionError("the container died before the alert")

    guard.publisher.publish = crash
    with pytest.raises(ConnectionError):
        guard.handle(event)
    assert users.identity(users.admin)["Email"] == "a.admin@example.com"  # made, not reported
    guard.publisher.publish = publish
    retried = guard.handle(event)
    assert retried.outcome == "restored" and retried.finding["actions"][0]["status"] == "taken"
    assert guard.journal.get(finding_id_of("profile_rollback", event.detail.event_id)) is not None
    assert [op for op, _ in users.writes()] == ["UpdateUserIdentityInfo"]  # once


def test_the_restore_refused_by_connect_is_critical_failed(aws, users):
    params = users.set_email(users.admin, "x@attacker.example.net")
    users.fake.fail_next("UpdateUserIdentityInfo", "AccessDeniedException")
    outcome = handle(aws, connect_event("UpdateUserIdentityInfo", params))
    assert (outcome.outcome, outcome.severity) == ("alerted", "CRITICAL")
    assert outcome.finding["reasons"][0].startswith("RESTORE DID NOT HAPPEN: AccessDeniedException")
    assert outcome.finding["actions"][0]["status"] == "failed"


def test_user_baseline_round_trips_its_new_fields(aws, users):
    stored = users.store.user(users.arn, users.admin)
    assert stored is not None
    assert dict(stored.identity or ()) == {
        "Email": "a.admin@example.com",
        "FirstName": "Ada",
        "LastName": "Admin",
        "SecondaryEmail": "",
    }
    agent = users.store.user(users.arn, users.agent)
    assert agent is not None and agent.hierarchy_group_id == "" and agent.tags == ()  # recorded as none
    users.store.approve_user(users.arn, replace(agent, identity=None, hierarchy_group_id=None, tags=None), "t")
    old = users.store.user(users.arn, users.agent)
    assert old is not None and (old.identity, old.hierarchy_group_id, old.tags) == (None, None, None)


# ---- the sweep ------------------------------------------------------------------------------------
def test_the_sweep_records_privileged_users_emails_and_reports_identity_drift_critical(aws, users):
    from connect_guard.connect import InstanceRef
    from connect_guard.sweep import build

    sweep = build(settings(aws, response_mode="enforce"), aws.clients)
    instance = InstanceRef.parse(users.arn, ACCOUNT, REGION)
    sweep.approve(sweep.gateway(instance), "soc@example.com")
    # One DescribeUser, for the privileged user only: the others' names come from SearchUsers.
    assert [p["UserId"] for op, p in users.fake.calls if op == "DescribeUser"] == [users.admin]
    admin, agent = users.store.user(users.arn, users.admin), users.store.user(users.arn, users.agent)
    assert admin is not None and dict(admin.identity or ())["Email"] == "a.admin@example.com"
    assert agent is not None and dict(agent.identity or ()) == {"FirstName": "Ben", "LastName": "Agent"}
    assert (admin.hierarchy_group_id, admin.tags) == (ADMIN_GROUP, (("Department", "Administration"),))

    users.set_email(users.admin, "x@attacker.example.net")
    result = sweep.sweep(instance)
    (drift,) = result.drift
    assert drift.id == users.admin and "Email=x@attacker.example.net" in drift.added
    finding = json.loads(aws.inbox()[-1]["Message"])
    assert finding["severity"] == "CRITICAL" and result.plans == []  # reported; the event path restores
    assert users.identity(users.admin)["Email"] == "x@attacker.example.net"


# ---- AWS calls per event (behaviour: DESIGN's rollback budget, as for a profile rollback) ----------
def test_a_restore_and_an_alert_make_the_rollbacks_calls_and_no_more(aws, users):
    from collections import Counter

    from tests.integration.call_counts import CallCounter

    guard = responder(aws)
    params = users.set_email(users.admin, "x@attacker.example.net")
    with CallCounter(aws) as counter:
        with counter.counting():
            assert (
                guard.handle(CloudTrailEvent.model_validate(connect_event("UpdateUserIdentityInfo", params))).outcome
                == "restored"
            )
        assert counter.by_operation == Counter(
            {
                "dynamodb:Query": 1,  # the whole baseline: completeness, the user, the approved profiles
                "connect:DescribeUser": 1,  # the values CloudTrail hides, re-read before acting
                "dynamodb:PutItem": 1,  # the journal, before the write
                "connect:UpdateUserIdentityInfo": 1,
                "dynamodb:TransactWriteItems": 1,  # the audit record and the journal's mark
                "sns:Publish": 1,
            }
        )
        renamed = {**users.identity(users.agent), "LastName": "Agent-Two"}
        users.client.update_user_identity_info(InstanceId=INSTANCE, UserId=users.agent, IdentityInfo=renamed)
        event = connect_event("UpdateUserIdentityInfo", {"InstanceId": INSTANCE, "UserId": users.agent})
        with counter.counting():
            assert guard.handle(CloudTrailEvent.model_validate(event)).outcome == "alerted"
        assert counter.by_operation == Counter({"dynamodb:Query": 1, "connect:DescribeUser": 1, "sns:Publish": 1})
