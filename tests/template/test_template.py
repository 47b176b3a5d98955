"""template.yaml as a security engineer reviews it: delivery guarantees, encryption, alarms,
least privilege, pinned dependencies, and the rule → queue → responder wiring.

The template is read the way CloudFormation reads it (intrinsics in long form), so these checks
hold for every responder added later, not only for policy-alerts.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from connect_guard.quarantine import QUARANTINE_TAG, REASON_TAG, SUITE_TAG_KEYS, deny_all_deviation
from connect_guard_tools.local_aws import QUARANTINE_DOCUMENT
from connect_guard_tools.template import TEMPLATE_PATH, load_template, rule_routes
from tests.template import cfn

ROOT = Path(__file__).resolve().parents[2]
SUITE_ROLE_PATH = "/connect-guard/"

T = load_template()
RESOURCES: dict[str, Any] = T["Resources"]


# ---- helpers ------------------------------------------------------------------------------------
def of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == resource_type}


def props(name: str) -> dict[str, Any]:
    return RESOURCES[name].get("Properties", {})


def target(value: Any) -> str | None:
    """Logical ID behind `!Ref X` / `!GetAtt X.Attr`, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return str(att[0] if isinstance(att, list) else att.split(".")[0])
    return None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def without_no_value(items: list[Any]) -> Iterator[Any]:
    """List items, with `Fn::If` expanded to both branches (AWS::NoValue dropped)."""
    for item in items:
        if isinstance(item, dict) and "Fn::If" in item:
            yield from without_no_value(item["Fn::If"][1:])
        elif item != {"Ref": "AWS::NoValue"}:
            yield item


def resources_of(statement: dict[str, Any]) -> list[Any]:
    """A statement's resources, `Fn::If` branches (list or single) expanded, AWS::NoValue dropped."""
    expanded: list[Any] = []
    for resource in as_list(statement["Resource"]):
        if isinstance(resource, dict) and "Fn::If" in resource:
            for branch in resource["Fn::If"][1:]:
                expanded += resources_of({"Resource": branch})
        elif resource != {"Ref": "AWS::NoValue"}:
            expanded.append(resource)
    return expanded


def objects_of(value: Any) -> str | None:
    """Logical ID of the bucket behind `!Sub ${Bucket.Arn}/*` (its objects), else None."""
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        match = re.fullmatch(r"\$\{(\w+)\.Arn\}/\*", value["Fn::Sub"])
        if match and match[1] in RESOURCES:
            return match[1]
    return None


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a nested structure."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


FUNCTIONS = of_type("AWS::Serverless::Function")
QUEUES = of_type("AWS::SQS::Queue")
RULES = of_type("AWS::Events::Rule")
ALARMS = of_type("AWS::CloudWatch::Alarm")
QUEUE_POLICIES = of_type("AWS::SQS::QueuePolicy")
SCHEDULES = of_type("AWS::Scheduler::Schedule")
ROLES = of_type("AWS::IAM::Role")
TABLES = of_type("AWS::DynamoDB::Table")


def function_role(function: str) -> tuple[str, dict[str, Any]]:
    role = target(props(function).get("Role"))
    assert role and RESOURCES[role]["Type"] == "AWS::IAM::Role", (
        f"{function} must use an explicit role: SAM's generated one attaches AWS managed "
        "policies (logs, sqs) that apply to every resource"
    )
    return role, props(role)


def role_statements(role_props: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement any deployment may hold (both branches of `Fn::If`; see detect tests)."""
    statements = []
    for policy in without_no_value(role_props.get("Policies", [])):
        statements += without_no_value(as_list(policy["PolicyDocument"]["Statement"]))
    return statements


def dead_letter_queues() -> set[str]:
    dlqs = set()
    for queue in QUEUES.values():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            dlqs.add(target(redrive["deadLetterTargetArn"]))
    for rule in RULES.values():
        for tgt in rule["Properties"].get("Targets", []):
            if "DeadLetterConfig" in tgt:
                dlqs.add(target(tgt["DeadLetterConfig"]["Arn"]))
    for schedule in SCHEDULES.values():
        if "DeadLetterConfig" in schedule["Properties"]["Target"]:
            dlqs.add(target(schedule["Properties"]["Target"]["DeadLetterConfig"]["Arn"]))
    for subscription in of_type("AWS::SNS::Subscription").values():
        redrive = subscription["Properties"].get("RedrivePolicy")
        if redrive:
            dlqs.add(target(redrive["deadLetterTargetArn"]))
    for function in FUNCTIONS.values():  # Lambda's on-failure destination of async invocations
        on_failure = function["Properties"].get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        if on_failure and on_failure["Type"] == "SQS":
            dlqs.add(target(on_failure["Destination"]))
    dlqs.discard(None)
    return dlqs  # type: ignore[return-value]


def queue_policy_statements(queue: str) -> list[dict[str, Any]]:
    statements = []
    for policy in QUEUE_POLICIES.values():
        if queue in {target(q) for q in policy["Properties"]["Queues"]}:
            statements += as_list(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def references_suite_key(value: Any) -> bool:
    return target(value) == "SuiteKey"


# ---- contract: parameters, globals, outputs ------------------------------------------------------
def test_transform_and_function_globals() -> None:
    assert T["Transform"] == "AWS::Serverless-2016-10-31"
    glob = T["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    assert glob["Timeout"] == 30
    assert glob["MemorySize"] == 512
    assert {"Ref": "CoreLayer"} in glob["Layers"]


def test_every_function_knows_the_suites_exact_identity_and_the_enrolled_accounts() -> None:
    from connect_guard.settings import SUITE_WRITER_ROLES

    env = T["Globals"]["Function"]["Environment"]["Variables"]
    assert env["MEMBER_ACCOUNT_IDS"] == {"Ref": "MemberAccountIds"}
    # Exactly the roles that write, by ARN and by unique ID: never a path or a name pattern.
    writers = [
        name
        for name, role in ROLES.items()
        if any(w in role["Properties"]["RoleName"]["Fn::Sub"] for w in SUITE_WRITER_ROLES)
    ]
    assert sorted(writers) == ["BaselineSweepFunctionRole", "ProfileRollbackFunctionRole", "QuarantineFunctionRole"]
    assert env["SUITE_ROLE_ARNS"] == {"Fn::Join": [",", [{"Fn::GetAtt": [r, "Arn"]} for r in _writer_order(env)]]}
    assert env["SUITE_ROLE_IDS"] == {"Fn::Join": [",", [{"Fn::GetAtt": [r, "RoleId"]} for r in _writer_order(env)]]}
    assert set(_writer_order(env)) == set(writers)


def _writer_order(env: dict[str, Any]) -> list[str]:
    return [item["Fn::GetAtt"][0] for item in env["SUITE_ROLE_ARNS"]["Fn::Join"][1]]


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("Environment", "dev"),
        ("ResponseMode", "detect"),
        ("AllowlistedPrincipals", ""),
        ("AlertEmail", ""),
        ("MemberAccountIds", ""),
        ("RunbookBaseUrl", "https://github.com/connect-guard/connect-guard/blob/main/docs/runbooks"),
        ("LogRetentionDays", 365),
        ("PowertoolsLayerVersion", 27),
        ("OrganizationId", ""),
        ("PolicyAlertsConcurrency", 5),
        (
            "PrivilegedPermissions",
            "Users.Create,Users.Edit,Users.EditPermission,Users.Delete,SecurityProfiles.Create,"
            "SecurityProfiles.Edit,SecurityProfiles.Delete,ListenCallRecordings,DownloadCallRecordings,"
            "DeleteCallRecordings,ManagerListenIn",
        ),
        ("PrivilegedProfileNames", "Admin"),
        ("FallbackSecurityProfileName", "Agent"),
        ("ConnectInstanceArns", ""),
        ("BaselineSweepSchedule", "rate(1 hour)"),
        ("ProfileRollbackConcurrency", 2),
        ("ProtectedRoleNames", "AWSServiceRoleForAmazonConnect*"),
        ("ProtectedRoleTagKey", "connect-guard:protected"),
        ("QuarantineOnTampering", "false"),
        ("DeactivateAccessKeys", "false"),
        ("QuarantinePolicyName", "connect-guard-quarantine"),
        ("SnapshotAccountIds", ""),
        ("RoleSnapshotSchedule", "rate(6 hours)"),
        ("QuarantineConcurrency", 2),
        ("ArchiveTransitionIaDays", 30),
        ("ArchiveTransitionGlacierDays", 90),
        ("ArchiveTransitionDeepArchiveDays", 180),
        ("ArchiveExpirationDays", 2555),
        ("ArchiveNoncurrentExpirationDays", 30),
        ("ObjectLockMode", "NONE"),
        ("ObjectLockRetentionDays", 365),
        ("ExportLogGroups", ""),
        ("ConnectInstanceAlias", ""),
        ("ExportSchedule", "rate(1 hour)"),
        ("ExportLagHours", 12),
        ("ExportMaxWindowHours", 24),
        ("ArchiveBehindAlertHours", 48),
        ("SlackWebhookSecretArn", ""),
        ("SlackMinimumSeverity", "HIGH"),
        ("EnableSecurityHub", "false"),
        ("EnableChat", "false"),
    ],
)
def test_parameters_and_defaults(name: str, default: Any) -> None:
    assert T["Parameters"][name]["Default"] == default


def test_allowed_values_are_the_intended_ones() -> None:
    params = T["Parameters"]
    assert params["Environment"]["AllowedValues"] == ["dev", "prod"]
    assert params["ResponseMode"]["AllowedValues"] == ["detect", "enforce"]
    assert 365 in params["LogRetentionDays"]["AllowedValues"]
    # SQS event sources accept MaximumConcurrency 2..1000 only.
    assert params["PolicyAlertsConcurrency"]["MinValue"] >= 2
    assert params["ProfileRollbackConcurrency"]["MinValue"] == 2
    assert params["ProfileRollbackConcurrency"]["Type"] == "Number"
    assert params["QuarantineConcurrency"]["MinValue"] == 2
    assert params["QuarantineConcurrency"]["Type"] == "Number"
    # Settings parses these as booleans: only the two spellings the template documents.
    assert params["QuarantineOnTampering"]["AllowedValues"] == ["false", "true"]
    assert params["DeactivateAccessKeys"]["AllowedValues"] == ["false", "true"]
    assert params["EnableSecurityHub"]["AllowedValues"] == ["false", "true"]
    assert params["EnableChat"]["AllowedValues"] == ["false", "true"]
    assert params["RoleSnapshotSchedule"]["AllowedPattern"] == params["BaselineSweepSchedule"]["AllowedPattern"]
    assert params["ExportSchedule"]["AllowedPattern"] == params["BaselineSweepSchedule"]["AllowedPattern"]
    assert params["ObjectLockMode"]["AllowedValues"] == ["NONE", "GOVERNANCE", "COMPLIANCE"]
    for name in ("ArchiveTransitionIaDays", "ExportLagHours", "ExportMaxWindowHours", "ArchiveBehindAlertHours"):
        assert params[name]["Type"] == "Number", name
    assert params["ArchiveTransitionIaDays"]["MinValue"] == 30  # S3 refuses Standard-IA before 30 days
    # CloudWatch Logs data can take up to 12 h to become exportable: no window closer to now.
    assert params["ExportLagHours"]["MinValue"] >= 12
    # The severity names the publisher puts in the `severity` message attribute.
    from connect_guard.policy import Severity

    assert set(params["SlackMinimumSeverity"]["AllowedValues"]) == {s.name for s in Severity}


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


# Template parameter → the environment variable every function gets it as.
QUARANTINE_PARAMETERS = {
    "ProtectedRoleNames": "PROTECTED_ROLE_NAMES",
    "ProtectedRoleTagKey": "PROTECTED_ROLE_TAG_KEY",
    "QuarantineOnTampering": "QUARANTINE_ON_TAMPERING",
    "DeactivateAccessKeys": "DEACTIVATE_ACCESS_KEYS",
    "QuarantinePolicyName": "QUARANTINE_POLICY_NAME",
    "SnapshotAccountIds": "SNAPSHOT_ACCOUNT_IDS",
}


@pytest.mark.parametrize(("parameter", "variable"), sorted(QUARANTINE_PARAMETERS.items()))
def test_quarantine_defaults_match_the_core_settings(parameter: str, variable: str) -> None:
    # The stack's default and the core's default are the same setting (read through from_env,
    # so the check holds whatever the field is called).
    from connect_guard.settings import Settings

    minimal = {"ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:111122223333:alerts", "DEDUP_TABLE_NAME": "dedup"}
    default = str(T["Parameters"][parameter]["Default"])
    assert Settings.from_env({**minimal, variable: default}) == Settings.from_env(minimal), parameter


def test_privileged_permissions_default_matches_the_core_settings() -> None:
    from connect_guard.settings import DEFAULT_PRIVILEGED_PERMISSIONS

    default = T["Parameters"]["PrivilegedPermissions"]["Default"]
    assert tuple(default.split(",")) == DEFAULT_PRIVILEGED_PERMISSIONS


def test_outputs() -> None:
    assert set(T["Outputs"]) >= {
        "AlertTopicArn",
        "DedupTableName",
        "PolicyAlertsQueueUrl",
        "PolicyAlertsDLQUrl",
        "EventDeliveryDLQUrl",
        "SuiteKeyArn",
        "CoreLayerArn",
        "BaselineTableName",
        "AuditTableName",
        "ProfileRollbackQueueUrl",
        "ProfileRollbackDLQUrl",
        "QuarantinePolicyArn",
        "QuarantineQueueUrl",
        "QuarantineDLQUrl",
        "ArchiveBucketName",
        "ArchiveKeyArn",
        "FindingsArchiveQueueUrl",
        "SlackNotifierFunctionArn",
        "ChatTopicArn",
        "SecurityHubImportFunctionArn",
    }
    assert T["Outputs"]["ChatTopicArn"] == {
        "Condition": "HasChat",
        "Description": T["Outputs"]["ChatTopicArn"]["Description"],
        "Value": {"Ref": "ChatTopic"},
    }
    assert T["Outputs"]["SecurityHubImportFunctionArn"] == {
        "Condition": "HasSecurityHub",
        "Description": T["Outputs"]["SecurityHubImportFunctionArn"]["Description"],
        "Value": {"Fn::GetAtt": ["SecurityHubImportFunction", "Arn"]},
    }
    assert T["Outputs"]["SlackNotifierFunctionArn"] == {
        "Condition": "HasSlack",
        "Description": T["Outputs"]["SlackNotifierFunctionArn"]["Description"],
        "Value": {"Fn::GetAtt": ["SlackNotifierFunction", "Arn"]},
    }
    assert T["Outputs"]["ArchiveBucketName"]["Value"] == {"Ref": "ArchiveBucket"}
    assert T["Outputs"]["ArchiveKeyArn"]["Value"] == {"Fn::GetAtt": ["ArchiveKey", "Arn"]}
    assert T["Outputs"]["FindingsArchiveQueueUrl"]["Value"] == {"Ref": "FindingsArchiveQueue"}
    assert T["Outputs"]["QuarantinePolicyArn"]["Value"] == {"Ref": "QuarantinePolicy"}
    assert T["Outputs"]["QuarantineQueueUrl"]["Value"] == {"Ref": "QuarantineQueue"}
    assert T["Outputs"]["QuarantineDLQUrl"]["Value"] == {"Ref": "QuarantineDLQ"}
    assert T["Outputs"]["BaselineTableName"]["Value"] == {"Ref": "BaselineTable"}
    assert T["Outputs"]["AuditTableName"]["Value"] == {"Ref": "AuditTable"}
    assert T["Outputs"]["ProfileRollbackQueueUrl"]["Value"] == {"Ref": "ProfileRollbackQueue"}
    assert T["Outputs"]["ProfileRollbackDLQUrl"]["Value"] == {"Ref": "ProfileRollbackDLQ"}


# ---- event delivery ------------------------------------------------------------------------------
def test_every_rule_target_has_retry_policy_and_dlq() -> None:
    assert RULES
    for name, rule in RULES.items():
        targets = rule["Properties"]["Targets"]
        assert targets, name
        for tgt in targets:
            retry = tgt["RetryPolicy"]
            assert retry == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}, name
            dlq = target(tgt["DeadLetterConfig"]["Arn"])
            assert dlq in QUEUES, f"{name}: DLQ must be a queue of this stack"
            # Resource-policy targets must not carry a RoleArn: it breaks delivery to KMS queues.
            assert "RoleArn" not in tgt, name


def test_rules_are_enabled_on_the_default_bus() -> None:
    for name, rule in RULES.items():
        assert rule["Properties"]["State"] == "ENABLED", name
        assert rule["Properties"].get("EventBusName", "default") == "default", name


def test_every_queue_is_encrypted_with_the_suite_key() -> None:
    assert QUEUES
    for name, queue in QUEUES.items():
        assert references_suite_key(queue["Properties"].get("KmsMasterKeyId")), name


# Queues nothing processes, only copies into the archive: a DLQ would have to outlive SQS's
# 14-day maximum retention. An age alarm watches them instead (test_findings_archive_queue...).
ARCHIVE_BUFFERS = {"FindingsArchiveQueue"}


def test_every_non_dlq_queue_has_a_redrive_policy() -> None:
    dlqs = dead_letter_queues()
    assert {"PolicyAlertsDLQ", "EventDeliveryDLQ", "ProfileRollbackDLQ", "SweepDLQ", "QuarantineDLQ"} <= dlqs
    for name, queue in QUEUES.items():
        if name in dlqs or name in ARCHIVE_BUFFERS:
            assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600, name
            continue
        redrive = queue["Properties"]["RedrivePolicy"]
        dlq = target(redrive["deadLetterTargetArn"])
        assert dlq in QUEUES and dlq != name, name
        assert 1 < redrive["maxReceiveCount"] <= 10, name
        # A message keeps its enqueue time in the DLQ: the DLQ must outlive the source queue.
        source_retention = queue["Properties"].get("MessageRetentionPeriod", 4 * 24 * 3600)
        assert QUEUES[dlq]["Properties"]["MessageRetentionPeriod"] > source_retention, name


def test_max_receive_count_matches_the_runtimes_final_attempt() -> None:
    # The handler alerts on the receive that SQS will not retry: the two counts must agree.
    from connect_guard.runtime import MAX_RECEIVE_COUNT

    for name, queue in QUEUES.items():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            assert redrive["maxReceiveCount"] == MAX_RECEIVE_COUNT, name


def test_queue_visibility_timeout_is_six_times_the_consumer_timeout() -> None:
    timeout = T["Globals"]["Function"]["Timeout"]
    for fn_name, fn in FUNCTIONS.items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = target(event["Properties"]["Queue"])
                fn_timeout = fn["Properties"].get("Timeout", timeout)
                assert QUEUES[queue]["Properties"]["VisibilityTimeout"] >= 6 * fn_timeout, fn_name


def test_every_queue_denies_access_without_tls() -> None:
    for name in QUEUES:
        denies = [
            s
            for s in queue_policy_statements(name)
            if s["Effect"] == "Deny"
            and s["Principal"] == "*"
            and s["Action"] in ("sqs:*", ["sqs:*"])
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, f"{name} has no deny-without-TLS statement"


def test_eventbridge_may_send_only_on_behalf_of_the_rules_that_use_the_queue() -> None:
    users: dict[str, set[str]] = {}
    for rule_name, rule in RULES.items():
        for tgt in rule["Properties"]["Targets"]:
            users.setdefault(target(tgt["Arn"]) or "", set()).add(rule_name)
            users.setdefault(target(tgt["DeadLetterConfig"]["Arn"]) or "", set()).add(rule_name)
    topics: dict[str, set[str]] = {}  # queue -> the topics subscribed to it
    for subscription in of_type("AWS::SNS::Subscription").values():
        p = subscription["Properties"]
        if p["Protocol"] == "sqs":
            topics.setdefault(target(p["Endpoint"]) or "", set()).add(target(p["TopicArn"]) or "")
        if "RedrivePolicy" in p:  # SNS sends what it can't deliver to the subscription's DLQ
            dlq = target(p["RedrivePolicy"]["deadLetterTargetArn"]) or ""
            topics.setdefault(dlq, set()).add(target(p["TopicArn"]) or "")
    for queue in QUEUES:
        allows = [s for s in queue_policy_statements(queue) if s["Effect"] == "Allow"]
        senders = {"Service": "events.amazonaws.com"}, {"Service": "sns.amazonaws.com"}
        for statement in allows:
            assert statement["Principal"] in senders, queue
            assert statement["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"]), queue
            sources = {target(a) for a in as_list(statement["Condition"]["ArnEquals"]["aws:SourceArn"])}
            expected = users if statement["Principal"] == senders[0] else topics
            assert sources == expected.get(queue, set()), queue
        events = [s for s in allows if s["Principal"] == senders[0]]
        sns = [s for s in allows if s["Principal"] == senders[1]]
        assert bool(events) == (queue in users), f"{queue}: EventBridge access iff a rule uses it"
        assert bool(sns) == (queue in topics), f"{queue}: SNS access iff a topic delivers to it"


# ---- alarms --------------------------------------------------------------------------------------
def _notifies_topic(alarm: dict[str, Any]) -> bool:
    p = alarm["Properties"]
    return p["AlarmActions"] == [{"Ref": "AlertTopic"}] and p["OKActions"] == [{"Ref": "AlertTopic"}]


def test_every_dlq_has_an_alarm_that_notifies_the_topic() -> None:
    for dlq in dead_letter_queues():
        alarms = [
            a
            for a in ALARMS.values()
            if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and a["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
        ]
        assert len(alarms) == 1, f"{dlq} needs exactly one depth alarm"
        p = alarms[0]["Properties"]
        assert p["Namespace"] == "AWS/SQS"
        assert (p["ComparisonOperator"], p["Threshold"]) == ("GreaterThanThreshold", 0)
        assert (p["Period"], p["EvaluationPeriods"]) == (60, 1)
        assert p["TreatMissingData"] == "notBreaching"
        assert _notifies_topic(alarms[0])
    assert {
        "PolicyAlertsDLQAlarm",
        "EventDeliveryDLQAlarm",
        "ProfileRollbackDLQAlarm",
        "SweepDLQAlarm",
        "QuarantineDLQAlarm",
        "SlackNotifierDLQAlarm",
        "SecurityHubImportDLQAlarm",
        "ChatNotifierDLQAlarm",
    } <= set(ALARMS)


def _alarms_on(namespace: str, metric: str, dimension: str, resource: str) -> list[dict[str, Any]]:
    return [
        a
        for a in ALARMS.values()
        if a["Properties"]["Namespace"] == namespace
        and a["Properties"]["MetricName"] == metric
        and a["Properties"]["Dimensions"] == [{"Name": dimension, "Value": {"Ref": resource}}]
    ]


def test_every_rule_has_a_delivery_failure_alarm() -> None:
    # Delivery that fails even to the DLQ (e.g. a broken key policy) shows up only here.
    for name in RULES:
        alarms = _alarms_on("AWS/Events", "FailedInvocations", "RuleName", name)
        assert len(alarms) == 1 and _notifies_topic(alarms[0]), name


def test_every_function_has_an_errors_alarm() -> None:
    for name in FUNCTIONS:
        alarms = _alarms_on("AWS/Lambda", "Errors", "FunctionName", name)
        assert len(alarms) == 1 and _notifies_topic(alarms[0]), name


def test_every_alarm_notifies_the_topic_and_matches_the_topic_policy() -> None:
    topic_policy = props("AlertTopicPolicy")["PolicyDocument"]["Statement"]
    (cloudwatch,) = [s for s in topic_policy if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    allowed_prefix = cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"].split(":alarm:")[1]
    assert allowed_prefix.endswith("*")
    for name, alarm in ALARMS.items():
        assert _notifies_topic(alarm), name
        alarm_name = alarm["Properties"]["AlarmName"]["Fn::Sub"]
        assert alarm_name.startswith(allowed_prefix[:-1]), f"{name}: topic policy would refuse it"


# ---- functions: logs, concurrency, environment ----------------------------------------------------
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
SQS_BATCH_SIZES = {"PolicyAlertsFunction": 10, "ProfileRollbackFunction": 5, "QuarantineFunction": 5}


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


# The suite's own log groups are always exported (one per function, LogExportFunction's too);
# then the Connect instance's flow logs and the operator's groups, each only when set.
SUITE_LOG_GROUPS = ",".join(
    f"/connect-guard/${{Environment}}/{name}"
    for name in (
        "policy-alerts",
        "profile-rollback",
        "baseline-sweep",
        "role-quarantine",
        "role-snapshot",
        "log-export",
    )
)
EXPORT_LOG_GROUPS = {
    "Fn::Join": [
        "",
        [
            {"Fn::Sub": SUITE_LOG_GROUPS},
            # The Slack notifier's group exists only when it is deployed.
            {"Fn::If": ["HasSlack", {"Fn::Sub": ",/connect-guard/${Environment}/slack-notifier"}, ""]},
            {"Fn::If": ["HasSecurityHub", {"Fn::Sub": ",/connect-guard/${Environment}/securityhub-import"}, ""]},
            {"Fn::If": ["HasChat", {"Fn::Sub": ",/connect-guard/${Environment}/chat-notifier"}, ""]},
            {"Fn::If": ["HasConnectInstanceAlias", {"Fn::Sub": ",/aws/connect/${ConnectInstanceAlias}"}, ""]},
            {"Fn::If": ["HasExportLogGroups", {"Fn::Sub": ",${ExportLogGroups}"}, ""]},
        ],
    ]
}
ARCHIVE_ENV = {
    "ARCHIVE_BUCKET_NAME": {"Ref": "ArchiveBucket"},
    "EXPORT_LOG_GROUPS": EXPORT_LOG_GROUPS,
    "EXPORT_LAG_HOURS": {"Ref": "ExportLagHours"},
    "EXPORT_MAX_WINDOW_HOURS": {"Ref": "ExportMaxWindowHours"},
    "ARCHIVE_BEHIND_ALERT_HOURS": {"Ref": "ArchiveBehindAlertHours"},
    # The exporter keeps its checkpoints (pk "export#<log group>") in the baseline table.
    "CHECKPOINT_TABLE_NAME": {"Ref": "BaselineTable"},
    "FINDINGS_ARCHIVE_QUEUE_URL": {"Ref": "FindingsArchiveQueue"},
}
# Slack delivery (connect_guard.settings: slack_webhook_secret_arn, slack_digest_*).
SLACK_ENV = {
    "SLACK_WEBHOOK_SECRET_ARN": {"Ref": "SlackWebhookSecretArn"},
    "SLACK_DIGEST_WINDOW_SECONDS": "300",
    "SLACK_DIGEST_THRESHOLD": "3",
}
# Chat delivery (connect_guard.settings: chat_topic_arn): empty when the chat topic is not deployed.
CHAT_ENV = {"CHAT_TOPIC_ARN": {"Fn::If": ["HasChat", {"Ref": "ChatTopic"}, ""]}}

# Every function reads the same settings under the same names (connect_guard.settings.Settings).
# Settings only one function uses stay with it: Lambda allows 4 KB of environment per function.
COMMON_ENV = {
    "ENVIRONMENT": {"Ref": "Environment"},
    "RESPONSE_MODE": {"Ref": "ResponseMode"},
    "ALERT_TOPIC_ARN": {"Ref": "AlertTopic"},
    "DEDUP_TABLE_NAME": {"Ref": "DedupTable"},
    "ALLOWLISTED_PRINCIPALS": {"Ref": "AllowlistedPrincipals"},
    "RUNBOOK_BASE_URL": {"Ref": "RunbookBaseUrl"},
    "POWERTOOLS_METRICS_NAMESPACE": "ConnectGuard",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    **{variable: {"Ref": parameter} for parameter, variable in QUARANTINE_PARAMETERS.items()},
}
# Each responder reads only its own queue's records (connect_guard.runtime).
SOURCE_QUEUES = {
    "PolicyAlertsFunction": "PolicyAlertsQueue",
    "ProfileRollbackFunction": "ProfileRollbackQueue",
    "QuarantineFunction": "QuarantineQueue",
}
# Settings one function alone reads.
OWN_ENV = {
    "LogExportFunction": ARCHIVE_ENV,
    "SlackNotifierFunction": SLACK_ENV,
    "ChatNotifierFunction": CHAT_ENV,
    **{fn: {"SOURCE_QUEUE_ARN": {"Fn::GetAtt": [queue, "Arn"]}} for fn, queue in SOURCE_QUEUES.items()},
}
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
        assert {k: env.get(k) for k in COMMON_ENV} == COMMON_ENV, name
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
    assert env == {**COMMON_ENV, **CONNECT_ENV, **own, "POWERTOOLS_SERVICE_NAME": CONNECT_FUNCTIONS[function]}


def test_settings_one_function_reads_stay_with_it() -> None:
    for name, fn in FUNCTIONS.items():
        env = fn["Properties"]["Environment"]["Variables"]
        for owner, variables in OWN_ENV.items():
            if owner != name and owner not in SOURCE_QUEUES:
                assert not set(variables) & set(env), f"{name} carries {owner}'s settings"


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
    # IAM reads are cheap and a missed snapshot leaves a deleted role unrecognised: Lambda retries.
    assert p["EventInvokeConfig"]["MaximumRetryAttempts"] == 2


# schedule → (expression parameter, function): one group, one execution role, one DLQ.
SCHEDULED = {
    "SweepSchedule": ("BaselineSweepSchedule", "BaselineSweepFunction"),
    "SnapshotSchedule": ("RoleSnapshotSchedule", "RoleSnapshotFunction"),
    "LogExportSchedule": ("ExportSchedule", "LogExportFunction"),
}


@pytest.mark.parametrize("name", sorted(SCHEDULED))
def test_schedules_have_retries_a_dlq_and_a_role_that_only_invokes_the_scheduled_functions(name: str) -> None:
    assert set(SCHEDULES) == set(SCHEDULED)
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
    granted = {action: [target(r) for r in resources] for action, resources in _granted(role_props).items()}
    # Scheduler writes dead letters with the execution role, not through a queue policy: the role
    # sends to its DLQ and uses the key that encrypts it.
    assert granted == {
        "lambda:InvokeFunction": ["BaselineSweepFunction", "RoleSnapshotFunction", "LogExportFunction"],
        "sqs:SendMessage": ["SweepDLQ"],
        "kms:Decrypt": ["SuiteKey"],
        "kms:GenerateDataKey": ["SuiteKey"],
    }


def test_policy_alerts_function_contract() -> None:
    p = props("PolicyAlertsFunction")
    assert p["CodeUri"] == "functions/policy_alerts"
    assert p["Handler"] == "app.lambda_handler"
    assert p["ReservedConcurrentExecutions"] == {"Ref": "PolicyAlertsConcurrency"}
    (event,) = p["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["PolicyAlertsQueue", "Arn"]}
    env = p["Environment"]["Variables"]
    assert env == {
        "ENVIRONMENT": {"Ref": "Environment"},
        "RESPONSE_MODE": {"Ref": "ResponseMode"},
        "ALERT_TOPIC_ARN": {"Ref": "AlertTopic"},
        "DEDUP_TABLE_NAME": {"Ref": "DedupTable"},
        "ALLOWLISTED_PRINCIPALS": {"Ref": "AllowlistedPrincipals"},
        "RUNBOOK_BASE_URL": {"Ref": "RunbookBaseUrl"},
        "PROTECTED_ROLE_NAMES": {"Ref": "ProtectedRoleNames"},
        "PROTECTED_ROLE_TAG_KEY": {"Ref": "ProtectedRoleTagKey"},
        "QUARANTINE_ON_TAMPERING": {"Ref": "QuarantineOnTampering"},
        "DEACTIVATE_ACCESS_KEYS": {"Ref": "DeactivateAccessKeys"},
        "QUARANTINE_POLICY_NAME": {"Ref": "QuarantinePolicyName"},
        "SNAPSHOT_ACCOUNT_IDS": {"Ref": "SnapshotAccountIds"},
        "POWERTOOLS_SERVICE_NAME": "policy-alerts",
        "POWERTOOLS_METRICS_NAMESPACE": "ConnectGuard",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **OWN_ENV["PolicyAlertsFunction"],
    }


def test_the_core_layer_builds_into_opt_python() -> None:
    layer = RESOURCES["CoreLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    p = layer["Properties"]
    assert p["ContentUri"] == "layers/core"
    assert (p["CompatibleRuntimes"], p["CompatibleArchitectures"]) == (["python3.13"], ["arm64"])
    # The python3.13 builder copies ContentUri into python/: the package must sit right under it.
    assert (ROOT / "layers/core/connect_guard/__init__.py").is_file()


# ---- encryption at rest --------------------------------------------------------------------------
def test_key_rotates_and_is_kept() -> None:
    key = RESOURCES["SuiteKey"]
    assert key["Properties"]["EnableKeyRotation"] is True
    # The table is retained: the key that encrypts it must be too.
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert props("SuiteKeyAlias")["AliasName"] == {"Fn::Sub": "alias/connect-guard-${Environment}"}


# Services that encrypt for our own resources only; the queue and topic policies restrict who
# can make them do so (EventBridge: our rules; CloudWatch: our alarms; SNS: our topic). Any other
# service principal must be conditioned.
UNCONDITIONED_KEY_SERVICES = {"events.amazonaws.com", "cloudwatch.amazonaws.com", "sns.amazonaws.com"}


@pytest.mark.parametrize("key", ["SuiteKey", "ArchiveKey"])
def test_key_policy_grants_services_only_data_key_use(key: str) -> None:
    for statement in props(key)["KeyPolicy"]["Statement"]:
        principal = statement["Principal"]
        assert principal != "*" and principal != {"AWS": "*"}, statement["Sid"]
        if "Service" in principal:
            assert statement["Effect"] == "Allow", statement["Sid"]
            assert set(as_list(statement["Action"])) <= {
                "kms:GenerateDataKey",
                "kms:GenerateDataKey*",
                "kms:Decrypt",
                "kms:Decrypt*",
                "kms:Encrypt*",
                "kms:ReEncrypt*",
                "kms:Describe*",
            }, statement["Sid"]
            if not (isinstance(principal["Service"], str) and principal["Service"] in UNCONDITIONED_KEY_SERVICES):
                assert statement.get("Condition"), statement["Sid"]
        else:
            assert principal == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}


def test_topic_and_tables_use_the_suite_key() -> None:
    assert references_suite_key(props("AlertTopic")["KmsMasterKeyId"])
    assert {"DedupTable", "BaselineTable", "AuditTable"} <= set(TABLES)
    for name in TABLES:
        sse = props(name)["SSESpecification"]
        assert sse["SSEEnabled"] is True and sse["SSEType"] == "KMS", name
        assert references_suite_key(sse["KMSMasterKeyId"]), name


def test_every_table_is_retained_with_point_in_time_recovery() -> None:
    for name, table in TABLES.items():
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain", name
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST", name


@pytest.mark.parametrize("name", ["BaselineTable", "AuditTable"])
def test_connect_state_tables_have_the_pk_sk_schema(name: str) -> None:
    p = props(name)
    assert p["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert p["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]


def test_audit_records_may_expire_and_nothing_streams_them() -> None:
    p = props("AuditTable")
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "StreamSpecification" not in p
    assert "TimeToLiveSpecification" not in props("BaselineTable")  # approved state never expires


def test_dedup_table_matches_powertools_idempotency_defaults() -> None:
    table = RESOURCES["DedupTable"]
    p = table["Properties"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_alert_topic_refuses_publishing_without_tls() -> None:
    statements = props("AlertTopicPolicy")["PolicyDocument"]["Statement"]
    tls_only = {"Bool": {"aws:SecureTransport": "false"}}
    assert any(s["Effect"] == "Deny" and s["Condition"] == tls_only for s in statements)
    for s in statements:
        if s["Effect"] == "Allow" and "Service" in s["Principal"]:
            assert s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


STATEFUL = ("AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::KMS::Key", "AWS::S3::Bucket")


def test_stateful_resources_say_what_happens_to_their_data() -> None:
    for name, resource in RESOURCES.items():
        if resource["Type"] in STATEFUL:
            assert resource.get("DeletionPolicy") in ("Delete", "Retain"), name
            assert resource.get("UpdateReplacePolicy") == resource["DeletionPolicy"], name


# ---- least privilege -----------------------------------------------------------------------------
WRITE_VERBS = (
    *("Put", "Update", "Delete", "Create", "Attach", "Detach", "Set", "Tag", "Untag", "Change"),
    *("Send", "Publish", "Assume", "Pass", "Invoke", "Generate", "Encrypt", "ReEncrypt"),
)

POLICY_ALERTS_ACTIONS = {
    # the function's own plumbing (what SAM's managed policies would grant on "*")
    "logs:CreateLogStream": "PolicyAlertsLogGroup",
    "logs:PutLogEvents": "PolicyAlertsLogGroup",
    "sqs:ReceiveMessage": "PolicyAlertsQueue",
    "sqs:DeleteMessage": "PolicyAlertsQueue",
    "sqs:GetQueueAttributes": "PolicyAlertsQueue",
    # the contract
    "sns:Publish": "AlertTopic",
    "kms:Decrypt": "SuiteKey",
    "kms:GenerateDataKey": "SuiteKey",
    "dynamodb:PutItem": "DedupTable",
    "dynamodb:GetItem": "DedupTable",
    "dynamodb:UpdateItem": "DedupTable",
    "dynamodb:DeleteItem": "DedupTable",
    "iam:GetPolicy": None,
    "iam:GetPolicyVersion": None,
    "sts:AssumeRole": None,
}


# This account's IAM users and roles (any path): what the quarantine and the snapshot work on.
OWN_USERS = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"}
OWN_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"}
SUITE_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role" + SUITE_ROLE_PATH + "*"}


def member_role(purpose: str) -> dict[str, str]:
    """The member stack's role for one purpose, in any account (member/template.yaml names it)."""
    return {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/connect-guard/connect-guard-${Environment}-member-" + purpose}


QUARANTINE_POLICY_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/connect-guard/${QuarantinePolicyName}"
}
IAM_POLICY_ATTACHMENT = {"iam:AttachUserPolicy", "iam:DetachUserPolicy"}
IAM_ROLE_POLICY_ATTACHMENT = {"iam:AttachRolePolicy", "iam:DetachRolePolicy"}
IAM_USER_WRITES = IAM_POLICY_ATTACHMENT | {"iam:UpdateAccessKey", "iam:TagUser", "iam:UntagUser"}
IAM_ROLE_WRITES = IAM_ROLE_POLICY_ATTACHMENT | {"iam:TagRole", "iam:UntagRole"}
# What the quarantine function holds of those: quarantine, never release (detach, untag).
RELEASES = {"iam:DetachUserPolicy", "iam:DetachRolePolicy", "iam:UntagUser", "iam:UntagRole"}
FUNCTION_USER_WRITES = IAM_USER_WRITES - RELEASES
FUNCTION_ROLE_WRITES = IAM_ROLE_WRITES - RELEASES
# Actions without resource-level permissions (no resource type in the Service Authorization
# Reference): the only ones a statement may grant on "*", each alone in its statement. All are
# reads: a write that can't be scoped (e.g. logs:CancelExportTask) is not granted at all.
UNSCOPABLE_READS = {"iam:ListRoles", "logs:DescribeExportTasks", "logs:DescribeLogGroups"}
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


# What logs:CreateExportTask may name (it is authorized on the exported log group, this region):
# the suite's groups and the Connect instance's flow logs (`log-group:<name>` and its `:*` form),
# or, once ExportLogGroups names other groups, every group of this account and region.
LOG_GROUP_ARN = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
ACCOUNT_LOG_GROUPS = {"Fn::Sub": LOG_GROUP_ARN + "*"}
SUITE_LOG_GROUPS_HERE = {"Fn::Sub": LOG_GROUP_ARN + "/connect-guard/${Environment}/*"}
CONNECT_FLOW_LOGS = [
    {"Fn::Sub": LOG_GROUP_ARN + "/aws/connect/${ConnectInstanceAlias}"},
    {"Fn::Sub": LOG_GROUP_ARN + "/aws/connect/${ConnectInstanceAlias}:*"},
]
EXPORTABLE_LOG_GROUPS = [ACCOUNT_LOG_GROUPS, SUITE_LOG_GROUPS_HERE, *CONNECT_FLOW_LOGS]


def is_suite_role_guard(statement: dict[str, Any]) -> bool:
    """The one Deny a role may hold: no role writes on the suite's own roles."""
    resources = list(without_no_value(as_list(statement["Resource"])))
    return (
        statement["Effect"] == "Deny"
        and set(as_list(statement["Action"])) == IAM_ROLE_WRITES
        and resources == [SUITE_ROLES]
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


# This account's Connect instances (any region) and the sub-resources Connect authorizes against.
OWN_CONNECT_RESOURCES = [
    {"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*"},
    {"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*/agent/*"},
    {"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*/security-profile/*"},
]
# Every Connect read a control makes: one user (rollback), users by page (sweep), profiles.
CONNECT_READ_ACTIONS = {
    "connect:DescribeUser",
    "connect:SearchUsers",
    "connect:DescribeSecurityProfile",
    "connect:ListSecurityProfiles",
    "connect:ListSecurityProfilePermissions",
    "connect:ListSecurityProfileApplications",
}
CONNECT_WRITE_ACTIONS = {"connect:UpdateUserSecurityProfiles", "connect:UpdateSecurityProfile"}


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
                    assert (
                        target(resource)
                        or objects_of(resource)
                        or resource in [member_role(p) for p in ("read", "rollback", "quarantine")]
                        or (connect_only and resource in OWN_CONNECT_RESOURCES)
                        or (users_only and resource == OWN_USERS)
                        or (roles_only and resource == OWN_ROLES)
                        or (export_only and resource in EXPORTABLE_LOG_GROUPS)
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


def test_connect_writes_only_in_the_rollback_and_sweep_roles_and_never_on_everything() -> None:
    writers = set()
    for name, role in ROLES.items():
        for statement in role_statements(role["Properties"]):
            connect = [a for a in as_list(statement["Action"]) if a.startswith("connect:")]
            if not connect:
                continue
            assert set(connect) <= CONNECT_READ_ACTIONS | CONNECT_WRITE_ACTIONS, f"{name}: {connect}"
            # Every Connect statement names this account's instances, nothing wider.
            assert as_list(statement["Resource"]) == OWN_CONNECT_RESOURCES, f"{name}: {statement['Sid']}"
            if set(connect) & CONNECT_WRITE_ACTIONS:
                # Reads and writes live in separate statements, so each can be reviewed alone.
                assert set(connect) <= CONNECT_WRITE_ACTIONS, f"{name}: {statement['Sid']}"
                writers.add(name)
    assert writers == {"ProfileRollbackFunctionRole", "BaselineSweepFunctionRole"}


def _granted(role_props: dict[str, Any]) -> dict[str, list[Any]]:
    """Allowed action → resources (Deny statements are checked on their own)."""
    granted: dict[str, list[Any]] = {}
    for statement in role_statements(role_props):
        if statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(resources_of(statement))
    return granted


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
            )
        ),
        "dynamodb:GetItem": {"BaselineTable", "DedupTable"},
        "dynamodb:PutItem": {"BaselineTable", "AuditTable", "DedupTable"},
        "dynamodb:UpdateItem": {"DedupTable"},
        "dynamodb:DeleteItem": {"DedupTable"},
    },
    "BaselineSweepFunction": {
        **dict.fromkeys(
            (
                "connect:SearchUsers",
                "connect:DescribeSecurityProfile",
                "connect:ListSecurityProfiles",
                "connect:ListSecurityProfilePermissions",
                "connect:ListSecurityProfileApplications",
            )
        ),
        "dynamodb:BatchWriteItem": {"BaselineTable"},
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
    granted = _granted(role_props)
    expected = {a: ({log_group} if r == {"<log group>"} else r) for a, r in CONNECT_RESPONDER_ACTIONS.items()}
    expected |= CONNECT_RESPONDER_OWN[function]
    if queue:  # the SQS consumer also owns its queue
        expected |= {a: {queue} for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")}
    assert set(granted) == set(expected)
    for action, resources in expected.items():
        if resources is not None:
            assert {target(r) for r in granted[action]} == resources, action
    for action in {a for a in expected if a.startswith("connect:")}:
        assert granted[action] == OWN_CONNECT_RESOURCES, action
    assert granted["sts:AssumeRole"] == [member_role("read"), member_role("rollback")]


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
        assert audit[0] == "IsEnforce" and audit[2] == {"Ref": "AWS::NoValue"}, function
        assert audit[1]["Action"] == "dynamodb:PutItem" and target(audit[1]["Resource"]) == "AuditTable", function


def test_policy_alerts_has_exactly_the_contract_actions_on_their_resources() -> None:
    _, role_props = function_role("PolicyAlertsFunction")
    granted = _granted(role_props)
    assert set(granted) == set(POLICY_ALERTS_ACTIONS)
    for action, resource in POLICY_ALERTS_ACTIONS.items():
        if resource:
            assert {target(r) for r in granted[action]} == {resource}, action
    assert (
        granted["iam:GetPolicy"]
        == granted["iam:GetPolicyVersion"]
        == [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/*"},
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/*"},
        ]
    )
    assert granted["sts:AssumeRole"] == [member_role("read")]  # never a write role


# Functions that never leave this account: no member role, whatever the configuration.
OWN_ACCOUNT_ONLY = {"LogExportFunction", "SlackNotifierFunction", "SecurityHubImportFunction", "ChatNotifierFunction"}


@pytest.mark.parametrize("function", sorted(OWN_ACCOUNT_ONLY))
def test_own_account_functions_never_assume_a_role(function: str) -> None:
    _, role_props = function_role(function)
    assert all("Fn::If" not in p for p in role_props["Policies"])
    assert not any(a.startswith("sts:") for a in _granted(role_props))


@pytest.mark.parametrize("function", sorted(set(FUNCTIONS) - OWN_ACCOUNT_ONLY))
def test_member_roles_are_assumed_only_with_enrolled_accounts(function: str) -> None:
    _, role_props = function_role(function)
    unconditional = [p for p in role_props["Policies"] if "Fn::If" not in p]
    statements = [s for p in unconditional for s in without_no_value(p["PolicyDocument"]["Statement"])]
    assert all("sts:AssumeRole" not in as_list(s["Action"]) for s in statements)
    (conditional,) = [p["Fn::If"] for p in role_props["Policies"] if "Fn::If" in p]
    assert conditional[0] == "HasMemberAccounts" and conditional[2] == {"Ref": "AWS::NoValue"}
    assert T["Conditions"]["HasMemberAccounts"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "MemberAccountIds"}, ""]}]}
    # The read role always; a write role only inside IsEnforce.
    read, *writers = conditional[1]["PolicyDocument"]["Statement"]
    assert read["Resource"] == member_role("read")
    for writer in writers:
        assert writer["Fn::If"][0] == "IsEnforce" and writer["Fn::If"][2] == {"Ref": "AWS::NoValue"}
        assert writer["Fn::If"][1]["Resource"] in (member_role("rollback"), member_role("quarantine"))


# ---- role-deletion quarantine: what it may do to IAM -----------------------------------------------
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
    "sns:Publish": {"AlertTopic"},
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "dynamodb:PutItem": {"DedupTable", "AuditTable"},
    "dynamodb:GetItem": {"DedupTable", "BaselineTable"},  # the eventID claim; a role's snapshot
    "dynamodb:UpdateItem": {"DedupTable"},
    "dynamodb:DeleteItem": {"DedupTable"},
    **{action: [OWN_USERS, OWN_ROLES] for action in QUARANTINE_IAM_READS},
    "iam:GetPolicy": [QUARANTINE_POLICY_ARN],
    "iam:GetPolicyVersion": [QUARANTINE_POLICY_ARN],
    **{action: [OWN_USERS] for action in FUNCTION_USER_WRITES},
    **{action: [OWN_ROLES] for action in FUNCTION_ROLE_WRITES},
    "sts:AssumeRole": [member_role("read"), member_role("quarantine")],
}

ROLE_SNAPSHOT_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"RoleSnapshotLogGroup"},
    "logs:PutLogEvents": {"RoleSnapshotLogGroup"},
    "kms:Decrypt": {"SuiteKey"},  # the baseline table's key: nothing here to encrypt for
    **{f"dynamodb:{verb}": {"BaselineTable"} for verb in ("GetItem", "PutItem")},
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
    granted = _granted(role_props)
    assert set(granted) == set(contract)
    for action, expected in contract.items():
        if isinstance(expected, set):  # resources of this stack
            assert {target(r) for r in granted[action]} == expected, action
        else:  # patterns: exactly these, in this account (the member roles for the others)
            assert granted[action] == expected, action


def test_the_snapshot_only_reads_iam() -> None:
    _, role_props = function_role("RoleSnapshotFunction")
    iam = {a for a in _granted(role_props) if a.startswith("iam:")}
    assert iam and all(a.split(":")[1].startswith(("Get", "List")) for a in iam), iam


def test_iam_writes_only_in_the_quarantine_role() -> None:
    writers = {}
    for name, role in ROLES.items():
        for statement in role_statements(role["Properties"]):
            if statement["Effect"] != "Allow":
                continue
            iam = [a for a in as_list(statement["Action"]) if a.startswith("iam:")]
            writes = {a for a in iam if a.split(":")[1].startswith(WRITE_VERBS)}
            if writes:
                writers.setdefault(name, set()).update(writes)
    # No inline policy is ever written: iam:PutRolePolicy on any role could grant anything. And
    # no release: a compromised function can't lift a quarantine.
    assert writers == {"QuarantineFunctionRole": FUNCTION_USER_WRITES | FUNCTION_ROLE_WRITES}


def _quarantine_statements() -> list[dict[str, Any]]:
    """The quarantine role's policy statements as written, `Fn::If` wrappers kept."""
    _, role_props = function_role("QuarantineFunction")
    (own,) = [p for p in role_props["Policies"] if "Fn::If" not in p]
    return list(own["PolicyDocument"]["Statement"])


def test_the_quarantines_iam_writes_exist_only_in_enforce_mode() -> None:
    # Detect deployments hold no IAM write: every one (and the guard) is in an IsEnforce branch.
    enforce_only = T["Conditions"]["DeactivatesKeysInEnforce"]["Fn::And"]
    assert {"Condition": "IsEnforce"} in enforce_only
    for item in _quarantine_statements():
        if "Fn::If" not in item:
            actions = as_list(item["Action"])
            assert all(a.split(":")[1].startswith(("Get", "List")) for a in actions if a.startswith("iam:")), item
            continue
        condition, statement, otherwise = item["Fn::If"]
        assert condition in ("IsEnforce", "DeactivatesKeysInEnforce") and otherwise == {"Ref": "AWS::NoValue"}
        if statement["Sid"] == "AuditRecords":  # the record of what enforce mode did
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


def suite_tag_keys_only(statement: dict[str, Any]) -> bool:
    """Every key a tag or untag request names is one of the suite's own, and it names one."""
    return statement.get("Condition") == {
        "ForAllValues:StringEquals": {"aws:TagKeys": list(SUITE_TAG_KEYS)},
        "Null": {"aws:TagKeys": "false"},
    }


def test_tags_are_written_only_with_the_suites_own_keys() -> None:
    tagging = [
        (name, statement)
        for name, role in ROLES.items()
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
    granted = _granted(role_props)
    iam = [a for a in granted if a.startswith("iam:")]
    role_writes = {a for a in iam if "Role" in a and a.split(":")[1].startswith(WRITE_VERBS)}
    assert role_writes == FUNCTION_ROLE_WRITES and role_writes <= set(as_list(guard["Action"]))
    # No other role of the stack holds a Deny (nothing else needs one).
    for name, role in ROLES.items():
        if name != "QuarantineFunctionRole":
            assert all(s["Effect"] == "Allow" for s in role_statements(role["Properties"])), name


def test_organization_bus_policy_is_conditional_and_org_scoped() -> None:
    policy = RESOURCES["OrganizationBusPolicy"]
    assert policy["Condition"] == "HasOrganization"
    statement = policy["Properties"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    # Only the member stacks' forwarding role (tests/template/test_inputs.py checks the name).
    assert statement["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}


# ---- pinned dependencies -------------------------------------------------------------------------
def _pyproject_pin(package: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if re.match(rf"{re.escape(package)}(\[.*\])?==", d)]
    return pin.split("==")[1]


def test_powertools_layer_is_pinned_and_matches_pyproject() -> None:
    (layer,) = [x for x in T["Globals"]["Function"]["Layers"] if "Fn::Sub" in x]
    arn = layer["Fn::Sub"]
    assert "latest" not in arn.lower()
    assert re.fullmatch(
        r"arn:\$\{AWS::Partition\}:lambda:\$\{AWS::Region\}:017000801446:layer:"
        r"AWSLambdaPowertoolsPythonV3-python313-arm64:\$\{PowertoolsLayerVersion\}",
        arn,
    ), arn
    param = T["Parameters"]["PowertoolsLayerVersion"]
    documented = re.search(r"Layer (\d+) = aws-lambda-powertools (\d+\.\d+\.\d+)", param["Description"])
    assert documented, "the Description must document the layer → package version mapping"
    layer_version, package_version = int(documented[1]), documented[2]
    assert param["Default"] == layer_version
    assert _pyproject_pin("aws-lambda-powertools") == package_version


def test_layer_name_matches_runtime_and_architecture() -> None:
    glob = T["Globals"]["Function"]
    runtime = glob["Runtime"].replace(".", "")  # python3.13 -> python313
    (layer,) = [x for x in glob["Layers"] if "Fn::Sub" in x]
    assert f"-{runtime}-{glob['Architectures'][0]}:" in layer["Fn::Sub"]


# ---- rule patterns and routing -------------------------------------------------------------------
POLICY_EVENTS = [
    "AttachUserPolicy",
    "AttachRolePolicy",
    "AttachGroupPolicy",
    "PutUserPolicy",
    "PutRolePolicy",
    "PutGroupPolicy",
    "CreatePolicyVersion",
    "SetDefaultPolicyVersion",
]


def test_policy_attachment_rule_pattern() -> None:
    assert props("PolicyAttachmentRule")["EventPattern"] == {
        "source": ["aws.iam"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": POLICY_EVENTS},
    }


CONNECT_PROFILE_EVENTS = ["UpdateSecurityProfile", "CreateSecurityProfile", "UpdateUserSecurityProfiles", "CreateUser"]


def test_profile_rollback_rule_pattern() -> None:
    assert props("ProfileRollbackRule")["EventPattern"] == {
        "source": ["aws.connect"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["connect.amazonaws.com"], "eventName": CONNECT_PROFILE_EVENTS},
    }


ROLE_PROTECTION_EVENTS = [
    "DeleteRole",
    "DeleteServiceLinkedRole",
    "DetachRolePolicy",
    "DeleteRolePolicy",
    "UpdateAssumeRolePolicy",
    "PutRolePermissionsBoundary",
]


def test_role_protection_rule_pattern() -> None:
    assert props("RoleProtectionRule")["EventPattern"] == {
        "source": ["aws.iam"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": ROLE_PROTECTION_EVENTS},
    }


def test_instance_deletion_rule_pattern() -> None:
    assert props("InstanceDeletionRule")["EventPattern"] == {
        "source": ["aws.connect"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["connect.amazonaws.com"], "eventName": ["DeleteInstance"]},
    }


def _cloudtrail_event(service: str, event_name: str) -> dict[str, Any]:
    return {
        "source": f"aws.{service}",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": f"{service}.amazonaws.com", "eventName": event_name},
    }


def test_connect_create_user_and_iam_create_user_reach_different_rules() -> None:
    from connect_guard_tools.routing import compile_pattern

    connect_rule = compile_pattern(props("ProfileRollbackRule")["EventPattern"])
    iam_rule = compile_pattern(props("PolicyAttachmentRule")["EventPattern"])
    connect_create_user = _cloudtrail_event("connect", "CreateUser")
    iam_create_user = _cloudtrail_event("iam", "CreateUser")
    assert connect_rule(connect_create_user)
    assert not connect_rule(iam_create_user)
    assert not iam_rule(connect_create_user)
    # A forged mix (Connect source, IAM eventSource) matches neither.
    mixed = {**connect_create_user, "detail": {"eventSource": "iam.amazonaws.com", "eventName": "CreateUser"}}
    assert not connect_rule(mixed)
    for event_name in CONNECT_PROFILE_EVENTS:
        assert connect_rule(_cloudtrail_event("connect", event_name)), event_name
        assert not iam_rule(_cloudtrail_event("connect", event_name)), event_name
    for event_name in POLICY_EVENTS:
        assert not connect_rule(_cloudtrail_event("iam", event_name)), event_name


def test_quarantine_events_reach_exactly_one_rule_succeeded_or_denied() -> None:
    from connect_guard_tools.routing import compile_pattern

    matchers = {n: compile_pattern(r["Properties"]["EventPattern"]) for n, r in RULES.items()}

    def matching(event: dict[str, Any]) -> set[str]:
        return {n for n, m in matchers.items() if m(event)}

    cases = [("iam", name, "RoleProtectionRule") for name in ROLE_PROTECTION_EVENTS]
    cases.append(("connect", "DeleteInstance", "InstanceDeletionRule"))
    for service, event_name, rule in cases:
        event = _cloudtrail_event(service, event_name)
        assert matching(event) == {rule}, event_name
        # A denied attempt carries errorCode and often no requestParameters: still delivered.
        denied = {**event, "detail": {**event["detail"], "errorCode": "AccessDenied", "requestParameters": None}}
        assert matching(denied) == {rule}, event_name
    # Neighbouring calls are noise for the quarantine, and a Connect source never matches the IAM rule.
    for service, event_name in [("iam", "CreateRole"), ("iam", "DeleteUser"), ("connect", "CreateInstance")]:
        assert not matching(_cloudtrail_event(service, event_name)) & {"RoleProtectionRule", "InstanceDeletionRule"}
    assert not matching(_cloudtrail_event("connect", "DeleteRole"))
    assert not matching(_cloudtrail_event("iam", "DeleteInstance"))


def test_rule_patterns_are_literal_and_do_not_filter_on_error_code() -> None:
    for name, rule in RULES.items():
        pattern = rule["Properties"].get("EventPattern")
        if pattern is None:
            continue
        assert isinstance(pattern, dict), f"{name}: write the pattern as a YAML mapping"
        keys = [key for key, _ in walk(pattern)]
        assert not any(k == "Ref" or k.startswith("Fn::") for k in keys), f"{name}: intrinsic in pattern"
        # Denied calls carry detail.errorCode: filtering on it would hide the attempts.
        assert "errorCode" not in keys, name


def test_rule_routes_reach_their_responders() -> None:
    routes = {r.rule: r for r in rule_routes(T)}
    route = routes["PolicyAttachmentRule"]
    assert (route.queue, route.function, route.responder) == (
        "PolicyAlertsQueue",
        "PolicyAlertsFunction",
        "policy_alerts",
    )
    # Every rule with a pattern ends in a responder, and every responder has code.
    route = routes["ProfileRollbackRule"]
    assert (route.queue, route.function, route.responder) == (
        "ProfileRollbackQueue",
        "ProfileRollbackFunction",
        "profile_rollback",
    )
    for rule in ("RoleProtectionRule", "InstanceDeletionRule"):
        route = routes[rule]
        assert (route.queue, route.function, route.responder) == (
            "QuarantineQueue",
            "QuarantineFunction",
            "role_quarantine",
        )
    patterned = {n for n, r in RULES.items() if "EventPattern" in r["Properties"]}
    assert set(routes) == patterned
    for r in routes.values():
        assert (ROOT / "functions" / r.responder).is_dir(), r.responder


# ---- log archive ---------------------------------------------------------------------------------
# Template values as CloudFormation resolves them (tests/template/cfn.py), for the few checks that
# need a concrete deployment. Stack resources resolve to placeholders, the alert topic to an ARN
# the settings accept.
ACCOUNT, REGION = "111122223333", "us-east-1"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws", "AWS::StackName": "connect-guard"}
RESOLVED_RESOURCES = {
    "AlertTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:connect-guard-alerts",
    # Queue ARNs get a real shape: SOURCE_QUEUE_ARN is validated as one.
    **{f"{queue}.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:connect-guard-{queue}" for queue in QUEUES},
}
NO_VALUE = cfn.NO_VALUE


def parameters(**overrides: Any) -> dict[str, str]:
    return cfn.parameters(T, **overrides)


def _resolver(params: dict[str, str]) -> cfn.Resolver:
    return cfn.Resolver(T, params, PSEUDO, RESOLVED_RESOURCES)


def condition(name: str, params: dict[str, str]) -> bool:
    return _resolver(params).condition(name)


def deployed(name: str, params: dict[str, str]) -> bool:
    """Whether a resource (conditional ones are in RESOURCES too) exists with these parameters."""
    return _resolver(params).deployed(name)


def resolve(node: Any, params: dict[str, str]) -> Any:
    return _resolver(params).resolve(node)


def test_archive_bucket_is_encrypted_with_its_own_rotating_key() -> None:
    (rule,) = props("ArchiveBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["ArchiveKey", "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True  # one data key per bucket key period, not per object
    key = RESOURCES["ArchiveKey"]
    # Not the suite key: evidence stays readable even if SuiteKey is scheduled for deletion.
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert props("ArchiveKeyAlias") == {
        "AliasName": {"Fn::Sub": "alias/connect-guard-${Environment}-archive"},
        "TargetKeyId": {"Ref": "ArchiveKey"},
    }


def test_archive_key_admits_the_logs_service_only_for_this_bucket() -> None:
    statements = props("ArchiveKey")["KeyPolicy"]["Statement"]
    services = [s for s in statements if "Service" in s["Principal"]]
    (logs,) = services
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    assert logs["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    # S3 asks KMS with the encryption context aws:s3:arn (the bucket with a bucket key, else the
    # object): pinned to this bucket, no other bucket (no other account's) can use the key.
    bucket = props("ArchiveBucket")["BucketName"]["Fn::Sub"]
    assert logs["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:s3:arn": [
                {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket}"},
                {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket}/*"},
            ]
        }
    }
    # A bucket name is at most 63 characters, even with the longest region names (14).
    name = resolve(props("ArchiveBucket")["BucketName"], parameters(Environment="prod"))
    assert len(name.replace(REGION, "ap-southeast-2")) <= 63


def test_archive_bucket_is_versioned_private_owner_enforced_and_retained() -> None:
    bucket = RESOURCES["ArchiveBucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    p = bucket["Properties"]
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    assert p["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def _archive_bucket_statements() -> list[dict[str, Any]]:
    policy = props("ArchiveBucketPolicy")
    assert policy["Bucket"] == {"Ref": "ArchiveBucket"}
    return as_list(policy["PolicyDocument"]["Statement"])


def test_archive_bucket_refuses_access_without_tls() -> None:
    (deny,) = [s for s in _archive_bucket_statements() if s["Effect"] == "Deny"]
    assert (deny["Principal"], deny["Action"]) == ("*", "s3:*")
    assert deny["Resource"] == [{"Fn::GetAtt": ["ArchiveBucket", "Arn"]}, {"Fn::Sub": "${ArchiveBucket.Arn}/*"}]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_logs_service_writes_exports_only_for_this_account() -> None:
    allows = [s for s in _archive_bucket_statements() if s["Effect"] == "Allow"]
    assert {s["Action"] for s in allows} == {"s3:GetBucketAcl", "s3:PutObject"}
    this_account = {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnLike": {"aws:SourceArn": ACCOUNT_LOG_GROUPS},
    }
    for statement in allows:
        # Only the regional CloudWatch Logs principal, and only for this account's log groups.
        assert statement["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
        conditions = statement["Condition"]
        assert conditions["ArnLike"] == this_account["ArnLike"], statement["Sid"]
        assert conditions["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, statement["Sid"]
        if statement["Action"] == "s3:GetBucketAcl":
            assert statement["Resource"] == {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}
            assert conditions == this_account
        else:
            assert statement["Resource"] == {"Fn::Sub": "${ArchiveBucket.Arn}/*"}
            # The ACL AWS documents for export tasks (accepted with ACLs disabled).
            assert conditions["StringEquals"] == {
                "s3:x-amz-acl": "bucket-owner-full-control",
                "aws:SourceAccount": {"Ref": "AWS::AccountId"},
            }


# S3's minimum storage durations, days: what an object pays for at least in each class.
MINIMUM_STORAGE_DAYS = {"STANDARD_IA": 30, "GLACIER": 90, "DEEP_ARCHIVE": 180}
TRANSITION_PARAMETERS = {
    "STANDARD_IA": "ArchiveTransitionIaDays",
    "GLACIER": "ArchiveTransitionGlacierDays",
    "DEEP_ARCHIVE": "ArchiveTransitionDeepArchiveDays",
}


def _lifecycle_days(values: dict[str, int]) -> None:
    """IA >= 30; each next class after the previous one's minimum; expiry after Deep Archive's."""
    ia, glacier = values["ArchiveTransitionIaDays"], values["ArchiveTransitionGlacierDays"]
    deep, expiry = values["ArchiveTransitionDeepArchiveDays"], values["ArchiveExpirationDays"]
    assert ia >= MINIMUM_STORAGE_DAYS["STANDARD_IA"]
    assert glacier >= ia + MINIMUM_STORAGE_DAYS["STANDARD_IA"]
    assert deep >= glacier + MINIMUM_STORAGE_DAYS["GLACIER"]
    assert expiry > deep + MINIMUM_STORAGE_DAYS["DEEP_ARCHIVE"]


def test_lifecycle_tiers_in_order_with_valid_defaults() -> None:
    (rule,) = props("ArchiveBucket")["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and "Prefix" not in rule and "Filter" not in rule  # the whole bucket
    assert [t["StorageClass"] for t in rule["Transitions"]] == ["STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"]
    for transition in rule["Transitions"]:
        assert transition["TransitionInDays"] == {"Ref": TRANSITION_PARAMETERS[transition["StorageClass"]]}
    assert rule["ExpirationInDays"] == {"Ref": "ArchiveExpirationDays"}
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "ArchiveNoncurrentExpirationDays"}}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    params = T["Parameters"]
    names = [*TRANSITION_PARAMETERS.values(), "ArchiveExpirationDays"]
    # CloudFormation Rules can't compare numbers: the defaults hold the chain, and so do the
    # MinValues (each the lowest value the chain allows with the others at their minimums).
    _lifecycle_days({n: params[n]["Default"] for n in names})
    _lifecycle_days({n: params[n]["MinValue"] for n in names})
    for name in names:
        assert params[name]["Type"] == "Number", name
    # Locked versions outlive their expiry anyway: the default lock ends before it.
    assert params["ObjectLockRetentionDays"]["Default"] <= params["ArchiveExpirationDays"]["Default"]
    assert params["ArchiveExpirationDays"]["Default"] == 2555  # 7 years


def test_object_lock_only_when_its_mode_is_not_none() -> None:
    assert T["Conditions"]["HasObjectLock"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ObjectLockMode"}, "NONE"]}]}
    p = props("ArchiveBucket")
    assert p["ObjectLockEnabled"] == {"Fn::If": ["HasObjectLock", True, {"Ref": "AWS::NoValue"}]}
    assert p["ObjectLockConfiguration"] == {
        "Fn::If": [
            "HasObjectLock",
            {
                "ObjectLockEnabled": "Enabled",
                "Rule": {
                    "DefaultRetention": {"Mode": {"Ref": "ObjectLockMode"}, "Days": {"Ref": "ObjectLockRetentionDays"}}
                },
            },
            {"Ref": "AWS::NoValue"},
        ]
    }
    for mode, locked in [("NONE", False), ("GOVERNANCE", True), ("COMPLIANCE", True)]:
        params = parameters(ObjectLockMode=mode)
        assert condition("HasObjectLock", params) is locked, mode
        resolved = resolve(p["ObjectLockConfiguration"], params)
        assert (resolved is not NO_VALUE) is locked, mode
        if locked:
            assert resolved["Rule"]["DefaultRetention"] == {"Mode": mode, "Days": "365"}
    # The operator is told what compliance mode means before choosing it.
    description = " ".join(T["Parameters"]["ObjectLockMode"]["Description"].split())
    assert "COMPLIANCE" in description and "root" in description


def test_findings_archive_queue_gets_every_alert_raw_and_an_age_alarm() -> None:
    queue = props("FindingsArchiveQueue")
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert references_suite_key(queue["KmsMasterKeyId"])
    # One exporter run never reads a message twice.
    assert queue["VisibilityTimeout"] > props("LogExportFunction")["Timeout"]
    (subscription,) = [
        s
        for s in of_type("AWS::SNS::Subscription").values()
        if target(s["Properties"]["Endpoint"]) == "FindingsArchiveQueue"
    ]
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlertTopic"},
        "Protocol": "sqs",
        "Endpoint": {"Fn::GetAtt": ["FindingsArchiveQueue", "Arn"]},
        "RawMessageDelivery": True,
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["FindingsArchiveDLQ", "Arn"]}},
    }
    assert "FindingsArchiveDLQAlarm" in ALARMS and "AlertTopicDeliveryFailuresAlarm" in ALARMS
    assert subscription["DependsOn"] == "FindingsArchiveQueuePolicy"
    # SNS encrypts into the queue with the suite key (the queue policy names the topic).
    (sns,) = [
        s for s in props("SuiteKey")["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "sns.amazonaws.com"}
    ]
    assert set(sns["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    queue_name = [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["FindingsArchiveQueue", "QueueName"]}}]
    (alarm,) = [
        a["Properties"]
        for a in ALARMS.values()
        if a["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage"
        and a["Properties"]["Dimensions"] == queue_name
    ]
    # Two export intervals (hourly) without a drain.
    assert (alarm["Namespace"], alarm["Statistic"]) == ("AWS/SQS", "Maximum")
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 7200)
    assert T["Parameters"]["ExportSchedule"]["Default"] == "rate(1 hour)"


def test_log_export_function_contract() -> None:
    p = props("LogExportFunction")
    assert p["CodeUri"] == "functions/log_export"
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 300
    # CloudWatch Logs runs one export task per account at a time: one exporter at a time.
    assert p["ReservedConcurrentExecutions"] == 1
    assert p["Role"] == {"Fn::GetAtt": ["LogExportFunctionRole", "Arn"]}
    assert props("LogExportLogGroup")["LogGroupName"] == {"Fn::Sub": "/connect-guard/${Environment}/log-export"}
    assert "Events" not in p  # invoked by LogExportSchedule only
    # The next run resumes from the checkpoints: no immediate rerun against a pending task.
    assert p["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


LOG_EXPORT_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"LogExportLogGroup"},
    "logs:PutLogEvents": {"LogExportLogGroup"},
    "logs:CreateExportTask": EXPORTABLE_LOG_GROUPS,
    "logs:DescribeExportTasks": ["*"],
    "logs:DescribeLogGroups": ["*"],
    "s3:PutObject": [{"Fn::Sub": "${ArchiveBucket.Arn}/*"}],  # no read of the bucket or the archive
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"ArchiveKey", "SuiteKey"},
    "sqs:ReceiveMessage": {"FindingsArchiveQueue"},
    "sqs:DeleteMessage": {"FindingsArchiveQueue"},
    **{f"dynamodb:{verb}": {"BaselineTable"} for verb in ("GetItem", "PutItem")},  # checkpoints, by key
    "dynamodb:Query": {"AuditTable"},
    "sns:Publish": {"AlertTopic"},
}


def test_log_export_has_exactly_the_contract_actions() -> None:
    _, role_props = function_role("LogExportFunction")
    granted = _granted(role_props)
    assert set(granted) == set(LOG_EXPORT_ACTIONS)
    for action, expected in LOG_EXPORT_ACTIONS.items():
        if isinstance(expected, set):
            assert {target(r) for r in granted[action]} == expected, action
        else:
            assert granted[action] == expected, action
    # Export tasks: the suite's and Connect's groups, every group only once the operator names others.
    (export,) = [s for s in role_statements(role_props) if s["Action"] == "logs:CreateExportTask"]
    assert export["Resource"] == {
        "Fn::If": [
            "HasExportLogGroups",
            [ACCOUNT_LOG_GROUPS],
            [
                SUITE_LOG_GROUPS_HERE,
                {"Fn::If": ["HasConnectInstanceAlias", CONNECT_FLOW_LOGS[0], {"Ref": "AWS::NoValue"}]},
                {"Fn::If": ["HasConnectInstanceAlias", CONNECT_FLOW_LOGS[1], {"Ref": "AWS::NoValue"}]},
            ],
        ]
    }


def _exported(params: dict[str, str]) -> list[str]:
    return resolve(props("LogExportFunction")["Environment"]["Variables"]["EXPORT_LOG_GROUPS"], params).split(",")


def _may_export(group: str, params: dict[str, str]) -> bool:
    _, role_props = function_role("LogExportFunction")
    (export,) = [s for s in role_statements(role_props) if s["Action"] == "logs:CreateExportTask"]
    patterns = as_list(resolve(export["Resource"], params))
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"
    return all(any(fnmatch.fnmatchcase(a, p) for p in patterns) for a in (arn, arn + ":*"))


SLACK_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:connect-guard/slack-AbCdEf"


@pytest.mark.parametrize(
    ("securityhub", "chat"), [("false", "false"), ("true", "false"), ("false", "true"), ("true", "true")]
)
@pytest.mark.parametrize("slack", ["", SLACK_SECRET_ARN])
@pytest.mark.parametrize(
    ("alias", "extra", "expected_extra"),
    [
        ("", "", []),
        ("contoso-prod", "", ["/aws/connect/contoso-prod"]),
        ("", "/aws/lambda/intake, /custom/siem", ["/aws/lambda/intake", "/custom/siem"]),
        ("contoso", "/aws/lambda/intake", ["/aws/connect/contoso", "/aws/lambda/intake"]),
    ],
)
def test_exported_log_groups_are_the_suites_and_the_configured_ones(
    alias: str, extra: str, expected_extra: list[str], slack: str, securityhub: str, chat: str
) -> None:
    from connect_guard.settings import Settings

    params = parameters(
        Environment="prod",
        ConnectInstanceAlias=alias,
        ExportLogGroups=extra,
        SlackWebhookSecretArn=slack,
        EnableSecurityHub=securityhub,
        EnableChat=chat,
    )
    # The functions deployed with these parameters: a conditional one's group exists only with it.
    groups = [
        target(fn["Properties"]["LoggingConfig"]["LogGroup"]) or ""
        for name, fn in FUNCTIONS.items()
        if deployed(name, params)
    ]
    assert ("SlackNotifierLogGroup" in groups) is bool(slack)
    assert ("SecurityHubImportLogGroup" in groups) is (securityhub == "true")
    assert ("ChatNotifierLogGroup" in groups) is (chat == "true")
    suite = [resolve(props(group)["LogGroupName"], params) for group in groups]
    assert all(group.startswith("/connect-guard/prod/") for group in suite)
    env = {k: str(resolve(v, params)) for k, v in props("LogExportFunction")["Environment"]["Variables"].items()}
    # Every function's log group, then the Connect flow logs, then the operator's: as the core reads them.
    settings = Settings.from_env(env)
    assert sorted(settings.export_log_groups[: len(suite)]) == sorted(suite)
    assert list(settings.export_log_groups[len(suite) :]) == expected_extra
    assert "" not in _exported(params)  # no empty entry whatever is unset
    # The exporter's role may export exactly what it is told to, and the suite's groups always.
    for group in settings.export_log_groups:
        assert _may_export(group, params), group
    assert _may_export("/aws/lambda/someone-else", params) is bool(extra)


def test_archive_settings_read_from_the_template_environment() -> None:
    from connect_guard.settings import Settings

    params = parameters()
    for name in ["LogExportFunction"]:  # the archive's settings stay with the exporter
        env = {k: str(resolve(v, params)) for k, v in props(name)["Environment"]["Variables"].items()}
        settings = Settings.from_env(env)
        assert settings.archive_bucket_name == "<ArchiveBucket>", name
        # The exporter's checkpoints live in the baseline table (pk "export#<log group>").
        assert settings.checkpoint_table_name == "<BaselineTable>", name
        if "BASELINE_TABLE_NAME" in env:
            assert settings.baseline_table_name == settings.checkpoint_table_name, name
        assert settings.findings_archive_queue_url == "<FindingsArchiveQueue>", name
        assert (settings.export_lag_hours, settings.export_max_window_hours) == (12, 24), name
        assert settings.archive_behind_alert_hours == 48, name
    # An alert on every run helps nobody: the default threshold is past the lag and one interval.
    p = T["Parameters"]
    assert p["ArchiveBehindAlertHours"]["Default"] > p["ExportLagHours"]["Default"] + 1


def test_rule_routes_ignore_the_scheduled_functions() -> None:
    routes = rule_routes(T)
    scheduled = {function for _, function in SCHEDULED.values()}
    assert "LogExportFunction" in scheduled
    assert not {r.function for r in routes} & scheduled
    for function in scheduled:
        assert "Events" not in props(function), function  # invoked by their schedules only
    assert {r.rule for r in routes} == {n for n, r in RULES.items() if "EventPattern" in r["Properties"]}


# ---- Slack notifier (optional: HasSlack) ---------------------------------------------------------
SLACK_RESOURCES = {
    "SlackNotifierDLQ": "AWS::SQS::Queue",
    "SlackNotifierDLQPolicy": "AWS::SQS::QueuePolicy",
    "SlackNotifierLogGroup": "AWS::Logs::LogGroup",
    "SlackNotifierFunctionRole": "AWS::IAM::Role",
    "SlackNotifierFunction": "AWS::Serverless::Function",
    "SlackNotifierPermission": "AWS::Lambda::Permission",
    "SlackNotifierSubscription": "AWS::SNS::Subscription",
    "SlackNotifierDLQAlarm": "AWS::CloudWatch::Alarm",
    "SlackNotifierErrorsAlarm": "AWS::CloudWatch::Alarm",
}


def _references(node: Any) -> set[str]:
    """Logical IDs a node points at (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    found = set()
    for key, value in walk(node):
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(value[0] if isinstance(value, list) else value.split(".")[0])
        elif key == "Fn::Sub":
            text = value if isinstance(value, str) else value[0]
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([\w:.]+)\}", text)}
    return found


def test_slack_resources_exist_only_with_a_webhook_secret() -> None:
    assert T["Conditions"]["HasSlack"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SlackWebhookSecretArn"}, ""]}]}
    for name, resource_type in SLACK_RESOURCES.items():
        assert RESOURCES[name]["Type"] == resource_type, name
        assert RESOURCES[name]["Condition"] == "HasSlack", name
    # Whatever points at a Slack resource is itself conditional (else the stack fails without Slack).
    for name, resource in RESOURCES.items():
        if _references(resource) & set(SLACK_RESOURCES):
            assert resource.get("Condition") == "HasSlack", name
    assert not deployed("SlackNotifierFunction", parameters())
    assert deployed("SlackNotifierFunction", parameters(SlackWebhookSecretArn=SLACK_SECRET_ARN))


def test_slack_webhook_secret_arn_must_be_a_complete_secret_arn() -> None:
    # IAM matches the complete ARN: a partial one (no random suffix) would be granted nothing.
    pattern = re.compile(T["Parameters"]["SlackWebhookSecretArn"]["AllowedPattern"])
    for ok in ("", SLACK_SECRET_ARN, "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:slack-x1Y2z3"):
        assert pattern.fullmatch(ok), ok
    for bad in (
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:connect-guard/slack",
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:*",
        "arn:aws:ssm:us-east-1:111122223333:parameter/slack",
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "*",
    ):
        assert not pattern.fullmatch(bad), bad


@pytest.mark.parametrize("minimum", T["Parameters"]["SlackMinimumSeverity"]["AllowedValues"])
def test_slack_filter_policy_admits_the_severities_at_or_above_the_minimum(minimum: str) -> None:
    from connect_guard.policy import Severity

    subscription = props("SlackNotifierSubscription")
    assert subscription["FilterPolicyScope"] == "MessageAttributes"
    params = parameters(SlackWebhookSecretArn=SLACK_SECRET_ARN, SlackMinimumSeverity=minimum)
    policy = resolve(subscription["FilterPolicy"], params)
    expected = {s.name for s in Severity if s >= Severity[minimum]}
    assert set(policy) == {"severity"}  # the attribute connect_guard.publisher sets
    assert set(policy["severity"]) == expected
    assert len(policy["severity"]) == len(expected)


def test_slack_notifier_function_contract() -> None:
    p = props("SlackNotifierFunction")
    assert p["CodeUri"] == "functions/slack_notifier"
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 30
    assert p["ReservedConcurrentExecutions"] == 2
    assert p["Role"] == {"Fn::GetAtt": ["SlackNotifierFunctionRole", "Arn"]}
    assert "Events" not in p  # invoked by the alert topic's subscription only
    assert props("SlackNotifierLogGroup")["LogGroupName"] == {"Fn::Sub": "/connect-guard/${Environment}/slack-notifier"}
    assert p["Environment"]["Variables"] == {**COMMON_ENV, **SLACK_ENV, "POWERTOOLS_SERVICE_NAME": "slack-notifier"}
    permission = props("SlackNotifierPermission")
    assert permission == {
        "FunctionName": {"Fn::GetAtt": ["SlackNotifierFunction", "Arn"]},
        "Action": "lambda:InvokeFunction",
        "Principal": "sns.amazonaws.com",
        "SourceArn": {"Ref": "AlertTopic"},
    }


def test_slack_notifier_failures_end_in_its_dlq_with_an_alarm() -> None:
    # Lambda's async retries, then its on-failure destination: a failed post is kept, not lost.
    assert props("SlackNotifierFunction")["EventInvokeConfig"] == {
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 21600,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["SlackNotifierDLQ", "Arn"]}}},
    }
    # SNS's own delivery failures (it could not invoke the function) go to the same queue.
    subscription = RESOURCES["SlackNotifierSubscription"]
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlertTopic"}
    assert subscription["Properties"]["Protocol"] == "lambda"
    assert subscription["Properties"]["Endpoint"] == {"Fn::GetAtt": ["SlackNotifierFunction", "Arn"]}
    assert subscription["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["SlackNotifierDLQ", "Arn"]}
    }
    assert set(as_list(subscription["DependsOn"])) == {"SlackNotifierPermission", "SlackNotifierDLQPolicy"}
    assert "SlackNotifierDLQ" in dead_letter_queues()
    dlq = props("SlackNotifierDLQ")
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600 and references_suite_key(dlq["KmsMasterKeyId"])
    # The destination sends with the function's role; the queue policy admits SNS from the topic only.
    granted = _granted(props("SlackNotifierFunctionRole"))
    assert [target(r) for r in granted["sqs:SendMessage"]] == ["SlackNotifierDLQ"]
    assert {target(r) for r in granted["kms:GenerateDataKey"]} == {"SuiteKey"}
    (sns,) = [s for s in queue_policy_statements("SlackNotifierDLQ") if s["Effect"] == "Allow"]
    assert sns["Principal"] == {"Service": "sns.amazonaws.com"}
    assert sns["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "AlertTopic"}}}
    alarm = ALARMS["SlackNotifierDLQAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["SlackNotifierDLQ", "QueueName"]}}]
    assert alarm["AlarmName"] == {"Fn::Sub": "connect-guard-${Environment}-slack-notifier-dlq"}
    assert ALARMS["SlackNotifierErrorsAlarm"]["Properties"]["AlarmName"] == {
        "Fn::Sub": "connect-guard-${Environment}-slack-notifier-errors"
    }


SLACK_NOTIFIER_ACTIONS = {
    "logs:CreateLogStream": {"SlackNotifierLogGroup"},
    "logs:PutLogEvents": {"SlackNotifierLogGroup"},
    "secretsmanager:GetSecretValue": {"SlackWebhookSecretArn"},  # the parameter: that one secret
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "sqs:SendMessage": {"SlackNotifierDLQ"},
    "dynamodb:UpdateItem": {"DedupTable"},  # digest counters (pk id): one atomic ADD
}


def test_slack_notifier_has_exactly_the_contract_actions() -> None:
    _, role_props = function_role("SlackNotifierFunction")
    granted = _granted(role_props)
    assert set(granted) == set(SLACK_NOTIFIER_ACTIONS)
    for action, expected in SLACK_NOTIFIER_ACTIONS.items():
        assert {target(r) for r in granted[action]} == expected, action
    # The secret permission is the parameter itself, nothing wider, and no condition to widen it.
    (secret,) = [s for s in role_statements(role_props) if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert secret["Action"] == "secretsmanager:GetSecretValue"
    assert secret["Resource"] == {"Ref": "SlackWebhookSecretArn"} and "Condition" not in secret
    # No other role of the stack reads secrets.
    for name, role in ROLES.items():
        if name != "SlackNotifierFunctionRole":
            assert not any(a.startswith("secretsmanager:") for a in _granted(role["Properties"])), name


# ---- Security Hub import and chat notifier (optional: HasSecurityHub, HasChat) ---------------------
SECURITYHUB_RESOURCES = {
    "SecurityHubImportDLQ": "AWS::SQS::Queue",
    "SecurityHubImportDLQPolicy": "AWS::SQS::QueuePolicy",
    "SecurityHubImportLogGroup": "AWS::Logs::LogGroup",
    "SecurityHubImportFunctionRole": "AWS::IAM::Role",
    "SecurityHubImportFunction": "AWS::Serverless::Function",
    "SecurityHubImportPermission": "AWS::Lambda::Permission",
    "SecurityHubImportSubscription": "AWS::SNS::Subscription",
    "SecurityHubImportDLQAlarm": "AWS::CloudWatch::Alarm",
    "SecurityHubImportErrorsAlarm": "AWS::CloudWatch::Alarm",
}
CHAT_RESOURCES = {
    "ChatTopic": "AWS::SNS::Topic",
    "ChatTopicPolicy": "AWS::SNS::TopicPolicy",
    "ChatNotifierDLQ": "AWS::SQS::Queue",
    "ChatNotifierDLQPolicy": "AWS::SQS::QueuePolicy",
    "ChatNotifierLogGroup": "AWS::Logs::LogGroup",
    "ChatNotifierFunctionRole": "AWS::IAM::Role",
    "ChatNotifierFunction": "AWS::Serverless::Function",
    "ChatNotifierPermission": "AWS::Lambda::Permission",
    "ChatNotifierSubscription": "AWS::SNS::Subscription",
    "ChatNotifierDLQAlarm": "AWS::CloudWatch::Alarm",
    "ChatNotifierErrorsAlarm": "AWS::CloudWatch::Alarm",
}
# Integration → (condition, its parameter, its resources, the log group's last path segment).
INTEGRATIONS = {
    "SecurityHubImport": ("HasSecurityHub", "EnableSecurityHub", SECURITYHUB_RESOURCES, "securityhub-import"),
    "ChatNotifier": ("HasChat", "EnableChat", CHAT_RESOURCES, "chat-notifier"),
}


def _unguarded_references(node: Any, guard: str) -> set[str]:
    """_references, minus what sits in the true branch of `Fn::If [guard, ...]` (safe when guard fails)."""
    if isinstance(node, dict):
        if "Fn::If" in node and node["Fn::If"][0] == guard:
            return _unguarded_references(node["Fn::If"][2], guard)
        if set(node) & {"Ref", "Fn::GetAtt", "Fn::Sub"}:
            return _references(node)
        return set().union(*(_unguarded_references(v, guard) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_unguarded_references(v, guard) for v in node))
    return set()


@pytest.mark.parametrize("integration", sorted(INTEGRATIONS))
def test_integration_resources_exist_only_when_enabled(integration: str) -> None:
    guard, parameter, resources, _ = INTEGRATIONS[integration]
    assert T["Conditions"][guard] == {"Fn::Equals": [{"Ref": parameter}, "true"]}
    for name, resource_type in resources.items():
        assert RESOURCES[name]["Type"] == resource_type, name
        assert RESOURCES[name]["Condition"] == guard, name
    # Whatever points at one of them is conditional too, or points at it only under `Fn::If [guard]`
    # (CHAT_TOPIC_ARN in every function): else the stack fails with the integration off.
    for name, resource in RESOURCES.items():
        if resource.get("Condition") != guard:
            assert not _unguarded_references(resource, guard) & set(resources), name
    for name, output in T["Outputs"].items():
        if output.get("Condition") != guard:
            assert not _unguarded_references(output, guard) & set(resources), name
    function = f"{integration}Function"
    assert not deployed(function, parameters())
    assert deployed(function, parameters(**{parameter: "true"}))


def test_integration_parameters_say_chat_shares_the_slack_severity() -> None:
    params = T["Parameters"]
    for name in ("SlackMinimumSeverity", "EnableChat"):
        assert "minimum severity for Slack and chat" in params[name]["Description"], name


@pytest.mark.parametrize("chat", ["false", "true"])
def test_the_chat_notifier_gets_the_chat_topic_only_when_deployed(chat: str) -> None:
    from connect_guard.settings import Settings

    params = parameters(EnableChat=chat)
    for name in ["ChatNotifierFunction"]:
        env = {k: str(resolve(v, params)) for k, v in props(name)["Environment"]["Variables"].items()}
        expected = "<ChatTopic>" if chat == "true" else None
        assert Settings.from_env(env).chat_topic_arn == expected, name


@pytest.mark.parametrize(
    ("function", "code", "role", "log_group", "service"),
    [
        (
            "SecurityHubImportFunction",
            "functions/securityhub_import",
            "SecurityHubImportFunctionRole",
            "SecurityHubImportLogGroup",
            "securityhub-import",
        ),
        (
            "ChatNotifierFunction",
            "functions/chat_notifier",
            "ChatNotifierFunctionRole",
            "ChatNotifierLogGroup",
            "chat-notifier",
        ),
    ],
)
def test_integration_function_contract(function: str, code: str, role: str, log_group: str, service: str) -> None:
    p = props(function)
    assert p["CodeUri"] == code and (ROOT / code / "app.py").is_file()
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 30
    assert p["ReservedConcurrentExecutions"] == 2
    assert p["Role"] == {"Fn::GetAtt": [role, "Arn"]}
    assert "Events" not in p  # invoked by the alert topic's subscription only
    assert p["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}
    assert props(log_group)["LogGroupName"] == {"Fn::Sub": f"/connect-guard/${{Environment}}/{service}"}
    assert p["Environment"]["Variables"] == {
        **COMMON_ENV,
        **OWN_ENV.get(function, {}),
        "POWERTOOLS_SERVICE_NAME": service,
    }
    permission = function.removesuffix("Function") + "Permission"
    assert props(permission) == {
        "FunctionName": {"Fn::GetAtt": [function, "Arn"]},
        "Action": "lambda:InvokeFunction",
        "Principal": "sns.amazonaws.com",
        "SourceArn": {"Ref": "AlertTopic"},
    }


def test_securityhub_subscription_gets_every_finding() -> None:
    # ASFF updates by finding Id: a redelivery updates the imported finding, no filter needed.
    p = props("SecurityHubImportSubscription")
    assert "FilterPolicy" not in p and "FilterPolicyScope" not in p


@pytest.mark.parametrize("minimum", T["Parameters"]["SlackMinimumSeverity"]["AllowedValues"])
def test_chat_subscription_uses_the_slack_filter(minimum: str) -> None:
    chat, slack = props("ChatNotifierSubscription"), props("SlackNotifierSubscription")
    assert chat["FilterPolicyScope"] == slack["FilterPolicyScope"] == "MessageAttributes"
    assert chat["FilterPolicy"] == slack["FilterPolicy"]  # the same expression, not a copy that may drift
    params = parameters(SlackWebhookSecretArn=SLACK_SECRET_ARN, EnableChat="true", SlackMinimumSeverity=minimum)
    assert resolve(chat["FilterPolicy"], params) == resolve(slack["FilterPolicy"], params)


@pytest.mark.parametrize("integration", sorted(INTEGRATIONS))
def test_integration_failures_end_in_its_dlq_with_alarms(integration: str) -> None:
    _, _, _, slug = INTEGRATIONS[integration]
    function, dlq = f"{integration}Function", f"{integration}DLQ"
    # Lambda's async retries, then its on-failure destination.
    assert props(function)["EventInvokeConfig"] == {
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 21600,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [dlq, "Arn"]}}},
    }
    # SNS's own delivery failures go to the same queue.
    subscription = RESOURCES[f"{integration}Subscription"]
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlertTopic"}
    assert subscription["Properties"]["Protocol"] == "lambda"
    assert subscription["Properties"]["Endpoint"] == {"Fn::GetAtt": [function, "Arn"]}
    assert subscription["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}}
    assert set(as_list(subscription["DependsOn"])) == {f"{integration}Permission", f"{integration}DLQPolicy"}
    assert dlq in dead_letter_queues()
    queue = RESOURCES[dlq]
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert references_suite_key(queue["Properties"]["KmsMasterKeyId"])
    assert queue["DeletionPolicy"] == queue["UpdateReplacePolicy"] == "Delete"
    granted = _granted(props(f"{function}Role"))
    assert [target(r) for r in granted["sqs:SendMessage"]] == [dlq]
    (sns,) = [s for s in queue_policy_statements(dlq) if s["Effect"] == "Allow"]
    assert sns["Principal"] == {"Service": "sns.amazonaws.com"}
    assert sns["Action"] == "sqs:SendMessage"
    assert sns["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "AlertTopic"}}}
    dlq_alarm = ALARMS[f"{integration}DLQAlarm"]["Properties"]
    assert dlq_alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
    assert dlq_alarm["AlarmName"] == {"Fn::Sub": f"connect-guard-${{Environment}}-{slug}-dlq"}
    errors = ALARMS[f"{integration}ErrorsAlarm"]["Properties"]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    assert errors["AlarmName"] == {"Fn::Sub": f"connect-guard-${{Environment}}-{slug}-errors"}
    assert _notifies_topic(ALARMS[f"{integration}DLQAlarm"]) and _notifies_topic(ALARMS[f"{integration}ErrorsAlarm"])


DEFAULT_PRODUCT_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:securityhub:${AWS::Region}:${AWS::AccountId}:product/${AWS::AccountId}/default"
}
SECURITYHUB_IMPORT_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"SecurityHubImportLogGroup"},
    "logs:PutLogEvents": {"SecurityHubImportLogGroup"},
    "securityhub:BatchImportFindings": [DEFAULT_PRODUCT_ARN],
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "sqs:SendMessage": {"SecurityHubImportDLQ"},
}
CHAT_NOTIFIER_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"ChatNotifierLogGroup"},
    "logs:PutLogEvents": {"ChatNotifierLogGroup"},
    "sns:Publish": {"ChatTopic"},
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "sqs:SendMessage": {"ChatNotifierDLQ"},
}


@pytest.mark.parametrize(
    ("function", "contract"),
    [("SecurityHubImportFunction", SECURITYHUB_IMPORT_ACTIONS), ("ChatNotifierFunction", CHAT_NOTIFIER_ACTIONS)],
)
def test_integration_roles_have_exactly_the_contract_actions(function: str, contract: dict[str, Any]) -> None:
    _, role_props = function_role(function)
    assert all("Fn::If" not in policy for policy in role_props["Policies"])  # nothing conditional added
    granted = _granted(role_props)
    assert set(granted) == set(contract)
    for action, expected in contract.items():
        if isinstance(expected, set):
            assert {target(r) for r in granted[action]} == expected, action
        else:
            assert granted[action] == expected, action
    for statement in role_statements(role_props):
        assert "Condition" not in statement and "NotResource" not in statement, statement["Sid"]


def test_only_the_import_reaches_security_hub_and_only_the_chat_notifier_publishes_to_chat() -> None:
    for name, role in ROLES.items():
        for statement in role_statements(role["Properties"]):
            actions = as_list(statement["Action"])
            if any(a.startswith("securityhub:") for a in actions):
                assert name == "SecurityHubImportFunctionRole", name
                assert actions == ["securityhub:BatchImportFindings"]
                assert as_list(statement["Resource"]) == [DEFAULT_PRODUCT_ARN]
            if "ChatTopic" in {target(r) for r in resources_of(statement)}:
                assert name == "ChatNotifierFunctionRole", name
    # The chat notifier never publishes to the alert topic (which invokes it: a loop).
    assert "AlertTopic" not in {target(r) for r in _granted(props("ChatNotifierFunctionRole"))["sns:Publish"]}


def test_chat_topic_is_encrypted_named_and_refuses_publishing_without_tls() -> None:
    p = props("ChatTopic")
    assert references_suite_key(p["KmsMasterKeyId"])
    assert p["TopicName"] == {"Fn::Sub": "connect-guard-${Environment}-chat"}
    policy = props("ChatTopicPolicy")
    assert policy["Topics"] == [{"Ref": "ChatTopic"}]
    (statement,) = as_list(policy["PolicyDocument"]["Statement"])  # nothing granted to anyone
    assert statement == {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sns:Publish",
        "Resource": {"Ref": "ChatTopic"},
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    # Nothing subscribes to it here: the chat channel configuration does, outside the stack.
    for subscription in of_type("AWS::SNS::Subscription").values():
        assert target(subscription["Properties"]["TopicArn"]) != "ChatTopic"


# ---- samconfig.toml ------------------------------------------------------------------------------
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())


@pytest.mark.parametrize(
    ("env", "stack", "mode", "confirm"),
    [("default", "connect-guard-dev", "detect", False), ("prod", "connect-guard-prod", "enforce", True)],
)
def test_samconfig_environments(env: str, stack: str, mode: str, confirm: bool) -> None:
    from connect_guard_tools.config import parse_overrides

    config = SAMCONFIG[env]
    assert config["global"]["parameters"] == {"stack_name": stack, "region": "us-east-1"}
    deploy = config["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_NAMED_IAM"
    assert deploy["resolve_s3"] is True and deploy["confirm_changeset"] is confirm
    assert config["build"]["parameters"] == {"cached": True, "parallel": True}
    assert config["validate"]["parameters"] == {"lint": True}
    overrides = parse_overrides(deploy["parameter_overrides"])
    assert overrides["Environment"] == stack.rsplit("-", 1)[1]
    assert overrides["ResponseMode"] == mode
    for name, value in overrides.items():
        spec = T["Parameters"][name]  # a typo here would be silently ignored by sam deploy
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], name


# Named IAM resources (a RoleName, ManagedPolicyName, UserName or GroupName) make CloudFormation
# require CAPABILITY_NAMED_IAM: without it `sam deploy` fails with InsufficientCapabilities.
NAMED_IAM = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
}


def named_iam_resources(template: dict[str, Any]) -> list[str]:
    return [
        name
        for name, resource in template["Resources"].items()
        if NAMED_IAM.get(resource["Type"]) in resource.get("Properties", {})
    ]


def test_every_samconfig_environment_can_deploy_the_named_iam_resources() -> None:
    assert named_iam_resources(T), "the stack names its roles: member stacks trust their exact ARNs"
    deploys = {
        env: config["deploy"]["parameters"]
        for env, config in SAMCONFIG.items()
        if isinstance(config, dict) and "deploy" in config
    }
    assert set(deploys) == {"default", "prod"}
    for env, deploy in deploys.items():
        assert "CAPABILITY_NAMED_IAM" in deploy["capabilities"].split(), env


def test_the_named_iam_check_would_catch_a_missing_capability() -> None:
    template = {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "x"}}}}
    assert named_iam_resources(template) == ["R"]
    assert named_iam_resources({"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {}}}}) == []


def test_samconfig_dev_allowlists_the_demo_pipeline_role() -> None:
    from connect_guard_tools.config import parse_overrides

    overrides = parse_overrides(SAMCONFIG["default"]["deploy"]["parameters"]["parameter_overrides"])
    # The demo corpus (events/) replays with this configuration: its change pipeline and its
    # break-glass role are expected actors.
    assert overrides["AllowlistedPrincipals"].split(",") == [
        "arn:aws:iam::111122223333:role/ConnectChangePipeline",
        "arn:aws:iam::111122223333:role/ConnectBreakGlass",
    ]


def test_samconfig_dev_protects_the_demo_role_and_keeps_the_default_patterns() -> None:
    from connect_guard_tools.config import parse_overrides

    overrides = parse_overrides(SAMCONFIG["default"]["deploy"]["parameters"]["parameter_overrides"])
    protected = overrides["ProtectedRoleNames"].split(",")
    default = T["Parameters"]["ProtectedRoleNames"]["Default"].split(",")
    assert protected[: len(default)] == default  # an override replaces the default: restate it
    assert protected[len(default) :] == ["ConnectAgentFederation"]
    # prod keeps the template's defaults for the quarantine: nothing acts until the operator says so.
    prod = parse_overrides(SAMCONFIG["prod"]["deploy"]["parameters"]["parameter_overrides"])
    assert not set(prod) & set(QUARANTINE_PARAMETERS)


# ---- cfn-lint ------------------------------------------------------------------------------------
def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(Path(TEMPLATE_PATH))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


# ---- detect is enforced by IAM ----------------------------------------------------------------------
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
        assert assumable == {"read"}
    else:
        assert set(writes) == {"ProfileRollbackFunctionRole", "BaselineSweepFunctionRole", "QuarantineFunctionRole"}
        assert assumable == {"read", "rollback", "quarantine"}


def test_the_core_knows_every_role_the_stack_names() -> None:
    from connect_guard.settings import SUITE_ROLES, suite_role_name

    names = {resolve(role["Properties"]["RoleName"], parameters()) for role in ROLES.values()}
    assert names == {suite_role_name("dev", control) for control in SUITE_ROLES}


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
