"""PlumbingStateParameter: the security stack's rules, log groups and archive bucket as the
template deploys them, which logging_guard restores (connect_guard.plumbing). A rule, target
or log group added to the template without its entry there fails here."""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard.plumbing import MEMBER_RULES, TARGET_RETRY_POLICY, KnownPlumbing, member_rule_name
from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.template.cfn import Resolver, parameters
from tests.template.stack import RESOURCES, T, of_type, props, target

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
RULES = {n: r for n, r in of_type("AWS::Events::Rule").items() if "EventPattern" in r["Properties"]}


def known(physical: dict[str, str] | None = None, **overrides: str) -> KnownPlumbing:
    resolver = Resolver(T, parameters(T, **overrides), PSEUDO, physical or {})
    return KnownPlumbing.parse(resolver.resolve(props("PlumbingStateParameter")["Value"]))


def test_every_rule_of_the_stack_is_known_with_its_exact_targets() -> None:
    plumbing = known()
    assert set(plumbing.rules) == {f"<{name}>" for name in RULES}
    for name, rule in RULES.items():
        declared = rule["Properties"]["Targets"]
        assert [(t.id, t.arn) for t in plumbing.rules[f"<{name}>"]] == [
            (d["Id"], f"<{target(d['Arn'])}.Arn>") for d in declared
        ], name
        for d in declared:  # what KnownTarget.config adds to the Id and ARN
            assert d["RetryPolicy"] == TARGET_RETRY_POLICY, name
            assert target(d["DeadLetterConfig"]["Arn"]) == "EventDeliveryDLQ", name
            assert set(d) == {"Id", "Arn", "RetryPolicy", "DeadLetterConfig"}, name
    assert plumbing.dead_letter_arn == "<EventDeliveryDLQ.Arn>"


@pytest.mark.parametrize("alias", ["", "acme-contact-centre"])
def test_every_log_group_of_the_stack_and_connects_is_known(alias: str) -> None:
    plumbing = known(ConnectInstanceAlias=alias, LogRetentionDays="365")
    resolver = Resolver(T, parameters(T, Environment="dev"), PSEUDO)
    names = {resolver.resolve(r["Properties"]["LogGroupName"]) for r in of_type("AWS::Logs::LogGroup").values()}
    expected = names | ({f"/aws/connect/{alias}"} if alias else set())
    assert set(plumbing.log_groups) == expected
    assert plumbing.retention_days == 365 and plumbing.log_key_arn == "<SuiteKey.Arn>"
    for group in of_type("AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert target(group["Properties"]["KmsKeyId"]) == "SuiteKey"


def test_the_archive_is_known_as_the_bucket_is_declared() -> None:
    archive = known(
        {"ArchiveBucket": "connect-guard-dev-archive-123456789012-us-east-1"},
        ArchiveTransitionIaDays="31",
        ArchiveExpirationDays="3000",
    ).archive
    assert archive is not None and archive.bucket == "connect-guard-dev-archive-123456789012-us-east-1"
    bucket = props("ArchiveBucket")
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["BucketKeyEnabled"] is True
    assert target(encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]) == archive.key_arn[1:-5]
    assert archive.encryption()["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    (restored,) = archive.lifecycle()["Rules"]
    assert restored["ID"] == rule["Id"] and restored["Status"] == rule["Status"]
    assert [t["StorageClass"] for t in restored["Transitions"]] == [t["StorageClass"] for t in rule["Transitions"]]
    assert restored["Transitions"][0]["Days"] == 31 and restored["Expiration"] == {"Days": 3000}
    assert restored["AbortIncompleteMultipartUpload"] == rule["AbortIncompleteMultipartUpload"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}


def test_the_parameter_fits_the_standard_tier_with_long_names() -> None:
    # Standard parameters hold 4 KB: count every physical name and ARN as a long one.
    physical: dict[str, Any] = {}
    for name, resource in RESOURCES.items():
        physical[name] = "x" * 64  # rule names: at most 64 characters
        if resource["Type"] in ("AWS::SQS::Queue", "AWS::KMS::Key"):
            physical[f"{name}.Arn"] = "x" * 120
    resolver = Resolver(T, parameters(T, Environment="prod", ConnectInstanceAlias="a" * 62), PSEUDO, physical)
    text = resolver.resolve(props("PlumbingStateParameter")["Value"])
    KnownPlumbing.parse(text)
    assert len(text.encode()) <= 4096, len(text)
    assert props("PlumbingStateParameter")["Tier"] == "Standard"


def test_the_function_reads_the_parameter_it_may_read() -> None:
    env = props("LoggingGuardFunction")["Environment"]["Variables"]
    assert env["PLUMBING_STATE_PARAMETER"] == {"Ref": "PlumbingStateParameter"}
    assert props("PlumbingStateParameter")["Name"] == {"Fn::Sub": "/connect-guard/${Environment}/plumbing"}


def test_member_forwarding_rules_have_the_fixed_names_the_core_knows() -> None:
    member = load_template(PROJECT_ROOT / "member" / "template.yaml")["Resources"]
    names = {
        r["Properties"].get("Name", {}).get("Fn::Sub")
        for r in member.values()
        if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]
    }
    assert names == {member_rule_name("${Environment}", rule) for rule in MEMBER_RULES}
