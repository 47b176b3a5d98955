"""The suite's own plumbing as its templates deploy it: the known state PlumbingGuard restores.

The security stack writes it to one SSM parameter (template.yaml PlumbingStateParameter,
`/connect-guard/<env>/plumbing`), because its rule names, queue ARNs and key ARNs are only known
once CloudFormation made them, and the functions' environment has no 4 KB to spare:

    {"rules": {"<rule name>": ["<target Id>", "<target ARN>"], ...},
     "dlq": "<EventDeliveryDLQ ARN>",
     "logs": {"retention": <days>, "key": "<SuiteKey ARN>", "groups": ["/connect-guard/<env>/...", ...]},
     "archive": {"bucket": "<name>", "key": "<ArchiveKey ARN>", "lifecycle": [ia, glacier, deep, expire, noncurrent]}}

Every rule target the template declares has the same retry policy and dead-letter queue
(tests/template/test_delivery.py), so a target is put back exactly from its Id and ARN.
The member stack's forwarding rules have fixed names (MEMBER_RULES), so account, region and
name identify them exactly too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from connect_guard.trails import Drift

# The retry policy every rule target of the security stack carries (template.yaml).
TARGET_RETRY_POLICY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
LIFECYCLE_RULE_ID = "archive-tiering"
# member/template.yaml's forwarding rules, by their fixed names (a template test keeps them equal).
MEMBER_RULES = (
    "forward-policy-attachment",
    "forward-permission-set",
    "forward-profile-rollback",
    "forward-logging-guard",
    "forward-logging-guard-connect",
    "forward-logging-guard-keys",
    "forward-role-protection",
    "forward-instance-deletion",
    "forward-liveness-canary",
    "forward-logging-guard-plumbing",
)


def member_rule_name(environment: str, rule: str) -> str:
    return f"connect-guard-{environment}-{rule}"


@dataclass(frozen=True)
class KnownTarget:
    id: str
    arn: str

    def config(self, dead_letter_arn: str) -> dict[str, Any]:
        """The target as PutTargets takes it, exactly as the template declares it."""
        return {
            "Id": self.id,
            "Arn": self.arn,
            "RetryPolicy": dict(TARGET_RETRY_POLICY),
            "DeadLetterConfig": {"Arn": dead_letter_arn},
        }


@dataclass(frozen=True)
class KnownArchive:
    bucket: str
    key_arn: str
    lifecycle_days: tuple[int, int, int, int, int]  # IA, Glacier, Deep Archive, expiration, noncurrent

    def encryption(self) -> dict[str, Any]:
        return {
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.key_arn},
                    "BucketKeyEnabled": True,
                }
            ]
        }

    def lifecycle(self) -> dict[str, Any]:
        ia, glacier, deep, expire, noncurrent = self.lifecycle_days
        return {
            "Rules": [
                {
                    "ID": LIFECYCLE_RULE_ID,
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Transitions": [
                        {"Days": ia, "StorageClass": "STANDARD_IA"},
                        {"Days": glacier, "StorageClass": "GLACIER"},
                        {"Days": deep, "StorageClass": "DEEP_ARCHIVE"},
                    ],
                    "Expiration": {"Days": expire},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                }
            ]
        }


@dataclass(frozen=True)
class KnownPlumbing:
    rules: dict[str, tuple[KnownTarget, ...]]  # the security stack's rules, by name
    dead_letter_arn: str
    retention_days: int
    log_key_arn: str
    log_groups: tuple[str, ...]
    archive: KnownArchive | None

    @classmethod
    def parse(cls, text: str) -> KnownPlumbing:
        body = json.loads(text)
        rules: dict[str, tuple[KnownTarget, ...]] = {
            str(name): (KnownTarget(str(target[0]), str(target[1])),) for name, target in body["rules"].items()
        }
        logs = body["logs"]
        archive = body.get("archive")
        known_archive = None
        if archive:
            ia, glacier, deep, expire, noncurrent = (int(d) for d in archive["lifecycle"])
            days = (ia, glacier, deep, expire, noncurrent)
            known_archive = KnownArchive(str(archive["bucket"]), str(archive["key"]), days)
        return cls(
            rules=rules,
            dead_letter_arn=str(body["dlq"]),
            retention_days=int(logs["retention"]),
            log_key_arn=str(logs["key"]),
            log_groups=tuple(str(g) for g in logs["groups"]),
            archive=known_archive,
        )


# ---- what is there now ---------------------------------------------------------------------------
class Difference(Drift):
    """One way a piece of plumbing differs from the template (a trails.Drift, told in the
    template's own key order)."""

    def describe(self) -> str:
        approved, now = json.dumps(self.approved, default=str), json.dumps(self.now, default=str)
        return f"{self.setting}: approved {approved}, now {now}"


def rule_differences(
    known: tuple[KnownTarget, ...], dead_letter_arn: str, state: str, targets: list[dict[str, Any]]
) -> tuple[Difference, ...]:
    found: list[Difference] = []
    if state != "ENABLED":
        found.append(Difference("state", "ENABLED", state))
    wanted = sorted((t.config(dead_letter_arn) for t in known), key=lambda t: t["Id"])
    now = sorted((_target_shape(t) for t in targets), key=lambda t: str(t.get("Id")))
    if wanted != now:
        found.append(Difference("targets", wanted, now))
    return tuple(found)


def _target_shape(target: dict[str, Any]) -> dict[str, Any]:
    """A target as ListTargetsByRule answers it, with only the fields a suite target may have set:
    any other (Input, RoleArn, SqsParameters, ...) is kept, so that it shows as a difference."""
    return {k: v for k, v in target.items() if v not in (None, {}, [])}


def rule_restore_calls(
    name: str, known: tuple[KnownTarget, ...], dead_letter_arn: str, found: tuple[Difference, ...], now: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """EventBridge calls that put the rule back: foreign targets removed, the known ones put
    back exactly, then the rule enabled (it then delivers only where it should)."""
    settings = {d.setting for d in found}
    calls: list[tuple[str, dict[str, Any]]] = []
    if "targets" in settings:
        foreign = sorted(set(now) - {t.id for t in known})
        if foreign:
            calls.append(("RemoveTargets", {"Rule": name, "Ids": foreign}))
        calls.append(("PutTargets", {"Rule": name, "Targets": [t.config(dead_letter_arn) for t in known]}))
    if "state" in settings:
        calls.append(("EnableRule", {"Name": name}))
    return calls


def log_group_differences(
    name: str, group: dict[str, Any] | None, known: KnownPlumbing
) -> tuple[tuple[Difference, ...], list[tuple[str, dict[str, Any]]]]:
    """A log group as DescribeLogGroups answers it (None: gone) against the known state: how it
    differs and the CloudWatch Logs calls that put it back (re-created with the suite's key, not
    for Connect's groups, which are not encrypted with it; the approved retention)."""
    retention = {"logGroupName": name, "retentionInDays": known.retention_days}
    if group is None:
        key = None if name.startswith("/aws/connect/") else known.log_key_arn
        create: dict[str, Any] = {"logGroupName": name, **({"kmsKeyId": key} if key else {})}
        return (Difference("exists", True, False),), [("CreateLogGroup", create), ("PutRetentionPolicy", retention)]
    days = group.get("retentionInDays")
    if days is not None and int(days) < known.retention_days:  # none: never expires
        return (Difference("retention_days", known.retention_days, int(days)),), [("PutRetentionPolicy", retention)]
    return (), []


def bucket_differences(
    s3: Any, archive: KnownArchive, event_name: str
) -> tuple[tuple[Difference, ...], list[tuple[str, dict[str, Any]]]]:
    """Re-read one setting of the archive bucket (as `event_name` names it: versioning, lifecycle
    or, otherwise, encryption); how it differs and the S3 calls that put it back exactly."""
    bucket = archive.bucket
    if event_name == "PutBucketVersioning":
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        if status == "Enabled":
            return (), []
        versioning = {"Bucket": bucket, "VersioningConfiguration": {"Status": "Enabled"}}
        return (Difference("versioning", "Enabled", status),), [("PutBucketVersioning", versioning)]
    if event_name in ("PutBucketLifecycle", "DeleteBucketLifecycle"):
        rules = _rules_or_none(
            lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", []),
            "NoSuchLifecycleConfiguration",
        )
        put = ("PutBucketLifecycleConfiguration", "LifecycleConfiguration")
        return _rules_differences("lifecycle", bucket, archive.lifecycle(), rules, lifecycle_shape, put)
    rules = _rules_or_none(
        lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"].get("Rules", []),
        "ServerSideEncryptionConfigurationNotFoundError",
    )
    put = ("PutBucketEncryption", "ServerSideEncryptionConfiguration")
    return _rules_differences("encryption", bucket, archive.encryption(), rules, encryption_shape, put)


def _rules_or_none(read: Callable[[], list[dict[str, Any]]], missing: str) -> list[dict[str, Any]]:
    """The rules `read` returns; none when S3 answers `missing` (the configuration was deleted)."""
    try:
        return read()
    except ClientError as error:
        if error.response["Error"]["Code"] != missing:
            raise
        return []


def _rules_differences(
    setting: str,
    bucket: str,
    wanted: dict[str, Any],
    rules: list[dict[str, Any]],
    shape: Callable[[dict[str, Any]], dict[str, Any]],
    put: tuple[str, str],
) -> tuple[tuple[Difference, ...], list[tuple[str, dict[str, Any]]]]:
    """A bucket configuration of rules (lifecycle, encryption) against the wanted one, compared by
    what each rule does (`shape`), and the call (operation, parameter) that puts it back whole."""
    approved, now = [shape(r) for r in wanted["Rules"]], [shape(r) for r in rules]
    if approved == now:
        return (), []
    operation, parameter = put
    return (Difference(setting, approved, now),), [(operation, {"Bucket": bucket, parameter: wanted})]


def snake(operation: str) -> str:
    """An API operation's boto3 method name: PutRetentionPolicy -> put_retention_policy."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def lifecycle_shape(rule: dict[str, Any]) -> dict[str, Any]:
    """What a lifecycle rule does (AWS and moto differ in how they echo filters and defaults)."""
    return {
        "ID": rule.get("ID"),
        "Status": rule.get("Status"),
        "Transitions": sorted((int(t.get("Days", 0)), t.get("StorageClass")) for t in rule.get("Transitions") or []),
        "Expiration": (rule.get("Expiration") or {}).get("Days"),
        "Noncurrent": (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays"),
        "Abort": (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation"),
        "Filter": (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", "")) or "",
    }


def encryption_shape(rule: dict[str, Any]) -> dict[str, Any]:
    default = rule.get("ApplyServerSideEncryptionByDefault") or {}
    return {
        "SSEAlgorithm": default.get("SSEAlgorithm"),
        "KMSMasterKeyID": default.get("KMSMasterKeyID"),
        "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled")),
    }
