"""Role-deletion quarantine and the role snapshot: their parameters and functions, the deny-all
policy, and what they may do to IAM (quarantine, never release; never the suite's own roles)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest

from connect_guard.quarantine import QUARANTINE_TAG, REASON_TAG, SUITE_TAG_KEYS, deny_all_deviation
from connect_guard_tools.local_aws import QUARANTINE_DOCUMENT
from tests.template.stack import (
    CONNECT_SERVICE_ROLES,
    DENY_LIST_SCP,
    IAM_POLICY_ATTACHMENT,
    IAM_ROLE_POLICY_ATTACHMENT,
    IAM_ROLE_WRITES,
    IAM_USER_WRITES,
    IDENTITY_STORE,
    MEMBER_SSO_ROLE,
    OWN_ROLES,
    OWN_USERS,
    QUARANTINE_PARAMETERS,
    QUARANTINE_POLICY_ARN,
    RESOURCES,
    ROLES,
    SUITE_ROLE_PATH,
    SUITE_ROLES,
    WRITE_VERBS,
    T,
    as_list,
    function_role,
    grants,
    is_suite_role_guard,
    member_role,
    props,
    role_statements,
    suite_tag_keys_only,
    target,
)


def test_default_protected_role_names_cover_connects_service_linked_roles() -> None:
    # Connect's service-linked roles are AWSServiceRoleForAmazonConnect_<suffix>, one per instance.
    patterns = T["Parameters"]["ProtectedRoleNames"]["Default"].split(",")
    for role in ("AWSServiceRoleForAmazonConnect", "AWSServiceRoleForAmazonConnect_AbCd1234EfGh"):
        assert any(fnmatch.fnmatchcase(role, p.strip()) for p in patterns), role
    assert not any(fnmatch.fnmatchcase("AWSServiceRoleForSupport", p.strip()) for p in patterns)


def test_snapshot_account_ids_accept_only_account_id_lists() -> None:
    pattern = re.compile(T["Parameters"]["SnapshotAccountIds"]["AllowedPattern"])
    for ok in ("", "111122223333", "111122223333,444455556666", "111122223333, 444455556666"):
        assert pattern.fullmatch(ok), ok
    for bad in ("1111", "111122223333,", "arn:aws:iam::111122223333:root", "*"):
        assert not pattern.fullmatch(bad), bad


@pytest.mark.parametrize(("parameter", "variable"), sorted(QUARANTINE_PARAMETERS.items()))
def test_quarantine_defaults_match_the_core_settings(parameter: str, variable: str) -> None:
    # The stack's default and the core's default are the same setting (read through from_env,
    # so the check holds whatever the field is called).
    from connect_guard.settings import Settings

    minimal = {"ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:111122223333:alerts", "DEDUP_TABLE_NAME": "dedup"}
    default = str(T["Parameters"][parameter]["Default"])
    assert Settings.from_env({**minimal, variable: default}) == Settings.from_env(minimal), parameter


def test_quarantine_function_contract() -> None:
    p = props("QuarantineFunction")
    assert p["CodeUri"] == "functions/role_quarantine"
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 60
    assert p["ReservedConcurrentExecutions"] == {"Ref": "QuarantineConcurrency"}
    assert p["Role"] == {"Fn::GetAtt": ["QuarantineFunctionRole", "Arn"]}
    assert props("QuarantineLogGroup")["LogGroupName"] == {"Fn::Sub": "/connect-guard/${Environment}/role-quarantine"}
    (event,) = p["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"] == {
        "Queue": {"Fn::GetAtt": ["QuarantineQueue", "Arn"]},
        "BatchSize": 5,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": {"Ref": "QuarantineConcurrency"}},
    }
    assert props("QuarantineQueue")["VisibilityTimeout"] == 6 * 60
    assert props("QuarantineQueue")["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["QuarantineDLQ", "Arn"]}


def test_role_snapshot_function_contract() -> None:
    p = props("RoleSnapshotFunction")
    assert p["CodeUri"] == "functions/role_snapshot"
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 300
    assert p["ReservedConcurrentExecutions"] == 1
    assert p["Role"] == {"Fn::GetAtt": ["RoleSnapshotFunctionRole", "Arn"]}
    assert props("RoleSnapshotLogGroup")["LogGroupName"] == {"Fn::Sub": "/connect-guard/${Environment}/role-snapshot"}
    assert "Events" not in p  # invoked by SnapshotSchedule only
    # A failed run is final, so it is alerted once (connect_guard/scheduled.py).
    assert p["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


# ---- what it may do to IAM -----------------------------------------------------------------------
def test_quarantine_policy_denies_everything() -> None:
    policy = RESOURCES["QuarantinePolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    p = policy["Properties"]
    assert p["ManagedPolicyName"] == {"Ref": "QuarantinePolicyName"}
    assert p["Path"] == SUITE_ROLE_PATH
    assert "quarantined IAM users" in p["Description"]
    (statement,) = as_list(p["PolicyDocument"]["Statement"])
    # AWS's compromised-key policies deny a list without connect:*: this one denies everything.
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert "Condition" not in statement and "NotAction" not in statement
    # What the stack deploys is what the quarantine's check accepts, and what the embedded AWS holds.
    assert deny_all_deviation(p["PolicyDocument"]) is None
    assert p["PolicyDocument"] == QUARANTINE_DOCUMENT
    # Attached to nobody by the template: the responder attaches it, under the condition below.
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in resource["Properties"], name
    assert {k: v for k, v in p.items() if k in ("Users", "Roles", "Groups")} == {}
    # The ARN the roles' attach condition names is this policy's (path and name).
    assert QUARANTINE_POLICY_ARN["Fn::Sub"] == (
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy" + p["Path"] + "${QuarantinePolicyName}"
    )


# What the quarantine function holds of the IAM user and role writes: quarantine, never release
# (detach, untag).
RELEASES = {"iam:DetachUserPolicy", "iam:DetachRolePolicy", "iam:UntagUser", "iam:UntagRole"}
FUNCTION_USER_WRITES = IAM_USER_WRITES - RELEASES
FUNCTION_ROLE_WRITES = IAM_ROLE_WRITES - RELEASES


# The quarantine reads principals (protection tags, attached policies, keys) and the quarantine
# policy itself; no role or user document (iam:GetRole and inline policies are the snapshot's,
# in its own role).
QUARANTINE_IAM_READS = (
    *("iam:ListRoleTags", "iam:ListAttachedRolePolicies"),
    *("iam:ListAttachedUserPolicies", "iam:ListAccessKeys"),
)
SNAPSHOT_IAM_READS = (
    *("iam:GetRole", "iam:ListRoleTags", "iam:GetRolePolicy"),
    *("iam:ListAttachedRolePolicies", "iam:ListRolePolicies"),
)

QUARANTINE_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"QuarantineLogGroup"},
    "logs:PutLogEvents": {"QuarantineLogGroup"},
    "sqs:ReceiveMessage": {"QuarantineQueue"},
    "sqs:DeleteMessage": {"QuarantineQueue"},
    "sqs:GetQueueAttributes": {"QuarantineQueue"},
    "sqs:SendMessage": {"QuarantineDLQ"},  # poison, on its first receive
    "sns:Publish": {"AlertTopic"},
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "dynamodb:PutItem": {"DedupTable", "AuditTable"},
    # The eventID claim; a role's snapshot; the action journal (a retry reporting a quarantine made).
    "dynamodb:GetItem": {"DedupTable", "BaselineTable", "AuditTable"},
    "dynamodb:UpdateItem": {"DedupTable"},
    "dynamodb:DeleteItem": {"DedupTable"},
    **{action: [OWN_USERS, OWN_ROLES] for action in QUARANTINE_IAM_READS},
    "iam:GetPolicy": [QUARANTINE_POLICY_ARN],
    "iam:GetPolicyVersion": [QUARANTINE_POLICY_ARN],
    **{action: [OWN_USERS] for action in FUNCTION_USER_WRITES},
    **{action: [OWN_ROLES] for action in FUNCTION_ROLE_WRITES},
    "sts:AssumeRole": [member_role("read"), member_role("quarantine"), MEMBER_SSO_ROLE],
    # Identity Center administered here: the deny-list SCP and the user lookup only.
    **{f"organizations:{verb}": [DENY_LIST_SCP] for verb in ("DescribePolicy", "ListTargetsForPolicy", "UpdatePolicy")},
    "identitystore:GetUserId": IDENTITY_STORE,
}

ROLE_SNAPSHOT_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"RoleSnapshotLogGroup"},
    "logs:PutLogEvents": {"RoleSnapshotLogGroup"},
    "sns:Publish": {"AlertTopic"},  # "Role snapshot FAILED" only
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "dynamodb:PutItem": {"BaselineTable"},  # the snapshots; none is read (the roles are listed)
    "iam:ListRoles": ["*"],
    **{action: [OWN_ROLES] for action in SNAPSHOT_IAM_READS},
    "sts:AssumeRole": [member_role("read")],
}


@pytest.mark.parametrize(
    ("function", "contract"),
    [("QuarantineFunction", QUARANTINE_ACTIONS), ("RoleSnapshotFunction", ROLE_SNAPSHOT_ACTIONS)],
)
def test_iam_responders_have_exactly_the_contract_actions(function: str, contract: dict[str, Any]) -> None:
    _, role_props = function_role(function)
    granted = grants(role_props)
    assert set(granted) == set(contract)
    for action, expected in contract.items():
        if isinstance(expected, set):  # resources of this stack
            assert {target(r) for r in granted[action]} == expected, action
        else:  # patterns: exactly these, in this account (the member roles for the others)
            assert granted[action] == expected, action


def test_the_snapshot_only_reads_iam() -> None:
    _, role_props = function_role("RoleSnapshotFunction")
    iam = {a for a in grants(role_props) if a.startswith("iam:")}
    assert iam and all(a.split(":")[1].startswith(("Get", "List")) for a in iam), iam


def test_iam_writes_only_in_the_quarantine_role() -> None:
    writers = {}
    for name, role in ROLES.items():
        if name == "CanaryRole":  # its own canary tag on itself only (test_liveness_canary.py)
            continue
        for statement in role_statements(role["Properties"]):
            if statement["Effect"] != "Allow":
                continue
            iam = [a for a in as_list(statement["Action"]) if a.startswith("iam:")]
            writes = {a for a in iam if a.split(":")[1].startswith(WRITE_VERBS)}
            if writes:
                writers.setdefault(name, set()).update(writes)
    # No inline policy is ever written: iam:PutRolePolicy on any role could grant anything. And
    # no release: a compromised function can't lift a quarantine. The one exception is what Connect
    # checks on whoever associates storage: PutRolePolicy on Connect's own service-linked roles
    # (IAM refuses to change a service-linked role for anyone but its service), nothing else.
    assert writers == {
        "QuarantineFunctionRole": FUNCTION_USER_WRITES | FUNCTION_ROLE_WRITES,
        "LoggingGuardFunctionRole": {"iam:PutRolePolicy"},
    }
    (service_role,) = [
        s
        for s in role_statements(ROLES["LoggingGuardFunctionRole"]["Properties"])
        if "iam:PutRolePolicy" in as_list(s["Action"])
    ]
    assert as_list(service_role["Action"]) == ["iam:PutRolePolicy"]
    assert as_list(service_role["Resource"]) == [CONNECT_SERVICE_ROLES]


def _quarantine_statements() -> list[dict[str, Any]]:
    """The quarantine role's policy statements as written, `Fn::If` wrappers kept."""
    _, role_props = function_role("QuarantineFunction")
    (own,) = [p for p in role_props["Policies"] if "Fn::If" not in p]
    return list(own["PolicyDocument"]["Statement"])


def test_the_quarantines_iam_writes_exist_only_in_enforce_mode() -> None:
    # Detect deployments hold no IAM write: every one (and the guard) is in a QuarantineEnforces branch.
    enforce_only = T["Conditions"]["DeactivatesKeysInEnforce"]["Fn::And"]
    assert {"Condition": "QuarantineEnforces"} in enforce_only
    for item in _quarantine_statements():
        if "Fn::If" not in item:
            actions = as_list(item["Action"])
            assert all(a.split(":")[1].startswith(("Get", "List")) for a in actions if a.startswith("iam:")), item
            continue
        condition, statement, otherwise = item["Fn::If"]
        enforce_only = ("QuarantineEnforces", "DeactivatesKeysInEnforce", "RevokesIdentityCenterHere")
        assert condition in enforce_only and otherwise == {"Ref": "AWS::NoValue"}
        if condition == "RevokesIdentityCenterHere":  # the SCP and the user lookup, nothing of IAM
            assert {"Condition": "QuarantineEnforces"} in T["Conditions"][condition]["Fn::And"]
            assert not any(a.startswith("iam:") for a in as_list(statement["Action"])), statement["Sid"]
            continue
        if statement["Sid"] in ("AuditRecords", "ReadActionJournal"):  # the record of what enforce mode did
            continue
        assert all(a.startswith("iam:") for a in as_list(statement["Action"])), statement["Sid"]


@pytest.mark.parametrize(
    ("attaching", "resource"), [(IAM_POLICY_ATTACHMENT, OWN_USERS), (IAM_ROLE_POLICY_ATTACHMENT, OWN_ROLES)]
)
def test_only_the_quarantine_policy_can_be_attached_or_detached(attaching: set[str], resource: Any) -> None:
    holders = []
    for name, role in ROLES.items():
        for statement in role_statements(role["Properties"]):
            actions = set(as_list(statement["Action"]))
            if not actions & attaching or statement["Effect"] != "Allow":
                continue
            holders.append(name)
            # Alone in their statement, on users (or roles), and only for the quarantine policy's ARN.
            assert actions == attaching - RELEASES, f"{name}: {statement['Sid']}"
            assert as_list(statement["Resource"]) == [resource], f"{name}: {statement['Sid']}"
            assert statement["Condition"] == {"ArnEquals": {"iam:PolicyARN": QUARANTINE_POLICY_ARN}}, name
    assert holders == ["QuarantineFunctionRole"]


TAG_WRITES = {"iam:TagUser", "iam:UntagUser", "iam:TagRole", "iam:UntagRole"}


def test_tags_are_written_only_with_the_suites_own_keys() -> None:
    tagging = [
        (name, statement)
        for name, role in ROLES.items()
        if name != "CanaryRole"  # the canary's own tag key on itself only (test_liveness_canary.py)
        for statement in role_statements(role["Properties"])
        if statement["Effect"] == "Allow" and set(as_list(statement["Action"])) & TAG_WRITES
    ]
    assert {name for name, _ in tagging} == {"QuarantineFunctionRole"}
    assert {a for _, s in tagging for a in as_list(s["Action"])} == TAG_WRITES - RELEASES
    for _, statement in tagging:
        assert set(as_list(statement["Action"])) in ({"iam:TagUser"}, {"iam:TagRole"})
        assert as_list(statement["Resource"]) in ([OWN_USERS], [OWN_ROLES]), statement["Sid"]
        assert suite_tag_keys_only(statement), statement["Sid"]
    # The keys the code writes, and never the one that marks a role protected.
    assert SUITE_TAG_KEYS == (QUARANTINE_TAG, REASON_TAG)
    assert T["Parameters"]["ProtectedRoleTagKey"]["Default"] not in SUITE_TAG_KEYS


def test_the_quarantine_never_modifies_the_suites_own_roles() -> None:
    # Code keeps the quarantine off the suite's roles; the role enforces it whatever the code does.
    _, role_props = function_role("QuarantineFunction")
    denies = [s for s in role_statements(role_props) if s["Effect"] == "Deny"]
    (guard,) = denies
    assert is_suite_role_guard(guard)
    assert set(as_list(guard["Action"])) == IAM_ROLE_WRITES
    assert guard["Resource"] == [SUITE_ROLES] and "Condition" not in guard
    assert SUITE_ROLES["Fn::Sub"].endswith(":role/connect-guard/*")
    # Every role write the function holds is one the guard covers; beyond them, only reads.
    granted = grants(role_props)
    iam = [a for a in granted if a.startswith("iam:")]
    role_writes = {a for a in iam if "Role" in a and a.split(":")[1].startswith(WRITE_VERBS)}
    assert role_writes == FUNCTION_ROLE_WRITES and role_writes <= set(as_list(guard["Action"]))
    # No other role of the stack holds a Deny (nothing else needs one).
    for name, role in ROLES.items():
        if name != "QuarantineFunctionRole":
            assert all(s["Effect"] == "Allow" for s in role_statements(role["Properties"])), name
