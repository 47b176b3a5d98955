"""Archive manifests (connect_guard.manifests) and `connect-guard verify-archive`, in the embedded
AWS: days sealed once complete, signed with an ECC_NIST_P256 key and chained; every kind of
tampering reported with its key and exit code 1; a clean archive exit 0.

moto signs MessageType=DIGEST messages as if they were RAW (it hashes them again): sign and
verify agree with each other there, as they do in AWS, so kms:Verify is what the verifier uses."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard.archive import archive_cycle
from connect_guard.manifests import ManifestStore, canonical, manifest_key, seal_days, signing_digest
from connect_guard_tools.cli import _parser, main
from connect_guard_tools.verify_archive import Verifier, verify_command

STACK = "connect-guard-verify"
DAYS = (date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22))  # the 21st holds nothing
LOG_ROOT = "logs/111122223333/eu-west-2/aws/connect/acme-contact-centre/"
OWN_ROOT = "logs/123456789012/us-east-1/connect-guard/dev/policy-alerts/"


def at(day: date, hour: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp()


@pytest.fixture
def archive(aws) -> dict[str, Any]:
    s3, kms = aws.session.client("s3"), aws.session.client("kms")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="archive signing")
    bucket = aws.archive_bucket
    s3.list_buckets()  # the embedded archive bucket exists from the first S3 call
    # Versioned as deployed (the demo state suspends it, for the logging guard to restore).
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    objects = {
        f"{LOG_ROOT}2026/11/20/0000-0100.log.gz": b"2026-11-20T00:00:01.000Z pulled line\n",
        f"{OWN_ROOT}2026/11/20/a1b2c3/demo/000000.gz": b"exported by a task, no checksum",
        "findings/2026/11/20/101500-0a1b2c3d.jsonl": b'{"finding_id":"cg-1"}\n',
        "audit/2026/11/22/235959-0a1b2c3e.jsonl": b'{"action":"AttachUserPolicy"}\n',
        f"{LOG_ROOT}2026/11/22/2300-0000.log.gz": b"2026-11-22T23:59:59.000Z last line\n",
    }
    for name, body in objects.items():
        extra = {"ChecksumAlgorithm": "SHA256"} if name.endswith(".log.gz") else {}
        s3.put_object(Bucket=bucket, Key=name, Body=body, **extra)
    aws.session.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(
            {
                "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {
                    "ArchiveBucketName": {"Value": bucket},
                    "ArchiveSigningKeyArn": {"Value": key["KeyMetadata"]["Arn"]},
                },
            }
        ),
    )
    return {
        "s3": s3,
        "kms": kms,
        "bucket": bucket,
        "key": key["KeyMetadata"]["Arn"],
        "store": ManifestStore(aws.clients.dynamodb, aws.baseline_table),
        "objects": objects,
    }


def seal(archive: dict[str, Any], now: float, low_watermark_ms: int | None = None, **kwargs: Any) -> Any:
    return seal_days(
        archive["s3"],
        archive["kms"],
        archive["bucket"],
        archive["key"],
        archive["store"],
        low_watermark_ms,
        now,
        **kwargs,
    )


def verify(aws, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = _parser().parse_args(["verify-archive", "--stack", STACK, *argv])
    code = verify_command(args, out, session=aws.session, err=err)
    return code, out.getvalue(), err.getvalue()


def manifest(archive: dict[str, Any], day: date) -> dict[str, Any]:
    body = archive["s3"].get_object(Bucket=archive["bucket"], Key=manifest_key(day))["Body"].read()
    return dict(json.loads(body))


def test_complete_days_are_sealed_in_order_signed_and_chained(aws, archive):
    report = seal(archive, at(date(2026, 11, 23), 6))
    assert report.sealed == [manifest_key(d) for d in DAYS]
    first, empty, last = (manifest(archive, d) for d in DAYS)
    assert first["previous"] is None and first["day"] == "2026-11-20"
    assert {o["key"] for o in first["objects"]} == {k for k in archive["objects"] if "/2026/11/20/" in k}
    assert empty["objects"] == []  # an empty day is sealed too: a missing day breaks the chain
    assert f"{LOG_ROOT}2026/11/21/" in empty["prefixes"] and f"{OWN_ROOT}2026/11/21/" in empty["prefixes"]
    head = archive["s3"].head_object(Bucket=archive["bucket"], Key=manifest_key(DAYS[0]), ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]  # written with a SHA-256 checksum
    raw = archive["s3"].get_object(Bucket=archive["bucket"], Key=manifest_key(DAYS[1]))["Body"].read()
    assert last["previous"]["key"] == manifest_key(DAYS[1])
    import hashlib

    assert last["previous"]["sha256"] == hashlib.sha256(raw).hexdigest()
    for entry in first["objects"]:
        assert entry["sha256"] == hashlib.sha256(archive["objects"][entry["key"]]).hexdigest()
        assert entry["size"] == len(archive["objects"][entry["key"]]) and entry["version_id"]
    # The signature is over the SHA-256 of the canonical JSON without it.
    answer = archive["kms"].verify(
        KeyId=archive["key"],
        Message=signing_digest(last),
        MessageType="DIGEST",
        Signature=__import__("base64").b64decode(last["signature"]),
        SigningAlgorithm="ECDSA_SHA_256",
    )
    assert answer["SignatureValid"] is True
    assert (
        canonical(last) == archive["s3"].get_object(Bucket=archive["bucket"], Key=manifest_key(DAYS[2]))["Body"].read()
    )


def test_a_clean_archive_verifies(aws, archive):
    seal(archive, at(date(2026, 11, 23), 6))
    code, out, err = verify(aws)
    assert (code, err) == (0, "")
    assert out.strip().endswith("3 sealed day(s) (2026-11-20 .. 2026-11-22), 5 object(s): clean")
    code, out, _ = verify(aws, "--json", "--from", "2026-11-21")
    body = json.loads(out)
    assert (code, body["kind"], body["clean"], body["days"]) == (
        0,
        "verify-archive",
        True,
        [d.isoformat() for d in DAYS[1:]],
    )
    assert main(["verify-archive", "--stack", STACK, "--from", "2026-11-23", "--to", "2026-11-20"]) == 2


def _overwrite(aws, archive):
    name = "findings/2026/11/20/101500-0a1b2c3d.jsonl"
    archive["s3"].put_object(Bucket=archive["bucket"], Key=name, Body=b'{"finding_id":"forged"}\n')
    return name


def _delete(aws, archive):
    name = f"{LOG_ROOT}2026/11/20/0000-0100.log.gz"
    archive["s3"].delete_object(Bucket=archive["bucket"], Key=name)
    return name


def _purge(aws, archive):
    name = f"{OWN_ROOT}2026/11/20/a1b2c3/demo/000000.gz"
    (version,) = archive["s3"].list_object_versions(Bucket=archive["bucket"], Prefix=name)["Versions"]
    archive["s3"].delete_object(Bucket=archive["bucket"], Key=name, VersionId=version["VersionId"])
    return name


def _inject(aws, archive):
    name = "audit/2026/11/21/120000-deadbeef.jsonl"
    archive["s3"].put_object(Bucket=archive["bucket"], Key=name, Body=b'{"action":"nothing happened"}\n')
    return name


def _inject_source(aws, archive):
    name = "logs/444455556666/eu-west-1/aws/connect/other/2026/11/22/0000-0100.log.gz"
    archive["s3"].put_object(Bucket=archive["bucket"], Key=name, Body=b"2026-11-22T00:00:00.000Z planted\n")
    return name


def _edit_manifest(aws, archive):
    body = manifest(archive, DAYS[0])
    body["objects"] = body["objects"][1:]  # hide an object, keep the old signature
    archive["s3"].put_object(Bucket=archive["bucket"], Key=manifest_key(DAYS[0]), Body=canonical(body))
    return manifest_key(DAYS[0])


def _delete_manifest(aws, archive):
    archive["s3"].delete_object(Bucket=archive["bucket"], Key=manifest_key(DAYS[1]))
    return manifest_key(DAYS[1])


def _resign_manifest(aws, archive):
    """The last day's manifest rewritten and signed with another key (no successor to chain to it)."""
    import base64

    other = archive["kms"].create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    body = manifest(archive, DAYS[2])
    body["objects"] = [o for o in body["objects"] if not o["key"].startswith("audit/")]
    body.pop("signature")
    signed = archive["kms"].sign(
        KeyId=other, Message=signing_digest(body), MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )
    body["signature"] = base64.b64encode(signed["Signature"]).decode()
    archive["s3"].put_object(Bucket=archive["bucket"], Key=manifest_key(DAYS[2]), Body=canonical(body))
    return manifest_key(DAYS[2])


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_overwrite, {"OVERWRITTEN"}),
        (_delete, {"DELETED"}),
        (_purge, {"MISSING"}),
        (_inject, {"INJECTED"}),
        (_inject_source, {"INJECTED"}),
        # The object it hides shows as injected, and the next day's link to it no longer holds.
        (_edit_manifest, {"SIGNATURE", "CHAIN", "INJECTED"}),
        (_delete_manifest, {"MANIFEST", "GAP", "CHAIN"}),
        (_resign_manifest, {"SIGNATURE", "INJECTED"}),
    ],
)
def test_tampering_is_reported_with_its_key(aws, archive, tamper, expected):
    seal(archive, at(date(2026, 11, 23), 6))
    name = tamper(aws, archive)
    code, out, err = verify(aws)
    problems = [line for line in out.splitlines() if not line.startswith(("note", "s3://"))]
    assert (code, err) == (1, "")
    assert {line.split()[0] for line in problems} == expected, out
    assert any(name in line for line in problems), out
    assert "problem(s)" in out.splitlines()[-1]


def test_an_altered_version_in_place_is_caught_by_its_digest(aws, archive):
    # S3 never changes a version in place; a manifest entry that disagrees is what it would look like.
    seal(archive, at(date(2026, 11, 23), 6))
    body = manifest(archive, DAYS[0])
    entry = next(o for o in body["objects"] if o["key"].startswith("findings/"))
    verifier = Verifier(archive["s3"], archive["kms"], archive["bucket"], archive["key"])
    from connect_guard_tools.verify_archive import Verification

    report = Verification(archive["bucket"])
    version = {"Size": entry["size"], "VersionId": entry["version_id"], "StorageClass": "STANDARD"}
    verifier._content(entry["key"], version, {**entry, "sha256": "0" * 64}, report)
    assert [(p.kind, p.key) for p in report.problems] == [("altered", entry["key"])]


def test_sealing_waits_for_a_lagging_source_and_resumes(aws, archive):
    now = at(date(2026, 11, 23), 6)
    lagging = int(at(date(2026, 11, 21), 13) * 1000)  # one source exported only to the 21st, 13:00
    report = seal(archive, now, lagging)
    assert report.sealed == [manifest_key(DAYS[0])]
    assert report.waiting == "2026-11-21 waits for a log source still exporting it"
    again = seal(archive, now, lagging)
    assert again.sealed == []  # nothing new while it lags
    caught_up = seal(archive, now, int(at(date(2026, 11, 23), 1) * 1000))
    assert caught_up.sealed == [manifest_key(DAYS[1]), manifest_key(DAYS[2])]
    assert manifest(archive, DAYS[1])["previous"]["key"] == manifest_key(DAYS[0])
    assert verify(aws)[0] == 0


def test_sealing_is_idempotent_and_never_seals_today(aws, archive):
    now = at(date(2026, 11, 23), 6)
    seal(archive, now)
    assert seal(archive, now).sealed == []
    assert seal(archive, at(date(2026, 11, 23), 23)).sealed == []  # the 23rd is not over
    versions = archive["s3"].list_object_versions(Bucket=archive["bucket"], Prefix="manifests/")["Versions"]
    assert len(versions) == 3  # one version per sealed day


def test_catch_up_is_bounded_per_run_and_continues(aws, archive):
    now = at(date(2026, 12, 2), 6)  # ten days after the first object
    first = seal(archive, now, max_days=4)
    assert len(first.sealed) == 4 and first.waiting == "8 more day(s) to seal: next run"
    rest = seal(archive, now, max_days=10)
    assert rest.sealed[0] == manifest_key(date(2026, 11, 24)) and rest.sealed[-1] == manifest_key(date(2026, 12, 1))
    assert verify(aws)[0] == 0


def test_a_lost_state_item_resumes_from_the_last_manifest(aws, archive):
    now = at(date(2026, 11, 23), 6)
    seal(archive, at(date(2026, 11, 22), 6))  # seals the 20th and 21st
    aws.clients.dynamodb.delete_item(
        TableName=aws.baseline_table, Key={"pk": {"S": "export#manifests"}, "sk": {"S": "state"}}
    )
    assert seal(archive, now).sealed == [manifest_key(DAYS[2])]
    assert verify(aws)[0] == 0


class DisabledKey:
    """KMS as it answers for a disabled key (moto signs with one all the same)."""

    def sign(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "DisabledException", "Message": "key is disabled"}}, "Sign")


def test_the_archive_cycle_seals_at_its_end_and_alerts_a_failed_seal(aws, archive, monkeypatch):
    settings = aws.settings(archive_signing_key_arn=archive["key"], export_log_groups=())
    report = archive_cycle(settings, aws.clients, clock=lambda: at(date(2026, 11, 23), 6))
    assert report.low_watermark_ms is None  # no log source in this cycle
    assert report.manifests == [manifest_key(d) for d in DAYS] and aws.inbox() == []
    client = aws.clients.client
    monkeypatch.setattr(
        aws.clients, "client", lambda service, *a, **k: DisabledKey() if service == "kms" else client(service, *a, **k)
    )
    sqs = aws.session.client("sqs")
    sqs.send_message(QueueUrl=aws.findings_archive_url, MessageBody=json.dumps({"finding_id": "cg-late"}))
    report = archive_cycle(settings, aws.clients, clock=lambda: at(date(2026, 11, 24), 6))
    assert report.manifests == [] and len(report.archived_objects) == 1  # the rest of the cycle was done
    (alert,) = aws.inbox()
    reasons = json.loads(alert["Message"])["reasons"]
    assert any(r.startswith("manifests: sealing failed") for r in reasons), reasons


def test_a_stack_without_the_signing_key_output_is_a_usage_error(aws, archive):
    aws.session.client("cloudformation").create_stack(
        StackName="connect-guard-old",
        TemplateBody=json.dumps({"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}}}),
    )
    out, err = io.StringIO(), io.StringIO()
    args = _parser().parse_args(["verify-archive", "--stack", "connect-guard-old"])
    assert verify_command(args, out, session=aws.session, err=err) == 2
    assert err.getvalue().startswith("connect-guard verify-archive: stack connect-guard-old has no output")
    assert err.getvalue().count("\n") == 1 and out.getvalue() == ""
