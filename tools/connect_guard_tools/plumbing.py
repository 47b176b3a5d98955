"""The suite's own plumbing in the embedded AWS: the security stack's EventBridge rules (with
their targets, as template.yaml declares them), its log groups and the archive bucket's
settings, and the SSM parameter (PlumbingStateParameter) that tells logging_guard so. Also
what moto lets pass that EventBridge and CloudWatch Logs refuse."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from unittest import mock

import boto3
from moto.events.models import EventsBackend
from moto.logs.exceptions import InvalidParameterException
from moto.logs.models import LogsBackend

from connect_guard.plumbing import KnownArchive, KnownTarget
from connect_guard_tools.backend_patches import BackendPatches
from connect_guard_tools.template import load_template

STACK = "connect-guard-dev"
ENVIRONMENT = "dev"
PARAMETER = f"/connect-guard/{ENVIRONMENT}/plumbing"
RETENTION_DAYS = 365  # LogRetentionDays' default
CONNECT_LOG_GROUP = "/aws/connect/acme-contact-centre"  # the demo's ConnectInstanceAlias
# CloudWatch Logs' accepted retention periods (PutRetentionPolicy), as template.yaml lists them.
RETENTION_VALUES = frozenset(
    (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
)


def rule_name(logical_id: str) -> str:
    """As CloudFormation names a rule without a Name: stack, logical ID, a random suffix."""
    suffix = hashlib.sha256(logical_id.encode()).hexdigest()[:13].upper()
    return f"{STACK}-{logical_id}-{suffix}"[:64]


def _defaults(template: dict[str, Any], *names: str) -> list[int]:
    return [int(template["Parameters"][n]["Default"]) for n in names]


@dataclass
class EmbeddedPlumbing:
    parameter: str
    rules: dict[str, str]  # logical ID → rule name
    dead_letter_arn: str
    log_groups: tuple[str, ...]
    archive: KnownArchive
    suite_key_arn: str

    @classmethod
    def create(cls, session: boto3.session.Session, bucket: str, suite_key_id: str) -> EmbeddedPlumbing:
        template = load_template()
        resources: dict[str, Any] = template["Resources"]
        events = session.client("events")
        kms, s3, ssm = (session.client(s) for s in ("kms", "s3", "ssm"))

        account = session.client("sts").get_caller_identity()["Account"]

        def queue_arn(logical_id: str) -> str:
            # The queues as the stack names them; not created here (the tests that need one
            # create it as deployed, and EventBridge does not check a target exists).
            return f"arn:aws:sqs:{session.region_name}:{account}:{STACK}-{logical_id}"

        dead_letter = queue_arn("EventDeliveryDLQ")
        rules: dict[str, str] = {}
        known_rules: dict[str, list[str]] = {}
        for logical, resource in resources.items():
            props = resource.get("Properties", {})
            if resource["Type"] != "AWS::Events::Rule" or "EventPattern" not in props:
                continue
            name = rules[logical] = rule_name(logical)
            events.put_rule(Name=name, EventPattern=json.dumps(props["EventPattern"]), State="ENABLED")
            targets = [KnownTarget(t["Id"], queue_arn(t["Arn"]["Fn::GetAtt"][0])) for t in props["Targets"]]
            events.put_targets(Rule=name, Targets=[t.config(dead_letter) for t in targets])
            known_rules[name] = [targets[0].id, targets[0].arn]
        suite_key = kms.describe_key(KeyId=suite_key_id)["KeyMetadata"]["Arn"]
        groups = [
            str(r["Properties"]["LogGroupName"]["Fn::Sub"]).replace("${Environment}", ENVIRONMENT)
            for r in resources.values()
            if r["Type"] == "AWS::Logs::LogGroup"
        ]
        archive_key = kms.create_key(Description="connect-guard archive key")["KeyMetadata"]["Arn"]
        days = _defaults(
            template,
            "ArchiveTransitionIaDays",
            "ArchiveTransitionGlacierDays",
            "ArchiveTransitionDeepArchiveDays",
            "ArchiveExpirationDays",
            "ArchiveNoncurrentExpirationDays",
        )
        archive = KnownArchive(bucket, archive_key, (days[0], days[1], days[2], days[3], days[4]))
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=archive.encryption())
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=archive.lifecycle())
        state = {
            "rules": known_rules,
            "dlq": dead_letter,
            "logs": {"retention": RETENTION_DAYS, "key": suite_key, "groups": [*groups, CONNECT_LOG_GROUP]},
            "archive": {"bucket": bucket, "key": archive_key, "lifecycle": list(archive.lifecycle_days)},
        }
        ssm.put_parameter(Name=PARAMETER, Type="String", Value=json.dumps(state))
        return cls(PARAMETER, rules, dead_letter, (*groups, CONNECT_LOG_GROUP), archive, suite_key)

    def tamper(self, session: boto3.session.Session, spec: dict[str, Any]) -> None:
        """Leave the plumbing as `plumbing:` in events/demo-state.yaml says the samples found it."""
        events, logs, s3 = (session.client(s) for s in ("events", "logs", "s3"))
        for logical in spec.get("disabled_rules") or []:
            events.disable_rule(Name=self.rules[logical])
        for logical in spec.get("removed_targets") or []:
            ids = [t["Id"] for t in events.list_targets_by_rule(Rule=self.rules[logical])["Targets"]]
            events.remove_targets(Rule=self.rules[logical], Ids=ids)
        for logical, targets in (spec.get("added_targets") or {}).items():
            events.put_targets(Rule=self.rules[logical], Targets=targets)
        for logical in spec.get("deleted_rules") or []:
            ids = [t["Id"] for t in events.list_targets_by_rule(Rule=self.rules[logical])["Targets"]]
            events.remove_targets(Rule=self.rules[logical], Ids=ids)
            events.delete_rule(Name=self.rules[logical])
        # Every known log group exists as deployed first (the drift check reads them all): the
        # suite key (not Connect's), the retention; then the samples' changes.
        for group in self.log_groups:
            key = {} if group.startswith("/aws/connect/") else {"kmsKeyId": self.suite_key_arn}
            logs.create_log_group(logGroupName=group, **key)
            logs.put_retention_policy(logGroupName=group, retentionInDays=RETENTION_DAYS)
        for group, days in (spec.get("retention") or {}).items():
            logs.put_retention_policy(logGroupName=group, retentionInDays=days)
        for group in spec.get("deleted_log_groups") or []:
            logs.delete_log_group(logGroupName=group)
        archive = spec.get("archive") or {}
        bucket = self.archive.bucket
        if archive.get("versioning"):
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": archive["versioning"]})
        if archive.get("lifecycle_expiration_days"):
            lifecycle = self.archive.lifecycle()
            lifecycle["Rules"][0]["Expiration"] = {"Days": archive["lifecycle_expiration_days"]}
            lifecycle["Rules"][0]["Transitions"] = []
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=lifecycle)
        if archive.get("encryption") == "deleted":
            s3.delete_bucket_encryption(Bucket=bucket)


class PlumbingStrictness(BackendPatches):
    """EventBridge refuses EnableRule, DisableRule and ListTargetsByRule on a rule that does not
    exist (moto answers or fails with a server error), and CloudWatch Logs refuses a retention
    period it does not offer (moto takes any number)."""

    def patches(self) -> list[Any]:
        def existing(method: Any) -> Any:
            def refuse_missing(
                backend: EventsBackend, name: str, event_bus_arn: str | None, *args: Any, **kwargs: Any
            ) -> Any:
                backend.describe_rule(name, event_bus_arn)  # ResourceNotFoundException, as EventBridge
                return method(backend, name, event_bus_arn, *args, **kwargs)

            return refuse_missing

        def retention(backend: LogsBackend, log_group_name: str, retention_in_days: Any) -> None:
            if int(retention_in_days) not in RETENTION_VALUES:
                raise InvalidParameterException(
                    constraint=f"Member must satisfy enum value set: {sorted(RETENTION_VALUES)}",
                    parameter="retentionInDays",
                    value=retention_in_days,
                )
            original(backend, log_group_name, retention_in_days)

        original = LogsBackend.put_retention_policy
        return [
            mock.patch.object(EventsBackend, "enable_rule", existing(EventsBackend.enable_rule)),
            mock.patch.object(EventsBackend, "disable_rule", existing(EventsBackend.disable_rule)),
            mock.patch.object(EventsBackend, "list_targets_by_rule", existing(EventsBackend.list_targets_by_rule)),
            mock.patch.object(LogsBackend, "put_retention_policy", retention),
        ]
