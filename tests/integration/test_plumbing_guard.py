"""logging_guard's plumbing sub-control in enforce mode: the suite's rules, log groups and archive
bucket of events/demo-state.yaml (`plumbing`), tampered as each sample says, are put back as
the template deploys them; what can't be put back exactly is alerted and left alone."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from connect_guard.responders import logging_guard
from connect_guard.responders.plumbing_guard import BUCKET_EVENTS
from connect_guard.runtime import build_pipeline, parse_event
from connect_guard_tools.plumbing import rule_name
from tests.conftest import load_event, with_new_event_id
from tests.integration.plumbing_support import group, rule
from tests.template.stack import props

SUITE_ROLE = "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-logging-guard"
SUITE_ROLE_ID = "AROAZ7QXK3LOGGINGGRD"
PIPELINE = "arn:aws:iam::111122223333:role/ConnectChangePipeline"  # the demo's allowlisted role


def run(aws, sample: str, mode: str = "enforce", event: dict[str, Any] | None = None, **settings: Any):
    """The pipeline's outcome, with the finding it published (as the SOC received it)."""
    pipeline = build_pipeline(logging_guard.build, aws.settings(response_mode=mode, **settings), aws.clients)
    published = len(aws.recorder.findings)
    result = pipeline.process(event or load_event(f"plumbing/{sample}"))
    if len(aws.recorder.findings) > published:
        result["finding"] = aws.recorder.findings[-1]
    return result


def test_a_disabled_suite_rule_is_enabled_again_and_the_restore_is_audited(aws):
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED"
    result = run(aws, "disable-rule-logging-guard.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert rule(aws, "LoggingGuardRule")[0] == "ENABLED"
    [alert] = aws.inbox()
    assert "Suite rule restored: eventbridge rule connect-guard-dev-LoggingGuardRule-" in alert["Subject"]
    [audit] = aws.audit_records()
    assert audit["action"]["S"] == "EnableRule"
    assert audit["target"]["S"].endswith(":rule/" + rule_name("LoggingGuardRule"))


def test_removed_targets_are_put_back_exactly_as_the_template_declares_them(aws):
    assert rule(aws, "PolicyAttachmentRule")[1] == []
    assert run(aws, "remove-targets-policy-attachment.json")["outcome"] == "restored"
    [target] = rule(aws, "PolicyAttachmentRule")[1]
    assert target == {
        "Id": "PolicyAlertsQueue",
        "Arn": "arn:aws:sqs:us-east-1:123456789012:connect-guard-dev-PolicyAlertsQueue",
        "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
        "DeadLetterConfig": {"Arn": aws.plumbing.dead_letter_arn},
    }


def test_a_target_added_to_copy_the_events_elsewhere_is_removed(aws):
    assert {t["Id"] for t in rule(aws, "ProfileRollbackRule")[1]} == {"ProfileRollbackQueue", "audit-copy"}
    assert run(aws, "put-targets-exfiltration.json")["outcome"] == "restored"
    assert [t["Id"] for t in rule(aws, "ProfileRollbackRule")[1]] == ["ProfileRollbackQueue"]
    assert sorted(a["action"]["S"] for a in aws.audit_records()) == ["PutTargets", "RemoveTargets"]


def test_a_lowered_retention_is_put_back(aws):
    assert group(aws, "/connect-guard/dev/logging-guard")["retentionInDays"] == 1
    assert run(aws, "put-retention-policy-lowered.json")["outcome"] == "restored"
    assert group(aws, "/connect-guard/dev/logging-guard")["retentionInDays"] == 365
    assert run(aws, "put-retention-policy-connect-lowered.json")["outcome"] == "restored"
    assert group(aws, "/aws/connect/acme-contact-centre")["retentionInDays"] == 365


def test_a_deleted_log_group_is_recreated_with_its_retention_and_key_and_its_loss_alerted(aws):
    assert group(aws, "/connect-guard/dev/liveness") is None
    result = run(aws, "delete-log-group-liveness.json")
    assert result["outcome"] == "restored"
    recreated = group(aws, "/connect-guard/dev/liveness")
    assert recreated is not None and recreated["retentionInDays"] == 365
    key = aws.session.client("kms").describe_key(KeyId=aws.key_id)["KeyMetadata"]["Arn"]
    assert recreated["kmsKeyId"] == key
    [alert] = aws.inbox()
    assert "that evidence is gone" in alert["Message"]


def test_the_archive_bucket_gets_versioning_lifecycle_and_encryption_back(aws):
    s3, bucket = aws.session.client("s3"), aws.archive_bucket
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    for sample in (
        "put-bucket-versioning-suspended.json",
        "put-bucket-lifecycle-expire-in-a-day.json",
        "delete-bucket-encryption.json",
    ):
        assert run(aws, sample)["outcome"] == "restored", sample
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["Expiration"] == {"Days": 2555}
    assert [t["StorageClass"] for t in lifecycle["Transitions"]] == ["STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"]
    (encryption,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert encryption["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == aws.plumbing.archive.key_arn
    assert encryption["BucketKeyEnabled"] is True


@pytest.mark.parametrize(
    ("sample", "severity"),
    [
        ("delete-rule-liveness.json", "CRITICAL"),
        ("put-rule-pattern-narrowed.json", "CRITICAL"),
        ("disable-rule-by-cloudformation.json", "CRITICAL"),
        ("disable-rule-member-account.json", "CRITICAL"),
        ("disable-rule-denied.json", "MEDIUM"),
        ("delete-bucket-policy.json", "CRITICAL"),
        ("put-object-lock-configuration.json", "CRITICAL"),
        ("put-bucket-lifecycle-allowlisted.json", "MEDIUM"),
        ("put-retention-policy-member-connect.json", "CRITICAL"),
    ],
)
def test_what_cannot_be_restored_exactly_is_alerted_and_left_alone(aws, sample, severity):
    before = {logical: rule(aws, logical) for logical in ("InstanceDeletionRule", "RoleProtectionRule")}
    lifecycle = aws.session.client("s3").get_bucket_lifecycle_configuration(Bucket=aws.archive_bucket)
    result = run(aws, sample, allowlisted_principals=(PIPELINE,))
    assert result["outcome"] == "alerted" and result["severity"] == severity
    assert result["finding"]["actions"] == []
    assert {logical: rule(aws, logical) for logical in before} == before
    after = aws.session.client("s3").get_bucket_lifecycle_configuration(Bucket=aws.archive_bucket)
    assert after["Rules"] == lifecycle["Rules"]
    assert aws.audit_records() == []


@pytest.mark.parametrize(
    "sample",
    [
        "disable-rule-not-the-suites.json",
        "disable-rule-look-alike-name.json",
        "disable-rule-member-not-the-suites.json",
        "put-retention-policy-raised.json",
        "put-retention-policy-not-the-suites.json",
        "put-bucket-versioning-other-bucket.json",
    ],
)
def test_what_is_not_the_suites_is_ignored(aws, sample):
    assert run(aws, sample)["outcome"] == "ignored"
    assert aws.inbox() == [] and aws.audit_records() == []


def _as_suite(event: dict[str, Any], arn: str = SUITE_ROLE, unique_id: str = SUITE_ROLE_ID) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["id"] = event["detail"]["eventID"] = f"{event['detail']['eventID'][:-4]}cafe"
    issuer = event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]
    issuer.update({"arn": arn, "principalId": unique_id, "userName": arn.rsplit("/", 1)[1]})
    return event


def test_the_suites_own_change_that_leaves_a_rule_as_the_template_says_is_left_alone(aws):
    result = run(aws, "put-targets-by-suite.json", suite_role_ids=(SUITE_ROLE_ID,))
    assert result["outcome"] == "ignored"
    assert aws.inbox() == []


def test_the_suites_own_role_leaving_a_rule_disabled_is_treated_as_tampering(aws):
    event = _as_suite(load_event("plumbing/disable-rule-logging-guard.json"))
    result = run(aws, "", event=event, suite_role_ids=(SUITE_ROLE_ID,))
    assert result["outcome"] == "restored"
    assert "made by connect-guard's own role" in result["finding"]["reasons"][0]
    assert rule(aws, "LoggingGuardRule")[0] == "ENABLED"


@pytest.mark.parametrize(
    ("arn", "unique_id"),
    [
        # The suite's role name on another path, in another account, and re-created (new unique ID).
        ("arn:aws:iam::123456789012:role/connect-guard-dev-logging-guard", SUITE_ROLE_ID),
        ("arn:aws:iam::444455556666:role/connect-guard/connect-guard-dev-logging-guard", SUITE_ROLE_ID),
        (SUITE_ROLE, "AROAZ7QXK3RECREATED1"),
    ],
)
def test_a_look_alike_of_the_suites_role_is_not_the_suite(aws, arn, unique_id):
    """PutTargets of the exact target by a forged suite role, on a rule left disabled: restored
    and reported as a stranger's change, not as the suite's own."""
    event = _as_suite(load_event("plumbing/disable-rule-logging-guard.json"), arn, unique_id)
    result = run(aws, "", event=event, suite_role_ids=(SUITE_ROLE_ID,))
    assert result["outcome"] == "restored"
    assert not any("connect-guard's own role" in r for r in result["finding"]["reasons"])


def test_detect_mode_proposes_and_changes_nothing(aws):
    result = run(aws, "disable-rule-logging-guard.json", mode="detect")
    assert result["outcome"] == "alerted"
    assert [(a["operation"], a["status"]) for a in result["finding"]["actions"]] == [("EnableRule", "proposed")]
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED"


def test_the_same_event_twice_restores_once_and_alerts_once(aws):
    run(aws, "disable-rule-logging-guard.json")
    assert run(aws, "disable-rule-logging-guard.json")["outcome"] == "duplicate"
    assert len(aws.inbox()) == 1 and len(aws.audit_records()) == 1


def test_re_enabled_before_the_event_is_read_is_reported_for_its_gap(aws):
    aws.session.client("events").enable_rule(Name=rule_name("LoggingGuardRule"))
    result = run(aws, "disable-rule-logging-guard.json")
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"
    assert "whatever it missed in between is lost" in result["finding"]["reasons"][0]


def test_the_last_attempt_says_the_rule_is_still_disabled(aws):
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(load_event("plumbing/disable-rule-logging-guard.json"))
    responder.give_up(parsed, RuntimeError("throttled"))
    [alert] = aws.inbox()
    assert "Plumbing restore FAILED for DisableRule" in alert["Subject"]
    reasons = json.loads(alert["Message"])["reasons"]
    assert reasons[1] == 're-read now, it still differs: state: approved "ENABLED", now "DISABLED"'
    assert reasons[0] == "RESTORE DID NOT HAPPEN: RuntimeError: throttled"


def test_nothing_due_at_the_last_attempt_sends_no_failed_alert(aws):
    aws.session.client("events").enable_rule(Name=rule_name("LoggingGuardRule"))
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(load_event("plumbing/disable-rule-logging-guard.json"))
    responder.give_up(parsed, RuntimeError("throttled"))
    assert aws.inbox() == []


def test_unreadable_known_state_alerts_and_acts_on_nothing(aws):
    aws.session.client("ssm").delete_parameter(Name=aws.plumbing.parameter)
    result = run(aws, "disable-rule-logging-guard.json")
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "known plumbing could not be read (ParameterNotFound)" in result["finding"]["reasons"][0]
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED"


def test_a_malformed_known_state_alerts_and_acts_on_nothing(aws):
    aws.session.client("ssm").put_parameter(
        Name=aws.plumbing.parameter, Value=json.dumps({"rules": []}), Type="String", Overwrite=True
    )
    result = run(aws, "disable-rule-logging-guard.json")
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED"


def test_a_deleted_rule_cannot_be_enabled_in_the_embedded_aws_either(aws):
    """EventBridge answers ResourceNotFoundException (moto would quietly do nothing)."""
    events = aws.session.client("events")
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.enable_rule(Name=rule_name("LivenessCanaryRule"))
    logs = aws.session.client("logs")
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.put_retention_policy(logGroupName="/connect-guard/dev/policy-alerts", retentionInDays=2)


# ---- CloudFormation: the suite's deployment, recognised by its exact deploy role --------------------
DEPLOYER = "arn:aws:iam::123456789012:role/PlatformStacksDeployRole"  # the CloudFormation sample's role
DEPLOYER_ID = "AROAZ7QXK3CFNDEPLOY1"


def _by_stack(sample: str, arn: str = DEPLOYER, unique_id: str = DEPLOYER_ID, invoked_by: str | None = None):
    """A sample as CloudFormation makes it with the role `arn` (unique ID `unique_id`)."""
    event = copy.deepcopy(load_event(f"plumbing/{sample}"))
    cfn = load_event("plumbing/disable-rule-by-cloudformation.json")["detail"]["userIdentity"]
    identity = event["detail"]["userIdentity"] = copy.deepcopy(cfn)
    identity["sessionContext"]["sessionIssuer"].update({"arn": arn, "principalId": unique_id})
    identity.pop("invokedBy", None)
    if invoked_by is not None:
        identity["invokedBy"] = invoked_by
    event["id"] = event["detail"]["eventID"] = f"{event['detail']['eventID'][:-4]}dep1"
    return event


def deployed(aws, event: dict[str, Any]):
    return run(aws, "", event=event, suite_deploy_role_arn=DEPLOYER, suite_deploy_role_id=DEPLOYER_ID)


def test_the_suites_deployment_leaving_a_rule_as_the_template_says_is_left_alone(aws):
    event = _by_stack("put-targets-by-suite.json", invoked_by="cloudformation.amazonaws.com")
    assert deployed(aws, event)["outcome"] == "ignored"
    assert aws.inbox() == []


def test_the_suites_deployment_leaving_a_rule_disabled_is_alerted_and_not_undone(aws):
    event = _by_stack("disable-rule-logging-guard.json", invoked_by="cloudformation.amazonaws.com")
    result = deployed(aws, event)
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert result["finding"]["reasons"][:2] == [
        "made by the suite's own deployment (SuiteDeployRoleArn), which left it other than its template",
        'state: approved "ENABLED", now "DISABLED"',
    ]
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED" and aws.audit_records() == []


@pytest.mark.parametrize(
    ("arn", "unique_id"),
    [
        ("arn:aws:iam::123456789012:role/attacker/PlatformStacksDeployRole", DEPLOYER_ID),  # another path
        ("arn:aws:iam::444455556666:role/PlatformStacksDeployRole", DEPLOYER_ID),  # another account
        (DEPLOYER, "AROAZ7QXK3RECREATED9"),  # deleted and re-created under the same name
    ],
)
def test_a_look_alike_of_the_deploy_role_is_any_stack_alerted_and_not_restored(aws, arn, unique_id):
    event = _by_stack("put-targets-by-suite.json", arn, unique_id, invoked_by="cloudformation.amazonaws.com")
    result = deployed(aws, event)
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "not the suite's deployer" in result["finding"]["reasons"][0]


def test_the_deploy_role_used_directly_not_through_cloudformation_is_not_the_deployment(aws):
    """Its credentials outside a stack operation: a change like anyone's, restored."""
    result = deployed(aws, _by_stack("disable-rule-logging-guard.json"))
    assert result["outcome"] == "restored"
    assert rule(aws, "LoggingGuardRule")[0] == "ENABLED"


def test_a_forged_invoked_by_is_not_cloudformation(aws):
    event = _by_stack("disable-rule-logging-guard.json", invoked_by="cloudformation.amazonaws.com.evil.example")
    assert deployed(aws, event)["outcome"] == "restored"


def test_a_known_state_read_for_an_earlier_event_is_read_again_before_acting(aws):
    """A deployment since changed the plumbing's known state: a warm container must not restore
    the state it remembers (here: the rule is no longer the suite's, so nothing is done)."""
    settings = aws.settings(response_mode="enforce")
    responder = logging_guard.build(settings, aws.clients)
    _, first = parse_event(load_event("plumbing/disable-rule-not-the-suites.json"))
    responder.handle(first)  # the known state is read, and kept
    ssm = aws.session.client("ssm")
    state = json.loads(ssm.get_parameter(Name=aws.plumbing.parameter)["Parameter"]["Value"])
    del state["rules"][rule_name("LoggingGuardRule")]
    ssm.put_parameter(Name=aws.plumbing.parameter, Value=json.dumps(state), Type="String", Overwrite=True)
    _, second = parse_event(load_event("plumbing/disable-rule-logging-guard.json"))
    outcome = responder.handle(second)
    assert outcome.outcome == "ignored" and "not one of the suite's rules" in str(outcome.reason)
    assert rule(aws, "LoggingGuardRule")[0] == "DISABLED"


def test_the_archive_buckets_access_logging_turned_off_is_alerted(aws):
    """A disabled access log hides the next deletion: alerted CRITICAL at once, and left to a
    redeploy (the known plumbing does not carry the log bucket)."""
    event = with_new_event_id(load_event("plumbing/delete-bucket-policy.json"))
    detail = event["detail"]
    detail["eventName"] = "PutBucketLogging"
    detail["requestParameters"] = {
        "bucketName": detail["requestParameters"]["bucketName"],
        "Host": detail["requestParameters"]["Host"],
        "logging": "",
        "BucketLoggingStatus": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"},
    }
    result = run(aws, "", event=event)
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert result["finding"]["actions"] == []
    assert "server access logging" in result["finding"]["reasons"][0]
    assert aws.audit_records() == []
    # The rule routes it here (the pattern names what the guard handles, no more, no less).
    (s3,) = [b for b in props("LoggingGuardPlumbingRule")["EventPattern"]["$or"] if b["source"] == ["aws.s3"]]
    assert "PutBucketLogging" in s3["detail"]["eventName"]
    assert set(s3["detail"]["eventName"]) == set(BUCKET_EVENTS)
