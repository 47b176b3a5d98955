"""member/template.yaml: what source accounts deploy must match what the security stack expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.api import lint_file

from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.template.stack import (
    CONNECT_LIST,
    CONNECT_READ_ACTIONS,
    CONNECT_SERVICE_ROLES,
    CONNECT_USER_WRITES,
    CONNECT_WRITE_ACTIONS,
    FLOW_LOGS_READ,
    FLOW_LOGS_WRITE,
    IAM_POLICY_ATTACHMENT,
    IAM_ROLE_POLICY_ATTACHMENT,
    IAM_ROLE_WRITES,
    IAM_USER_WRITES,
    KEY_GRANT_FOR_SERVICES,
    KEY_READS,
    KEY_WRITES,
    OWN_CONNECT_RESOURCES,
    OWN_CONNECT_USERS,
    OWN_HIERARCHY_GROUPS,
    OWN_KEYS,
    OWN_ROLES,
    OWN_TRAILS,
    OWN_USERS,
    QUARANTINE_POLICY_ARN,
    STORAGE_CHECKS,
    STORAGE_READ,
    STORAGE_WRITE,
    SUITE_ROLES,
    TRAIL_LIST,
    TRAIL_READS,
    TRAIL_RESTORES,
    as_list,
    suite_tag_keys_only,
)

MEMBER = PROJECT_ROOT / "member" / "template.yaml"

# What the quarantine may do to this account's IAM users and roles, and what it reads of them
# (as in the security stack's QuarantineFunctionRole and RoleSnapshotFunctionRole).
IAM_QUARANTINE_WRITES = IAM_USER_WRITES | IAM_ROLE_WRITES
IAM_PRINCIPAL_READS = {
    "iam:GetRole",
    "iam:ListRoleTags",
    "iam:ListAttachedUserPolicies",
    "iam:ListAccessKeys",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
}
# policy alerts, escalation without an attachment: a group's and a user's policies.
PRINCIPAL_POLICY_READS = {
    "iam:ListAttachedGroupPolicies",
    "iam:ListGroupPolicies",
    "iam:GetGroupPolicy",
    "iam:ListUserPolicies",
    "iam:GetUserPolicy",
    "iam:ListGroupsForUser",
}
OWN_GROUPS = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:group/*"}


def template() -> dict[str, Any]:
    return load_template(Path(MEMBER))


def member() -> dict[str, Any]:
    return template()["Resources"]


def test_member_template_is_lint_clean():
    assert [str(m) for m in lint_file(MEMBER)] == []


def test_forwarding_rules_use_the_security_stacks_patterns():
    security = load_template()["Resources"]
    forwarded = {
        name.removeprefix("Forward"): r["Properties"]["EventPattern"]
        for name, r in member().items()
        if r["Type"] == "AWS::Events::Rule"
    }
    rules = (
        "PolicyAttachmentRule",
        "PermissionSetRule",
        "ProfileRollbackRule",
        "RoleProtectionRule",
        "InstanceDeletionRule",
        "LoggingGuardRule",
        "LoggingGuardConnectRule",
        "LoggingGuardKeyRule",
        "LoggingGuardPlumbingRule",
        "LivenessCanaryRule",
    )
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
    assert resources["ReadRole"]["Condition"] == "HasMemberRoles"
    assert resources["ForwardPolicyAttachmentRule"]["Condition"] == "ForwardsIam"
    assert resources["ForwardRoleProtectionRule"]["Condition"] == "ForwardsIam"
    assert conditions["ForwardsIam"] == {"Fn::And": [{"Condition": "IsUsEast1"}, {"Condition": "ForwardsConnect"}]}
    # Connect events arrive in the instance's region: the rule exists wherever the stack does,
    # except on the security account's own bus (it would forward to itself).
    assert resources["ForwardProfileRollbackRule"]["Condition"] == "ForwardsConnect"
    assert resources["ForwardInstanceDeletionRule"]["Condition"] == "ForwardsConnect"
    # Every IAM-sourced rule is us-east-1 only; every Connect-sourced one is everywhere.
    # Trails are regional (a multi-region trail's calls arrive in its home region): everywhere too.
    condition_by_source = {
        "aws.iam": "ForwardsIam",
        "aws.connect": "ForwardsConnect",
        "aws.cloudtrail": "ForwardsConnect",
        "aws.kms": "ForwardsConnect",  # keys are regional
        "aws.sso": "ForwardsIdentityCenter",  # Identity Center's instance region, wherever that is
    }
    for name, resource in resources.items():
        if name == "ForwardLivenessCanaryRule":  # IAM's canary in us-east-1, Connect's everywhere
            assert resource["Condition"] == "ForwardsConnect"
            continue
        if name == "ForwardLoggingGuardPlumbingRule":  # rules and log groups are regional: everywhere
            assert resource["Condition"] == "ForwardsConnect"
            continue
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
    # A fixed name and path, so the stacks outside us-east-1 (and the bus policy) can build its ARN.
    assert role["RoleName"] == {"Fn::Sub": "connect-guard-${Environment}-member-forward"}
    assert role["Path"] == "/connect-guard/"
    forward = "connect-guard-${Environment}-member-forward"
    constructed = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/connect-guard/" + forward}
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


def _without_no_value(items: list[Any]) -> list[Any]:
    """List items with `Fn::If` expanded to both branches (AWS::NoValue dropped)."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and "Fn::If" in item:
            out += _without_no_value(item["Fn::If"][1:])
        elif item != {"Ref": "AWS::NoValue"}:
            out.append(item)
    return out


def _statements(role: str) -> list[dict[str, Any]]:
    properties = member()[role]["Properties"]
    policies = _without_no_value(properties["Policies"])
    return [s for p in policies for s in _without_no_value(as_list(p["PolicyDocument"]["Statement"]))]


def _actions(role: str) -> set[str]:
    return {a for s in _statements(role) if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def _function_role(slug: str) -> dict[str, str]:
    return {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${SecurityAccountId}:role/connect-guard/connect-guard-${Environment}-"
        + slug
    }


MEMBER_ROLES = {
    # role: (purpose in its name, the security stack's function roles it trusts)
    "ReadRole": (
        "read",
        ["policy-alerts", "profile-rollback", "baseline-sweep", "role-quarantine", "role-snapshot", "logging-guard"],
    ),
    "RollbackRole": ("rollback", ["profile-rollback", "baseline-sweep", "logging-guard"]),
    "QuarantineRole": ("quarantine", ["role-quarantine"]),
    "LogsRole": ("logs", ["log-export"]),
}


def test_member_roles_trust_only_the_exact_function_roles_that_need_them():
    from connect_guard.settings import MEMBER_ROLE_PATH, member_role_name

    security_roles = {
        r["Properties"]["RoleName"]["Fn::Sub"]
        for r in load_template()["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
    }
    for name, (purpose, trusted) in MEMBER_ROLES.items():
        role = member()[name]["Properties"]
        # The name and path the security stack's code builds its ARN from.
        assert role["RoleName"] == {"Fn::Sub": member_role_name("${Environment}", purpose)}, name  # type: ignore[arg-type]
        assert role["Path"] == MEMBER_ROLE_PATH == "/connect-guard/", name
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${SecurityAccountId}:root"}}
        assert trust["Action"] == "sts:AssumeRole"
        # Exact ARNs: no ArnLike, no wildcard, no path prefix.
        (operator,) = trust["Condition"]
        assert operator == "ArnEquals", name
        principals = _without_no_value(trust["Condition"]["ArnEquals"]["aws:PrincipalArn"])
        operator_role = {"Ref": "OperatorRoleArn"}
        assert [p for p in principals if p != operator_role] == [_function_role(t) for t in trusted], name
        assert (operator_role in principals) == (name == "QuarantineRole"), name
        for principal in principals:
            assert "*" not in str(principal), name
        # Each trusted ARN is one the security stack really names.
        for slug in trusted:
            assert f"connect-guard-${{Environment}}-{slug}" in security_roles, slug


def test_only_the_read_role_exists_in_detect_mode_and_none_in_the_security_account():
    conditions = template()["Conditions"]
    assert member()["ReadRole"]["Condition"] == "HasMemberRoles"
    assert member()["RollbackRole"]["Condition"] == "HasRollbackRole"
    assert member()["QuarantineRole"]["Condition"] == "HasQuarantineRole"
    assert conditions["HasMemberRoles"] == {
        "Fn::And": [{"Condition": "IsUsEast1"}, {"Fn::Not": [{"Condition": "IsSecurityAccount"}]}]
    }
    # Each write role only where a control that uses it enforces (test_member_modes: every combination).
    assert {"Condition": "HasMemberRoles"} in conditions["HasRollbackRole"]["Fn::And"]
    assert conditions["HasQuarantineRole"] == {
        "Fn::And": [{"Condition": "HasMemberRoles"}, {"Condition": "QuarantineEnforces"}]
    }
    assert conditions["IsEnforce"] == {"Fn::Equals": [{"Ref": "ResponseMode"}, "enforce"]}
    assert template()["Parameters"]["ResponseMode"]["Default"] == "detect"
    # Nothing else in the stack can write to IAM or Connect.
    for name, resource in member().items():
        if resource["Type"] == "AWS::IAM::Role" and name not in MEMBER_ROLES:
            if name == "SsoRevocationRole":  # the Identity Center account's, enforce mode only
                assert {"Condition": "HasQuarantineRole"} in conditions["HasSsoRole"]["Fn::And"]
                assert _actions(name) == {
                    "organizations:DescribePolicy",
                    "organizations:ListTargetsForPolicy",
                    "organizations:UpdatePolicy",
                    "identitystore:GetUserId",
                }
                continue
            if name == "CanaryRole":  # its own canary tag, on itself (and the instance: CanaryConnectPolicy)
                # Not in the security account: the connect-guard stack owns the role there.
                assert member()[name]["Condition"] == "HasMemberRoles"
                assert _actions(name) == {"iam:TagRole"}
                continue
            assert name == "ForwardRole"
            assert _actions(name) == {"events:PutEvents"}


def test_the_read_role_only_reads():
    actions = _actions("ReadRole")
    assert not any("*" in a for a in actions), actions
    assert all(a.split(":")[1].startswith(("Get", "List", "Describe", "Search")) for a in actions), actions
    assert {a for a in actions if a.startswith("iam:")} == IAM_PRINCIPAL_READS | PRINCIPAL_POLICY_READS | {
        "iam:ListRoles",
        "iam:GetPolicy",
        "iam:GetPolicyVersion",
    }
    assert {a for a in actions if a.startswith("connect:")} == (
        CONNECT_READ_ACTIONS | FLOW_LOGS_READ | STORAGE_READ | CONNECT_LIST
    )
    assert {a for a in actions if a.startswith("kms:")} == KEY_READS
    assert {a for a in actions if a.startswith("cloudtrail:")} == TRAIL_READS | TRAIL_LIST
    for statement in _statements("ReadRole"):
        resources = as_list(statement["Resource"])
        statement_actions = set(as_list(statement["Action"]))
        if "*" in resources:
            # Only iam:ListRoles, cloudtrail:DescribeTrails and connect:ListInstances, which have
            # no resource-level permissions, each alone in its statement.
            assert statement_actions in ({"iam:ListRoles"}, TRAIL_LIST, CONNECT_LIST) and resources == ["*"], statement
        elif statement_actions & TRAIL_READS:  # this account's trails only
            assert statement_actions == TRAIL_READS and resources == [OWN_TRAILS], statement
        elif statement_actions & CONNECT_READ_ACTIONS:
            assert resources == OWN_CONNECT_RESOURCES, statement
        elif statement_actions & FLOW_LOGS_READ:  # an instance attribute: the instance alone
            assert statement_actions == FLOW_LOGS_READ and resources == OWN_CONNECT_RESOURCES[:1], statement
        elif statement_actions & STORAGE_READ:  # storage configs: the instance alone
            assert statement_actions == STORAGE_READ and resources == OWN_CONNECT_RESOURCES[:1], statement
        elif statement_actions & KEY_READS:  # this account's keys, nothing else
            assert statement_actions == KEY_READS and resources == [OWN_KEYS], statement
        elif statement_actions & IAM_PRINCIPAL_READS:
            assert resources == [OWN_USERS, OWN_ROLES], statement
        elif statement_actions & PRINCIPAL_POLICY_READS:  # this account's groups and users, nothing else
            assert statement_actions == PRINCIPAL_POLICY_READS and resources == [OWN_GROUPS, OWN_USERS], statement


def test_the_rollback_role_holds_exactly_the_connect_updates_and_the_flow_logs_storage_key_and_trail_restores():
    (statement, users, groups, flow_logs, *storage, keys, trails) = _statements("RollbackRole")
    assert statement["Effect"] == flow_logs["Effect"] == keys["Effect"] == trails["Effect"] == "Allow"
    # profile_rollback's user guard: a privileged user's identity, group and tags, on users only.
    assert set(as_list(users["Action"])) == CONNECT_USER_WRITES and as_list(users["Resource"]) == [OWN_CONNECT_USERS]
    assert as_list(groups["Action"]) == ["connect:UpdateUserHierarchy"]
    assert as_list(groups["Resource"]) == [OWN_HIERARCHY_GROUPS] and users["Effect"] == groups["Effect"] == "Allow"
    # logging_guard's key guard: a key usable again, this account's keys only; no key policy write.
    assert set(as_list(keys["Action"])) == KEY_WRITES and as_list(keys["Resource"]) == [OWN_KEYS]
    # A trail put back to its snapshot: never stopped, deleted or created, and only this account's.
    assert set(as_list(trails["Action"])) == TRAIL_RESTORES
    assert as_list(trails["Resource"]) == [OWN_TRAILS] and "Condition" not in trails
    assert set(as_list(statement["Action"])) == CONNECT_WRITE_ACTIONS
    assert as_list(statement["Resource"]) == OWN_CONNECT_RESOURCES
    assert set(as_list(flow_logs["Action"])) == FLOW_LOGS_WRITE
    assert as_list(flow_logs["Resource"]) == OWN_CONNECT_RESOURCES[:1]
    # The storage restore, and what Connect checks on the caller then: nothing more, nothing wider.
    writes, checks, service_role, grant = storage
    assert all(s["Effect"] == "Allow" for s in storage)
    assert set(as_list(writes["Action"])) == STORAGE_WRITE and as_list(writes["Resource"]) == OWN_CONNECT_RESOURCES[:1]
    assert set(as_list(checks["Action"])) == STORAGE_CHECKS
    assert as_list(service_role["Action"]) == ["iam:PutRolePolicy"]
    assert as_list(service_role["Resource"]) == [CONNECT_SERVICE_ROLES]  # IAM lets only Connect change it
    assert as_list(grant["Action"]) == ["kms:CreateGrant"] and as_list(grant["Resource"]) == [OWN_KEYS]
    assert grant["Condition"] == KEY_GRANT_FOR_SERVICES


def test_member_quarantine_role_exists_only_in_enforce_mode_and_holds_only_the_quarantines_writes():
    resource = member()["QuarantineRole"]
    assert resource["Condition"] == "HasQuarantineRole"
    assert template()["Conditions"]["HasQuarantineRole"] == {
        "Fn::And": [{"Condition": "HasMemberRoles"}, {"Condition": "QuarantineEnforces"}]
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


def test_access_keys_can_be_updated_only_where_the_stack_deactivates_them():
    (statement,) = [s for s in _statements("QuarantineRole") if "iam:UpdateAccessKey" in as_list(s["Action"])]
    (wrapped,) = [
        s["Fn::If"]
        for p in member()["QuarantineRole"]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if isinstance(s, dict) and "Fn::If" in s
    ]
    assert wrapped[0] == "DeactivatesKeys" and wrapped[1] == statement and wrapped[2] == {"Ref": "AWS::NoValue"}
    assert as_list(statement["Action"]) == ["iam:UpdateAccessKey"]


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


# ---- liveness canary -----------------------------------------------------------------------------
def _canary_stack(region: str, instance: str = "") -> Any:
    from tests.template.cfn import Resolver, parameters

    doc = template()
    params = parameters(doc, SecurityAccountId="123456789012", Environment="prod", CanaryConnectInstanceId=instance)
    return Resolver(doc, params, {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": "111122223333"})


def test_each_canary_schedule_writes_exactly_what_its_role_may_write():
    import json

    instance = "f3c95789-ace1-4954-ac5d-6baed2eac902"
    east = _canary_stack("us-east-1", instance)
    role_arn = "arn:aws:iam::111122223333:role/connect-guard/connect-guard-prod-member-canary"
    instance_arn = f"arn:aws:connect:us-east-1:111122223333:instance/{instance}"
    grants = {
        "CanaryIamSchedule": ("CanaryRole", "iam:TagRole", role_arn),
        "CanaryConnectSchedule": ("CanaryConnectPolicy", "connect:TagResource", instance_arn),
    }
    for schedule, (holder, action, resource) in grants.items():
        target = east.resolve(member()[schedule]["Properties"]["Target"])
        service, api = target["Arn"].rsplit(":", 2)[-2:]
        assert f"{service}:{api[0].upper()}{api[1:]}" == action  # aws-sdk:iam:tagRole -> iam:TagRole
        assert target["RoleArn"] in (role_arn, "<CanaryRole.Arn>")
        request = json.loads(target["Input"])
        assert request.get("RoleName", request.get("ResourceArn")).endswith(resource.rsplit("/", 1)[1])
        tags = request["Tags"]
        keys = [t["Key"] for t in tags] if isinstance(tags, list) else list(tags)
        assert keys == ["connect-guard:canary"]  # the value is the scheduled time
        props = east.resolve(member()[holder]["Properties"])
        statements = [s for p in props.get("Policies", [props]) for s in p["PolicyDocument"]["Statement"]]
        (statement,) = statements
        assert (statement["Action"], statement["Resource"]) == (action, resource)
        assert statement["Condition"] == {"ForAllValues:StringEquals": {"aws:TagKeys": ["connect-guard:canary"]}}
    # The role trusts only EventBridge Scheduler, for the account's canary schedule groups.
    (trust,) = member()["CanaryRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    # No instance in a region: no Connect canary there; IAM's only in us-east-1.
    west = _canary_stack("eu-west-2")
    assert not west.deployed("CanaryConnectSchedule") and not west.deployed("CanaryIamSchedule")
    assert _canary_stack("eu-west-2", instance).deployed("CanaryConnectSchedule")


# ---- log archive: the member-logs role and the published export list ------------------------------
def _member_stack(region: str, account: str = "111122223333", **overrides: str) -> Any:
    from tests.template.cfn import Resolver, parameters

    doc = template()
    params = parameters(doc, SecurityAccountId="123456789012", Environment="prod", **overrides)
    return Resolver(doc, params, {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": account})


def test_the_logs_role_reads_log_events_and_what_names_the_groups_nothing_else():
    assert member()["LogsRole"]["Condition"] == "HasMemberRoles"  # global, once, outside the security account
    east = _member_stack("us-east-1")
    statements = east.resolve(member()["LogsRole"]["Properties"])["Policies"][0]["PolicyDocument"]["Statement"]
    granted = {s["Action"]: s["Resource"] for s in statements}
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements)
    assert granted == {
        "logs:FilterLogEvents": "arn:aws:logs:*:111122223333:log-group:/aws/connect/*",
        "logs:DescribeLogGroups": "*",  # no resource-level permission: a group's creation time
        "connect:DescribeInstance": "arn:aws:connect:*:111122223333:instance/*",
        "ssm:GetParameter": "arn:aws:ssm:*:111122223333:parameter/connect-guard/prod/member/export",
    }
    # Its ARN is the one the security stack's code assumes.
    from connect_guard.settings import MEMBER_ROLE_PATH, member_role_name

    assert east.resolve(member()["LogsRole"]["Properties"]["RoleName"]) == member_role_name("prod", "logs")
    assert member()["LogsRole"]["Properties"]["Path"] == MEMBER_ROLE_PATH


def test_each_region_publishes_its_listed_log_groups_and_grants_exactly_that_region():
    import json

    from connect_guard.settings import member_export_parameter

    for region in ("us-east-1", "eu-west-2"):
        stack = _member_stack(region, ExportLogGroups="/acme/ivr,/acme/lambda-hooks")
        parameter = stack.resolve(member()["ExportLogsParameter"]["Properties"])
        assert parameter["Name"] == member_export_parameter("prod")
        assert json.loads(parameter["Value"]) == {"log_groups": ["/acme/ivr", "/acme/lambda-hooks"]}
        assert stack.deployed("ListedLogGroupsPolicy")
        policy = stack.resolve(member()["ListedLogGroupsPolicy"]["Properties"])
        (statement,) = policy["PolicyDocument"]["Statement"]
        assert (statement["Action"], statement["Resource"]) == (
            "logs:FilterLogEvents",
            f"arn:aws:logs:{region}:111122223333:log-group:*",  # this region only, read only
        )
        # Added to the us-east-1 stack's role (by Ref there, so it is created after the role).
        assert policy["RoleName"] in ("<LogsRole>", "connect-guard-prod-member-logs")
    nothing = _member_stack("eu-west-2")
    assert json.loads(nothing.resolve(member()["ExportLogsParameter"]["Properties"]["Value"])) == {"log_groups": []}
    assert not nothing.deployed("ListedLogGroupsPolicy")
    # In the security account: no member role; another region's listed groups go to its log-export
    # role, which pulls there itself; its own region exports by task and publishes nothing.
    own = _member_stack("eu-west-2", account="123456789012", ExportLogGroups="/acme/ivr")
    assert not own.deployed("LogsRole")
    assert own.resolve(member()["ListedLogGroupsPolicy"]["Properties"]["RoleName"]) == "connect-guard-prod-log-export"
    home = _member_stack("us-east-1", account="123456789012", ExportLogGroups="/acme/ivr")
    assert not home.deployed("ExportLogsParameter") and not home.deployed("ListedLogGroupsPolicy")
    # What the parameter may hold needs no JSON escaping: log group characters only.
    pattern = template()["Parameters"]["ExportLogGroups"]["AllowedPattern"]
    import re

    assert re.fullmatch(pattern, "/acme/ivr,/aws/lambda/x_y#1") and not re.fullmatch(pattern, '/a"b')


def test_identity_center_is_forwarded_from_its_instances_region_only():
    conditions = template()["Conditions"]
    # Not us-east-1 by default: Identity Center delivers in the region its instance lives in.
    assert conditions["ForwardsIdentityCenter"] == {
        "Fn::And": [
            {"Condition": "ForwardsConnect"},
            {"Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "IdentityCenterRegion"}]},
        ]
    }
    assert template()["Parameters"]["IdentityCenterRegion"]["Default"] == ""
    assert member()["ForwardPermissionSetRule"]["Condition"] == "ForwardsIdentityCenter"
    # Its read role reads permission sets only where the account administers Identity Center.
    assert conditions["ReadsPermissionSets"] == {
        "Fn::And": [{"Condition": "HasMemberRoles"}, {"Condition": "AdministersIdentityCenter"}]
    }
    read = member()["ReadRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (grant,) = [s["Fn::If"] for s in read if "Fn::If" in s and s["Fn::If"][0] == "ReadsPermissionSets"]
    assert grant[1]["Sid"] == "ReadPermissionSets" and grant[2] == {"Ref": "AWS::NoValue"}
    assert all(action.startswith(("sso:List", "sso:Get")) for action in grant[1]["Action"])
