"""Least privilege across every role: explicit roles under the suite path, no wildcard, writes
that name what they write, member roles only with enrolled accounts, and detect enforced by IAM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.template.stack import (
    CONNECT_SERVICE_ROLES,
    DENY_LIST_SCP,
    ENFORCES,
    EXPORTABLE_LOG_GROUPS,
    FUNCTIONS,
    IAM_ROLE_WRITES,
    IAM_USER_WRITES,
    KEY_GRANT_FOR_SERVICES,
    MEMBER_SSO_ROLE,
    OWN_CONNECT_RESOURCES,
    OWN_HIERARCHY_GROUPS,
    OWN_KEYS,
    OWN_ROLES,
    OWN_USERS,
    ROLES,
    SUITE_ROLE_PATH,
    WRITE_VERBS,
    T,
    as_list,
    function_role,
    grants,
    is_suite_role_guard,
    member_role,
    objects_of,
    parameters,
    props,
    resolve,
    resources_of,
    role_statements,
    target,
    without_no_value,
)

# ---- least privilege -----------------------------------------------------------------------------
# Actions without resource-level permissions (no resource type in the Service Authorization
# Reference): the only ones a statement may grant on "*", each alone in its statement. All are
# reads: a write that can't be scoped (e.g. logs:CancelExportTask) is not granted at all.
UNSCOPABLE_READS = {
    "iam:ListRoles",
    "logs:DescribeExportTasks",
    "logs:DescribeLogGroups",
    "cloudtrail:DescribeTrails",
    "connect:ListInstances",
}
UNSCOPABLE_WRITES = {"logs:CancelExportTask"}
UNSCOPABLE = UNSCOPABLE_READS | UNSCOPABLE_WRITES


def is_unscopable(statement: dict[str, Any]) -> bool:
    actions = as_list(statement["Action"])
    return (
        statement["Effect"] == "Allow"
        and len(actions) == 1
        and actions[0] in UNSCOPABLE
        and as_list(statement["Resource"]) == ["*"]
        and "Condition" not in statement
    )


def test_every_role_of_the_stack_is_under_the_suite_path() -> None:
    # Responders ignore changes made by principals under this path: none of ours may be elsewhere.
    assert {
        "SweepSchedulerRole",
        "ProfileRollbackFunctionRole",
        "BaselineSweepFunctionRole",
        "QuarantineFunctionRole",
        "RoleSnapshotFunctionRole",
    } <= set(ROLES)
    for name, role in ROLES.items():
        assert role["Properties"]["Path"] == SUITE_ROLE_PATH, name
        assert "ManagedPolicyArns" not in role["Properties"], name
        for statement in role_statements(role["Properties"]):
            if is_suite_role_guard(statement):
                continue
            assert statement["Effect"] == "Allow", name
            assert not any("*" in a for a in as_list(statement["Action"])), name
            if is_unscopable(statement):
                continue
            assert all(r != "*" for r in resources_of(statement)), f"{name}: {statement.get('Sid')}"


def test_every_function_role_is_explicit_under_the_suite_path() -> None:
    for name in FUNCTIONS:
        assert "Policies" not in props(name) and "RolePath" not in props(name), name
        role, role_props = function_role(name)
        assert role_props["Path"] == SUITE_ROLE_PATH, role
        # A fixed name: member stacks trust this exact ARN, and the suite knows itself by it.
        slug = Path(props(name)["CodeUri"]).name.replace("_", "-")
        assert role_props["RoleName"] == {"Fn::Sub": f"connect-guard-${{Environment}}-{slug}"}, role
        assert "SUITE_ROLE_PATH" not in props(name)["Environment"]["Variables"], name
        assert "ManagedPolicyArns" not in role_props, f"{role}: managed policies are not scoped"
        trust = role_props["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}], role


def test_function_statements_name_no_wildcard_resource() -> None:
    for name in FUNCTIONS:
        _, role_props = function_role(name)
        for statement in role_statements(role_props):
            if is_suite_role_guard(statement):
                continue
            assert statement["Effect"] == "Allow"
            actions = as_list(statement["Action"])
            assert not any("*" in a for a in actions), f"{name}: wildcard action in {statement['Sid']}"
            if is_unscopable(statement):
                continue
            for resource in resources_of(statement):
                assert resource != "*", f"{name}: {statement['Sid']} applies to every resource"
                if any(a.split(":")[1].startswith(WRITE_VERBS) for a in actions):
                    # Writes name one resource of this stack (or the objects of its bucket), or
                    # (AssumeRole) one role name, or (Connect rollback) this account's instances,
                    # or (quarantine) this account's users or roles, or (export) the log groups
                    # exported: instances, principals and log groups are not ours to name.
                    connect_only = all(a.startswith("connect:") for a in actions)
                    users_only = set(actions) <= IAM_USER_WRITES
                    roles_only = set(actions) <= IAM_ROLE_WRITES
                    export_only = set(actions) == {"logs:CreateExportTask"}
                    deny_list_only = all(a.startswith("organizations:") for a in actions)
                    trails_only = all(a.startswith("cloudtrail:") for a in actions)
                    # (storage restore) Connect checks these on the caller: a policy on its own
                    # service-linked role (IAM lets only Connect change it), and a KMS grant only an
                    # AWS service may create (kms:GrantIsForAWSResource).
                    connect_role_only = actions == ["iam:PutRolePolicy"] and resource == CONNECT_SERVICE_ROLES
                    service_grant_only = actions == ["kms:CreateGrant"] and statement.get("Condition") == (
                        KEY_GRANT_FOR_SERVICES
                    )
                    log_groups_only = set(actions) <= {"logs:CreateLogGroup", "logs:PutRetentionPolicy"}
                    assert (
                        target(resource)
                        or objects_of(resource)
                        or resource in [member_role(p) for p in ("read", "rollback", "quarantine", "logs")]
                        or resource == MEMBER_SSO_ROLE  # one role, in the one Identity Center account
                        or (connect_only and resource in OWN_CONNECT_RESOURCES)
                        # (user guard) the hierarchy group a user is put back in: this account's groups.
                        or (actions == ["connect:UpdateUserHierarchy"] and resource == OWN_HIERARCHY_GROUPS)
                        or (users_only and resource == OWN_USERS)
                        or (roles_only and resource == OWN_ROLES)
                        or (export_only and resource in EXPORTABLE_LOG_GROUPS)
                        or (deny_list_only and resource == DENY_LIST_SCP)  # one policy ID, any organization
                        # (trail restore) this account's trails: the operator's, not ours to name.
                        or (trails_only and resource == OWN_TRAILS)
                        or connect_role_only
                        or (service_grant_only and resource == OWN_KEYS)
                        # (plumbing restore) the suite's log groups and the Connect instance's, as exported.
                        or (log_groups_only and resource in EXPORTABLE_LOG_GROUPS[1:])
                    ), f"{name}: {statement['Sid']} writes to a pattern"


def test_no_role_holds_a_write_on_everything() -> None:
    # CancelExportTask has no resource type: granted on "*" it could cancel any export task of
    # the account, so no role holds it.
    holders = {
        name
        for name, role in ROLES.items()
        for statement in role_statements(role["Properties"])
        if is_unscopable(statement) and set(as_list(statement["Action"])) & UNSCOPABLE_WRITES
    }
    assert holders == set()


# Functions that never leave this account: no member role, whatever the configuration.
OWN_TRAILS = {"Fn::Sub": "arn:${AWS::Partition}:cloudtrail:*:${AWS::AccountId}:trail/*"}
OWN_ACCOUNT_ONLY = {
    "SlackNotifierFunction",
    "SecurityHubImportFunction",
    "ChatNotifierFunction",
    "LivenessFunction",  # the canaries come to it; it reads nothing in the member accounts
}


@pytest.mark.parametrize("function", sorted(OWN_ACCOUNT_ONLY))
def test_own_account_functions_never_assume_a_role(function: str) -> None:
    _, role_props = function_role(function)
    assert all("Fn::If" not in p for p in role_props["Policies"])
    assert not any(a.startswith("sts:") for a in grants(role_props))


@pytest.mark.parametrize("function", sorted(set(FUNCTIONS) - OWN_ACCOUNT_ONLY))
def test_member_roles_are_assumed_only_with_enrolled_accounts(function: str) -> None:
    _, role_props = function_role(function)
    unconditional = [p for p in role_props["Policies"] if "Fn::If" not in p]
    statements = [s for p in unconditional for s in without_no_value(p["PolicyDocument"]["Statement"])]
    assert all("sts:AssumeRole" not in as_list(s["Action"]) for s in statements)
    (conditional,) = [p["Fn::If"] for p in role_props["Policies"] if "Fn::If" in p]
    assert conditional[0] == "HasMemberAccounts" and conditional[2] == {"Ref": "AWS::NoValue"}
    assert T["Conditions"]["HasMemberAccounts"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "MemberAccountIds"}, ""]}]}
    # The read role always (the log archive's: the logs role, which only reads); a write role
    # only inside the function's own control's condition.
    read, *writers = conditional[1]["PolicyDocument"]["Statement"]
    assert read["Resource"] == member_role("logs" if function == "LogExportFunction" else "read")
    for writer in writers:
        condition, statement, otherwise = writer["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        if condition == "RevokesIdentityCenterInMember":  # the one account administering Identity Center
            assert {"Condition": ENFORCES[function]} in T["Conditions"][condition]["Fn::And"]
            assert statement["Resource"] == MEMBER_SSO_ROLE
            continue
        assert condition == ENFORCES[function]
        assert statement["Resource"] in (member_role("rollback"), member_role("quarantine"))


# ---- detect is enforced by IAM -------------------------------------------------------------------
def test_the_sweep_and_the_quarantine_record_audit_entries_only_in_enforce_mode() -> None:
    # They write audit records only for what they did; the rollback also records an allowlisted
    # change it approves as the new baseline, in either mode.
    for function in ("BaselineSweepFunction", "QuarantineFunction"):
        _, role_props = function_role(function)
        (own,) = [p for p in role_props["Policies"] if "Fn::If" not in p]
        plain = [s for s in own["PolicyDocument"]["Statement"] if "Fn::If" not in s]
        assert not any(s["Sid"] == "AuditRecords" for s in plain), function
        (audit,) = [
            s["Fn::If"]
            for s in own["PolicyDocument"]["Statement"]
            if "Fn::If" in s and s["Fn::If"][1]["Sid"] == "AuditRecords"
        ]
        assert audit[0] == ENFORCES[function] and audit[2] == {"Ref": "AWS::NoValue"}, function
        assert audit[1]["Action"] == "dynamodb:PutItem" and target(audit[1]["Resource"]) == "AuditTable", function


def test_the_action_journal_is_read_by_key_in_enforce_mode_only_and_never_the_audit_records() -> None:
    # A retry reads the journal item of its own finding; the audit records stay out of reach.
    for function in ("ProfileRollbackFunction", "QuarantineFunction", "BaselineSweepFunction"):
        _, role_props = function_role(function)
        (own,) = [p for p in role_props["Policies"] if "Fn::If" not in p]
        (journal,) = [
            s["Fn::If"]
            for s in own["PolicyDocument"]["Statement"]
            if "Fn::If" in s and s["Fn::If"][1]["Sid"] == "ReadActionJournal"
        ]
        assert journal[0] == ENFORCES[function] and journal[2] == {"Ref": "AWS::NoValue"}, function
        statement = journal[1]
        assert statement["Action"] == "dynamodb:GetItem" and target(statement["Resource"]) == "AuditTable", function
        assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["finding#*"]}}
        plain = [s for s in own["PolicyDocument"]["Statement"] if "Fn::If" not in s]
        reads = [s for s in plain if target(s["Resource"]) == "AuditTable" and s["Action"] != "dynamodb:PutItem"]
        assert reads == [], function


def resolved_statements(role: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """A role's statements as CloudFormation would deploy them with these parameters."""
    statements: list[dict[str, Any]] = []
    for policy in resolve(props(role).get("Policies", []), params):
        statements += as_list(policy["PolicyDocument"]["Statement"])
    return statements


CONTROL_WRITES = ("iam:", "connect:")


@pytest.mark.parametrize("mode", ["detect", "enforce"])
def test_a_detect_deployment_holds_no_iam_or_connect_write_and_no_write_role(mode: str) -> None:
    params = parameters(ResponseMode=mode, MemberAccountIds="111122223333", DeactivateAccessKeys="true")
    writes: dict[str, set[str]] = {}
    assumable: set[str] = set()
    for role in ROLES:
        if role == "CanaryRole":  # its own canary tag on itself, in either mode (test_liveness_canary.py)
            continue
        for statement in resolved_statements(role, params):
            if statement["Effect"] != "Allow":
                continue
            for action in as_list(statement["Action"]):
                if action.startswith(CONTROL_WRITES) and action.split(":")[1].startswith(WRITE_VERBS):
                    writes.setdefault(role, set()).add(action)
                if action == "sts:AssumeRole":
                    assumable |= {r.rsplit("-", 1)[-1] for r in as_list(statement["Resource"])}
    if mode == "detect":
        assert writes == {}
        assert assumable == {"read", "logs"}  # the log archive's logs role reads only
    else:
        assert set(writes) == {
            "ProfileRollbackFunctionRole",
            "BaselineSweepFunctionRole",
            "QuarantineFunctionRole",
            "LoggingGuardFunctionRole",
        }
        assert assumable == {"read", "logs", "rollback", "quarantine"}


def test_the_core_knows_every_role_the_stack_names() -> None:
    from connect_guard.settings import SUITE_ROLES, member_role_name, suite_role_name

    names = {resolve(role["Properties"]["RoleName"], parameters()) for role in ROLES.values()}
    # The canary role has the member stacks' name: one canary identity in every account.
    canary = member_role_name("dev", "canary")
    assert names == {suite_role_name("dev", control) for control in SUITE_ROLES} | {canary}
