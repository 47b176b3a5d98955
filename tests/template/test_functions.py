"""What every function gets: its own encrypted log group, reserved concurrency and a bounded
event source, the settings it reads (no more, within Lambda's 4 KB), its schedule, the core layer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connect_guard_tools.template import rule_routes
from tests.template.stack import (
    COMMON_ENV,
    FUNCTIONS,
    MODE_ENV,
    OWN_ENV,
    QUEUES,
    RESOURCES,
    ROOT,
    RULES,
    SCHEDULES,
    SOURCE_QUEUES,
    SUITE_ROLE_PATH,
    T,
    common_env,
    grants,
    parameters,
    props,
    references_suite_key,
    resolve,
    target,
)


# ---- logs and concurrency ------------------------------------------------------------------------
def test_every_function_has_its_own_encrypted_log_group_with_retention() -> None:
    assert FUNCTIONS
    for name, fn in FUNCTIONS.items():
        group = target(fn["Properties"]["LoggingConfig"]["LogGroup"])
        assert group and RESOURCES[group]["Type"] == "AWS::Logs::LogGroup", name
        p = props(group)
        assert p["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert references_suite_key(p["KmsKeyId"]), name
        responder = Path(fn["Properties"]["CodeUri"]).name.replace("_", "-")
        assert p["LogGroupName"] == {"Fn::Sub": f"/connect-guard/${{Environment}}/{responder}"}, name


def test_key_policy_lets_logs_encrypt_exactly_the_suite_log_groups() -> None:
    (logs,) = [
        s
        for s in props("SuiteKey")["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    ]
    scope = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Sub"]
    assert scope.endswith(":log-group:/connect-guard/*")
    for fn in FUNCTIONS.values():
        group = props(target(fn["Properties"]["LoggingConfig"]["LogGroup"]) or "")
        assert group["LogGroupName"]["Fn::Sub"].startswith("/connect-guard/")


# Connect responders take small batches: each event may cost several calls against a ~2/s quota.
SQS_BATCH_SIZES = {
    "PolicyAlertsFunction": 10,
    "ProfileRollbackFunction": 5,
    "QuarantineFunction": 5,
    "LoggingGuardFunction": 5,
    "LivenessFunction": 10,
}


def test_every_function_has_reserved_concurrency_and_a_bounded_event_source() -> None:
    for name, fn in FUNCTIONS.items():
        reserved = fn["Properties"]["ReservedConcurrentExecutions"]
        assert reserved is not None, name
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                p = event["Properties"]
                # The poller must never want more than the reserved concurrency (throttling loops).
                assert p["ScalingConfig"]["MaximumConcurrency"] == reserved, name
                assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
                assert p["BatchSize"] == SQS_BATCH_SIZES[name], name
                assert p["MaximumBatchingWindowInSeconds"] == 1, name


# ---- environment ---------------------------------------------------------------------------------
CONNECT_ENV = {
    "BASELINE_TABLE_NAME": {"Ref": "BaselineTable"},
    "AUDIT_TABLE_NAME": {"Ref": "AuditTable"},
    "PRIVILEGED_PERMISSIONS": {"Ref": "PrivilegedPermissions"},
    "PRIVILEGED_PROFILE_NAMES": {"Ref": "PrivilegedProfileNames"},
    "FALLBACK_SECURITY_PROFILE_NAME": {"Ref": "FallbackSecurityProfileName"},
    "CONNECT_INSTANCE_ARNS": {"Ref": "ConnectInstanceArns"},
}
# The functions that use the baseline and audit tables get the whole Connect set too.
CONNECT_FUNCTIONS = {
    "ProfileRollbackFunction": "profile-rollback",
    "BaselineSweepFunction": "baseline-sweep",
    "QuarantineFunction": "role-quarantine",
    "RoleSnapshotFunction": "role-snapshot",
    "LogExportFunction": "log-export",  # queries the audit table
}


def test_every_function_reads_the_common_settings_under_the_same_names() -> None:
    for name, fn in FUNCTIONS.items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert {k: env.get(k) for k in COMMON_ENV} == common_env(name), name
        assert env["POWERTOOLS_SERVICE_NAME"] == Path(fn["Properties"]["CodeUri"]).name.replace("_", "-"), name


def test_every_environment_variable_is_a_setting_the_core_reads() -> None:
    from connect_guard.settings import Settings

    # Settings.from_env's mapping, read from its source so a rename on either side shows here.
    source = Path(Settings.__module__.replace(".", "/") + ".py")
    text = (ROOT / "layers/core" / source).read_text()
    for name, fn in FUNCTIONS.items():
        for var in fn["Properties"]["Environment"]["Variables"]:
            if not var.startswith("POWERTOOLS_"):
                assert f'"{var}"' in text, f"{name}: {var} is not read by connect_guard.settings"


@pytest.mark.parametrize("function", sorted(CONNECT_FUNCTIONS))
def test_connect_functions_environment(function: str) -> None:
    env = props(function)["Environment"]["Variables"]
    own = OWN_ENV.get(function, {})
    mode = MODE_ENV.get(function, {})
    expected = {**COMMON_ENV, **CONNECT_ENV, **own, **mode, "POWERTOOLS_SERVICE_NAME": CONNECT_FUNCTIONS[function]}
    assert env == expected


def test_settings_one_function_reads_stay_with_it() -> None:
    for name, fn in FUNCTIONS.items():
        env = fn["Properties"]["Environment"]["Variables"]
        for owner, variables in OWN_ENV.items():
            if owner != name and owner not in SOURCE_QUEUES:
                assert not set(variables) & set(env), f"{name} carries {owner}'s settings"


def test_every_functions_environment_fits_lambdas_4_kb_with_100_enrolled_accounts() -> None:
    # Lambda refuses a function whose variables (names and values) exceed 4 KB in all.
    accounts = ",".join(f"{n:012d}" for n in range(100))
    params = parameters(MemberAccountIds=accounts, SlackWebhookSecretArn="x" * 90, EnableChat="true")
    shared = resolve(T["Globals"]["Function"]["Environment"]["Variables"], params)
    for name, fn in FUNCTIONS.items():
        env = {**shared, **resolve(fn["Properties"]["Environment"]["Variables"], params)}
        text = "".join(k + str(v) for k, v in env.items())
        # Placeholders stand for ARNs and IDs: count each as a long one (90 characters).
        size = len(re.sub(r"<[\w.]+>", "x" * 90, text))
        assert size <= 4096, f"{name}: {size} bytes of environment"


# ---- schedules -----------------------------------------------------------------------------------
# schedule → (expression parameter, function): one group, one execution role, one DLQ.
SCHEDULED = {
    "SweepSchedule": ("BaselineSweepSchedule", "BaselineSweepFunction"),
    "SnapshotSchedule": ("RoleSnapshotSchedule", "RoleSnapshotFunction"),
    "LogExportSchedule": ("ExportSchedule", "LogExportFunction"),
    "LivenessSchedule": ("LivenessCheckSchedule", "LivenessFunction"),
    "LoggingDriftSchedule": ("LoggingDriftCheckSchedule", "LoggingGuardFunction"),
}


@pytest.mark.parametrize("name", sorted(SCHEDULED))
def test_schedules_have_retries_a_dlq_and_a_role_that_only_invokes_the_scheduled_functions(name: str) -> None:
    # The security account's canary schedules call IAM and Connect, no function (test_liveness_canary.py).
    assert set(SCHEDULES) - {"CanaryIamSchedule", "CanaryConnectSchedule"} == set(SCHEDULED)
    expression, function = SCHEDULED[name]
    p = props(name)
    assert p["ScheduleExpression"] == {"Ref": expression}
    assert p["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert p["State"] == "ENABLED"
    assert p["GroupName"] == {"Ref": "SweepScheduleGroup"}
    tgt = p["Target"]
    assert tgt["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
    assert tgt["RetryPolicy"]["MaximumRetryAttempts"] == 2
    dlq = target(tgt["DeadLetterConfig"]["Arn"])
    assert dlq == "SweepDLQ" and dlq in QUEUES
    role = target(tgt["RoleArn"])
    assert role == "SweepSchedulerRole"
    role_props = props(role)
    assert role_props["Path"] == SUITE_ROLE_PATH
    (trust,) = role_props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"},
            "aws:SourceArn": {"Fn::GetAtt": ["SweepScheduleGroup", "Arn"]},
        }
    }
    granted = {action: [target(r) for r in resources] for action, resources in grants(role_props).items()}
    # Scheduler writes dead letters with the execution role, not through a queue policy: the role
    # sends to its DLQ and uses the key that encrypts it.
    assert granted == {
        "lambda:InvokeFunction": [
            "BaselineSweepFunction",
            "RoleSnapshotFunction",
            "LogExportFunction",
            "LivenessFunction",
            "LoggingGuardFunction",
        ],
        "sqs:SendMessage": ["SweepDLQ"],
        "kms:Decrypt": ["SuiteKey"],
        "kms:GenerateDataKey": ["SuiteKey"],
    }


def test_rule_routes_ignore_the_scheduled_functions() -> None:
    routes = rule_routes(T)
    # The liveness function is both: its queue's canaries and the schedule's silence check; so is
    # logging-guard: its queue's trail changes and the schedule's drift check.
    scheduled = {function for _, function in SCHEDULED.values()} - {"LivenessFunction", "LoggingGuardFunction"}
    assert "LogExportFunction" in scheduled
    assert not {r.function for r in routes} & scheduled
    for function in scheduled:
        assert "Events" not in props(function), function  # invoked by their schedules only
    assert {r.rule for r in routes} == {n for n, r in RULES.items() if "EventPattern" in r["Properties"]}


# ---- the core layer ------------------------------------------------------------------------------
def test_the_core_layer_builds_into_opt_python() -> None:
    layer = RESOURCES["CoreLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    p = layer["Properties"]
    assert p["ContentUri"] == "layers/core"
    assert (p["CompatibleRuntimes"], p["CompatibleArchitectures"]) == (["python3.13"], ["arm64"])
    # The python3.13 builder copies ContentUri into python/: the package must sit right under it.
    assert (ROOT / "layers/core/connect_guard/__init__.py").is_file()


def test_the_schedules_input_selects_the_drift_check_and_async_runs_are_not_retried() -> None:
    """The Input the schedule sends is exactly what the handler takes for the drift check (anything
    else goes to the SQS path, which refuses it); a failed run is final, as for the sweep."""
    import json

    from tests.integration.test_integrations import function

    app = function("logging_guard")  # by its path: every function's module is named app
    assert json.loads(props("LoggingDriftSchedule")["Target"]["Input"]) == app.DRIFT_CHECK
    assert props("LoggingGuardFunction")["EventInvokeConfig"] == {"MaximumRetryAttempts": 0}
