"""member/template.yaml: what source accounts deploy must match what the security stack expects."""

from __future__ import annotations

from pathlib import Path

from cfnlint.api import lint_file

from connect_guard_tools.template import PROJECT_ROOT, load_template

MEMBER = PROJECT_ROOT / "member" / "template.yaml"


def member() -> dict:
    return load_template(Path(MEMBER))["Resources"]


def test_member_template_is_lint_clean():
    assert [str(m) for m in lint_file(MEMBER)] == []


def test_forwarding_rules_use_the_security_stacks_patterns():
    security = load_template()["Resources"]
    forwarded = {
        name.removeprefix("Forward"): r["Properties"]["EventPattern"]
        for name, r in member().items()
        if r["Type"] == "AWS::Events::Rule"
    }
    assert forwarded == {"PolicyAttachmentRule": security["PolicyAttachmentRule"]["Properties"]["EventPattern"]}


def test_forwarding_targets_the_security_accounts_default_bus_with_a_role():
    for resource in member().values():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        (target,) = resource["Properties"]["Targets"]
        assert "${SecurityAccountId}:event-bus/default" in target["Arn"]["Fn::Sub"]
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardRole", "Arn"]}


def test_member_role_is_read_only_and_trusts_only_the_suites_roles():
    role = member()["MemberRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["ArnLike"]["aws:PrincipalArn"]["Fn::Sub"].endswith(":role${SuiteRolePath}*")
    actions = [a for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] for a in s["Action"]]
    assert all(a.split(":")[1].startswith(("Get", "List", "Describe")) for a in actions), actions
