"""logging_guard's storage sub-control in enforce mode: the demo instance's storage configs
(events/demo-state.yaml), tampered as each sample says, are put back to their snapshot through
the member rollback role; what can't be restored is alerted and left alone."""

from __future__ import annotations

import io
from typing import Any

import pytest

from connect_guard.connect import ConnectGateway, InstanceRef
from connect_guard.connect_storage import RESOURCE_TYPES, StorageSnapshots, drift
from connect_guard.errors import PoisonEventError
from connect_guard.responders import logging_guard
from connect_guard.runtime import build_pipeline, parse_event
from tests.conftest import load_event

INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"
INSTANCE_ARN = f"arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE}"
# The demo's KMS keys (demo-state.yaml `kms_keys`) that the approved configs name.
RECORDINGS_KEY = "arn:aws:kms:us-east-1:111122223333:key/0c4e5a1b-7d2f-4e8a-9b3c-5f6a7d8e9f01"
TRANSCRIPTS_KEY = "arn:aws:kms:us-east-1:111122223333:key/1d5f6b2c-8e3a-4f9b-8c4d-6a7b8c9d0e12"
PIPELINE = "arn:aws:iam::111122223333:role/ConnectChangePipeline"  # events/expectations.yaml's allowlist
MEMBER_ROLLBACK = "arn:aws:iam::111122223333:role/connect-guard/connect-guard-dev-member-rollback"


def run(aws, sample: str, mode: str = "enforce", **settings: Any) -> dict[str, Any]:
    pipeline = build_pipeline(logging_guard.build, aws.settings(response_mode=mode, **settings), aws.clients)
    return pipeline.process(load_event(f"logging/{sample}"))


def run_event(aws, event: dict[str, Any], **settings: Any) -> dict[str, Any]:
    pipeline = build_pipeline(logging_guard.build, aws.settings(response_mode="enforce", **settings), aws.clients)
    return pipeline.process(event)


def configs(aws, kind: str) -> list[dict[str, Any]]:
    return aws.connect.storage_configs(INSTANCE, kind)


def writes(aws) -> list[tuple[str, dict[str, Any]]]:
    return [c for c in aws.connect.calls if c[0].endswith("InstanceStorageConfig")]


def test_call_recordings_redirected_to_another_bucket_go_to_their_own_again(aws):
    assert configs(aws, "CALL_RECORDINGS")[0]["S3Config"]["BucketName"] == "cg-demo-attacker-sink"
    result = run(aws, "update-instance-storage-config-recordings-bucket.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    [config] = configs(aws, "CALL_RECORDINGS")
    assert config["S3Config"] == {
        "BucketName": "acme-connect-recordings-111122223333",
        "BucketPrefix": "connect/acme-contact-centre/CallRecordings",
        "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": RECORDINGS_KEY},
    }
    [alert] = aws.inbox()
    assert f"Connect storage restored: CALL_RECORDINGS of Connect instance {INSTANCE}" in alert["Message"]
    assert "cg-demo-attacker-sink" in alert["Message"]
    [audit] = aws.audit_records()
    assert audit["action"]["S"] == "UpdateInstanceStorageConfig" and audit["target"]["S"] == INSTANCE_ARN


def test_chat_transcripts_stored_without_their_key_are_encrypted_with_it_again(aws):
    assert "EncryptionConfig" not in configs(aws, "CHAT_TRANSCRIPTS")[0]["S3Config"]
    result = run(aws, "update-instance-storage-config-encryption-removed.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    [config] = configs(aws, "CHAT_TRANSCRIPTS")
    assert config["S3Config"]["EncryptionConfig"] == {"EncryptionType": "KMS", "KeyId": TRANSCRIPTS_KEY}
    assert "KMS encryption removed" in aws.inbox()[0]["Message"]


def test_disassociated_scheduled_reports_are_associated_again_as_approved(aws):
    assert configs(aws, "SCHEDULED_REPORTS") == []
    result = run(aws, "disassociate-instance-storage-config-reports.json")
    assert result["outcome"] == "restored" and result["severity"] == "HIGH"
    [config] = configs(aws, "SCHEDULED_REPORTS")
    assert config["S3Config"]["BucketName"] == "acme-connect-reports-111122223333"
    assert [op for op, _ in writes(aws)] == ["AssociateInstanceStorageConfig"]
    # Re-associated under a new ID: the same settings are no drift, a second event changes nothing.
    again = load_event("logging/disassociate-instance-storage-config-reports.json")
    again["detail"]["eventID"] = again["id"] = "0d6f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    assert run_event(aws, again)["outcome"] == "ignored"


def test_contact_trace_records_streamed_elsewhere_stream_to_the_approved_stream_again(aws):
    result = run(aws, "update-instance-storage-config-ctr-stream.json")
    assert result["outcome"] == "restored" and result["severity"] == "HIGH"
    [config] = configs(aws, "CONTACT_TRACE_RECORDS")
    assert config["KinesisStreamConfig"]["StreamArn"].endswith(":stream/acme-contact-trace-records")


def test_an_association_nobody_approved_is_disassociated(aws):
    assert len(configs(aws, "AGENT_EVENTS")) == 1
    result = run(aws, "associate-instance-storage-config-agent-events.json")
    assert result["outcome"] == "restored" and result["severity"] == "HIGH"
    assert configs(aws, "AGENT_EVENTS") == []
    [(operation, params)] = writes(aws)
    assert operation == "DisassociateInstanceStorageConfig" and params["ResourceType"] == "AGENT_EVENTS"


def test_the_same_event_twice_restores_once_and_alerts_once(aws):
    run(aws, "update-instance-storage-config-recordings-bucket.json")
    assert run(aws, "update-instance-storage-config-recordings-bucket.json")["outcome"] == "duplicate"
    assert len(aws.inbox()) == 1 and len(aws.audit_records()) == 1 and len(writes(aws)) == 1


def test_detect_mode_proposes_the_restore_and_changes_nothing(aws):
    result = run(aws, "update-instance-storage-config-recordings-bucket.json", mode="detect")
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert configs(aws, "CALL_RECORDINGS")[0]["S3Config"]["BucketName"] == "cg-demo-attacker-sink"
    assert writes(aws) == [] and aws.audit_records() == []


@pytest.mark.parametrize(
    ("sample", "severity", "reason"),
    [
        ("update-instance-storage-config-denied.json", "HIGH", "the call was denied"),
        ("update-instance-storage-config-allowlisted.json", "MEDIUM", "allowlisted principal"),
    ],
)
def test_denied_and_allowlisted_changes_are_alerted_and_nothing_is_read_or_written(aws, sample, severity, reason):
    before = configs(aws, "CALL_RECORDINGS")
    result = run(aws, sample, allowlisted_principals=(PIPELINE,))
    assert result["outcome"] == "alerted" and result["severity"] == severity
    assert reason in aws.inbox()[0]["Message"]
    assert not [c for c in aws.connect.calls if "StorageConfig" in c[0]]
    assert configs(aws, "CALL_RECORDINGS") == before and aws.audit_records() == []


def _as_issuer(event: dict[str, Any], issuer_arn: str, issuer_id: str, account: str = "111122223333") -> None:
    role = issuer_arn.rsplit("/", 1)[-1]
    event["detail"]["userIdentity"] = {
        "type": "AssumedRole",
        "principalId": f"{issuer_id}:{role}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/connect-guard-dev-logging-guard",
        "accountId": account,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": issuer_id,
                "arn": issuer_arn,
                "accountId": account,
                "userName": role,
            }
        },
    }


def test_a_change_through_cloudformation_is_alerted_and_left_to_the_soc(aws):
    event = load_event("logging/update-instance-storage-config-recordings-bucket.json")
    event["detail"]["userIdentity"]["invokedBy"] = "cloudformation.amazonaws.com"
    event["detail"]["sourceIPAddress"] = event["detail"]["userAgent"] = "cloudformation.amazonaws.com"
    result = run_event(aws, event)
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "Storage changed by a stack" in aws.inbox()[0]["Message"] and writes(aws) == []


def test_the_suites_own_member_role_redirecting_recordings_is_alerted_as_compromised_and_restored(aws):
    # Its identity exempts only a change that leaves the storage as approved, never a redirect.
    event = load_event("logging/update-instance-storage-config-recordings-bucket.json")
    _as_issuer(event, MEMBER_ROLLBACK, "AROAZ7QXK3MEMBERRB01")
    result = run_event(aws, event)
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert "the role is compromised" in aws.inbox()[0]["Message"]
    assert configs(aws, "CALL_RECORDINGS")[0]["S3Config"]["BucketName"] == "acme-connect-recordings-111122223333"


@pytest.mark.parametrize(
    "issuer_arn",
    [
        # The member rollback role's name on a path anyone with iam:CreateRole can pick.
        "arn:aws:iam::111122223333:role/attacker/connect-guard-dev-member-rollback",
        # The exact name, without the suite path.
        "arn:aws:iam::111122223333:role/connect-guard-dev-member-rollback",
    ],
)
def test_a_look_alike_of_the_suites_role_gains_nothing(aws, issuer_arn):
    # Not recognised as the suite: an ordinary redirect, restored, with no "own role" reading.
    event = load_event("logging/update-instance-storage-config-recordings-bucket.json")
    _as_issuer(event, issuer_arn, "AROAZ7QXK3ATTACKER01")
    result = run_event(aws, event)
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert "own role" not in aws.inbox()[0]["Message"]
    assert configs(aws, "CALL_RECORDINGS")[0]["S3Config"]["BucketName"] == "acme-connect-recordings-111122223333"


def test_the_suites_own_restore_is_left_alone_once_the_storage_is_as_approved(aws):
    result = run(aws, "update-instance-storage-config-by-suite.json")
    assert result["outcome"] == "ignored" and aws.inbox() == [] and writes(aws) == []


def test_an_instance_the_suite_does_not_cover_is_alerted_not_assessed_and_never_changed(aws):
    result = run(aws, "update-instance-storage-config-recordings-bucket.json", connect_instance_arns=())
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "not in ConnectInstanceArns" in aws.inbox()[0]["Message"] and writes(aws) == []


def test_an_instance_without_a_storage_snapshot_is_alerted_high_and_never_changed(aws):
    aws.clients.dynamodb.delete_item(
        TableName=aws.baseline_table, Key={"pk": {"S": f"storage#{INSTANCE_ARN}"}, "sk": {"S": "snapshot"}}
    )
    result = run(aws, "update-instance-storage-config-recordings-bucket.json")
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"
    message = aws.inbox()[0]["Message"]
    assert "Unknown storage changed" in message and "cg-demo-attacker-sink" in message
    assert writes(aws) == [] and aws.audit_records() == []


@pytest.mark.parametrize("kind", ["FUTURE_RECORDINGS", None])
def test_a_resource_type_the_suite_does_not_know_or_was_not_recorded_is_alerted_not_a_crash(aws, kind):
    event = load_event("logging/update-instance-storage-config-ctr-stream.json")
    if kind is None:
        del event["detail"]["requestParameters"]["resourceType"]
    else:
        event["detail"]["requestParameters"]["resourceType"] = kind
    result = run_event(aws, event)
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"
    assert writes(aws) == []


def test_storage_that_cannot_be_read_is_alerted_and_not_restored(aws):
    aws.connect.fail_next("ListInstanceStorageConfigs", "AccessDeniedException")
    result = run(aws, "update-instance-storage-config-recordings-bucket.json")
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "could not be read (AccessDeniedException)" in aws.inbox()[0]["Message"] and writes(aws) == []


def test_a_throttled_read_is_retried_and_the_last_attempt_says_the_storage_is_still_redirected(aws):
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(load_event("logging/update-instance-storage-config-recordings-bucket.json"))
    aws.connect.fail_next("ListInstanceStorageConfigs", "ThrottlingException", times=10)
    with pytest.raises(Exception, match="Throttling"):
        responder.handle(parsed)
    aws.connect._failures.clear()
    responder.give_up(parsed, RuntimeError("throttled"))
    [alert] = aws.inbox()
    assert "Storage restore FAILED for UpdateInstanceStorageConfig in 111122223333" in alert["Subject"]
    assert "CALL_RECORDINGS: approved S3 s3://acme-connect-recordings-111122223333" in alert["Message"]


def test_the_last_attempt_after_a_restore_that_happened_says_nothing(aws):
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(load_event("logging/update-instance-storage-config-recordings-bucket.json"))
    responder.handle(parsed)
    aws.inbox()
    responder.give_up(parsed, RuntimeError("publish timed out"))
    assert aws.inbox() == []


def test_a_retry_after_the_restore_still_reports_it(aws):
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(load_event("logging/update-instance-storage-config-recordings-bucket.json"))
    original = responder.publisher.publish
    responder.publisher.publish = lambda finding: (_ for _ in ()).throw(TimeoutError("killed"))  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        responder.handle(parsed)
    responder.publisher.publish = original  # type: ignore[method-assign]
    outcome = responder.handle(parsed)
    assert outcome.outcome == "restored" and len(writes(aws)) == 1
    assert outcome.finding and outcome.finding["actions"][0]["operation"] == "UpdateInstanceStorageConfig"


def test_approve_storage_records_the_configs_as_they_are_now_and_the_guard_restores_to_them(aws):
    from connect_guard_tools import cli
    from tests.integration.test_replay_cli import _stack

    # Reviewed: the new CTR stream is the approved one from now on.
    args = cli._parser().parse_args(
        [
            "approve-storage",
            "--instance-arn",
            INSTANCE_ARN,
            "--stack",
            _stack(aws),
            "--approved-by",
            "soc@example.com",
        ]
    )
    out = io.StringIO()
    assert cli.approve_storage(args, out, session=aws.session) == 0
    assert f"of {INSTANCE_ARN} as its snapshot (by soc@example.com)" in out.getvalue()
    assert "warning: CHAT_TRANSCRIPTS is stored without a KMS key" in out.getvalue()
    [audit] = aws.audit_records()
    assert audit["action"]["S"] == "ApproveStorageSnapshot" and audit["actor"]["S"] == "soc@example.com"
    snapshot = StorageSnapshots(aws.clients.dynamodb, aws.baseline_table).get(INSTANCE_ARN)
    assert snapshot is not None and snapshot.approved_by == "soc@example.com"
    # The snapshot is the instance's state read (what a scheduled drift check compares it with).
    now = ConnectGateway(aws.session.client("connect"), InstanceRef.parse(INSTANCE_ARN, "", "")).storage_state(
        RESOURCE_TYPES
    )
    assert now.configs == snapshot.configs and drift(snapshot.configs, now.configs) == ()
    [ctr] = snapshot.of_type("CONTACT_TRACE_RECORDS")
    assert ctr.stream_arn and ctr.stream_arn.endswith(":stream/ctr-replay-tmp")
    # The approved state now is what the sample leaves: nothing to restore.
    assert run(aws, "update-instance-storage-config-ctr-stream.json")["outcome"] == "ignored"


@pytest.mark.parametrize("instance", ["***", None, ""])
def test_a_redacted_or_missing_instance_is_alerted_by_the_types_severity_not_a_crash(aws, instance):
    event = load_event("logging/update-instance-storage-config-recordings-bucket.json")
    event["detail"]["requestParameters"]["InstanceId"] = instance
    result = run_event(aws, event)
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "Unidentified instance" in aws.inbox()[0]["Message"] and writes(aws) == []


@pytest.mark.parametrize("instance", ["arn:aws:connect:us-east-1", {"Id": INSTANCE}])
def test_a_malformed_instance_is_refused_as_poison_with_its_reason(aws, instance):
    event = load_event("logging/update-instance-storage-config-recordings-bucket.json")
    event["detail"]["requestParameters"]["InstanceId"] = instance
    with pytest.raises(PoisonEventError, match="InstanceId"):
        parse_event(event)
