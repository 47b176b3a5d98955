"""member/template.yaml: what source accounts deploy must match what the security stack expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.api import lint_file

from connect_guard_tools.template import PROJECT_ROOT, load_template

MEMBER = PROJECT_ROOT / "member" / "template.yaml"

CONNECT_READ_ACTIONS = {
    "connect:DescribeUser",
    "connect:SearchUsers",
    "connect:ListUsers",
    "connect:DescribeSecurityProfile",
    "connect:ListSecurityProfiles",
    "connect:ListSecurityProfilePermissions",
    "connect:ListSecurityProfileApplications",
}
CONNECT_WRITE_ACTIONS = {"connect:UpdateUserSecurityProfiles", "connect:UpdateSecurityProfile"}
OWN_CONNECT_RESOURCES = [
    {"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*"},
    {"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*/agent/*"},
    {"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*/security-profile/*"},
]


def template() -> dict[str, Any]:
    return load_template(Path(MEMBER))


def member() -> dict[str, Any]:
    return template()["Resources"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_member_template_is_lint_clean():
    assert [str(m) for m in lint_file(MEMBER)] == []


def test_forwarding_rules_use_the_security_stacks_patterns():
    security = load_template()["Resources"]
    forwarded = {
        name.removeprefix("Forward"): r["Properties"]["EventPattern"]
        for name, r in member().items()
        if r["Type"] == "AWS::Events::Rule"
    }
    assert forwarded == {
        "PolicyAttachmentRule": security["PolicyAttachmentRule"]["Properties"]["EventPattern"],
        "ProfileRollbackRule": security["ProfileRollbackRule"]["Properties"]["EventPattern"],
    }


def test_iam_is_forwarded_from_us_east_1_and_connect_from_every_region():
    conditions = template()["Conditions"]
    resources = member()
    # IAM delivers to EventBridge only in us-east-1; IAM roles are global: created once, there.
    assert conditions["IsUsEast1"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}
    assert resources["ForwardRole"]["Condition"] == "IsUsEast1"
    assert resources["MemberRole"]["Condition"] == "IsUsEast1"
    assert resources["ForwardPolicyAttachmentRule"]["Condition"] == "ForwardsIam"
    assert conditions["ForwardsIam"] == {"Fn::And": [{"Condition": "IsUsEast1"}, {"Condition": "ForwardsConnect"}]}
    # Connect events arrive in the instance's region: the rule exists wherever the stack does,
    # except on the security account's own bus (it would forward to itself).
    assert resources["ForwardProfileRollbackRule"]["Condition"] == "ForwardsConnect"
    assert conditions["ForwardsConnect"] == {"Fn::Not": [{"Condition": "IsSecurityBus"}]}
    assert conditions["IsSecurityBus"] == {
        "Fn::And": [
            {"Fn::Equals": [{"Ref": "AWS::AccountId"}, {"Ref": "SecurityAccountId"}]},
            {"Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "SecurityRegion"}]},
        ]
    }


def test_forwarding_targets_the_security_accounts_default_bus_with_a_role():
    resources = member()
    role = resources["ForwardRole"]["Properties"]
    # A fixed name and path, so the stacks outside us-east-1 can build its ARN.
    assert role["RoleName"] == {"Ref": "ForwardRoleName"}
    assert role["Path"] == "/connect-guard/"
    constructed = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/connect-guard/${ForwardRoleName}"}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        (target,) = resource["Properties"]["Targets"]
        assert target["Arn"] == {
            "Fn::Sub": "arn:${AWS::Partition}:events:${SecurityRegion}:${SecurityAccountId}:event-bus/default"
        }, name
        own = {"Fn::GetAtt": ["ForwardRole", "Arn"]}
        if resource["Condition"] == "ForwardsIam":  # us-east-1 only: the role is in this stack
            assert target["RoleArn"] == own, name
        else:
            assert target["RoleArn"] == {"Fn::If": ["IsUsEast1", own, constructed]}, name


def test_forward_role_may_only_put_events_on_the_security_bus():
    role = member()["ForwardRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${SecurityRegion}:${SecurityAccountId}:event-bus/default"
    }


def test_member_role_is_read_only_on_iam_and_writes_only_two_connect_actions():
    role = member()["MemberRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["ArnLike"]["aws:PrincipalArn"]["Fn::Sub"].endswith(":role${SuiteRolePath}*")
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert all(s["Effect"] == "Allow" for s in statements)
    assert not any("*" in a for a in actions), actions
    assert {a.split(":")[0] for a in actions} == {"iam", "connect"}
    # Read-only on IAM.
    iam = {a for a in actions if a.startswith("iam:")}
    assert all(a.split(":")[1].startswith(("Get", "List", "Describe")) for a in iam), iam
    # On Connect: reads, and only the two updates a rollback makes.
    connect = {a for a in actions if a.startswith("connect:")}
    assert connect == CONNECT_READ_ACTIONS | CONNECT_WRITE_ACTIONS
    writes = {a for a in connect if not a.split(":")[1].startswith(("Get", "List", "Describe", "Search"))}
    assert writes == CONNECT_WRITE_ACTIONS
    for statement in statements:
        resources = as_list(statement["Resource"])
        assert "*" not in resources, statement
        if any(a.startswith("connect:") for a in as_list(statement["Action"])):
            # This account's instances and their users and profiles; never "*".
            assert resources == OWN_CONNECT_RESOURCES, statement
            writes_here = set(as_list(statement["Action"])) & CONNECT_WRITE_ACTIONS
            assert not writes_here or set(as_list(statement["Action"])) == CONNECT_WRITE_ACTIONS, statement
