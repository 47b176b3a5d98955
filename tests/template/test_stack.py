"""The stack as a whole: transform and globals, the suite's identity, parameters and their
defaults, outputs, pinned dependencies, samconfig.toml and cfn-lint."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from connect_guard_tools.template import TEMPLATE_PATH
from tests.template.stack import (
    QUARANTINE_PARAMETERS,
    ROLES,
    ROOT,
    T,
)


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
    assert sorted(writers) == [
        "BaselineSweepFunctionRole",
        "LoggingGuardFunctionRole",
        "ProfileRollbackFunctionRole",
        "QuarantineFunctionRole",
    ]
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
        ("LoggingDriftCheckSchedule", "rate(1 hour)"),
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
    assert params["LoggingDriftCheckSchedule"]["AllowedPattern"] == params["BaselineSweepSchedule"]["AllowedPattern"]
    assert params["ObjectLockMode"]["AllowedValues"] == ["NONE", "GOVERNANCE", "COMPLIANCE"]
    for name in ("ArchiveTransitionIaDays", "ExportLagHours", "ExportMaxWindowHours", "ArchiveBehindAlertHours"):
        assert params[name]["Type"] == "Number", name
    assert params["ArchiveTransitionIaDays"]["MinValue"] == 30  # S3 refuses Standard-IA before 30 days
    # CloudWatch Logs data can take up to 12 h to become exportable: no window closer to now.
    assert params["ExportLagHours"]["MinValue"] >= 12
    # The severity names the publisher puts in the `severity` message attribute.
    from connect_guard.policy import Severity

    assert set(params["SlackMinimumSeverity"]["AllowedValues"]) == {s.name for s in Severity}


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
