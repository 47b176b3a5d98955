"""connect_guard.connect_storage: drift between approved and current storage configs, and the
Connect calls that put the approved ones back (pure: no AWS)."""

from __future__ import annotations

from dataclasses import replace

from connect_guard.connect_storage import (
    StorageConfig,
    StorageState,
    drift,
    referenced_key_ids,
    restore_calls,
    severity_name,
)

KEY = "arn:aws:kms:us-east-1:111122223333:key/6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
RECORDINGS = StorageConfig("CALL_RECORDINGS", "S3", "a1", "acme-recordings", "CallRecordings", KEY)
CTR = StorageConfig(
    "CONTACT_TRACE_RECORDS", "KINESIS_STREAM", "c1", stream_arn="arn:aws:kinesis:us-east-1:1:stream/ctr"
)
MEDIA = StorageConfig("MEDIA_STREAMS", "KINESIS_VIDEO_STREAM", "m1", prefix="acme", kms_key_id=KEY, retention_hours=24)


def test_the_approved_configs_are_no_drift_even_under_a_new_association_id():
    assert drift([RECORDINGS, CTR], [CTR, RECORDINGS]) == ()
    assert drift([RECORDINGS], [replace(RECORDINGS, association_id="a2")]) == ()


def test_another_bucket_prefix_or_key_is_a_change_of_those_settings():
    now = replace(RECORDINGS, bucket="attacker-sink", prefix="x", kms_key_id=None)
    (found,) = drift([RECORDINGS], [now])
    assert (found.kind, found.settings) == ("changed", ("bucket", "prefix", "kms_key_id"))
    assert "no KMS encryption" in found.describe() and "s3://attacker-sink/x" in found.describe()


def test_a_dropped_association_is_missing_and_an_unapproved_one_is_extra():
    extra = StorageConfig("AGENT_EVENTS", "KINESIS_STREAM", "e1", stream_arn="arn:aws:kinesis:us-east-1:1:stream/x")
    found = drift([RECORDINGS], [extra])
    assert [(d.resource_type, d.kind) for d in found] == [("AGENT_EVENTS", "extra"), ("CALL_RECORDINGS", "missing")]


def test_the_restore_disassociates_extras_first_then_updates_then_associates():
    extra = StorageConfig("AGENT_EVENTS", "KINESIS_STREAM", "e1", stream_arn="arn:aws:kinesis:us-east-1:1:stream/x")
    redirected = replace(CTR, stream_arn="arn:aws:kinesis:us-east-1:1:stream/other")
    calls = restore_calls("i-1", drift([RECORDINGS, CTR], [extra, redirected]))
    assert [op for op, _ in calls] == [
        "DisassociateInstanceStorageConfig",
        "UpdateInstanceStorageConfig",
        "AssociateInstanceStorageConfig",
    ]
    assert calls[0][1] == {"InstanceId": "i-1", "AssociationId": "e1", "ResourceType": "AGENT_EVENTS"}
    assert calls[1][1]["AssociationId"] == "c1"  # the slot as it is now
    assert calls[1][1]["StorageConfig"] == {
        "StorageType": "KINESIS_STREAM",
        "KinesisStreamConfig": {"StreamArn": "arn:aws:kinesis:us-east-1:1:stream/ctr"},
    }
    assert calls[2][1]["StorageConfig"]["S3Config"] == {
        "BucketName": "acme-recordings",
        "BucketPrefix": "CallRecordings",
        "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": KEY},
    }


def test_a_slot_moved_to_another_storage_type_is_associated_again_not_updated_across_types():
    firehose = StorageConfig("CONTACT_TRACE_RECORDS", "KINESIS_FIREHOSE", "c2", stream_arn="arn:aws:firehose:x")
    calls = restore_calls("i-1", drift([CTR], [firehose]))
    assert [(op, p.get("AssociationId")) for op, p in calls] == [
        ("DisassociateInstanceStorageConfig", "c2"),
        ("AssociateInstanceStorageConfig", None),
    ]


def test_api_shapes_round_trip():
    for config in (RECORDINGS, CTR, MEDIA):
        raw = {**config.to_api(), "AssociationId": config.association_id}
        assert StorageConfig.from_api(config.resource_type, raw) == config
    assert "EncryptionConfig" not in replace(RECORDINGS, kms_key_id=None).to_api()["S3Config"]
    state = StorageState("arn:i", (RECORDINGS, MEDIA), "2026-11-20T06:00:00+00:00", "soc")
    assert StorageState.from_dict(state.to_dict()) == state and state.of_type("MEDIA_STREAMS") == (MEDIA,)


def test_customer_content_is_critical_and_the_rest_high():
    assert [severity_name(k) for k in ("CALL_RECORDINGS", "CHAT_TRANSCRIPTS", "SCREEN_RECORDINGS")] == ["CRITICAL"] * 3
    assert [severity_name(k) for k in ("SCHEDULED_REPORTS", "CONTACT_TRACE_RECORDS", "AGENT_EVENTS", None)] == [
        "HIGH"
    ] * 4


def test_referenced_key_ids_are_the_keys_that_encrypt_stored_contact_data():
    assert referenced_key_ids([RECORDINGS, CTR, MEDIA, replace(MEDIA, kms_key_id="alias/other")]) == {
        KEY,
        "alias/other",
    }
    assert referenced_key_ids([]) == set()
