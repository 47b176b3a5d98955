"""Digest manifests of the evidence archive: one per archived day, signed and chained.

A day is sealed once it is over and every known log source's checkpoint is past its end (the
export's low watermark): nothing more is written under that day's prefixes. Its manifest,
`manifests/<yyyy>/<mm>/<dd>.json`, lists every current object version under them
(`findings/<day>/`, `audit/<day>/`, `logs/<account>/<region>/<group>/<day>/` for each source)
with its version ID, size and SHA-256, names the previous day's manifest by key and SHA-256
(a chain, as CloudTrail's digest files), and carries a KMS signature (ECDSA_SHA_256,
MessageType DIGEST) over the SHA-256 of its canonical JSON without the signature. Every day
from the first one with objects gets a manifest, empty days too, so a missing day is a break
in the chain. `connect-guard verify-archive` checks all of it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

FORMAT = "connect-guard/archive-manifest/1"
SIGNING_ALGORITHM = "ECDSA_SHA_256"
MANIFESTS = "manifests/"
DAY_MS = 86_400_000
MAX_DAYS_PER_RUN = 7  # catch-up after downtime continues on the next runs
_YEAR, _TWO = re.compile(r"^\d{4}$"), re.compile(r"^\d{2}$")
_STATE_KEY = {"pk": {"S": "export#manifests"}, "sk": {"S": "state"}}


def manifest_key(day: date) -> str:
    return f"{MANIFESTS}{day:%Y/%m/%d}.json"


def day_of_ms(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def day_end_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000) + DAY_MS


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes a manifest is stored as and (without "signature") signed over."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signing_digest(manifest: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical({k: v for k, v in manifest.items() if k != "signature"})).digest()


# ---- the bucket's layout ----------------------------------------------------------------------
class ArchiveLayout:
    """The archive's prefixes, read with ListObjectVersions only (one grant for every listing)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def _pages(self, prefix: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        while True:
            page = self.s3.list_object_versions(**kwargs)
            yield page
            if not page.get("IsTruncated"):
                return
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            if page.get("NextVersionIdMarker"):
                kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]

    def children(self, prefix: str) -> list[str]:
        """The next path segments under `prefix` (without the trailing "/")."""
        found = [c["Prefix"] for page in self._pages(prefix, "/") for c in page.get("CommonPrefixes", [])]
        return sorted({p[len(prefix) :].rstrip("/") for p in found})

    def log_roots(self) -> list[str]:
        """`logs/<account>/<region>/<group>/` of every log source: a group's segments end where
        a year (`yyyy/`) begins. A group may hold a sub-group (`/a` and `/a/b`): both are found."""
        roots: list[str] = []
        pending = [
            f"logs/{account}/{region}/"
            for account in self.children("logs/")
            for region in self.children(f"logs/{account}/")
        ]
        while pending:
            prefix = pending.pop()
            for child in self.children(prefix):
                if _YEAR.match(child) and prefix.count("/") > 3:
                    if prefix not in roots:
                        roots.append(prefix)
                else:
                    pending.append(f"{prefix}{child}/")
        return sorted(roots)

    def day_prefixes(self, day: date, roots: list[str]) -> list[str]:
        return [f"findings/{day:%Y/%m/%d}/", f"audit/{day:%Y/%m/%d}/", *(f"{r}{day:%Y/%m/%d}/" for r in roots)]

    def days(self, root: str) -> list[date]:
        """Every `<yyyy>/<mm>/<dd>/` under a root (findings/, audit/ or a log source's)."""
        found = []
        for year in filter(_YEAR.match, self.children(root)):
            for month in filter(_TWO.match, self.children(f"{root}{year}/")):
                for dd in filter(_TWO.match, self.children(f"{root}{year}/{month}/")):
                    try:
                        found.append(date(int(year), int(month), int(dd)))
                    except ValueError:
                        continue  # not a date: not the layout's
        return found

    def versions(self, prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(object versions, delete markers) under `prefix`, every key."""
        versions: list[dict[str, Any]] = []
        markers: list[dict[str, Any]] = []
        for page in self._pages(prefix):
            versions += page.get("Versions", [])
            markers += page.get("DeleteMarkers", [])
        return versions, markers

    def manifest_days(self) -> list[date]:
        days = []
        for year in filter(_YEAR.match, self.children(MANIFESTS)):
            for month in filter(_TWO.match, self.children(f"{MANIFESTS}{year}/")):
                versions, _ = self.versions(f"{MANIFESTS}{year}/{month}/")
                for v in versions:
                    match = re.fullmatch(r"manifests/(\d{4})/(\d{2})/(\d{2})\.json", v["Key"])
                    if match and v.get("IsLatest"):
                        days.append(date(*map(int, match.groups())))
        return sorted(set(days))

    def latest(self, key: str) -> dict[str, Any] | None:
        """The current version of one key (None: absent or behind a delete marker)."""
        versions, markers = self.versions(key)
        current = [v for v in versions + markers if v["Key"] == key and v.get("IsLatest")]
        return current[0] if current and current[0] in versions else None

    def read(self, key: str, version_id: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"].read())


def sha256_of(s3: Any, bucket: str, key: str, version_id: str) -> tuple[str, str]:
    """(hex SHA-256, how it was obtained): S3's full-object SHA-256 checksum when the object has
    one (HeadObject), else computed by streaming the version (GetObject)."""
    head = s3.head_object(Bucket=bucket, Key=key, VersionId=version_id, ChecksumMode="ENABLED")
    checksum = head.get("ChecksumSHA256")
    if checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
        return base64.b64decode(checksum).hex(), "s3-checksum"
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"]
    for chunk in body.iter_chunks(1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest(), "computed"


# ---- sealing ----------------------------------------------------------------------------------
@dataclass
class SealState:
    last_day: str  # ISO date of the last sealed day
    last_key: str
    last_sha256: str


class ManifestStore:
    """The last sealed day (`pk = export#manifests`) in the checkpoint table, beside the checkpoints."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def get(self) -> SealState | None:
        item = self._db.get_item(TableName=self._table, Key=_STATE_KEY, ConsistentRead=True).get("Item")
        return SealState(**json.loads(item["state"]["S"])) if item else None

    def put(self, state: SealState) -> None:
        self._db.put_item(TableName=self._table, Item={**_STATE_KEY, "state": {"S": json.dumps(state.__dict__)}})


@dataclass
class SealReport:
    sealed: list[str] = field(default_factory=list)  # manifest keys written this run
    waiting: str | None = None  # why the next day is not sealed yet


def last_sealable(now_ms: int, low_watermark_ms: int | None) -> date:
    """The last day that is over and that every log source is past (pure)."""
    bound = now_ms if low_watermark_ms is None else min(now_ms, low_watermark_ms)
    return day_of_ms(bound) - timedelta(days=1)


def build_manifest(
    layout: ArchiveLayout, day: date, roots: list[str], previous: SealState | None, sealed_at: datetime, key_id: str
) -> dict[str, Any]:
    """The unsigned manifest of one day: every current object version under its prefixes."""
    prefixes = layout.day_prefixes(day, roots)
    objects = []
    for prefix in prefixes:
        versions, _ = layout.versions(prefix)
        for version in sorted((v for v in versions if v.get("IsLatest")), key=lambda v: v["Key"]):
            digest, _how = sha256_of(layout.s3, layout.bucket, version["Key"], version["VersionId"])
            objects.append(
                {"key": version["Key"], "version_id": version["VersionId"], "size": version["Size"], "sha256": digest}
            )
    return {
        "format": FORMAT,
        "bucket": layout.bucket,
        "day": day.isoformat(),
        "prefixes": prefixes,
        "objects": objects,
        "previous": {"key": previous.last_key, "sha256": previous.last_sha256} if previous else None,
        "sealed_at": sealed_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "signing": {"key_id": key_id, "algorithm": SIGNING_ALGORITHM},
    }


def _start(layout: ArchiveLayout, store: ManifestStore, roots: list[str]) -> tuple[date | None, SealState | None]:
    """The first day to seal and the manifest it chains to: from the state item, else the last
    manifest in the bucket, else the earliest day with objects (a first seal)."""
    state = store.get()
    if state:
        return date.fromisoformat(state.last_day) + timedelta(days=1), state
    sealed = layout.manifest_days()
    if sealed:
        key = manifest_key(sealed[-1])
        current = layout.latest(key)
        if current:
            body = layout.read(key, current["VersionId"])
            return sealed[-1] + timedelta(days=1), SealState(
                sealed[-1].isoformat(), key, hashlib.sha256(body).hexdigest()
            )
    days = [d for root in ("findings/", "audit/", *roots) for d in layout.days(root)]
    return (min(days) if days else None), None


def seal_days(
    s3: Any,
    kms: Any,
    bucket: str,
    signing_key_id: str,
    store: ManifestStore,
    low_watermark_ms: int | None,
    now: float,
    *,
    max_days: int = MAX_DAYS_PER_RUN,
) -> SealReport:
    """Seal every unsealed day up to the last sealable one, in order, at most `max_days` a run.
    The state moves only after a day's manifest is written: a failure re-seals that day next run."""
    report = SealReport()
    now_ms = int(now * 1000)
    layout = ArchiveLayout(s3, bucket)
    roots = layout.log_roots()
    day, previous = _start(layout, store, roots)
    last = last_sealable(now_ms, low_watermark_ms)
    if day is None:
        return report  # nothing archived yet
    sealed_at = datetime.fromtimestamp(now, UTC)
    while day <= last and len(report.sealed) < max_days:
        manifest = build_manifest(layout, day, roots, previous, sealed_at, signing_key_id)
        signed = kms.sign(
            KeyId=signing_key_id,
            Message=signing_digest(manifest),
            MessageType="DIGEST",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        manifest["signature"] = base64.b64encode(signed["Signature"]).decode()
        body = canonical(manifest)
        key = manifest_key(day)
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", ChecksumAlgorithm="SHA256")
        previous = SealState(day.isoformat(), key, hashlib.sha256(body).hexdigest())
        store.put(previous)
        report.sealed.append(key)
        day += timedelta(days=1)
    if day <= last:
        report.waiting = f"{(last - day).days + 1} more day(s) to seal: next run"
    elif low_watermark_ms is not None and day_end_ms(day) <= now_ms:
        report.waiting = f"{day.isoformat()} waits for a log source still exporting it"
    return report
