"""The scheduled sweep: bootstrap, drift the CloudTrail path missed, rollback of privileged drift."""

from __future__ import annotations

import json

from connect_guard.baseline import BaselineStore
from connect_guard.connect import InstanceRef
from connect_guard.discovery import KIND, KIND_UNCHECKED
from connect_guard.sweep import build
from tests.integration.test_profile_rollback import INSTANCE, Instance, assumed, connect_event, pipeline

DISCOVERY_KINDS = (KIND, KIND_UNCHECKED)


def sweep(aws, mode: str = "detect"):
    return build(aws.settings(response_mode=mode, connect_instance_arns=(aws.connect_arn,)), aws.clients)


def findings(aws) -> list[dict]:
    """The drift findings: the demo state's instances, not configured here, are discovery's
    (tests/integration/test_instance_discovery.py)."""
    return [f for m in aws.inbox() if not (f := json.loads(m["Message"]))["kind"].startswith(DISCOVERY_KINDS)]


def test_first_sweep_records_the_baseline(aws):
    fake = aws.connect
    aws.connect_arn = fake.add_instance("111122223333", "us-east-1", INSTANCE, "fresh")
    agent = fake.add_security_profile(INSTANCE, "Agent", ["BasicAgentAccess"])
    user = fake.add_user(INSTANCE, "new.agent", [agent])

    (result,) = sweep(aws).run()

    assert result.bootstrapped
    approved = BaselineStore(aws.clients.dynamodb, aws.baseline_table).instance(aws.connect_arn)
    assert approved.users[user].security_profile_ids == {agent}
    assert approved.profiles[agent].permissions == {"BasicAgentAccess"}
    (finding,) = findings(aws)
    assert finding["severity"] == "INFO" and finding["kind"] == "connect.baseline_drift"


def test_drift_without_a_cloudtrail_event_is_reported_and_rolled_back_in_enforce_mode(aws):
    instance = Instance(aws)
    aws.connect_arn = instance.arn
    instance.client.update_security_profile(  # e.g. an admin-website edit CloudTrail never delivered
        InstanceId=INSTANCE,
        SecurityProfileId=instance.manager,
        Permissions=["AccessMetrics", "Users.View", "ManagerListenIn"],
    )
    instance.client.update_user_security_profiles(
        InstanceId=INSTANCE, UserId=instance.user, SecurityProfileIds=[instance.agent, instance.admin]
    )

    detect = sweep(aws).run()[0]
    assert {d.name for d in detect.drift} == {"CallCenterManager", "m.garcia"}
    (finding,) = findings(aws)
    assert finding["severity"] == "CRITICAL"  # Admin; the profile's ManagerListenIn alone would be HIGH
    assert "privileged: Admin, ManagerListenIn" in finding["title"]
    assert [a["status"] for a in finding["actions"]] == ["proposed", "proposed"]
    assert instance.fake.profile(INSTANCE, instance.manager)["Permissions"] == [
        "AccessMetrics",
        "ManagerListenIn",
        "Users.View",
    ]

    enforced = sweep(aws, "enforce").run()[0]
    assert [status for _, _, status in enforced.plans] == ["taken", "taken"]
    assert instance.fake.profile(INSTANCE, instance.manager)["Permissions"] == ["AccessMetrics", "Users.View"]
    assert instance.user_profiles() == {instance.agent}
    audits = aws.audit_records()
    (rolled_back,) = findings(aws)
    # Each rollback's audit record names the finding the SOC received about it.
    assert [a["finding_id"]["S"] for a in audits] == [rolled_back["finding_id"]] * 2

    assert sweep(aws, "enforce").run()[0].drift == []  # converged: nothing left to report


def test_non_privileged_drift_is_reported_low_and_left_alone(aws):
    instance = Instance(aws)
    aws.connect_arn = instance.arn
    instance.client.update_security_profile(
        InstanceId=INSTANCE,
        SecurityProfileId=instance.agent,
        Permissions=["BasicAgentAccess"],
        AllowedAccessControlTags={"Department": "Finance"},
    )
    result = sweep(aws, "enforce").run()[0]
    assert result.plans == []
    (finding,) = findings(aws)
    assert finding["severity"] == "LOW"
    assert "profile Agent: +[tag:Department=Finance] -[OutboundCallAccess]" in finding["reasons"]


def _delete(aws, arn: str, keep=lambda sk: False) -> None:
    db = aws.clients.dynamodb
    items = db.query(
        TableName=aws.baseline_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"instance#{arn}"}},
    )["Items"]
    for item in items:
        if not keep(item["sk"]["S"]):
            db.delete_item(TableName=aws.baseline_table, Key={"pk": item["pk"], "sk": item["sk"]})


def test_a_lost_baseline_is_critical_and_never_re_recorded(aws):
    instance = Instance(aws)
    aws.connect_arn = instance.arn
    instance.client.update_user_security_profiles(
        InstanceId=INSTANCE, UserId=instance.user, SecurityProfileIds=[instance.agent, instance.admin]
    )
    _delete(aws, instance.arn)  # the whole partition: not a first deployment, the registry remembers
    store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
    for mode in ("detect", "enforce"):
        (result,) = sweep(aws, mode).run()
        assert not result.bootstrapped and result.incomplete and result.plans == []
    assert [f["severity"] for f in findings(aws)] == ["CRITICAL", "CRITICAL"]
    assert store.instance(instance.arn).empty  # the escalated state was not approved
    assert instance.user_profiles() == {instance.agent, instance.admin}


def test_a_shrunk_baseline_is_critical_and_nothing_is_rolled_back(aws):
    instance = Instance(aws)
    aws.connect_arn = instance.arn
    _delete(aws, instance.arn, keep=lambda sk: not sk.startswith("user#"))
    (result,) = sweep(aws, "enforce").run()
    assert "approved 3 profiles and 2 users, the table holds 3 and 0" in (result.incomplete or "")
    (finding,) = findings(aws)
    assert finding["severity"] == "CRITICAL" and finding["actions"] == []


def test_an_allowlisted_escalation_is_still_drift_for_the_next_sweep(aws):
    instance = Instance(aws)
    aws.connect_arn = instance.arn
    params = {"InstanceId": INSTANCE, "UserId": instance.user, "SecurityProfileIds": "***"}
    instance.client.update_user_security_profiles(
        InstanceId=INSTANCE, UserId=instance.user, SecurityProfileIds=[instance.agent, instance.admin]
    )
    pipe = pipeline(aws, "enforce", allowlisted_principals=("arn:aws:iam::111122223333:role/ConnectChangePipeline",))
    result = pipe.process(connect_event("UpdateUserSecurityProfiles", params, assumed("ConnectChangePipeline", "d")))
    assert result["severity"] == "INFO"
    aws.inbox()
    (swept,) = sweep(aws).run()
    assert [d.name for d in swept.drift] == ["m.garcia"]
    assert "privileged: Admin" in findings(aws)[0]["title"]


def test_approve_baseline_is_audited_alerted_and_completes_a_partial_baseline(aws):
    instance = Instance(aws)
    aws.connect_arn = instance.arn
    instance.client.update_user_security_profiles(
        InstanceId=INSTANCE, UserId=instance.user, SecurityProfileIds=[instance.agent, instance.admin]
    )
    _delete(aws, instance.arn, keep=lambda sk: sk != "meta")
    control = sweep(aws)
    control.approve(control.gateway(InstanceRef.parse(instance.arn, "", "")), "soc@example.com")
    (finding,) = findings(aws)
    assert finding["severity"] == "HIGH" and finding["title"].startswith("Baseline approved by soc@example.com")
    assert "approved privileged gain: Admin" in finding["reasons"]
    (audit,) = aws.audit_records()
    assert audit["action"]["S"] == "ApproveBaseline" and audit["actor"]["S"] == "soc@example.com"
    assert audit["finding_id"]["S"] == finding["finding_id"]
    assert BaselineStore(aws.clients.dynamodb, aws.baseline_table).problem(instance.arn) is None
    assert sweep(aws).run()[0].drift == []
