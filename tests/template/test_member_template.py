"""member/template.yaml: what source accounts deploy must match what the security stack expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.api import lint_file

from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.template.test_template import (
    CONNECT_READ_ACTIONS,
    CONNECT_WRITE_ACTIONS,
    OWN_CONNECT_RESOURCES,
    suite_tag_keys_only,
)

MEMBER = PROJECT_ROOT / "member" / "template.yaml"

# This account's IAM users and roles, and what the quarantine may do to them (as in the
# security stack's QuarantineFunctionRole and RoleSnapshotFunctionRole).
OWN_USERS = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"}
OWN_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"}
SUITE_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/connect-guard/*"}
QUARANTINE_POLICY_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/connect-guard/${QuarantinePolicyName}"
}
IAM_POLICY_ATTACHMENT = {"iam:AttachUserPolicy", "iam:DetachUserPolicy"}
IAM_ROLE_POLICY_ATTACHMENT = {"iam:AttachRolePolicy", "iam:DetachRolePolicy"}
IAM_USER_WRITES = IAM_POLICY_ATTACHMENT | {"iam:UpdateAccessKey", "iam:TagUser", "iam:UntagUser"}
IAM_ROLE_WRITES = IAM_ROLE_POLICY_ATTACHMENT | {"iam:TagRole", "iam:UntagRole"}
IAM_QUARANTINE_WRITES = IAM_USER_WRITES | IAM_ROLE_WRITES
IAM_PRINCIPAL_READS = {
    "iam:GetRole",
    "iam:ListRoleTags",
    "iam:GetUser",
    "iam:ListAttachedUserPolicies",
    "iam:ListAccessKeys",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
}


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
    rules = ("PolicyAttachmentRule", "ProfileRollbackRule", "RoleProtectionRule", "InstanceDeletionRule")
    assert forwarded == {rule: security[rule]["Properties"]["EventPattern"] for rule in rules}
    # Every rule of the security stack with a pattern is forwarded.
    patterned = {
        n for n, r in security.items() if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]
    }
    assert set(forwarded) == patterned


def test_iam_is_forwarded_from_us_east_1_and_connect_from_every_region():
    conditions = template()["Conditions"]
    resources = member()
    # IAM delivers to EventBridge only in us-east-1; IAM roles are global: created once, there.
    assert conditions["IsUsEast1"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}
    assert resources["ForwardRole"]["Condition"] == "IsUsEast1"
    assert resources["MemberRole"]["Condition"] == "IsUsEast1"
    assert resources["ForwardPolicyAttachmentRule"]["Condition"] == "ForwardsIam"
    assert resources["ForwardRoleProtectionRule"]["Condition"] == "ForwardsIam"
    assert conditions["ForwardsIam"] == {"Fn::And": [{"Condition": "IsUsEast1"}, {"Condition": "ForwardsConnect"}]}
    # Connect events arrive in the instance's region: the rule exists wherever the stack does,
    # except on the security account's own bus (it would forward to itself).
    assert resources["ForwardProfileRollbackRule"]["Condition"] == "ForwardsConnect"
    assert resources["ForwardInstanceDeletionRule"]["Condition"] == "ForwardsConnect"
    # Every IAM-sourced rule is us-east-1 only; every Connect-sourced one is everywhere.
    condition_by_source = {"aws.iam": "ForwardsIam", "aws.connect": "ForwardsConnect"}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Events::Rule":
            (source,) = resource["Properties"]["EventPattern"]["source"]
            assert resource["Condition"] == condition_by_source[source], name
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


def _member_statements() -> list[dict[str, Any]]:
    role = member()["MemberRole"]["Properties"]
    return [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_member_role_is_read_only_on_iam_except_the_quarantine_and_writes_only_two_connect_actions():
    role = member()["MemberRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["ArnLike"]["aws:PrincipalArn"]["Fn::Sub"].endswith(":role${SuiteRolePath}*")
    statements = _member_statements()
    allows = [s for s in statements if s["Effect"] == "Allow"]
    actions = {a for s in allows for a in as_list(s["Action"])}
    assert not any("*" in a for a in actions), actions
    assert {a.split(":")[0] for a in actions} == {"iam", "connect"}
    # IAM: reads, plus exactly the quarantine's writes (checked statement by statement below).
    iam = {a for a in actions if a.startswith("iam:")}
    writes = {a for a in iam if not a.split(":")[1].startswith(("Get", "List", "Describe"))}
    assert writes == IAM_QUARANTINE_WRITES, writes
    assert iam - writes == IAM_PRINCIPAL_READS | {"iam:ListRoles", "iam:GetPolicy", "iam:GetPolicyVersion"}
    # On Connect: reads, and only the two updates a rollback makes.
    connect = {a for a in actions if a.startswith("connect:")}
    assert connect == CONNECT_READ_ACTIONS | CONNECT_WRITE_ACTIONS
    writes = {a for a in connect if not a.split(":")[1].startswith(("Get", "List", "Describe", "Search"))}
    assert writes == CONNECT_WRITE_ACTIONS
    for statement in allows:
        statement_actions = set(as_list(statement["Action"]))
        resources = as_list(statement["Resource"])
        if "*" in resources:
            # Only iam:ListRoles, which has no resource-level permissions, alone in its statement.
            assert statement_actions == {"iam:ListRoles"} and resources == ["*"], statement
            continue
        if statement_actions & (CONNECT_READ_ACTIONS | CONNECT_WRITE_ACTIONS):
            # This account's instances and their users and profiles; never "*".
            assert resources == OWN_CONNECT_RESOURCES, statement
            writes_here = statement_actions & CONNECT_WRITE_ACTIONS
            assert not writes_here or statement_actions == CONNECT_WRITE_ACTIONS, statement
        if statement_actions & IAM_QUARANTINE_WRITES:
            # Quarantine writes live apart from reads, users apart from roles, all in this account.
            if statement_actions & IAM_USER_WRITES:
                assert statement_actions <= IAM_USER_WRITES and resources == [OWN_USERS], statement
            else:
                assert statement_actions <= IAM_ROLE_WRITES and resources == [OWN_ROLES], statement
        elif statement_actions & IAM_PRINCIPAL_READS:
            assert resources == [OWN_USERS, OWN_ROLES], statement


def _statements(role: str) -> list[dict[str, Any]]:
    """A member role's statements, `Fn::If` branches expanded (AWS::NoValue dropped)."""
    statements = []
    for policy in member()[role]["Properties"]["Policies"]:
        for item in policy["PolicyDocument"]["Statement"]:
            branches = item["Fn::If"][1:] if "Fn::If" in item else [item]
            statements += [b for b in branches if b != {"Ref": "AWS::NoValue"}]
    return statements


def test_member_quarantine_role_exists_only_in_enforce_mode_and_holds_only_the_quarantines_writes():
    resource = member()["QuarantineRole"]
    assert resource["Condition"] == "HasWriteRoles"
    assert template()["Conditions"]["HasWriteRoles"] == {
        "Fn::And": [{"Condition": "HasMemberRoles"}, {"Condition": "IsEnforce"}]
    }
    allows = [s for s in _statements("QuarantineRole") if s["Effect"] == "Allow"]
    actions = {a for s in allows for a in as_list(s["Action"])}
    # No inline policy is ever written, nothing is read here (the read role decides).
    assert actions == IAM_QUARANTINE_WRITES
    for statement in allows:
        statement_actions = set(as_list(statement["Action"]))
        resources = as_list(statement["Resource"])
        # Users apart from roles, all in this account.
        if statement_actions <= IAM_USER_WRITES:
            assert resources == [OWN_USERS], statement["Sid"]
        else:
            assert statement_actions <= IAM_ROLE_WRITES and resources == [OWN_ROLES], statement["Sid"]


def test_member_quarantine_role_attaches_and_detaches_only_the_quarantine_policy():
    for attaching, resource in ((IAM_POLICY_ATTACHMENT, OWN_USERS), (IAM_ROLE_POLICY_ATTACHMENT, OWN_ROLES)):
        allows = [s for s in _statements("QuarantineRole") if s["Effect"] == "Allow"]
        (statement,) = [s for s in allows if set(as_list(s["Action"])) & attaching]
        assert set(as_list(statement["Action"])) == attaching
        assert as_list(statement["Resource"]) == [resource]
        assert statement["Condition"] == {"ArnEquals": {"iam:PolicyARN": QUARANTINE_POLICY_ARN}}


def test_member_quarantine_role_tags_only_with_the_suites_own_keys():
    allows = [s for s in _statements("QuarantineRole") if s["Effect"] == "Allow"]
    tagging = [s for s in allows if any("Tag" in a for a in as_list(s["Action"]))]
    assert {a for s in tagging for a in as_list(s["Action"])} == {
        "iam:TagUser",
        "iam:UntagUser",
        "iam:TagRole",
        "iam:UntagRole",
    }
    for statement in tagging:
        assert suite_tag_keys_only(statement), statement["Sid"]


def test_member_quarantine_role_never_modifies_the_suites_roles():
    denies = [s for s in _statements("QuarantineRole") if s["Effect"] != "Allow"]
    (guard,) = denies
    assert guard["Effect"] == "Deny"
    assert set(as_list(guard["Action"])) == IAM_ROLE_WRITES
    # Every member role (forward, read, rollback, this one) is under /connect-guard/.
    assert as_list(guard["Resource"]) == [SUITE_ROLES]
    assert "Condition" not in guard
    for name, resource in member().items():
        if resource["Type"] == "AWS::IAM::Role":
            assert resource["Properties"]["Path"] == "/connect-guard/", name


def test_member_read_role_reads_what_the_quarantine_checks():
    granted: dict[str, list[Any]] = {}
    for statement in _statements("ReadRole"):
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    # Already quarantined? (the policy among the principal's attached policies)
    for action in ("iam:ListAttachedUserPolicies", "iam:ListAttachedRolePolicies"):
        assert granted[action] == [OWN_USERS, OWN_ROLES], action
    # The policy's default version, compared with the deny-all before attaching.
    own_policies = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/*"}
    for action in ("iam:GetPolicy", "iam:GetPolicyVersion"):
        assert granted[action] == [own_policies], action


def test_member_quarantine_policy_matches_the_security_stacks():
    security = load_template()["Resources"]["QuarantinePolicy"]["Properties"]
    resource = member()["QuarantinePolicy"]
    p = resource["Properties"]
    assert resource["Type"] == "AWS::IAM::ManagedPolicy"
    assert p == security  # same name parameter, path, description and deny-all document
    (statement,) = as_list(p["PolicyDocument"]["Statement"])
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert QUARANTINE_POLICY_ARN["Fn::Sub"] == (
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy" + p["Path"] + "${QuarantinePolicyName}"
    )
    params = template()["Parameters"]
    assert params["QuarantinePolicyName"]["Default"] == "connect-guard-quarantine"
    assert params["QuarantinePolicyName"]["Default"] == load_template()["Parameters"]["QuarantinePolicyName"]["Default"]


def test_member_quarantine_policy_is_created_once_per_account_outside_the_security_account():
    # IAM is global: us-east-1 only. In the security account the connect-guard stack owns it
    # already (same name and path), so a member stack there must not create it again.
    conditions = template()["Conditions"]
    assert member()["QuarantinePolicy"]["Condition"] == "OwnsQuarantinePolicy"
    assert conditions["OwnsQuarantinePolicy"] == {
        "Fn::And": [{"Condition": "IsUsEast1"}, {"Fn::Not": [{"Condition": "IsSecurityAccount"}]}]
    }
    assert conditions["IsSecurityAccount"] == {"Fn::Equals": [{"Ref": "AWS::AccountId"}, {"Ref": "SecurityAccountId"}]}
