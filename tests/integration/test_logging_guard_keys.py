"""logging_guard's key guard in enforce mode: the keys of events/demo-state.yaml, tampered as each
sample under events/keys/ says, are usable again after the event (enabled, not pending deletion,
rotating); key policies are alerted with before and after and never written; what the suite
can't judge is alerted and left alone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from connect_guard.clients import AwsClients
from connect_guard.connect_storage import KEYED_RESOURCE_TYPES, StorageConfig, StorageSnapshots, StorageState
from connect_guard.kms_keys import KeyGateway
from connect_guard.responders import logging_guard
from connect_guard.runtime import build_pipeline, parse_event
from connect_guard_tools.local_aws import SUITE_KEY_ID
from tests.conftest import load_event, with_new_event_id

SECURITY, MEMBER = "123456789012", "111122223333"
SUITE_KEY = f"arn:aws:kms:us-east-1:{SECURITY}:key/{SUITE_KEY_ID}"
RECORDINGS = f"arn:aws:kms:us-east-1:{MEMBER}:key/0c4e5a1b-7d2f-4e8a-9b3c-5f6a7d8e9f01"
TRANSCRIPTS = f"arn:aws:kms:us-east-1:{MEMBER}:key/1d5f6b2c-8e3a-4f9b-8c4d-6a7b8c9d0e12"
MEDIA = f"arn:aws:kms:us-east-1:{MEMBER}:key/2e6a7c3d-9f4b-4a0c-9d5e-7b8c9d0e1f23"
SANDBOX = f"arn:aws:kms:us-east-1:{MEMBER}:key/3f7b8d4e-0a5c-4b1d-8e6f-8c9d0e1f2a34"
REPORTS = f"arn:aws:kms:us-east-1:{MEMBER}:key/4a8c9e5f-1b6d-4c2e-9f70-9d0e1f2a3b45"
SUITE_ROLE = f"arn:aws:iam::{SECURITY}:role/connect-guard/connect-guard-dev-logging-guard"
INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"  # the demo instance; its `storage:` names the keys above
STORAGE_SNAPSHOT = {
    "pk": {"S": f"storage#arn:aws:connect:us-east-1:{MEMBER}:instance/{INSTANCE}"},
    "sk": {"S": "snapshot"},
}


def run(aws: Any, sample: str | dict[str, Any], mode: str = "enforce", **settings: Any) -> dict[str, Any]:
    """The outcome, with what reached the SOC inbox (`messages`) and the last finding published."""
    pipeline = build_pipeline(logging_guard.build, aws.settings(response_mode=mode, **settings), aws.clients)
    result = pipeline.process(load_event(f"keys/{sample}") if isinstance(sample, str) else sample)
    result["messages"] = aws.inbox()
    if result["messages"]:
        result["finding"] = json.loads(result["messages"][-1]["Message"])
    return result


def connect(aws: Any) -> Any:
    return aws.session.client("connect")  # the embedded Connect answers


def storage(aws: Any, kind: str) -> dict[str, Any] | None:
    configs = aws.connect.storage_configs(INSTANCE, kind)
    return configs[0] if configs else None


def key_event(sample: str, arn: str) -> dict[str, Any]:
    """A sample of events/keys/, aimed at another key."""
    event = load_event(f"keys/{sample}")
    event["detail"]["requestParameters"]["keyId"] = arn.rsplit("/", 1)[1]
    event["detail"]["resources"][0]["ARN"] = arn
    return event


def kms(aws: Any, arn: str) -> Any:
    return aws.account_session(arn.split(":")[4]).client("kms")


def key(aws: Any, arn: str):
    state = KeyGateway(kms(aws, arn)).state(arn)
    assert state is not None
    return state


def test_the_suites_key_scheduled_for_deletion_is_enabled_again_and_still_rotates(aws):
    assert key(aws, SUITE_KEY).key_state == "PendingDeletion"
    result = run(aws, "schedule-key-deletion-suite-key.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    restored = key(aws, SUITE_KEY)
    assert (restored.key_state, restored.deletion_date, restored.rotation) == ("Enabled", None, True)
    [alert] = result["messages"]
    assert f"Key restored: KMS key {SUITE_KEY_ID} (ScheduleKeyDeletion)" in alert["Subject"] + alert["Message"]
    audits = aws.audit_records()
    assert sorted(a["action"]["S"] for a in audits) == ["CancelKeyDeletion", "EnableKey"]
    assert {a["target"]["S"] for a in audits} == {SUITE_KEY}


def test_a_connect_recordings_key_disabled_in_a_member_account_is_enabled_through_its_rollback_role(aws):
    assert key(aws, RECORDINGS).key_state == "Disabled"
    assumed: list[str] = []
    aws.session.events.register(
        "before-parameter-build.sts.AssumeRole", lambda params, **_: assumed.append(params["RoleArn"])
    )
    aws.clients = AwsClients(aws.region, aws.session, SECURITY)  # clients made after the hook
    result = run(aws, "disable-key-connect-recordings.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert key(aws, RECORDINGS).key_state == "Enabled"
    assert "CALL_RECORDINGS of f3c95789-ace1-4954-ac5d-6baed2eac902" in result["messages"][0]["Message"]
    # Read with the member stack's read role, written with its rollback role (kms:EnableKey there).
    role = f"arn:aws:iam::{MEMBER}:role/connect-guard/connect-guard-dev-member-"
    assert sorted({arn for arn in assumed if "/connect-guard/" in arn}) == [role + "read", role + "rollback"]


def test_a_member_accounts_reports_key_pending_deletion_is_cancelled_and_enabled(aws):
    assert key(aws, REPORTS).key_state == "PendingDeletion"
    result = run(aws, "schedule-key-deletion-connect-reports.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    restored = key(aws, REPORTS)
    assert (restored.key_state, restored.deletion_date, restored.rotation) == ("Enabled", None, True)
    assert [a["operation"] for a in result["finding"]["actions"]] == ["CancelKeyDeletion", "EnableKey"]


def test_rotation_switched_off_is_switched_back_on_at_high(aws):
    assert not key(aws, MEDIA).rotation
    result = run(aws, "disable-key-rotation-connect-media.json")
    assert result["outcome"] == "restored" and result["severity"] == "HIGH"
    assert key(aws, MEDIA).rotation and key(aws, MEDIA).key_state == "Enabled"
    [audit] = aws.audit_records()
    assert audit["action"]["S"] == "EnableKeyRotation"


def test_a_policy_that_locks_the_suite_out_is_critical_with_before_and_after_and_never_written(aws):
    before = key(aws, TRANSCRIPTS).policy
    result = run(aws, "put-key-policy-connect-transcripts.json")
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert key(aws, TRANSCRIPTS).policy == before  # the attacker's policy stays: the SOC puts it back
    reasons = result["finding"]["reasons"]
    assert reasons[0] == "the new key policy takes away connect-guard's own access to the key"
    assert any(
        r.startswith("key policy before (approved snapshot, 2026-11-20") and "AccountRootAdministers" in r
        for r in reasons
    )
    assert any(r.startswith("key policy after (re-read now)") and "444455556666" in r for r in reasons)
    assert result["finding"]["actions"] == [] and aws.audit_records() == []


def test_a_policy_change_on_a_key_without_snapshot_says_the_previous_policy_is_unknown(aws):
    event = load_event("keys/put-key-policy-connect-transcripts.json")
    event["detail"]["requestParameters"]["keyId"] = RECORDINGS.rsplit("/", 1)[1]
    event["detail"]["resources"][0]["ARN"] = RECORDINGS
    kms(aws, RECORDINGS).put_key_policy(
        KeyId=RECORDINGS,
        PolicyName="default",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Root",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{MEMBER}:root"},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    kms(aws, RECORDINGS).enable_key(KeyId=RECORDINGS)  # only the policy changed
    result = run(aws, with_new_event_id(event))
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    reasons = result["finding"]["reasons"]
    assert "the new key policy takes away connect-guard's own access to the key" not in reasons
    assert any(r.startswith("key policy before: not known to the suite (no approved snapshot)") for r in reasons)


@pytest.mark.parametrize(
    ("sample", "severity", "arn"),
    [
        ("schedule-key-deletion-denied.json", "HIGH", RECORDINGS),
        ("disable-key-allowlisted.json", "MEDIUM", RECORDINGS),
        ("schedule-key-deletion-unrelated-key.json", "LOW", SANDBOX),
        ("put-key-policy-by-cloudformation.json", "CRITICAL", TRANSCRIPTS),
    ],
)
def test_what_is_not_restored_is_alerted_and_left_alone(aws, sample, severity, arn):
    before = key(aws, arn)
    result = run(aws, sample, allowlisted_principals=(f"arn:aws:iam::{MEMBER}:role/ConnectChangePipeline",))
    assert result["outcome"] == "alerted" and result["severity"] == severity
    assert result["finding"]["actions"] == [] and aws.audit_records() == []
    assert key(aws, arn) == before


def test_a_key_no_covered_instance_names_and_without_snapshot_is_not_restored(aws):
    # The recordings go elsewhere, and so says the approved storage: the key is Connect's no more.
    aws.clients.dynamodb.delete_item(TableName=aws.baseline_table, Key=STORAGE_SNAPSHOT)
    connect(aws).update_instance_storage_config(
        InstanceId=INSTANCE,
        AssociationId=storage(aws, "CALL_RECORDINGS")["AssociationId"],
        ResourceType="CALL_RECORDINGS",
        StorageConfig={"StorageType": "S3", "S3Config": {"BucketName": "acme-archive", "BucketPrefix": "calls"}},
    )
    result = run(aws, "disable-key-connect-recordings.json")
    assert result["outcome"] == "alerted" and result["severity"] == "LOW"
    assert key(aws, RECORDINGS).key_state == "Disabled"
    # One read per type whose storage can name a key (S3, video streams), none for Kinesis-only types.
    listed = sorted(p["ResourceType"] for op, p in aws.connect.calls if op == "ListInstanceStorageConfigs")
    assert listed == sorted(KEYED_RESOURCE_TYPES)


# The attack the storage snapshot answers: first point the recordings elsewhere (another key, or
# none), then delete the approved key. The live configs no longer name it; the snapshot does.
@pytest.mark.parametrize(
    "redirect",
    [
        {"BucketName": "cg-demo-attacker-sink", "BucketPrefix": "calls"},  # no encryption at all
        {
            "BucketName": "cg-demo-attacker-sink",
            "BucketPrefix": "calls",
            "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": SANDBOX},
        },
    ],
    ids=["encryption-removed", "other-key"],
)
def test_the_approved_key_of_storage_redirected_first_is_still_guarded_when_it_is_deleted(aws, redirect):
    connect(aws).update_instance_storage_config(
        InstanceId=INSTANCE,
        AssociationId=storage(aws, "CALL_RECORDINGS")["AssociationId"],
        ResourceType="CALL_RECORDINGS",
        StorageConfig={"StorageType": "S3", "S3Config": redirect},
    )
    kms(aws, RECORDINGS).schedule_key_deletion(KeyId=RECORDINGS, PendingWindowInDays=7)
    aws.connect.calls.clear()
    result = run(aws, with_new_event_id(key_event("schedule-key-deletion-connect-reports.json", RECORDINGS)))
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    restored = key(aws, RECORDINGS)
    assert (restored.key_state, restored.deletion_date) == ("Enabled", None)
    reason = result["finding"]["reasons"][0]
    assert reason == (
        f"the key encrypts Connect storage: CALL_RECORDINGS of {INSTANCE} (approved storage snapshot, "
        "2026-11-20T06:00:00+00:00)"
    )
    # The snapshot (one GetItem) was enough: no Connect read spent on the live configs.
    assert [op for op, _ in aws.connect.calls if op == "ListInstanceStorageConfigs"] == []


def test_the_scheduled_reports_key_is_guarded_by_the_snapshot_after_their_storage_was_dropped(aws):
    # The demo's own sequence: disassociate-instance-storage-config-reports.json, then this key.
    assert storage(aws, "SCHEDULED_REPORTS") is None
    result = run(aws, "schedule-key-deletion-connect-reports.json")
    assert result["outcome"] == "restored"
    assert f"SCHEDULED_REPORTS of {INSTANCE} (approved storage snapshot" in result["finding"]["reasons"][0]


def test_a_forged_storage_snapshot_of_an_instance_not_covered_guards_nothing(aws):
    # Only instances in ConnectInstanceArns count: a snapshot item (or a live config) of any other
    # instance naming the key does not make the suite act on it.
    forged = StorageState(
        f"arn:aws:connect:us-east-1:{MEMBER}:instance/00000000-0000-4000-8000-000000000000",
        (StorageConfig("CALL_RECORDINGS", "S3", bucket="x", prefix="y", kms_key_id=SANDBOX),),
    )
    StorageSnapshots(aws.clients.dynamodb, aws.baseline_table).put(forged)
    kms(aws, SANDBOX).schedule_key_deletion(KeyId=SANDBOX, PendingWindowInDays=7)
    result = run(aws, "schedule-key-deletion-unrelated-key.json")
    assert result["outcome"] == "alerted" and result["severity"] == "LOW"
    assert key(aws, SANDBOX).key_state == "PendingDeletion"


def test_a_key_only_a_live_config_names_is_guarded_whatever_keyed_type_names_it(aws):
    # Screen recordings were not among the types the key guard once read: any S3 type can name a key.
    connect(aws).associate_instance_storage_config(
        InstanceId=INSTANCE,
        ResourceType="SCREEN_RECORDINGS",
        StorageConfig={
            "StorageType": "S3",
            "S3Config": {
                "BucketName": "acme-screens",
                "BucketPrefix": "screens",
                "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": SANDBOX},
            },
        },
    )
    kms(aws, SANDBOX).schedule_key_deletion(KeyId=SANDBOX, PendingWindowInDays=7)
    aws.connect.calls.clear()
    result = run(aws, "schedule-key-deletion-unrelated-key.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert result["finding"]["reasons"][0] == f"the key encrypts Connect storage: SCREEN_RECORDINGS of {INSTANCE}"
    assert key(aws, SANDBOX).key_state == "Enabled"
    # The search ends at the first type that names the key.
    listed = [p["ResourceType"] for op, p in aws.connect.calls if op == "ListInstanceStorageConfigs"]
    assert listed == list(KEYED_RESOURCE_TYPES[: KEYED_RESOURCE_TYPES.index("SCREEN_RECORDINGS") + 1])


def test_a_key_the_suite_cannot_read_is_alerted_not_acted_on(aws):
    deny = {"Sid": "Lockout", "Effect": "Deny", "Principal": "*", "Action": "kms:DescribeKey", "Resource": "*"}
    kms(aws, MEDIA).put_key_policy(
        KeyId=MEDIA, PolicyName="default", Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]})
    )
    result = run(aws, "disable-key-rotation-connect-media.json")
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "Key change not assessed" in result["finding"]["title"]
    assert aws.audit_records() == []


def test_a_member_account_whose_role_cannot_be_assumed_is_alerted_not_acted_on(aws):
    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        error = {"Code": "AccessDenied", "Message": "not authorized to perform: sts:AssumeRole"}
        return AWSResponse(None, 403, {}, None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}

    aws.session.events.register_first("before-call.sts.AssumeRole", refuse)
    aws.clients = AwsClients(aws.region, aws.session, SECURITY)
    result = run(aws, "disable-key-connect-recordings.json")
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert result["finding"]["title"].startswith("Key change not assessed")
    assert "cannot assume" in result["finding"]["reasons"][0] and aws.audit_records() == []


def test_a_key_named_by_alias_is_resolved_and_restored(aws):
    kms(aws, RECORDINGS).create_alias(AliasName="alias/acme-recordings", TargetKeyId=RECORDINGS)
    event = load_event("keys/disable-key-connect-recordings.json")
    event["detail"]["requestParameters"] = {"keyId": "alias/acme-recordings"}
    event["detail"]["resources"] = []
    assert run(aws, with_new_event_id(event))["outcome"] == "restored"
    assert key(aws, RECORDINGS).key_state == "Enabled"


def test_the_same_event_twice_restores_once_and_alerts_once(aws):
    first = run(aws, "schedule-key-deletion-suite-key.json")
    second = run(aws, "schedule-key-deletion-suite-key.json")
    assert second["outcome"] == "duplicate"
    assert len(first["messages"]) == 1 and second["messages"] == [] and len(aws.audit_records()) == 2


def test_a_key_enabled_again_before_the_event_is_read_needs_nothing(aws):
    kms(aws, RECORDINGS).enable_key(KeyId=RECORDINGS)
    result = run(aws, "disable-key-connect-recordings.json")
    assert result["outcome"] == "ignored" and result["messages"] == []


def test_a_retry_after_the_restore_still_reports_it(aws):
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(load_event("keys/schedule-key-deletion-suite-key.json"))
    original = responder.publisher.publish
    responder.publisher.publish = lambda finding: (_ for _ in ()).throw(TimeoutError("killed"))  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        responder.handle(parsed)
    responder.publisher.publish = original  # type: ignore[method-assign]
    assert key(aws, SUITE_KEY).key_state == "Enabled"
    outcome = responder.handle(parsed)
    assert outcome.outcome == "restored"
    assert outcome.finding and [a["operation"] for a in outcome.finding["actions"]] == [
        "CancelKeyDeletion",
        "EnableKey",
    ]


def test_the_last_attempt_says_the_key_is_still_pending_deletion(aws):
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(load_event("keys/schedule-key-deletion-suite-key.json"))
    responder.give_up(parsed, RuntimeError("throttled"))
    [alert] = aws.inbox()
    assert "Key restore FAILED for ScheduleKeyDeletion in 123456789012" in alert["Subject"]
    assert "key_state: approved" in alert["Message"] and "PendingDeletion" in alert["Message"]


def test_the_last_attempt_is_quiet_once_the_key_is_usable(aws):
    run(aws, "schedule-key-deletion-suite-key.json")
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(with_new_event_id(load_event("keys/schedule-key-deletion-suite-key.json")))
    responder.give_up(parsed, RuntimeError("throttled"))
    assert aws.inbox() == []


def _as_role(event: dict[str, Any], issuer_arn: str, issuer_id: str) -> dict[str, Any]:
    role = issuer_arn.rsplit("/", 1)[-1]
    identity = event["detail"]["userIdentity"]
    identity["principalId"] = f"{issuer_id}:{role}"
    identity["arn"] = f"arn:aws:sts::{SECURITY}:assumed-role/{role}/{role}"
    identity["sessionContext"]["sessionIssuer"] |= {"principalId": issuer_id, "arn": issuer_arn, "userName": role}
    return with_new_event_id(event)


def test_the_suites_own_role_deleting_a_key_is_alerted_as_compromised_and_restored(aws):
    event = _as_role(load_event("keys/schedule-key-deletion-by-suite-role.json"), SUITE_ROLE, "AROAZ7QXK3LOGGINGGRD")
    result = run(aws, event, suite_role_arns=(SUITE_ROLE,), suite_role_ids=("AROAZ7QXK3LOGGINGGRD",))
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert "the role is compromised" in result["finding"]["reasons"][0]
    assert key(aws, SUITE_KEY).key_state == "Enabled"


def test_the_suites_own_role_is_alerted_even_when_the_key_is_as_approved_again(aws):
    # The suite never disables, deletes or re-policies a key: its identity exempts nothing.
    kms(aws, SUITE_KEY).cancel_key_deletion(KeyId=SUITE_KEY)
    kms(aws, SUITE_KEY).enable_key(KeyId=SUITE_KEY)
    event = _as_role(load_event("keys/schedule-key-deletion-by-suite-role.json"), SUITE_ROLE, "AROAZ7QXK3LOGGINGGRD")
    result = run(aws, event, suite_role_arns=(SUITE_ROLE,), suite_role_ids=("AROAZ7QXK3LOGGINGGRD",))
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert result["finding"]["title"].startswith("Key changed: KMS key")
    assert "the role is compromised" in result["finding"]["reasons"][0]
    assert result["finding"]["actions"] == [] and aws.audit_records() == []


@pytest.mark.parametrize(
    ("issuer_arn", "issuer_id", "suite_ids"),
    [
        # The suite's role name on a path anyone with iam:CreateRole can pick.
        (f"arn:aws:iam::{SECURITY}:role/attacker/connect-guard-dev-logging-guard", "AROAZ7QXK3ATTACKER01", ()),
        # The suite's exact ARN, re-created: a new unique ID is not the deployed role.
        (SUITE_ROLE, "AROAZ7QXK3RECREATED1", ("AROAZ7QXK3LOGGINGGRD",)),
    ],
)
def test_a_look_alike_of_the_suites_role_is_not_taken_for_it(aws, issuer_arn, issuer_id, suite_ids):
    event = _as_role(load_event("keys/schedule-key-deletion-by-suite-role.json"), issuer_arn, issuer_id)
    result = run(aws, event, suite_role_arns=(SUITE_ROLE,), suite_role_ids=suite_ids)
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert not any("connect-guard's own role" in r for r in result["finding"]["reasons"])
    assert key(aws, SUITE_KEY).key_state == "Enabled"
    # Once the key is as approved, the same look-alike's event is not mistaken for the suite's restore.
    again = run(
        aws,
        _as_role(load_event("keys/schedule-key-deletion-by-suite-role.json"), issuer_arn, issuer_id),
        suite_role_arns=(SUITE_ROLE,),
        suite_role_ids=suite_ids,
    )
    assert again["reason"] != "the suite's own restore of the approved key"


def test_detect_mode_proposes_and_changes_nothing(aws):
    result = run(aws, "schedule-key-deletion-suite-key.json", mode="detect")
    assert result["outcome"] == "alerted"
    assert [a["status"] for a in result["finding"]["actions"]] == ["proposed", "proposed"]
    assert key(aws, SUITE_KEY).key_state == "PendingDeletion"


# ---- the embedded KMS is as strict as AWS where the restore depends on it ------------------------
def test_a_key_pending_deletion_cannot_be_enabled_before_its_deletion_is_cancelled(aws):
    client = kms(aws, SUITE_KEY)
    with pytest.raises(ClientError) as refused:
        client.enable_key(KeyId=SUITE_KEY)
    assert refused.value.response["Error"]["Code"] == "KMSInvalidStateException"
    client.cancel_key_deletion(KeyId=SUITE_KEY)  # by ARN, as AWS accepts
    assert key(aws, SUITE_KEY).key_state == "Disabled"  # a cancelled deletion leaves the key disabled
    with pytest.raises(ClientError) as again:
        client.cancel_key_deletion(KeyId=SUITE_KEY)
    assert again.value.response["Error"]["Code"] == "KMSInvalidStateException"
    with pytest.raises(ClientError) as rotation:
        client.enable_key_rotation(KeyId=SUITE_KEY)
    assert rotation.value.response["Error"]["Code"] == "KMSInvalidStateException"
    client.enable_key(KeyId=SUITE_KEY)
    assert key(aws, SUITE_KEY).key_state == "Enabled"


def test_the_last_attempt_still_delivers_a_policy_alert_the_earlier_ones_lost(aws):
    # A policy change is only ever alerted: if no attempt got its alert out, the last one sends it.
    responder = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    _, parsed = parse_event(load_event("keys/put-key-policy-connect-transcripts.json"))
    responder.give_up(parsed, RuntimeError("SNS throttled"))
    [alert] = aws.inbox()
    finding = json.loads(alert["Message"])
    assert finding["severity"] == "CRITICAL" and finding["title"].startswith("Key policy changed")
    assert finding["reasons"][-1] == ("sent by the last attempt: the earlier ones failed (RuntimeError: SNS throttled)")


def test_a_key_deleted_through_cloudformation_is_restored_all_the_same(aws):
    # invokedBy cloudformation.amazonaws.com exempts nothing here: a stack (the attacker's own, or
    # one that owns the key) deleting a guarded key destroys the data it encrypts.
    event = load_event("keys/schedule-key-deletion-connect-reports.json")
    event["detail"]["userIdentity"]["invokedBy"] = "cloudformation.amazonaws.com"
    result = run(aws, with_new_event_id(event))
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert result["finding"]["reasons"][0].startswith("made through CloudFormation")
    assert key(aws, REPORTS).key_state == "Enabled"


def test_a_covered_instance_that_is_gone_names_no_key_and_is_not_read_further(aws):
    aws.connect.fail_next("ListInstanceStorageConfigs", "ResourceNotFoundException")
    aws.connect.calls.clear()
    result = run(aws, "schedule-key-deletion-unrelated-key.json")
    assert result["outcome"] == "alerted" and result["severity"] == "LOW"
    assert [op for op, _ in aws.connect.calls if op == "ListInstanceStorageConfigs"] == ["ListInstanceStorageConfigs"]


def test_a_throttled_storage_read_is_raised_for_a_retry_not_taken_as_an_unguarded_key(aws):
    aws.connect.fail_next("ListInstanceStorageConfigs", "ThrottlingException", times=10)
    _, parsed = parse_event(load_event("keys/schedule-key-deletion-unrelated-key.json"))
    guard = logging_guard.build(aws.settings(response_mode="enforce"), aws.clients)
    with pytest.raises(ClientError, match="Throttling"):
        guard.handle(parsed)
    assert aws.inbox() == []  # no LOW "not guarded" verdict from a read that did not happen
