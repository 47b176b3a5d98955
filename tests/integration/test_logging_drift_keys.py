"""logging_guard's scheduled drift check on the KMS keys of events/demo-state.yaml (the suite's
own key, keys with an approved snapshot, keys the approved storage snapshot names): drift that no
event reported is found and named, and in enforce mode the key is made usable again as the event
path does it; a key policy is alerted with before and after and never written; what can't be
read is alerted and left alone."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard.drift import DriftIncompleteError
from connect_guard.kms_keys import KeyGateway, KeySnapshots, KeyState
from connect_guard.responders import logging_drift, logging_guard
from connect_guard.runtime import build_pipeline
from connect_guard_tools import cli
from connect_guard_tools.local_aws import SUITE_KEY_ID
from tests.conftest import load_event
from tests.integration.test_replay_cli import _stack

SECURITY, MEMBER = "123456789012", "111122223333"
KEY = "arn:aws:kms:us-east-1:{}:key/{}"
SUITE_KEY = KEY.format(SECURITY, SUITE_KEY_ID)
TRANSCRIPTS = KEY.format(MEMBER, "1d5f6b2c-8e3a-4f9b-8c4d-6a7b8c9d0e12")  # snapshot; policy replaced
MEDIA = KEY.format(MEMBER, "2e6a7c3d-9f4b-4a0c-9d5e-7b8c9d0e1f23")  # snapshot; rotation off
RECORDINGS_BUCKET = KEY.format(MEMBER, "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")  # storage snapshot; disabled
MEDIA_STREAMS = KEY.format(MEMBER, "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d")  # storage snapshot; as approved
RECORDINGS = KEY.format(MEMBER, "0c4e5a1b-7d2f-4e8a-9b3c-5f6a7d8e9f01")  # storage snapshot; disabled by a sample


def drift(aws: Any, mode: str = "detect") -> dict[str, dict[str, Any]]:
    """One drift run; its KMS key findings by title, as published to the SOC inbox."""
    logging_drift.run(aws.settings(response_mode=mode), aws.clients)
    messages = [json.loads(m["Message"]) for m in aws.inbox()]
    return {f["title"]: f for f in messages if f["kind"] == "logging.kms_key_drift"}


def kms(aws: Any, arn: str) -> Any:
    return aws.account_session(arn.split(":")[4]).client("kms", region_name="us-east-1")


def key(aws: Any, arn: str) -> KeyState:
    state = KeyGateway(kms(aws, arn)).state(arn)
    assert state is not None
    return state


def audited(aws: Any) -> set[tuple[str, str]]:
    return {(a["target"]["S"], a["action"]["S"]) for a in aws.audit_records()}


def put_back_approved_policy(aws: Any) -> None:
    snapshot = KeySnapshots(aws.clients.dynamodb, aws.baseline_table).get(TRANSCRIPTS)
    assert snapshot is not None and snapshot.policy is not None
    kms(aws, TRANSCRIPTS).put_key_policy(KeyId=TRANSCRIPTS, PolicyName="default", Policy=snapshot.policy)


def test_detect_mode_finds_and_names_each_drifted_key_and_changes_nothing(aws):
    findings = drift(aws)
    suite = findings[f"Key scheduled for deletion: KMS key {SUITE_KEY_ID}"]
    assert suite["severity"] == "CRITICAL" and suite["target"]["arn"] == SUITE_KEY
    assert suite["event"]["account_id"] == SECURITY and "no event reported this change" in suite["reasons"][0]
    assert any("connect-guard's own keys" in r for r in suite["reasons"])
    assert [(a["operation"], a["status"]) for a in suite["actions"]] == [
        ("CancelKeyDeletion", "proposed"),
        ("EnableKey", "proposed"),
    ]
    # Rotation alone: HIGH. A key the approved storage snapshot names, disabled: CRITICAL, and why it's guarded.
    media = findings["Key rotation off: KMS key 2e6a7c3d-9f4b-4a0c-9d5e-7b8c9d0e1f23"]
    assert media["severity"] == "HIGH" and "rotation: approved true, now false" in media["reasons"]
    assert [a["operation"] for a in media["actions"]] == ["EnableKeyRotation"]
    bucket = findings["Key disabled: KMS key 6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"]
    assert bucket["severity"] == "CRITICAL" and bucket["event"]["account_id"] == MEMBER
    assert any("ATTACHMENTS of f3c95789-ace1-4954-ac5d-6baed2eac902" in r for r in bucket["reasons"])
    change = bucket["change"]
    assert (change["before"], change["after"]) == (['key_state="Disabled"'], ['key_state="Enabled"'])
    # A policy against its snapshot: CRITICAL, with before and after, no action proposed.
    policy = findings["Key policy changed: KMS key 1d5f6b2c-8e3a-4f9b-8c4d-6a7b8c9d0e12"]
    assert policy["severity"] == "CRITICAL" and policy["actions"] == []
    assert "the key policy now takes away connect-guard's own access to the key" in policy["reasons"]
    [before] = [r for r in policy["reasons"] if r.startswith("key policy before (approved snapshot")]
    [after] = [r for r in policy["reasons"] if r.startswith("key policy after (re-read now)")]
    assert "AccountRootAdministers" in before and "ExternalOps" in after and "ExternalOps" not in before
    # The keys the samples left disabled or pending deletion (the storage snapshot names them) too.
    assert findings[f"Key disabled: KMS key {RECORDINGS.rsplit('/', 1)[1]}"]["severity"] == "CRITICAL"
    assert "Key scheduled for deletion: KMS key 4a8c9e5f-1b6d-4c2e-9f70-9d0e1f2a3b45" in findings
    # As approved: not reported.
    assert not any(MEDIA_STREAMS.rsplit("/", 1)[1] in t for t in findings)
    assert len(findings) == 6
    # Nothing changed, nothing audited.
    assert key(aws, SUITE_KEY).key_state == "PendingDeletion"
    assert key(aws, RECORDINGS_BUCKET).key_state == "Disabled" and not key(aws, MEDIA).rotation
    assert aws.audit_records() == []


def test_enforce_makes_each_key_usable_again_journaled_and_audited_and_never_writes_a_policy(aws):
    tampered_policy = key(aws, TRANSCRIPTS).policy
    findings = drift(aws, "enforce")
    suite = key(aws, SUITE_KEY)
    assert (suite.key_state, suite.deletion_date, suite.rotation) == ("Enabled", None, True)
    assert key(aws, RECORDINGS_BUCKET).key_state == "Enabled"  # through the member rollback role
    assert key(aws, MEDIA).rotation
    assert key(aws, TRANSCRIPTS).policy == tampered_policy  # alerted, never written
    restored = findings[f"Key drift restored: KMS key {SUITE_KEY_ID}"]
    assert restored["severity"] == "CRITICAL" and {a["status"] for a in restored["actions"]} == {"taken"}
    assert findings["Key drift restored: KMS key 2e6a7c3d-9f4b-4a0c-9d5e-7b8c9d0e1f23"]["severity"] == "HIGH"
    assert audited(aws) >= {
        (SUITE_KEY, "CancelKeyDeletion"),
        (SUITE_KEY, "EnableKey"),
        (RECORDINGS_BUCKET, "EnableKey"),
        (MEDIA, "EnableKeyRotation"),
    }
    assert not {op for target, op in audited(aws) if target == TRANSCRIPTS}
    # Each audit record names the finding that reported it.
    records = [a for a in aws.audit_records() if a["target"]["S"] == RECORDINGS_BUCKET]
    assert {r["finding_id"]["S"] for r in records} == {restored_id(findings, RECORDINGS_BUCKET)}
    # The next run: only the policy, which the suite never writes, is reported again.
    written = len(aws.audit_records())
    assert list(drift(aws, "enforce")) == ["Key policy changed: KMS key 1d5f6b2c-8e3a-4f9b-8c4d-6a7b8c9d0e12"]
    assert len(aws.audit_records()) == written


def restored_id(findings: dict[str, dict[str, Any]], arn: str) -> str:
    [finding] = [f for f in findings.values() if f["target"]["arn"] == arn]
    return str(finding["finding_id"])


def test_nothing_is_reported_when_every_key_is_as_approved(aws):
    drift(aws, "enforce")
    put_back_approved_policy(aws)  # by hand, as the runbook says
    audits = len(aws.audit_records())
    for mode in ("detect", "enforce"):
        assert drift(aws, mode) == {}
    assert len(aws.audit_records()) == audits


def test_the_event_paths_restore_is_not_reported_again_by_the_drift_check(aws):
    pipeline = build_pipeline(logging_guard.build, aws.settings(response_mode="enforce"), aws.clients)
    assert pipeline.process(load_event("keys/schedule-key-deletion-suite-key.json"))["outcome"] == "restored"
    aws.inbox()
    findings = drift(aws, "enforce")
    assert not any(SUITE_KEY_ID in title for title in findings)


def test_a_key_the_suite_cannot_read_is_critical_not_assessed_and_left_alone(aws):
    # Its policy now denies everyone DescribeKey (the suite's roles with them); the other keys are still checked.
    deny = {"Sid": "Lockout", "Effect": "Deny", "Principal": "*", "Action": "kms:DescribeKey", "Resource": "*"}
    kms(aws, RECORDINGS_BUCKET).put_key_policy(
        KeyId=RECORDINGS_BUCKET, PolicyName="default", Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]})
    )
    findings = drift(aws, "enforce")
    blind = findings["Key not assessed: KMS key 6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"]
    assert blind["severity"] == "CRITICAL" and blind["actions"] == []
    assert any("could not be read (AccessDeniedException)" in r for r in blind["reasons"])
    assert not {op for target, op in audited(aws) if target == RECORDINGS_BUCKET}
    from moto.kms.models import kms_backends  # the key as it is (the suite's reads are what is denied)

    assert kms_backends[MEMBER]["us-east-1"].keys[RECORDINGS_BUCKET.rsplit("/", 1)[1]].key_state == "Disabled"
    assert key(aws, MEDIA).rotation  # restored all the same


def test_a_key_that_is_gone_and_a_snapshot_that_is_missing_are_critical_and_nothing_is_written(aws):
    snapshots = KeySnapshots(aws.clients.dynamodb, aws.baseline_table)
    gone = KEY.format(MEMBER, "9e9e9e9e-1111-4222-8333-444455556666")
    snapshots.put(KeyState(gone, "Enabled", True, None, taken_at="2026-11-20T06:00:00+00:00"))
    aws.clients.dynamodb.delete_item(
        TableName=aws.baseline_table, Key={"pk": {"S": f"key#{MEDIA}"}, "sk": {"S": "snapshot"}}
    )
    findings = drift(aws, "enforce")
    deleted = findings["Key gone: KMS key 9e9e9e9e-1111-4222-8333-444455556666"]
    assert deleted["severity"] == "CRITICAL" and deleted["actions"] == []
    assert any("no longer exists" in r for r in deleted["reasons"])
    missing = findings["Key snapshot missing: KMS key 2e6a7c3d-9f4b-4a0c-9d5e-7b8c9d0e1f23"]
    assert missing["severity"] == "CRITICAL" and missing["actions"] == []
    assert not key(aws, MEDIA).rotation  # its approved state is unknown: not restored
    assert (MEDIA, "EnableKeyRotation") not in audited(aws)


def test_a_run_that_died_after_restoring_a_key_is_reported_by_the_next_run_once(aws, monkeypatch):
    real = KeyGateway.call

    def write_then_die(self: KeyGateway, operation: str, parameters: dict[str, Any]) -> None:
        real(self, operation, parameters)
        if parameters["KeyId"] == RECORDINGS_BUCKET:
            raise TimeoutError("the function timed out")

    monkeypatch.setattr(KeyGateway, "call", write_then_die)
    with pytest.raises(DriftIncompleteError, match="TimeoutError: the function timed out"):
        drift(aws, "enforce")
    monkeypatch.setattr(KeyGateway, "call", real)
    assert key(aws, RECORDINGS_BUCKET).key_state == "Enabled"
    aws.inbox()
    earlier = drift(aws, "enforce")["Drift restored by an earlier check: KMS key 6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"]
    assert [(a["operation"], a["status"]) for a in earlier["actions"]] == [("EnableKey", "taken")]
    assert (RECORDINGS_BUCKET, "EnableKey") in audited(aws)
    assert not any("6f1c2a3b" in title for title in drift(aws, "enforce"))


def test_a_transient_error_on_one_key_fails_the_run_and_the_other_keys_are_still_checked(aws, monkeypatch):
    real = KeyGateway.state

    def throttled(self: KeyGateway, arn: str) -> KeyState | None:
        if arn == RECORDINGS_BUCKET:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "DescribeKey")
        return real(self, arn)

    monkeypatch.setattr(KeyGateway, "state", throttled)
    with pytest.raises(DriftIncompleteError, match="ThrottlingException"):
        drift(aws, "enforce")
    monkeypatch.setattr(KeyGateway, "state", real)
    assert key(aws, RECORDINGS_BUCKET).key_state == "Disabled"  # not judged: left as it is
    assert key(aws, SUITE_KEY).key_state == "Enabled"  # the security account's keys were checked


# ---- approve-key -----------------------------------------------------------------------------------
def approve(aws: Any, arn: str, *extra: str) -> tuple[int, str]:
    """approve-key as an operator: a member account's key read with their role there."""
    account = arn.split(":")[4]
    role = ["--assume-role-arn", f"arn:aws:iam::{account}:role/SecurityOperator"] if account != SECURITY else []
    argv = ["approve-key", "--key-arn", arn, "--stack", _stack(aws), "--approved-by", "soc@example.com", *role, *extra]
    out = io.StringIO()
    return cli.approve_key(cli._parser().parse_args(argv), out, session=aws.session), out.getvalue()


def test_approve_key_records_the_key_as_it_is_now_indexed_and_audited_and_the_drift_check_keeps_it(aws):
    # The recordings key (no snapshot), reviewed and approved with the operator's role in its account:
    kms(aws, RECORDINGS).enable_key(KeyId=RECORDINGS)
    code, out = approve(aws, RECORDINGS, "--reason", "CR-1234")
    assert code == 0 and f"approved {RECORDINGS}" in out
    [audit] = aws.audit_records()
    assert (audit["action"]["S"], audit["actor"]["S"], audit["target"]["S"]) == (
        "ApproveKeySnapshot",
        "soc@example.com",
        RECORDINGS,
    )
    assert RECORDINGS in KeySnapshots(aws.clients.dynamodb, aws.baseline_table).approved(MEMBER)
    # Disabled later with no event: the drift check now finds it, and enforce mode enables it.
    kms(aws, RECORDINGS).disable_key(KeyId=RECORDINGS)
    findings = drift(aws, "enforce")
    restored = findings["Key drift restored: KMS key 0c4e5a1b-7d2f-4e8a-9b3c-5f6a7d8e9f01"]
    assert any("approved snapshot" in r for r in restored["reasons"])
    assert key(aws, RECORDINGS).key_state == "Enabled"


def test_approving_the_policy_in_force_ends_its_alert(aws):
    assert approve(aws, TRANSCRIPTS)[0] == 0  # reviewed: the new policy is the approved one now
    assert not any("1d5f6b2c" in title for title in drift(aws))


@pytest.mark.parametrize(
    ("arn", "says"),
    [
        (RECORDINGS_BUCKET, "is Disabled, not Enabled: not approved"),  # a snapshot that keeps it unusable
        (SUITE_KEY, "is PendingDeletion"),
        (KEY.format("444455556666", "0c4e5a1b-7d2f-4e8a-9b3c-5f6a7d8e9f01"), "not enrolled"),
        (KEY.format(MEMBER, "9e9e9e9e-1111-4222-8333-444455556666"), "does not exist"),
        (f"arn:aws:kms:us-east-1:{MEMBER}:alias/acme-recordings", "not a key ARN"),
    ],
)
def test_approve_key_refuses_what_it_must_not_approve(aws, arn, says):
    code, out = approve(aws, arn)
    assert code == 2 and says in out
    assert aws.audit_records() == []
    account = arn.split(":")[4]
    assert arn not in KeySnapshots(aws.clients.dynamodb, aws.baseline_table).approved(account)
