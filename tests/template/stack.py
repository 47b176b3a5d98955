"""template.yaml as the template tests read it, and what they share.

The template is read the way CloudFormation reads it (intrinsics in long form), so the checks
hold for every responder added later. Here: lookups, the resolver for concrete deployments,
and the settings and IAM patterns more than one control is held to. Not collected (no test_
prefix); cfn.py is the resolver itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connect_guard.quarantine import SUITE_TAG_KEYS
from connect_guard_tools.template import load_template
from tests.template import cfn

ROOT = Path(__file__).resolve().parents[2]
SUITE_ROLE_PATH = "/connect-guard/"

T = load_template()
RESOURCES: dict[str, Any] = T["Resources"]

# The operations nested stack (stacks/operations.yaml: alarms, dashboard, operations topic), read
# as the parent wires it: its parameters replaced by what OperationsStack passes (cfn.inline_nested),
# so an alarm's dimension reads `!GetAtt PolicyAlertsDLQ.QueueName` as if written in template.yaml.
OPERATIONS_STACK = "OperationsStack"
OPERATIONS_PATH = ROOT / "stacks" / "operations.yaml"
OPS = load_template(OPERATIONS_PATH)
OPERATIONS_PARAMETERS: dict[str, Any] = RESOURCES[OPERATIONS_STACK]["Properties"]["Parameters"]
OPERATIONS_RESOURCES: dict[str, Any] = cfn.inline_nested(OPERATIONS_PARAMETERS, OPS)


# ---- helpers -------------------------------------------------------------------------------------
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
ALARMS = {name: r for name, r in OPERATIONS_RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
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


def grants(role_props: dict[str, Any]) -> dict[str, list[Any]]:
    """Allowed action → resources (Deny statements are checked on their own)."""
    granted: dict[str, list[Any]] = {}
    for statement in role_statements(role_props):
        if statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(resources_of(statement))
    return granted


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


def notifies_topic(alarm: dict[str, Any]) -> bool:
    """The alarm notifies the operations topic (its own key), never the alert topic it may be about."""
    p = alarm["Properties"]
    return p["AlarmActions"] == [{"Ref": "OperationsTopic"}] and p["OKActions"] == [{"Ref": "OperationsTopic"}]


# ---- resolved deployments ------------------------------------------------------------------------
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
SLACK_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:connect-guard/slack-AbCdEf"


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


def operations_parameters(params: dict[str, str]) -> dict[str, str]:
    """The nested stack's parameters as CloudFormation passes them for one parent deployment."""
    return {name: str(resolve(value, params)) for name, value in OPERATIONS_PARAMETERS.items()}


def operations_resolver(params: dict[str, str]) -> cfn.Resolver:
    """stacks/operations.yaml resolved for the parent deployment `params`."""
    return cfn.Resolver(OPS, operations_parameters(params), PSEUDO)


# ---- function environment ------------------------------------------------------------------------
# Template parameter → the environment variable every function gets it as.
QUARANTINE_PARAMETERS = {
    "ProtectedRoleNames": "PROTECTED_ROLE_NAMES",
    "ProtectedRoleTagKey": "PROTECTED_ROLE_TAG_KEY",
    "QuarantineOnTampering": "QUARANTINE_ON_TAMPERING",
    "DeactivateAccessKeys": "DEACTIVATE_ACCESS_KEYS",
    "QuarantinePolicyName": "QUARANTINE_POLICY_NAME",
    "SnapshotAccountIds": "SNAPSHOT_ACCOUNT_IDS",
}


# The suite's own log groups are always exported (one per function, LogExportFunction's too);
# then the Connect instance's flow logs and the operator's groups, each only when set.
SUITE_LOG_GROUPS = ",".join(
    f"/connect-guard/${{Environment}}/{name}"
    for name in (
        "policy-alerts",
        "profile-rollback",
        "baseline-sweep",
        "logging-guard",
        "role-quarantine",
        "role-snapshot",
        "log-export",
        "liveness",
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
    "ARCHIVE_SIGNING_KEY_ARN": {"Fn::GetAtt": ["ArchiveSigningKey", "Arn"]},
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
# Response modes (README "Response modes"): each responsive control's function and its condition.
# The function's writes live in that condition's branches, and it gets its mode resolved.
ENFORCES = {
    "ProfileRollbackFunction": "RollbackEnforces",
    "BaselineSweepFunction": "SweepEnforces",
    "QuarantineFunction": "QuarantineEnforces",
    "LoggingGuardFunction": "LoggingGuardEnforces",
}
MODE_PARAMETERS = {
    "ProfileRollbackFunction": ("PROFILE_ROLLBACK_MODE", "ProfileRollbackMode"),
    "BaselineSweepFunction": ("BASELINE_SWEEP_MODE", "BaselineSweepMode"),
    "QuarantineFunction": ("QUARANTINE_MODE", "QuarantineMode"),
    "LoggingGuardFunction": ("LOGGING_GUARD_MODE", "LoggingGuardMode"),
}
MODE_ENV = {
    function: {
        "RESPONSE_MODE": {"Fn::If": [condition, "enforce", "detect"]},
        MODE_PARAMETERS[function][0]: {"Ref": MODE_PARAMETERS[function][1]},
        "DETECT_ONLY_ACCOUNT_IDS": {"Ref": "DetectOnlyAccountIds"},
    }
    for function, condition in ENFORCES.items()
}


def common_env(function: str) -> dict[str, Any]:
    """COMMON_ENV as `function` reads it: a responsive control's RESPONSE_MODE is its own, resolved."""
    return {**COMMON_ENV, **{k: v for k, v in MODE_ENV.get(function, {}).items() if k in COMMON_ENV}}


# Each responder reads only its own queue's records (connect_guard.runtime).
SOURCE_QUEUES = {
    "PolicyAlertsFunction": "PolicyAlertsQueue",
    "ProfileRollbackFunction": "ProfileRollbackQueue",
    "QuarantineFunction": "QuarantineQueue",
    "LoggingGuardFunction": "LoggingGuardQueue",
    "LivenessFunction": "LivenessQueue",
}
# Each responder sends its poison to its own queue's DLQ, on the first receive.
DEAD_LETTER_QUEUES = {fn: queue.replace("Queue", "DLQ") for fn, queue in SOURCE_QUEUES.items()}
# Settings one function alone reads.
OWN_ENV = {
    "LogExportFunction": ARCHIVE_ENV,
    "SlackNotifierFunction": SLACK_ENV,
    "ChatNotifierFunction": CHAT_ENV,
    **{
        fn: {
            "SOURCE_QUEUE_ARN": {"Fn::GetAtt": [queue, "Arn"]},
            "DEAD_LETTER_QUEUE_URL": {"Ref": DEAD_LETTER_QUEUES[fn]},
        }
        for fn, queue in SOURCE_QUEUES.items()
    },
}
IDENTITY_CENTER_ENV = {
    "IDENTITY_CENTER_ACCOUNT_ID": {"Ref": "IdentityCenterAccountId"},
    "IDENTITY_CENTER_REGION": {"Ref": "IdentityCenterRegion"},
    "IDENTITY_STORE_ID": {"Ref": "IdentityStoreId"},
    "SSO_DENY_LIST_POLICY_ID": {"Ref": "SsoDenyListPolicyId"},
}
# Only the liveness check knows how long a canary may be silent.
OWN_ENV["LivenessFunction"] = {**OWN_ENV["LivenessFunction"], "CANARY_SILENCE_MINUTES": {"Ref": "CanarySilenceMinutes"}}
# Only the quarantine revokes Identity Center sessions.
OWN_ENV["QuarantineFunction"] = {**OWN_ENV["QuarantineFunction"], **IDENTITY_CENTER_ENV}
# Only the event-driven rollback approves changes into the Connect baseline.
OWN_ENV["ProfileRollbackFunction"] = {
    **OWN_ENV["ProfileRollbackFunction"],
    "BASELINE_APPROVERS": {"Ref": "BaselineApprovers"},
}
# A user's email moved outside the organization's domains (connect_user_guard).
OWN_ENV["ProfileRollbackFunction"]["ORGANIZATION_EMAIL_DOMAINS"] = {"Ref": "OrganizationEmailDomains"}


# ---- IAM patterns --------------------------------------------------------------------------------
WRITE_VERBS = (
    *("Put", "Update", "Delete", "Create", "Attach", "Detach", "Set", "Tag", "Untag", "Change"),
    *("Send", "Publish", "Assume", "Pass", "Invoke", "Generate", "Encrypt", "ReEncrypt"),
)


# This account's IAM users and roles (any path): what the quarantine and the snapshot work on.
OWN_USERS = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"}
OWN_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"}
SUITE_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role" + SUITE_ROLE_PATH + "*"}


# The deny-list SCP for IAM Identity Center users (connect_guard.identity_center): one policy ID,
# in whichever organization and management account it lives.
DENY_LIST_SCP = {
    "Fn::Sub": "arn:${AWS::Partition}:organizations::*:policy/o-*/service_control_policy/${SsoDenyListPolicyId}"
}
IDENTITY_STORE = [
    {"Fn::Sub": "arn:${AWS::Partition}:identitystore::${AWS::AccountId}:identitystore/${IdentityStoreId}"},
    {"Fn::Sub": "arn:${AWS::Partition}:identitystore:::user/*"},
]
MEMBER_SSO_ROLE = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::${IdentityCenterAccountId}:role/connect-guard/"
    "connect-guard-${Environment}-member-sso"
}


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


def is_suite_role_guard(statement: dict[str, Any]) -> bool:
    """The one Deny a role may hold: no role writes on the suite's own roles."""
    resources = list(without_no_value(as_list(statement["Resource"])))
    return (
        statement["Effect"] == "Deny"
        and set(as_list(statement["Action"])) == IAM_ROLE_WRITES
        and resources == [SUITE_ROLES]
    )


def suite_tag_keys_only(statement: dict[str, Any]) -> bool:
    """Every key a tag or untag request names is one of the suite's own, and it names one."""
    return statement.get("Condition") == {
        "ForAllValues:StringEquals": {"aws:TagKeys": list(SUITE_TAG_KEYS)},
        "Null": {"aws:TagKeys": "false"},
    }


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
# logging_guard: an instance's contact flow logs (the instance alone, no sub-resource).
FLOW_LOGS_READ = {"connect:DescribeInstanceAttribute"}
# The sweep's instance discovery: no resource type, "*", alone in its statement.
CONNECT_LIST = {"connect:ListInstances"}
FLOW_LOGS_WRITE = {"connect:UpdateInstanceAttribute"}
# profile_rollback's user guard: a privileged user's identity, hierarchy group and tags put back,
# on users (agent ARNs) only; UpdateUserHierarchy also names the hierarchy group it assigns.
CONNECT_USER_WRITES = {
    "connect:UpdateUserIdentityInfo",
    "connect:UpdateUserHierarchy",
    "connect:TagResource",
    "connect:UntagResource",
}
OWN_CONNECT_USERS = {"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*/agent/*"}
OWN_HIERARCHY_GROUPS = {"Fn::Sub": "arn:${AWS::Partition}:connect:*:${AWS::AccountId}:instance/*/agent-group/*"}
# logging_guard: this account's trails, any home region; the restore never stops, deletes or creates one.
OWN_TRAILS = {"Fn::Sub": "arn:${AWS::Partition}:cloudtrail:*:${AWS::AccountId}:trail/*"}
TRAIL_READS = {
    "cloudtrail:GetTrail",
    "cloudtrail:GetTrailStatus",
    "cloudtrail:GetEventSelectors",
    "cloudtrail:GetInsightSelectors",
}
TRAIL_LIST = {"cloudtrail:DescribeTrails"}  # no resource type: "*", alone in its statement
TRAIL_RESTORES = {
    "cloudtrail:StartLogging",
    "cloudtrail:UpdateTrail",
    "cloudtrail:PutEventSelectors",
    "cloudtrail:PutInsightSelectors",
}
# logging_guard's storage configs: read, and (enforce) put back to their snapshot; with what Connect
# checks on the caller then (a policy on its service-linked role only it can change).
STORAGE_READ = {"connect:ListInstanceStorageConfigs"}
STORAGE_WRITE = {
    "connect:AssociateInstanceStorageConfig",
    "connect:UpdateInstanceStorageConfig",
    "connect:DisassociateInstanceStorageConfig",
}
STORAGE_CHECKS = {"s3:GetBucketAcl", "s3:GetBucketLocation", "kinesis:DescribeStream", "kms:DescribeKey"}
CONNECT_SERVICE_ROLES = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/connect.amazonaws.com/*"
}
OWN_KEYS = {"Fn::Sub": "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"}
KEY_GRANT_FOR_SERVICES = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
# logging_guard's key guard: the keys Connect's storage configs name (an instance read), the
# keys' state, and what makes a key usable again (never kms:PutKeyPolicy: it grants access).
KEY_READS = {"kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus"}
KEY_WRITES = {"kms:CancelKeyDeletion", "kms:EnableKey", "kms:EnableKeyRotation"}
OWN_KEYS = {"Fn::Sub": "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"}
