"""The security account's own canary (template.yaml CanaryRole and schedules) and how the member
stack defers to it when it is deployed in the security account too: one canary, one identity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.template.cfn import Resolver
from tests.template.cfn import parameters as cfn_parameters
from tests.template.stack import T, as_list, deployed, parameters, props, resolve

SECURITY = "123456789012"
INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"
CANARY_TAG = {"ForAllValues:StringEquals": {"aws:TagKeys": ["connect-guard:canary"]}}
MEMBER = load_template(PROJECT_ROOT / "member" / "template.yaml")


def security_stack(region: str = "us-east-1", **overrides: str) -> Resolver:
    params = cfn_parameters(T, Environment="prod", **overrides)
    return Resolver(T, params, {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": SECURITY})


def member_stack(account: str, region: str, security_region: str = "us-east-1", instance: str = "") -> Resolver:
    params = cfn_parameters(
        MEMBER,
        SecurityAccountId=SECURITY,
        SecurityRegion=security_region,
        Environment="prod",
        CanaryConnectInstanceId=instance,
    )
    return Resolver(MEMBER, params, {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": account})


def statements(stack: Resolver, holder: str) -> list[dict[str, Any]]:
    resolved = stack.resolve(T["Resources"][holder]["Properties"])
    return [s for p in resolved.get("Policies", [resolved]) for s in p["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("mode", ["detect", "enforce"])
def test_the_security_accounts_canary_writes_exactly_its_own_tag_in_either_mode(mode: str) -> None:
    """Liveness matters most in detect mode: the canary runs there too, and may write nothing
    but its tag, on itself and on the one instance named."""
    stack = security_stack(ResponseMode=mode, CanaryConnectInstanceId=INSTANCE)
    role_arn = f"arn:aws:iam::{SECURITY}:role/connect-guard/connect-guard-prod-member-canary"
    instance_arn = f"arn:aws:connect:us-east-1:{SECURITY}:instance/{INSTANCE}"
    role = stack.resolve(T["Resources"]["CanaryRole"]["Properties"])
    # The member stacks' name and path: the liveness check knows one canary identity per account.
    assert f"arn:aws:iam::{SECURITY}:role{role['Path']}{role['RoleName']}" == role_arn
    grants = {
        "CanaryIamSchedule": ("CanaryRole", "iam:TagRole", role_arn),
        "CanaryConnectSchedule": ("CanaryConnectPolicy", "connect:TagResource", instance_arn),
    }
    for schedule, (holder, action, resource) in grants.items():
        assert stack.deployed(schedule) and stack.deployed(holder)
        target = stack.resolve(T["Resources"][schedule]["Properties"]["Target"])
        service, api = target["Arn"].rsplit(":", 2)[-2:]
        assert f"{service}:{api[0].upper()}{api[1:]}" == action  # aws-sdk:iam:tagRole -> iam:TagRole
        assert target["RoleArn"] == "<CanaryRole.Arn>"
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}
        request = json.loads(target["Input"].replace("<CanaryRole>", "connect-guard-prod-member-canary"))
        assert request.get("RoleName", request.get("ResourceArn")).endswith(resource.rsplit("/", 1)[1])
        tags = request["Tags"]
        assert ([t["Key"] for t in tags] if isinstance(tags, list) else list(tags)) == ["connect-guard:canary"]
        (statement,) = statements(stack, holder)
        assert (statement["Action"], statement["Resource"], statement["Condition"]) == (action, resource, CANARY_TAG)
    # Trusted by EventBridge Scheduler only, for this account's canary schedule groups: the
    # stack's own group (and member stacks' in this account's other regions) has that name.
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": SECURITY}
    group = stack.resolve(T["Resources"]["CanaryScheduleGroup"]["Properties"]["Name"])
    assert trust["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:scheduler:*:{SECURITY}:schedule-group/{group}"
    assert {stack.resolve(T["Resources"][s]["Properties"]["GroupName"]) for s in grants} == {"<CanaryScheduleGroup>"}


def test_without_an_instance_the_security_account_runs_the_iam_canary_only() -> None:
    stack = security_stack()
    assert stack.deployed("CanaryIamSchedule") and stack.deployed("CanaryRole")
    assert not stack.deployed("CanaryConnectSchedule") and not stack.deployed("CanaryConnectPolicy")


def test_the_liveness_check_knows_the_canary_roles_unique_id() -> None:
    env = props("LivenessFunction")["Environment"]["Variables"]
    assert env["CANARY_ROLE_ID"] == {"Fn::GetAtt": ["CanaryRole", "RoleId"]}
    assert resolve(env["CANARY_ROLE_ID"], parameters()) == "<CanaryRole.RoleId>"
    assert deployed("CanaryRole", parameters(ResponseMode="detect"))


def test_the_liveness_rule_admits_the_security_accounts_canary_role() -> None:
    """The rule's wildcard (kept equal to the member forward rule) covers the role's name."""
    pattern = T["Resources"]["LivenessCanaryRule"]["Properties"]["EventPattern"]["detail"]
    (wildcard,) = pattern["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"]
    name = security_stack().resolve(T["Resources"]["CanaryRole"]["Properties"]["RoleName"])
    prefix, suffix = wildcard["wildcard"].split("*")
    assert name.startswith(prefix) and name.endswith(suffix)


def test_a_member_stack_in_the_security_account_runs_no_second_canary_there() -> None:
    # The security region (us-east-1): the security stack's role and schedules are the canary.
    here = member_stack(SECURITY, "us-east-1", instance=INSTANCE)
    for name in ("CanaryRole", "CanaryIamSchedule", "CanaryConnectSchedule", "CanaryConnectPolicy"):
        assert not here.deployed(name), name
    assert not here.deployed("CanaryScheduleGroup")  # the security stack's group has its name
    assert not here.deployed("ForwardLivenessCanaryRule")  # no forwarding to the bus it is on
    # Another region of the security account with an instance: its Connect canary, on the
    # security stack's role (by name), forwarded to the security region.
    west = member_stack(SECURITY, "eu-west-2", instance=INSTANCE)
    assert west.deployed("CanaryConnectSchedule") and west.deployed("CanaryConnectPolicy")
    assert not west.deployed("CanaryRole") and not west.deployed("CanaryIamSchedule")
    assert west.deployed("ForwardLivenessCanaryRule")
    target = west.resolve(MEMBER["Resources"]["CanaryConnectSchedule"]["Properties"]["Target"])
    assert target["RoleArn"] == f"arn:aws:iam::{SECURITY}:role/connect-guard/connect-guard-prod-member-canary"
    assert west.resolve(MEMBER["Resources"]["CanaryConnectPolicy"]["Properties"]["RoleName"]) == (
        "connect-guard-prod-member-canary"
    )


def test_a_security_stack_outside_us_east_1_has_its_iam_canary_forwarded_from_there() -> None:
    """IAM's CloudTrail events reach EventBridge in us-east-1 only: the security account's
    us-east-1 member stack forwards them (its IAM events need it anyway), canary included."""
    assert security_stack("eu-west-1").deployed("CanaryIamSchedule")
    east = member_stack(SECURITY, "us-east-1", security_region="eu-west-1")
    assert east.deployed("ForwardLivenessCanaryRule") and east.deployed("ForwardPolicyAttachmentRule")
    assert not east.deployed("CanaryRole") and not east.deployed("CanaryIamSchedule")


def test_a_source_accounts_member_stack_keeps_its_own_canary() -> None:
    east = member_stack("111122223333", "us-east-1", instance=INSTANCE)
    for name in ("CanaryRole", "CanaryIamSchedule", "CanaryConnectSchedule", "CanaryScheduleGroup"):
        assert east.deployed(name), name
    assert as_list(MEMBER["Resources"]["CanaryRole"]["Properties"]["Path"]) == ["/connect-guard/"]
