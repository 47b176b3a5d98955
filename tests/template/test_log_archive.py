"""The log archive: its bucket and key, lifecycle and object lock, the findings queue, and the
exporter's function, role and the log groups it exports."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from tests.template.stack import (
    ACCOUNT,
    ACCOUNT_LOG_GROUPS,
    ALARMS,
    CONNECT_FLOW_LOGS,
    EXPORTABLE_LOG_GROUPS,
    FUNCTIONS,
    NO_VALUE,
    REGION,
    RESOURCES,
    SLACK_SECRET_ARN,
    SUITE_LOG_GROUPS_HERE,
    T,
    as_list,
    condition,
    deployed,
    function_role,
    grants,
    notifies_topic,
    of_type,
    parameters,
    props,
    references_suite_key,
    resolve,
    role_statements,
    target,
)


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


MEMBER_EXPORT_PARAMETER = (
    "arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:parameter/connect-guard/${Environment}/member/export"
)
LOG_EXPORT_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"LogExportLogGroup"},
    "logs:PutLogEvents": {"LogExportLogGroup"},
    "logs:CreateExportTask": EXPORTABLE_LOG_GROUPS,
    "logs:DescribeExportTasks": ["*"],
    "logs:DescribeLogGroups": ["*"],
    "s3:PutObject": [{"Fn::Sub": "${ArchiveBucket.Arn}/*"}],
    # Sealing: versions listed and read by version ID only (no plain GetObject or ListBucket).
    "s3:ListBucketVersions": {"ArchiveBucket"},
    "s3:GetObjectVersion": [{"Fn::Sub": "${ArchiveBucket.Arn}/*"}],
    "kms:Decrypt": {"ArchiveKey", "SuiteKey"},
    "kms:GenerateDataKey": {"ArchiveKey", "SuiteKey"},
    "kms:Sign": {"ArchiveSigningKey"},
    "sqs:ReceiveMessage": {"FindingsArchiveQueue"},
    "sqs:DeleteMessage": {"FindingsArchiveQueue"},
    **{f"dynamodb:{verb}": {"BaselineTable"} for verb in ("GetItem", "PutItem")},  # checkpoints, by key
    "dynamodb:Query": {"AuditTable"},
    "dynamodb:DescribeTable": {"AuditTable"},  # once: the audit archive starts at its creation day
    "sns:Publish": {"AlertTopic"},
    # Pulls (connect_guard.member_logs): member accounts through their logs role, this account's
    # other regions with this role (the member stack there adds the grant on the groups it lists).
    "sts:AssumeRole": [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/connect-guard/connect-guard-${Environment}-member-logs"}
    ],
    "logs:FilterLogEvents": [{"Fn::Sub": "arn:${AWS::Partition}:logs:*:${AWS::AccountId}:log-group:/aws/connect/*"}],
    "connect:DescribeInstance": [{"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*"}],
    "ssm:GetParameter": [{"Fn::Sub": MEMBER_EXPORT_PARAMETER}],
}


def test_log_export_has_exactly_the_contract_actions() -> None:
    _, role_props = function_role("LogExportFunction")
    granted = grants(role_props)
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


EXPORTER_ROLE_ARN = (
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/connect-guard/connect-guard-${Environment}-log-export"
)


def test_manifests_are_signed_by_their_own_asymmetric_key_that_only_the_exporter_may_sign_with() -> None:
    key = RESOURCES["ArchiveSigningKey"]
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")  # old manifests verify
    p = key["Properties"]
    assert (p["KeySpec"], p["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert "EnableKeyRotation" not in p  # asymmetric keys have no automatic rotation
    root, deny = p["KeyPolicy"]["Statement"]
    assert root["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "kms:Sign")
    # The exporter's role by name and path (its policy names the key: a GetAtt here would be a cycle).
    role = props("LogExportFunctionRole")
    assert role["Path"] + role["RoleName"]["Fn::Sub"] == EXPORTER_ROLE_ARN.split(":role")[1]
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": {"Fn::Sub": EXPORTER_ROLE_ARN}}}
    assert props("ArchiveSigningKeyAlias")["TargetKeyId"] == {"Ref": "ArchiveSigningKey"}
    env = props("LogExportFunction")["Environment"]["Variables"]
    assert env["ARCHIVE_SIGNING_KEY_ARN"] == {"Fn::GetAtt": ["ArchiveSigningKey", "Arn"]}
    assert T["Outputs"]["ArchiveSigningKeyArn"]["Value"] == {"Fn::GetAtt": ["ArchiveSigningKey", "Arn"]}


# ---- no finding lost without an alarm first ----------------------------------------------------
SQS_MAX_RETENTION = 14 * 24 * 3600


def _alarm_on(metric: str, queue: str) -> dict[str, Any]:
    dimensions = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    (alarm,) = [
        a
        for a in ALARMS.values()
        if a["Properties"]["MetricName"] == metric and a["Properties"]["Dimensions"] == dimensions
    ]
    return alarm


def _seconds_to_alarm(alarm: dict[str, Any]) -> int:
    """The longest a breach goes unannounced: the threshold plus the periods it must hold for."""
    p = alarm["Properties"]
    assert p["ComparisonOperator"] == "GreaterThanThreshold" and p["Statistic"] == "Maximum"
    assert p.get("DatapointsToAlarm", p["EvaluationPeriods"]) <= p["EvaluationPeriods"]
    threshold = p["Threshold"] if p["MetricName"] == "ApproximateAgeOfOldestMessage" else 0
    return int(threshold) + int(p["Period"]) * int(p["EvaluationPeriods"])


def test_a_finding_cannot_expire_from_the_archive_queue_without_an_alarm_long_before() -> None:
    queue, dlq = props("FindingsArchiveQueue"), props("FindingsArchiveDLQ")
    # Both keep a message as long as SQS allows.
    assert queue["MessageRetentionPeriod"] == dlq["MessageRetentionPeriod"] == SQS_MAX_RETENTION
    assert references_suite_key(dlq["KmsMasterKeyId"])
    # Undrained: the age alarm fires within hours; the operators then have nearly 14 days.
    age = _alarm_on("ApproximateAgeOfOldestMessage", "FindingsArchiveQueue")
    assert _seconds_to_alarm(age) * 100 < SQS_MAX_RETENTION
    assert notifies_topic(age)
    # A healthy exporter never trips it: a run every hour (the default schedule) that ends within its
    # timeout deletes everything it received, within the visibility timeout.
    interval = 3600
    assert T["Parameters"]["ExportSchedule"]["Default"] == "rate(1 hour)"
    timeout = props("LogExportFunction")["Timeout"]
    assert interval + timeout < age["Properties"]["Threshold"]
    assert queue["VisibilityTimeout"] > timeout
    # What SNS could not deliver into the queue lands in its DLQ, which alarms within a minute or two.
    (subscription,) = [
        s
        for s in of_type("AWS::SNS::Subscription").values()
        if target(s["Properties"]["Endpoint"]) == "FindingsArchiveQueue"
    ]
    assert target(subscription["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) == "FindingsArchiveDLQ"
    depth = _alarm_on("ApproximateNumberOfMessagesVisible", "FindingsArchiveDLQ")
    assert _seconds_to_alarm(depth) <= 300 and notifies_topic(depth)
    # Not even the SNS delivery into that DLQ fails silently: the topic's failed notifications alarm.
    assert notifies_topic(ALARMS["AlertTopicDeliveryFailuresAlarm"])


# ---- Object Lock in prod -------------------------------------------------------------------------
LOCK_ACTIONS = {"s3:BypassGovernanceRetention", "s3:PutObjectRetention", "s3:PutBucketObjectLockConfiguration"}


def test_prod_locks_the_archive_in_governance_mode_for_a_year_and_the_template_accepts_it() -> None:
    import tomllib

    from connect_guard_tools.config import parse_overrides
    from tests.template.stack import ROOT

    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    prod = parse_overrides(samconfig["prod"]["deploy"]["parameters"]["parameter_overrides"])
    dev = parse_overrides(samconfig["default"]["deploy"]["parameters"]["parameter_overrides"])
    assert (prod["ObjectLockMode"], prod["ObjectLockRetentionDays"]) == ("GOVERNANCE", "365")
    assert "ObjectLockMode" not in dev  # dev stays unlocked: a test bucket can be emptied
    p = T["Parameters"]
    assert prod["ObjectLockMode"] in p["ObjectLockMode"]["AllowedValues"]
    retention = int(prod["ObjectLockRetentionDays"])
    assert retention >= p["ObjectLockRetentionDays"]["MinValue"]
    # Lifecycle expiry is not shortened by the lock, nor the other way round: expiry comes after it.
    expiry = int(prod.get("ArchiveExpirationDays", p["ArchiveExpirationDays"]["Default"]))
    assert retention <= expiry
    params = parameters(**prod)
    assert condition("HasObjectLock", params)
    resolved = resolve(props("ArchiveBucket")["ObjectLockConfiguration"], params)
    assert resolved["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": "365"}
    # No suite role may bypass governance retention or change the lock.
    for name, role in of_type("AWS::IAM::Role").items():
        granted = grants(role["Properties"])
        assert not LOCK_ACTIONS & set(granted), name


# ---- server access logging -----------------------------------------------------------------------
ARCHIVE_BUCKET_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:s3:::connect-guard-${Environment}-archive-${AWS::AccountId}-${AWS::Region}"
}


def test_the_archive_bucket_logs_every_request_to_its_own_log_bucket() -> None:
    archive = RESOURCES["ArchiveBucket"]
    assert archive["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "ArchiveAccessLogBucket"},
        "LogFilePrefix": "archive/",
        "TargetObjectKeyFormat": {"PartitionedPrefix": {"PartitionDateSource": "EventTime"}},
    }
    # The delivery is admitted before logging is turned on.
    assert archive["DependsOn"] == "ArchiveAccessLogBucketPolicy"
    # The policy names the archive bucket as the bucket's name is declared (no reference: no cycle).
    assert resolve(ARCHIVE_BUCKET_ARN, parameters()) == "arn:aws:s3:::" + resolve(
        archive["Properties"]["BucketName"], parameters()
    )
    logs = RESOURCES["ArchiveAccessLogBucket"]
    assert logs["DeletionPolicy"] == logs["UpdateReplacePolicy"] == "Retain"
    p = logs["Properties"]
    # S3 delivers access logs only into an SSE-S3 bucket without Object Lock.
    assert p["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert "ObjectLockEnabled" not in p and "ObjectLockConfiguration" not in p
    assert "LoggingConfiguration" not in p  # no log of the log: S3 would log its own deliveries
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    assert p["PublicAccessBlockConfiguration"] == props("ArchiveBucket")["PublicAccessBlockConfiguration"]
    assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # Kept as long as the evidence it is about.
    (rule,) = p["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and "Filter" not in rule and "Prefix" not in rule
    assert rule["ExpirationInDays"] == {"Ref": "ArchiveExpirationDays"}
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "ArchiveNoncurrentExpirationDays"}}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_the_access_log_bucket_admits_only_s3_log_delivery_for_the_archive_bucket() -> None:
    policy = props("ArchiveAccessLogBucketPolicy")
    assert policy["Bucket"] == {"Ref": "ArchiveAccessLogBucket"}
    deny, allow = as_list(policy["PolicyDocument"]["Statement"])
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
    assert deny["Resource"] == [
        {"Fn::GetAtt": ["ArchiveAccessLogBucket", "Arn"]},
        {"Fn::Sub": "${ArchiveAccessLogBucket.Arn}/*"},
    ]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert allow["Effect"] == "Allow" and allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Resource"] == {"Fn::Sub": "${ArchiveAccessLogBucket.Arn}/archive/*"}
    assert allow["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnEquals": {"aws:SourceArn": ARCHIVE_BUCKET_ARN},
    }
    # No suite role writes, reads or deletes there: the record of the evidence is not the suite's to edit.
    for name, role in of_type("AWS::IAM::Role").items():
        for statement in role_statements(role["Properties"]):
            assert "ArchiveAccessLogBucket" not in json.dumps(statement), name
