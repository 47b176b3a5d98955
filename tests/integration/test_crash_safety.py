"""No crash loses an alert: the function killed between any two of its writes, then delivered again.

A kill (a timeout, out of memory) is an exception no code under test catches: raised right after
the n-th write a responder makes has been applied, for every n. The dedup claim it leaves behind
stays in progress until the dead invocation's deadline, which has passed by the time SQS delivers
the message again. Each responder then holds: exactly one action, at least one alert, every alert
the same finding (the documented at-least-once) saying what was done, and one audit record per
action made.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from connect_guard.baseline import BaselineStore, ProfileBaseline
from connect_guard.clients import AwsClients
from connect_guard.findings import finding_id_of
from connect_guard.profile_access import ProfileAccess
from connect_guard.responders import policy_alerts, profile_rollback, role_quarantine
from connect_guard.runtime import Pipeline, build_pipeline
from connect_guard_tools.local_aws import SECURITY_ACCOUNT, LocalAws
from tests.conftest import load_event, with_new_event_id
from tests.integration import test_role_quarantine
from tests.integration.delivery import Kill, Killed, Run, audit_items_of, audit_of, deliver, restore_writes
from tests.integration.test_profile_rollback import INSTANCE, Instance, connect_event
from tests.integration.test_profile_rollback import settings as rollback_settings
from tests.integration.test_role_quarantine import ACCOUNT, POLICY_ARN, assumed, attached, iam_event, user

iam = test_role_quarantine.iam  # the fixture: IAM with the sample users and roles
SSO_PATH = "/aws-reserved/sso.amazonaws.com/"
SSO_ROLE = "AWSReservedSSO_ConnectAdmin_0a1b2c3d4e5f6a7b"


def same_finding_every_time(run: Run, responder: str, event: dict[str, Any]) -> dict[str, Any]:
    """At least one alert; duplicates only as the same finding. The last one, as the SOC reads it."""
    assert run.alerts, f"{run.where}: no alert reached the SOC"
    expected = finding_id_of(responder, event["detail"]["eventID"])
    assert {a["finding_id"] for a in run.alerts} == {expected}, run.where
    if run.kill.fired is None or run.kill.after is None:
        assert len(run.alerts) == 1
    return run.alerts[-1]


def kill_points(clean: Run) -> list[int]:
    """Every write of the clean run: the kill falls after each in turn (the last: after the publish)."""
    return list(range(1, len(clean.kill.writes) + 1))


# ---- profile rollback ---------------------------------------------------------------------------
ROLLBACK_STEPS = restore_writes("connect:UpdateUserSecurityProfiles")


def test_a_kill_between_any_two_steps_of_a_rollback_still_alerts_and_rolls_back_once(aws):
    instance = Instance(aws)
    settings = rollback_settings(aws, response_mode="enforce")

    def build(clients: AwsClients) -> Pipeline:
        return build_pipeline(profile_rollback.build, settings, clients)

    def escalation_rolled_back(after: int | None) -> Run:
        event = connect_event("UpdateUserSecurityProfiles", instance.escalate_user())
        run = deliver(aws, build, event, after)
        assert run.result["outcome"] in ("rolled_back", "duplicate"), run.where
        assert run.kill.count("connect:UpdateUserSecurityProfiles") == 1, f"{run.where}: not exactly one rollback"
        assert instance.user_profiles() == {instance.agent}, run.where
        finding = same_finding_every_time(run, "profile_rollback", event)
        assert finding["title"] == "Rolled back: Connect user m.garcia gained Admin", run.where
        assert finding["actions"] == [
            {
                "service": "connect",
                "operation": "UpdateUserSecurityProfiles",
                "parameters": {"InstanceId": INSTANCE, "UserId": instance.user, "SecurityProfileIds": [instance.agent]},
                "status": "taken",
            }
        ], run.where
        assert finding["change"] == {
            "before": ["Admin", "Agent"],
            "after": ["Agent"],
            "gained": ["Admin"],
            "baseline": "approved",
        }, run.where
        assert audit_of(aws, event, "profile_rollback") == [("UpdateUserSecurityProfiles", "taken")], run.where
        return run

    clean = escalation_rolled_back(None)
    for after in kill_points(clean):
        run = escalation_rolled_back(after)
        if after in (3, 4):  # made, then killed before its finding
            assert "completed by an earlier attempt" in run.alerts[0]["reasons"][-1], run.where
    assert clean.kill.writes == ROLLBACK_STEPS  # journaled before the rollback, audited before the finding


def test_a_kill_after_a_profile_rollback_still_reports_what_was_removed(aws):
    instance = Instance(aws)
    settings = rollback_settings(aws, response_mode="enforce")
    client = instance.client
    for after in (None, 3):  # clean, and killed right after UpdateSecurityProfile
        client.update_security_profile(
            InstanceId=INSTANCE,
            SecurityProfileId=instance.manager,
            Permissions=["AccessMetrics", "Users.View", "DownloadCallRecordings"],
        )
        params = {"InstanceId": INSTANCE, "SecurityProfileId": instance.manager, "Permissions": "***"}
        event = connect_event("UpdateSecurityProfile", params)
        run = deliver(aws, lambda c: build_pipeline(profile_rollback.build, settings, c), event, after)
        assert run.kill.count("connect:UpdateSecurityProfile") == 1
        assert instance.fake.profile(INSTANCE, instance.manager)["Permissions"] == ["AccessMetrics", "Users.View"]
        finding = same_finding_every_time(run, "profile_rollback", event)
        assert finding["severity"] == "HIGH"
        assert (
            finding["title"] == "Rolled back: Connect security profile CallCenterManager gained DownloadCallRecordings"
        )
        assert finding["change"]["before"] == ["AccessMetrics", "DownloadCallRecordings", "Users.View"]
        assert finding["change"]["after"] == ["AccessMetrics", "Users.View"]


def test_a_kill_after_a_restriction_rollback_still_reports_what_was_put_back(aws):
    instance = Instance(aws)
    settings = rollback_settings(aws, response_mode="enforce")
    approved = {"AllowedAccessControlTags": {"Department": "Sales"}, "TagRestrictedResources": ["User"]}
    manager = instance.fake.profile(INSTANCE, instance.manager)
    instance.client.update_security_profile(InstanceId=INSTANCE, SecurityProfileId=instance.manager, **approved)
    store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
    access = ProfileAccess.from_api(approved, [])
    store.approve_profile(
        instance.arn,
        ProfileBaseline(instance.manager, "CallCenterManager", frozenset(manager["Permissions"]), access),
        "t",
    )
    for after in (None, 3):  # clean, and killed right after UpdateSecurityProfile
        instance.client.update_security_profile(
            InstanceId=INSTANCE, SecurityProfileId=instance.manager, AllowedAccessControlTags={}
        )
        params = {"InstanceId": INSTANCE, "SecurityProfileId": instance.manager, "AllowedAccessControlTags": {}}
        event = connect_event("UpdateSecurityProfile", params)
        run = deliver(aws, lambda c: build_pipeline(profile_rollback.build, settings, c), event, after)
        assert run.kill.count("connect:UpdateSecurityProfile") == 1
        assert instance.fake.profile(INSTANCE, instance.manager)["AllowedAccessControlTags"] == {"Department": "Sales"}
        finding = same_finding_every_time(run, "profile_rollback", event)
        assert finding["severity"] == "HIGH"  # AccessMetrics, Users.View: nothing privileged held
        assert finding["change"]["gained"] == ["AllowedAccessControlTags: Department=Sales removed"]
        assert finding["actions"][0]["parameters"]["AllowedAccessControlTags"] == {"Department": "Sales"}
        assert finding["change"]["after"] == [
            "AccessMetrics",
            "Users.View",
            "tag-restricted:User",
            "tag:Department=Sales",
        ]
        if after is not None:
            assert "completed by an earlier attempt" in run.alerts[0]["reasons"][-1], run.where


# ---- quarantine ---------------------------------------------------------------------------------
def quarantine_pipeline(aws: LocalAws, **overrides: Any) -> Callable[[AwsClients], Pipeline]:
    settings = aws.settings(response_mode="enforce", **overrides)
    return lambda clients: build_pipeline(role_quarantine.build, settings, clients)


def deletion(actor: dict[str, Any]) -> dict[str, Any]:
    event = iam_event("DeleteRole", actor, {"roleName": "ConnectAgentFederation"})  # tag-protected
    return event.model_dump(mode="json", by_alias=True)


def test_a_kill_between_any_two_steps_of_a_user_quarantine_still_alerts_and_quarantines_once(aws, iam):
    build = quarantine_pipeline(aws, deactivate_access_keys=True)

    def quarantined(after: int | None) -> Run:
        name = f"mallory-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=name)
        iam.create_access_key(UserName=name)
        event = deletion(user(name))
        run = deliver(aws, build, event, after)
        assert run.result["outcome"] in ("quarantined", "duplicate"), run.where
        assert run.kill.count("iam:AttachUserPolicy") == 1, f"{run.where}: not exactly one quarantine"
        assert attached(iam, name) == [POLICY_ARN], run.where
        tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]}
        assert tags["connect-guard:quarantined"] == event["detail"]["eventID"], run.where
        keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
        assert [k["Status"] for k in keys] == ["Inactive"], run.where
        finding = same_finding_every_time(run, "role_quarantine", event)
        assert finding["severity"] == "CRITICAL"
        assert finding["title"] == f"Quarantined {name}: Deleted role ConnectAgentFederation in {ACCOUNT}", run.where
        taken = [(a["operation"], a["status"]) for a in finding["actions"]]
        assert taken == [("AttachUserPolicy", "taken"), ("TagUser", "taken"), ("UpdateAccessKey", "taken")], run.where
        assert f"quarantine policy attached to user {name}" in finding["reasons"][-2], run.where
        assert audit_of(aws, event, "role_quarantine") == [
            ("AttachUserPolicy", "taken"),
            ("TagUser", "taken"),
            ("UpdateAccessKey", "taken"),
        ], run.where
        assert audit_items_of(aws, event, "role_quarantine") == 1, f"{run.where}: one audit item per event"
        return run

    clean = quarantined(None)
    for after in kill_points(clean):
        run = quarantined(after)
        if after in (3, 4, 5, 6):  # attached, then killed before the finding
            assert "completed by an earlier attempt" in run.alerts[0]["reasons"][-2], run.where
    assert clean.kill.writes == [
        "dynamodb:PutItem",  # the dedup claim
        "dynamodb:PutItem",  # the action journal, before IAM is written
        "iam:AttachUserPolicy",
        "iam:TagUser",
        "iam:UpdateAccessKey",
        "dynamodb:TransactWriteItems",  # the audit records, and the journal marked audited
        "sns:Publish",  # the last write: the dedup claim is never completed
    ]


def test_a_kill_between_any_two_steps_of_a_role_quarantine_still_alerts_and_quarantines_once(aws, iam):
    build = quarantine_pipeline(aws)
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})

    def quarantined(after: int | None) -> Run:
        role = f"ops-{uuid.uuid4().hex[:8]}"
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
        event = deletion(assumed(role, "eve"))
        run = deliver(aws, build, event, after)
        assert run.kill.count("iam:AttachRolePolicy") == 1, f"{run.where}: not exactly one quarantine"
        assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]] == [
            POLICY_ARN
        ]
        finding = same_finding_every_time(run, "role_quarantine", event)
        assert finding["title"].startswith(f"Quarantined eve via role {role}: Deleted role ConnectAgentFederation")
        assert [(a["operation"], a["status"]) for a in finding["actions"]] == [
            ("AttachRolePolicy", "taken"),
            ("TagRole", "taken"),
        ], run.where
        assert audit_of(aws, event, "role_quarantine") == [("AttachRolePolicy", "taken"), ("TagRole", "taken")]
        assert audit_items_of(aws, event, "role_quarantine") == 1, f"{run.where}: one audit item per event"
        return run

    clean = quarantined(None)
    for after in kill_points(clean):
        quarantined(after)
    assert clean.kill.writes[1:4] == ["dynamodb:PutItem", "iam:AttachRolePolicy", "iam:TagRole"]


def test_a_kill_between_any_two_steps_of_an_identity_center_revocation_still_alerts_and_denies_once(aws, iam):
    people = [f"p{n}@example.com" for n in range(10)]
    with aws.unmodifiable_roles.aws_side():  # IAM Identity Center provisions it
        iam.create_role(RoleName=SSO_ROLE, Path=SSO_PATH, AssumeRolePolicyDocument="{}")
    center = aws.prepare_identity_center(people)
    build = quarantine_pipeline(
        aws,
        identity_center_account_id=center.account_id,
        identity_store_id=center.identity_store_id,
        sso_deny_list_policy_id=center.policy_id,
    )
    organizations = aws.session.client("organizations")

    def denied() -> list[str]:
        document = json.loads(organizations.describe_policy(PolicyId=center.policy_id)["Policy"]["Content"])
        (ours,) = [s for s in document["Statement"] if s["Sid"] == "ConnectGuardDenyIdentityCenterUsers"]
        return list(ours["Condition"]["StringEquals"]["identitystore:userId"])

    def revoked(person: str, after: int | None) -> Run:
        event = deletion(assumed(SSO_ROLE, person, SSO_PATH))
        run = deliver(aws, build, event, after)
        assert run.kill.count("organizations:UpdatePolicy") == 1, f"{run.where}: not exactly one update"
        assert center.user_ids[person] in denied(), run.where
        finding = same_finding_every_time(run, "role_quarantine", event)
        assert finding["title"].startswith(f"Quarantined {person} via role {SSO_ROLE}"), run.where
        assert [(a["operation"], a["status"]) for a in finding["actions"]] == [("UpdatePolicy", "taken")]
        assert any(f"{person} ({center.user_ids[person]}) added to the deny-list SCP" in r for r in finding["reasons"])
        assert audit_of(aws, event, "role_quarantine") == [("UpdatePolicy", "taken")], run.where
        return run

    clean = revoked(people[0], None)
    for after in kill_points(clean):
        revoked(people[after], after)
    assert clean.kill.writes == [
        "dynamodb:PutItem",
        "dynamodb:PutItem",  # the journal, right before the SCP is written
        "organizations:UpdatePolicy",
        "dynamodb:TransactWriteItems",
        "sns:Publish",
    ]


# ---- policy alerts: nothing but the publish -----------------------------------------------------
def test_a_kill_between_any_two_steps_of_a_policy_alert_still_alerts(aws):
    settings = aws.settings()

    def alerted(after: int | None) -> Run:
        event = with_new_event_id(load_event("iam/attach-user-policy-administratoraccess.json"))
        run = deliver(aws, lambda c: build_pipeline(policy_alerts.build, settings, c), event, after)
        finding = same_finding_every_time(run, "policy_alerts", event)
        assert finding["title"] == "AdministratorAccess attached to user alice in 111122223333"
        assert finding["severity"] == "CRITICAL"
        return run

    clean = alerted(None)
    assert clean.kill.writes == ["dynamodb:PutItem", "sns:Publish"]  # one dedup write: the claim
    for after in kill_points(clean):
        alerted(after)


@pytest.mark.parametrize("after", [1, 2])
def test_a_redelivery_after_the_kill_is_the_one_that_reports(aws, after):
    # Killed before the publish: the alert comes from the redelivery, and only from it.
    event = with_new_event_id(load_event("iam/attach-user-policy-administratoraccess.json"))
    run = deliver(aws, lambda c: build_pipeline(policy_alerts.build, aws.settings(), c), event, after)
    assert run.receives == 2 and run.result["outcome"] == "alerted"
    assert len(run.alerts) == (1 if after == 1 else 2)  # killed after the publish: the same finding twice


# ---- the scheduled sweep: its next run is its retry ---------------------------------------------
def test_a_sweep_killed_between_any_two_steps_is_reported_by_the_next_run_and_rolls_back_once(aws):
    from connect_guard.sweep import build as build_sweep

    instance = Instance(aws)
    settings = aws.settings(response_mode="enforce", connect_instance_arns=(instance.arn,))

    def two_runs(after: int | None) -> tuple[Kill, list[dict[str, Any]]]:
        instance.client.update_user_security_profiles(  # drift no CloudTrail event reported
            InstanceId=INSTANCE, UserId=instance.user, SecurityProfileIds=[instance.agent, instance.admin]
        )
        kill = Kill(after)
        aws.session.events.register("after-call", kill)
        try:
            with contextlib.suppress(Killed):  # the run dies
                build_sweep(settings, AwsClients(aws.region, aws.session, SECURITY_ACCOUNT)).run()
            build_sweep(settings, AwsClients(aws.region, aws.session, SECURITY_ACCOUNT)).run()  # the next run
        finally:
            aws.session.events.unregister("after-call", kill)
        where = f"killed after write {after} ({kill.fired})"
        assert kill.count("connect:UpdateUserSecurityProfiles") == 1, f"{where}: not exactly one rollback"
        assert instance.user_profiles() == {instance.agent}, where
        # The drift's: the demo state's instance, not configured here, is discovery's to report.
        alerts = [a for m in aws.inbox() if (a := json.loads(m["Message"]))["kind"] == "connect.baseline_drift"]
        assert alerts, f"{where}: no alert reached the SOC"
        assert len({a["finding_id"] for a in alerts}) == 1, where  # duplicates only as the same finding
        for alert in alerts:
            assert "privileged: Admin" in alert["title"], where
            assert alert["actions"] == [
                {
                    "service": "connect",
                    "operation": "UpdateUserSecurityProfiles",
                    "parameters": {
                        "InstanceId": INSTANCE,
                        "UserId": instance.user,
                        "SecurityProfileIds": [instance.agent],
                    },
                    "status": "taken",
                }
            ], where
        finding = alerts[0]["finding_id"]
        audit = [(r["action"]["S"], r["status"]["S"]) for r in aws.audit_records() if r["finding_id"]["S"] == finding]
        assert audit == [("UpdateUserSecurityProfiles", "taken")], where
        return kill, alerts

    clean, _ = two_runs(None)
    for after in range(1, len(clean.writes) + 1):
        _, alerts = two_runs(after)
        if after in (2, 3):  # rolled back, then killed before the audit: the next run reports it
            assert "rolled back by an earlier sweep" in alerts[-1]["title"]
    assert clean.writes == [
        "dynamodb:PutItem",  # the journal, before the rollback
        "connect:UpdateUserSecurityProfiles",
        "sns:Publish",
        "dynamodb:TransactWriteItems",  # the audit records, and the journal marked audited
        "sns:Publish",  # discovery: the demo state's instance is not configured here
        "dynamodb:PutItem",  # the unwatched set reported, after the alert
    ]
