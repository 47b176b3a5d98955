"""Profile rollback and the baseline sweep: what counts as privileged, their functions, and the
only Connect writes of the stack, with exactly the actions their roles hold."""

from __future__ import annotations

import pytest

from tests.template.stack import (
    CONNECT_LIST,
    CONNECT_READ_ACTIONS,
    CONNECT_USER_WRITES,
    CONNECT_WRITE_ACTIONS,
    FLOW_LOGS_READ,
    FLOW_LOGS_WRITE,
    OWN_CONNECT_RESOURCES,
    OWN_CONNECT_USERS,
    OWN_HIERARCHY_GROUPS,
    ROLES,
    STORAGE_READ,
    STORAGE_WRITE,
    T,
    as_list,
    function_role,
    grants,
    member_role,
    props,
    role_statements,
    target,
)


def test_privileged_permissions_default_matches_the_core_settings() -> None:
    from connect_guard.settings import DEFAULT_PRIVILEGED_PERMISSIONS

    default = T["Parameters"]["PrivilegedPermissions"]["Default"]
    assert tuple(default.split(",")) == DEFAULT_PRIVILEGED_PERMISSIONS


def test_profile_rollback_function_contract() -> None:
    p = props("ProfileRollbackFunction")
    assert p["CodeUri"] == "functions/profile_rollback"
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 60
    assert p["ReservedConcurrentExecutions"] == {"Ref": "ProfileRollbackConcurrency"}
    assert p["Role"] == {"Fn::GetAtt": ["ProfileRollbackFunctionRole", "Arn"]}
    (event,) = p["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"] == {
        "Queue": {"Fn::GetAtt": ["ProfileRollbackQueue", "Arn"]},
        "BatchSize": 5,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": {"Ref": "ProfileRollbackConcurrency"}},
    }
    assert props("ProfileRollbackQueue")["VisibilityTimeout"] == 6 * 60
    assert props("ProfileRollbackQueue")["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["ProfileRollbackDLQ", "Arn"]
    }


def test_baseline_sweep_function_contract() -> None:
    p = props("BaselineSweepFunction")
    assert p["CodeUri"] == "functions/baseline_sweep"
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 900
    assert p["ReservedConcurrentExecutions"] == 1
    assert p["Role"] == {"Fn::GetAtt": ["BaselineSweepFunctionRole", "Arn"]}
    assert "Events" not in p  # invoked by SweepSchedule only
    # A failed sweep is not rerun at once by Lambda's async retries: the next run is the retry.
    assert p["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_connect_writes_only_in_the_rollback_and_sweep_roles_and_never_on_everything() -> None:
    writers, flow_log_writers, storage_writers, user_writers = set(), set(), set(), set()
    for name, role in ROLES.items():
        for statement in role_statements(role["Properties"]):
            connect = [a for a in as_list(statement["Action"]) if a.startswith("connect:")]
            if not connect:
                continue
            if set(connect) <= FLOW_LOGS_READ | FLOW_LOGS_WRITE:  # logging_guard: the instance
                assert as_list(statement["Resource"]) == OWN_CONNECT_RESOURCES[:1], f"{name}: {statement['Sid']}"
                assert len(set(connect)) == 1, f"{name}: reads and writes in separate statements"
                if set(connect) == FLOW_LOGS_WRITE:
                    flow_log_writers.add(name)
                continue
            if set(connect) == CONNECT_LIST:  # the sweep's discovery: no resource type, alone on "*"
                assert as_list(statement["Resource"]) == ["*"], f"{name}: {statement['Sid']}"
                continue
            if set(connect) == {"connect:DescribeInstance"}:  # log_export: an instance's alias, the instance alone
                assert as_list(statement["Resource"]) == OWN_CONNECT_RESOURCES[:1], f"{name}: {statement['Sid']}"
                continue
            if set(connect) <= CONNECT_USER_WRITES:  # the user guard: users, and the group a user is put back in
                resources = as_list(statement["Resource"])
                assert resources == [OWN_CONNECT_USERS] or (
                    set(connect) == {"connect:UpdateUserHierarchy"} and resources == [OWN_HIERARCHY_GROUPS]
                ), f"{name}: {statement['Sid']}"
                user_writers.add(name)
                continue
            if set(connect) <= STORAGE_READ | STORAGE_WRITE:  # logging_guard's storage configs: the instance alone
                assert as_list(statement["Resource"]) == OWN_CONNECT_RESOURCES[:1], f"{name}: {statement['Sid']}"
                assert set(connect) in (STORAGE_READ, STORAGE_WRITE), f"{name}: reads and writes in separate statements"
                if set(connect) == STORAGE_WRITE:
                    storage_writers.add(name)
                continue
            assert set(connect) <= CONNECT_READ_ACTIONS | CONNECT_WRITE_ACTIONS, f"{name}: {connect}"
            # Every Connect statement names this account's instances, nothing wider.
            assert as_list(statement["Resource"]) == OWN_CONNECT_RESOURCES, f"{name}: {statement['Sid']}"
            if set(connect) & CONNECT_WRITE_ACTIONS:
                # Reads and writes live in separate statements, so each can be reviewed alone.
                assert set(connect) <= CONNECT_WRITE_ACTIONS, f"{name}: {statement['Sid']}"
                writers.add(name)
    assert writers == {"ProfileRollbackFunctionRole", "BaselineSweepFunctionRole"}
    assert flow_log_writers == {"LoggingGuardFunctionRole"}
    assert storage_writers == {"LoggingGuardFunctionRole"}
    assert user_writers == {"ProfileRollbackFunctionRole"}  # the event path only: the sweep reports


CONNECT_RESPONDER_ACTIONS: dict[str, set[str] | None] = {
    "logs:CreateLogStream": {"<log group>"},
    "logs:PutLogEvents": {"<log group>"},
    "sns:Publish": {"AlertTopic"},
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "dynamodb:PutItem": {"AuditTable"},
    "dynamodb:Query": {"BaselineTable"},
    **dict.fromkeys(CONNECT_WRITE_ACTIONS),
    "sts:AssumeRole": None,
}
# The rollback reads one user or profile and its baseline by key, approves item by item, and
# dedups on the eventID; the sweep pages through users and profiles (applications included)
# and records a first baseline in one batch.
CONNECT_RESPONDER_OWN: dict[str, dict[str, set[str] | None]] = {
    "ProfileRollbackFunction": {
        **dict.fromkeys(
            (
                "connect:DescribeUser",
                "connect:DescribeSecurityProfile",
                "connect:ListSecurityProfiles",
                "connect:ListSecurityProfilePermissions",
                "connect:ListSecurityProfileApplications",  # a profile is judged whole
            )
        ),
        # The baseline by key, the eventID claim, and the action journal (a retry reporting a rollback made).
        "dynamodb:GetItem": {"BaselineTable", "DedupTable", "AuditTable"},
        "dynamodb:PutItem": {"BaselineTable", "AuditTable", "DedupTable"},
        "dynamodb:UpdateItem": {"DedupTable"},
        "dynamodb:DeleteItem": {"DedupTable"},
        **dict.fromkeys(CONNECT_USER_WRITES),  # connect_user_guard's restores
    },
    "BaselineSweepFunction": {
        **dict.fromkeys(
            (
                "connect:SearchUsers",
                "connect:DescribeUser",  # privileged users' emails
                "connect:DescribeSecurityProfile",
                "connect:ListSecurityProfiles",
                "connect:ListSecurityProfilePermissions",
                "connect:ListSecurityProfileApplications",
            )
        ),
        "dynamodb:BatchWriteItem": {"BaselineTable"},
        # The action journal (the last run's unreported rollbacks); the discovery item.
        "dynamodb:GetItem": {"AuditTable", "BaselineTable"},
        "dynamodb:PutItem": {"AuditTable", "BaselineTable"},  # audit records; the discovery item
        "connect:ListInstances": None,  # "*": below
    },
}


@pytest.mark.parametrize(
    ("function", "log_group", "queue"),
    [
        ("ProfileRollbackFunction", "ProfileRollbackLogGroup", "ProfileRollbackQueue"),
        ("BaselineSweepFunction", "BaselineSweepLogGroup", None),
    ],
)
def test_connect_responders_have_exactly_the_contract_actions(function: str, log_group: str, queue: str | None) -> None:
    _, role_props = function_role(function)
    granted = grants(role_props)
    expected = {a: ({log_group} if r == {"<log group>"} else r) for a, r in CONNECT_RESPONDER_ACTIONS.items()}
    expected |= CONNECT_RESPONDER_OWN[function]
    if queue:  # the SQS consumer also owns its queue, and sends poison to its DLQ
        expected |= {a: {queue} for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")}
        expected["sqs:SendMessage"] = {queue.replace("Queue", "DLQ")}
    assert set(granted) == set(expected)
    for action, resources in expected.items():
        if resources is not None:
            assert {target(r) for r in granted[action]} == resources, action
    for action in {a for a in expected if a.startswith("connect:")} - CONNECT_LIST - CONNECT_USER_WRITES:
        assert granted[action] == OWN_CONNECT_RESOURCES, action
    for action in CONNECT_USER_WRITES & set(expected):  # users only; the group a user is put back in
        hierarchy = [OWN_HIERARCHY_GROUPS] if action == "connect:UpdateUserHierarchy" else []
        assert granted[action] == [OWN_CONNECT_USERS, *hierarchy], action
    for action in CONNECT_LIST & set(expected):
        assert granted[action] == ["*"], action
    assert granted["sts:AssumeRole"] == [member_role("read"), member_role("rollback")]


@pytest.mark.parametrize("parameter", ["AllowlistedPrincipals", "BaselineApprovers"])
def test_principal_patterns_are_validated_at_deploy_as_at_start(parameter: str) -> None:
    import re

    from connect_guard import arn_patterns
    from connect_guard_tools.config import stack_parameters

    spec = T["Parameters"][parameter]
    assert spec["AllowedPattern"] == arn_patterns.LIST_PATTERN
    assert re.fullmatch(spec["AllowedPattern"], spec["Default"])
    for env in ("default", "prod"):
        value = stack_parameters(env).get(parameter, "")
        assert re.fullmatch(spec["AllowedPattern"], value), (env, value)
    for forged in (
        "arn:aws:iam::*:role/X",
        "arn:aws:sts::111122223333:assumed-role/X/s",
        "a,b",
        "arn:aws:iam::1:role/X",
    ):
        assert not re.fullmatch(spec["AllowedPattern"], forged)
    # The description's example passes too (no account wildcard).
    examples = re.findall(r"arn:aws:iam::\S+?(?=\)|;|\s|$)", spec["Description"])
    assert all(re.fullmatch(arn_patterns.PATTERN_RE, e) for e in examples), examples
