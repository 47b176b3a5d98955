"""`connect-guard verify-archive`: check the evidence archive against its signed daily manifests
(connect_guard.manifests), with the caller's own credentials, reading only.

Per sealed day: the manifest's KMS signature (kms:Verify with the stack's ArchiveSigningKey, not
the key the manifest names), its link to the previous day's manifest (key and SHA-256), and every
object it lists (the same version still current, same size and SHA-256). Objects under the day's
prefixes it does not list are injected; a day without a manifest inside the sealed range is a gap.
Objects in S3 Glacier Flexible Retrieval or Deep Archive are not read (a restore would be needed):
their S3 SHA-256 checksum is compared when they have one, else only their size (said in a note).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.manifests import (
    SIGNING_ALGORITHM,
    ArchiveLayout,
    manifest_key,
    sha256_of,
    signing_digest,
)
from connect_guard_tools.errors import UsageError, describe

ARCHIVED = {"GLACIER", "DEEP_ARCHIVE"}  # not readable without a restore


@dataclass(frozen=True)
class Problem:
    kind: str  # missing | deleted | overwritten | altered | injected | chain | signature | manifest | gap
    key: str
    detail: str

    def line(self) -> str:
        return f"{self.kind.upper():<11} {self.key}: {self.detail}"


@dataclass
class Verification:
    bucket: str
    days: list[str] = field(default_factory=list)  # the sealed days checked
    objects: int = 0  # listed objects checked
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def _signature_valid(kms: Any, key_id: str, manifest: dict[str, Any]) -> bool:
    try:
        signature = base64.b64decode(str(manifest.get("signature", "")), validate=True)
    except ValueError:
        return False
    if not signature:
        return False
    try:
        answer = kms.verify(
            KeyId=key_id,
            Message=signing_digest(manifest),
            MessageType="DIGEST",
            Signature=signature,
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "KMSInvalidSignatureException":  # AWS's answer to a bad one
            return False
        raise
    return bool(answer.get("SignatureValid"))


class Verifier:
    def __init__(self, s3: Any, kms: Any, bucket: str, key_id: str) -> None:
        self.s3, self.kms, self.bucket, self.key_id = s3, kms, bucket, key_id
        self.layout = ArchiveLayout(s3, bucket)
        self._bodies: dict[str, bytes | None] = {}

    def _manifest_bytes(self, key: str) -> bytes | None:
        if key not in self._bodies:
            current = self.layout.latest(key)
            self._bodies[key] = self.layout.read(key, current["VersionId"]) if current else None
        return self._bodies[key]

    def run(self, first: date | None, last: date | None) -> Verification:
        report = Verification(self.bucket)
        sealed = self.layout.manifest_days()
        _, markers = self.layout.versions("manifests/")
        for marker in markers:
            if marker.get("IsLatest"):
                report.problems.append(Problem("manifest", marker["Key"], "deleted (a delete marker hides it)"))
        if not sealed:
            report.notes.append("no manifest in the archive yet: nothing is sealed")
            return report
        first, last = first or sealed[0], last or sealed[-1]
        roots = self.layout.log_roots()
        day = first
        while day <= last:
            self._day(day, sealed, roots, report)
            day += timedelta(days=1)
        unsealed = [d for root in ("findings/", "audit/", *roots) for d in self.layout.days(root) if d > sealed[-1]]
        if unsealed:
            report.notes.append(f"{len(set(unsealed))} day(s) after {sealed[-1]} hold objects not sealed yet")
        return report

    def _day(self, day: date, sealed: list[date], roots: list[str], report: Verification) -> None:
        key = manifest_key(day)
        body = self._manifest_bytes(key) if day in sealed else None
        if body is None:
            if sealed[0] <= day <= sealed[-1]:
                count = sum(self._current_count(p) for p in self.layout.day_prefixes(day, roots))
                report.problems.append(Problem("gap", key, f"no manifest for {day} ({count} object(s) unverified)"))
            return
        report.days.append(day.isoformat())
        try:
            manifest = json.loads(body)
            assert isinstance(manifest, dict) and isinstance(manifest.get("objects"), list)
        except (ValueError, AssertionError):
            report.problems.append(Problem("manifest", key, "not a manifest (unreadable JSON)"))
            return
        if not _signature_valid(self.kms, self.key_id, manifest):
            why = f"not signed by {self.key_id}: its content is not trusted"
            report.problems.append(Problem("signature", key, why))
        if manifest.get("day") != day.isoformat():
            report.problems.append(Problem("manifest", key, f"names day {manifest.get('day')}, not {day}"))
        self._chain(day, key, manifest, sealed, report)
        self._objects(day, key, manifest, roots, report)

    def _chain(self, day: date, key: str, manifest: dict[str, Any], sealed: list[date], report: Verification) -> None:
        previous = manifest.get("previous")
        if not previous:
            if day != sealed[0]:
                report.problems.append(Problem("chain", key, "names no previous manifest but is not the first"))
            return
        expected = manifest_key(day - timedelta(days=1))
        if previous.get("key") != expected:
            report.problems.append(Problem("chain", key, f"names {previous.get('key')} as previous, not {expected}"))
            return
        body = self._manifest_bytes(expected)
        if body is None:
            report.problems.append(Problem("chain", expected, f"missing: {key} chains to it"))
        elif hashlib.sha256(body).hexdigest() != previous.get("sha256"):
            report.problems.append(Problem("chain", expected, f"differs from the SHA-256 {key} recorded for it"))

    def _current_count(self, prefix: str) -> int:
        versions, _ = self.layout.versions(prefix)
        return sum(1 for v in versions if v.get("IsLatest"))

    def _objects(self, day: date, key: str, manifest: dict[str, Any], roots: list[str], report: Verification) -> None:
        prefixes = sorted(set(manifest.get("prefixes") or []) | set(self.layout.day_prefixes(day, roots)))
        versions: dict[tuple[str, str], dict[str, Any]] = {}
        current: dict[str, dict[str, Any]] = {}  # key → its latest version or delete marker
        for prefix in prefixes:
            found, markers = self.layout.versions(prefix)
            for v in found:
                versions[(v["Key"], v["VersionId"])] = v
            for v in found + markers:
                if v.get("IsLatest"):
                    current[v["Key"]] = v
        listed = set()
        for entry in manifest["objects"]:
            name, version_id = str(entry.get("key")), str(entry.get("version_id"))
            listed.add(name)
            report.objects += 1
            latest, version = current.get(name), versions.get((name, version_id))
            if version is None:
                report.problems.append(Problem("missing", name, f"version {version_id} listed in {key} is gone"))
                continue
            if latest is None or "Size" not in latest:
                report.problems.append(Problem("deleted", name, f"listed in {key}; a delete marker hides it"))
            elif latest["VersionId"] != version_id:
                report.problems.append(
                    Problem("overwritten", name, f"version {latest['VersionId']} replaced {version_id}")
                )
            self._content(name, version, entry, report)
        for name, latest in sorted(current.items()):
            if name not in listed and "Size" in latest:
                report.problems.append(Problem("injected", name, f"under {day}'s prefixes but not in {key}"))

    def _content(self, name: str, version: dict[str, Any], entry: dict[str, Any], report: Verification) -> None:
        if version["Size"] != entry.get("size"):
            why = f"size {version['Size']}, the manifest says {entry.get('size')}"
            report.problems.append(Problem("altered", name, why))
            return
        if version.get("StorageClass") in ARCHIVED:
            version_id = version["VersionId"]
            head = self.s3.head_object(Bucket=self.bucket, Key=name, VersionId=version_id, ChecksumMode="ENABLED")
            checksum = head.get("ChecksumSHA256")
            if not checksum or "-" in checksum:
                report.notes.append(f"{name}: in {version['StorageClass']} without an S3 SHA-256: size checked only")
                return
            digest = base64.b64decode(checksum).hex()
        else:
            digest, _ = sha256_of(self.s3, self.bucket, name, version["VersionId"])
        if digest != entry.get("sha256"):
            report.problems.append(Problem("altered", name, "SHA-256 differs from the manifest's"))


def write_verification(report: Verification, out: TextIO, as_json: bool = False) -> None:
    if as_json:
        body = {**asdict(report), "clean": report.clean}
        out.write(json.dumps({"kind": "verify-archive", **body}) + "\n")
        return
    for problem in report.problems:
        out.write(problem.line() + "\n")
    for note in report.notes:
        out.write(f"note        {note}\n")
    span = f"{report.days[0]} .. {report.days[-1]}" if report.days else "no sealed day"
    verdict = "clean" if report.clean else f"{len(report.problems)} problem(s)"
    checked = f"{len(report.days)} sealed day(s) ({span}), {report.objects} object(s)"
    out.write(f"s3://{report.bucket}: {checked}: {verdict}\n")


def _stack_outputs(session: Any, stack: str) -> tuple[str, str]:
    described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    absent = [k for k in ("ArchiveBucketName", "ArchiveSigningKeyArn") if not outputs.get(k)]
    if absent:
        raise UsageError(
            f"stack {stack} has no output {', '.join(absent)}",
            "update the stack to a version with archive manifests (ArchiveSigningKey)",
        )
    return outputs["ArchiveBucketName"], outputs["ArchiveSigningKeyArn"]


def verify_command(args: Any, out: TextIO, session: Any = None, err: TextIO | None = None) -> int:
    """0: every check passed; 1: a problem found (each listed with its key); 2: usage or AWS error."""
    import sys

    import boto3

    err = err or sys.stderr
    try:
        if args.first and args.last and args.first > args.last:
            raise UsageError(f"--from {args.first} is after --to {args.last}", "give --from on or before --to")
        session = session or boto3.session.Session(region_name=args.region)
        bucket, key_id = _stack_outputs(session, args.stack)
        report = Verifier(session.client("s3"), session.client("kms"), bucket, key_id).run(args.first, args.last)
    except (UsageError, ClientError, BotoCoreError) as error:
        region = getattr(args, "region", None) or getattr(session, "region_name", None)
        err.write(f"connect-guard verify-archive: {describe(error, region)}\n")
        return 2
    write_verification(report, out, as_json=args.json)
    return 0 if report.clean else 1
