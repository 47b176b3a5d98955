"""connect_guard.kms_keys: which key an event names, the approved state, drift, the restore's
calls, and what a key policy change does (pure functions, no AWS)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from connect_guard.connect_storage import KEYED_RESOURCE_TYPES, RESOURCE_TYPES, StorageConfig
from connect_guard.kms_keys import (
    KeyReference,
    KeyState,
    approved,
    canonical_policy,
    drift,
    encrypted_types,
    key_reference,
    policy_findings,
    restore_calls,
    same_key,
)
from connect_guard_tools.connect_fake import STORAGE_TYPES_BY_RESOURCE

ACCOUNT, REGION = "111122223333", "us-east-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
ROOT = {
    "Sid": "Root",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ENABLED = KeyState(ARN, "Enabled", rotation=True, policy=canonical_policy(policy(ROOT)))


# ---- which key -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resources", "key_id", "expected"),
    [
        # resources[] first: AWS's record carries the ARN there, also when keyId is an ID.
        ([{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": ARN}], "alias/other", KeyReference(arn=ARN)),
        (None, KEY_ID, KeyReference(arn=ARN)),
        (None, ARN, KeyReference(arn=ARN)),
        (None, f"mrk-{KEY_ID.replace('-', '')[:32]}", KeyReference()),  # not a key ID's shape
        (None, "mrk-1234abcd-12ab-34cd-56ef-1234567890ab", KeyReference(arn=ARN.replace(KEY_ID, "mrk-" + KEY_ID))),
        (None, "alias/connect-recordings", KeyReference(alias="alias/connect-recordings")),
        (
            None,
            f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/connect-recordings",
            KeyReference(alias=f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/connect-recordings"),
        ),
        # Denied calls: null parameters; redactions and garbage name no key.
        (None, None, KeyReference()),
        ([], "***", KeyReference()),
        ("not-a-list", 42, KeyReference()),
        ([{"type": "AWS::KMS::Key", "ARN": "arn:aws:kms:us-east-1:1:key/x"}], None, KeyReference()),
        ([{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::b"}], KEY_ID, KeyReference(arn=ARN)),
    ],
)
def test_the_key_an_event_names(resources, key_id, expected):
    assert key_reference(resources, key_id, ACCOUNT, REGION) == expected


def test_a_storage_config_names_a_key_by_arn_or_by_id_only_exactly():
    assert same_key(ARN, ARN) and same_key(KEY_ID, ARN)
    assert not same_key(KEY_ID[:-1] + "c", ARN)
    assert not same_key(ARN.replace(ACCOUNT, "444455556666"), ARN)  # another account's key of the same ID


def test_the_storage_types_a_key_encrypts_are_read_from_the_configs_that_name_it():
    other = ARN.replace(KEY_ID, "0c4e5a1b-7d2f-4e8a-9b3c-5f6a7d8e9f01")
    configs = (
        StorageConfig("CALL_RECORDINGS", "S3", bucket="b", prefix="p", kms_key_id=ARN),
        StorageConfig("MEDIA_STREAMS", "KINESIS_VIDEO_STREAM", prefix="m", retention_hours=1, kms_key_id=KEY_ID),
        StorageConfig("CHAT_TRANSCRIPTS", "S3", bucket="b", prefix="t", kms_key_id=other),
        StorageConfig("SCHEDULED_REPORTS", "S3", bucket="b", prefix="r"),  # unencrypted
        StorageConfig("CONTACT_TRACE_RECORDS", "KINESIS_STREAM", stream_arn="arn:aws:kinesis:us-east-1:1:stream/s"),
    )
    assert encrypted_types(configs, ARN) == ("CALL_RECORDINGS", "MEDIA_STREAMS")
    assert encrypted_types(configs, other) == ("CHAT_TRANSCRIPTS",)
    assert encrypted_types((), ARN) == ()


def test_every_type_connect_may_store_in_s3_or_video_streams_is_read_for_keys():
    # The embedded Connect's table of which storage each type may use (Connect's admin guide).
    keyed = {kind for kind, kinds in STORAGE_TYPES_BY_RESOURCE.items() if kinds & {"S3", "KINESIS_VIDEO_STREAM"}}
    assert set(KEYED_RESOURCE_TYPES) == keyed
    assert set(STORAGE_TYPES_BY_RESOURCE) == set(RESOURCE_TYPES)


# ---- approved state, drift, restore ------------------------------------------------------------------
def test_without_a_snapshot_a_protected_key_should_be_enabled_and_its_policy_is_not_guessed():
    pending = replace(ENABLED, key_state="PendingDeletion", deletion_date="2026-12-04T09:14:31+00:00", rotation=False)
    wanted = approved(None, pending, rotation_wanted=False)
    assert (wanted.key_state, wanted.deletion_date, wanted.policy, wanted.rotation) == ("Enabled", None, None, False)
    assert [d.setting for d in drift(wanted, pending)] == ["key_state"]
    # Cancelling leaves the key Disabled: EnableKey follows; rotation was off and stays so.
    assert restore_calls(wanted, pending, drift(wanted, pending)) == [
        ("CancelKeyDeletion", {"KeyId": ARN}),
        ("EnableKey", {"KeyId": ARN}),
    ]


def test_rotation_is_put_back_on_only_when_it_was_on_or_wanted_and_the_key_can_rotate():
    off = replace(ENABLED, rotation=False)
    assert drift(approved(None, off, rotation_wanted=False), off) == ()
    wanted = approved(None, off, rotation_wanted=True)
    assert restore_calls(wanted, off, drift(wanted, off)) == [("EnableKeyRotation", {"KeyId": ARN})]
    asymmetric = replace(off, key_spec="RSA_2048")
    assert drift(approved(None, asymmetric, rotation_wanted=True), asymmetric) == ()
    imported = replace(off, origin="EXTERNAL")
    assert drift(approved(None, imported, rotation_wanted=True), imported) == ()


def test_a_disabled_key_with_rotation_off_is_enabled_before_rotation_goes_back_on():
    snapshot = replace(ENABLED, taken_at="2026-11-20T06:00:00+00:00")
    now = replace(ENABLED, key_state="Disabled", rotation=False)
    found = drift(snapshot, now)
    assert {d.setting for d in found} == {"key_state", "rotation"}
    assert [op for op, _ in restore_calls(snapshot, now, found)] == ["EnableKey", "EnableKeyRotation"]


def test_a_key_approved_disabled_is_only_taken_out_of_pending_deletion():
    snapshot = replace(ENABLED, key_state="Disabled")
    now = replace(ENABLED, key_state="PendingDeletion")
    assert [op for op, _ in restore_calls(snapshot, now, drift(snapshot, now))] == ["CancelKeyDeletion"]


def test_a_policy_change_is_drift_against_a_snapshot_and_never_a_call():
    now = replace(ENABLED, policy=canonical_policy(policy({**ROOT, "Sid": "Other"})))
    found = drift(ENABLED, now)
    assert [d.setting for d in found] == ["policy"]
    assert restore_calls(ENABLED, now, found) == []


def test_the_policy_is_compared_as_canonical_json():
    reordered = json.dumps({"Statement": [ROOT], "Version": "2012-10-17"}, indent=4)
    assert canonical_policy(reordered) == ENABLED.policy
    assert canonical_policy("not json") == "not json"


# ---- key policies -------------------------------------------------------------------------------------
SUITE_ROLE = "arn:aws:iam::111122223333:role/connect-guard/connect-guard-dev-member-read"


def test_a_policy_that_keeps_the_accounts_access_takes_nothing_from_the_suite():
    connect = {"Sid": "Connect", "Effect": "Allow", "Principal": {"Service": "connect.amazonaws.com"}}
    tls = {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    tls["Condition"] = {"Bool": {"aws:SecureTransport": "false"}}
    removes, reasons = policy_findings(
        policy(ROOT), policy(ROOT, {**connect, "Action": "kms:Decrypt", "Resource": "*"}, tls), ACCOUNT, [SUITE_ROLE]
    )
    assert not removes
    assert reasons == ("statements added or changed: Connect, TlsOnly",)


def test_a_policy_without_the_accounts_statement_takes_away_the_suites_access():
    other = {**ROOT, "Sid": "Ops", "Principal": {"AWS": "arn:aws:iam::444455556666:role/ExternalOps"}}
    removes, reasons = policy_findings(policy(ROOT), policy(other), ACCOUNT, [SUITE_ROLE])
    assert removes
    assert any("no longer lets account 111122223333's IAM policies" in r for r in reasons)
    assert "the key policy allows principals outside account 111122223333: " + other["Principal"]["AWS"] in reasons
    assert "approved statements removed or changed: Root" in reasons


@pytest.mark.parametrize(
    "principal",
    ["*", {"AWS": "*"}, {"AWS": SUITE_ROLE}, {"AWS": ACCOUNT}, {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}],
)
def test_an_unconditional_deny_that_reaches_the_suites_roles_takes_away_its_access(principal):
    deny = {"Sid": "Lockout", "Effect": "Deny", "Principal": principal, "Action": "kms:*", "Resource": "*"}
    removes, reasons = policy_findings(None, policy(ROOT, deny), ACCOUNT, [SUITE_ROLE])
    assert removes
    assert any(r.startswith("a Deny (Lockout") for r in reasons)


def test_an_empty_or_unreadable_policy_takes_away_everyones_access():
    for document in ("{}", "not json", json.dumps({"Statement": "x"})):
        removes, reasons = policy_findings(None, document, ACCOUNT)
        assert removes, document
        assert reasons[0].startswith("the key policy has no readable statements"), document
