"""The scheduled sweep: bootstrap, drift the CloudTrail path missed, rollback of privileged drift."""

from __future__ import annotations

import json

from connect_guard.baseline import BaselineStore
from connect_guard.sweep import build
from tests.integration.test_profile_rollback import INSTANCE, Instance


def sweep(aws, mode: str = "detect"):
    return build(aws.settings(response_mode=mode, connect_instance_arns=(aws.connect_arn,)), aws.clients)


def findings(aws) -> list[dict]:
    return [json.loads(m["Message"]) for m in aws.inbox()]


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
    assert len(aws.clients.dynamodb.scan(TableName=aws.audit_table)["Items"]) == 2

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
