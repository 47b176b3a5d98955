"""Amazon Connect instance storage configs: where recordings, transcripts, reports and contact
streams go (S3 bucket, prefix, KMS key; Kinesis stream, Firehose, video stream), their approved
snapshot, and the drift between the two.

A storage config redirected to another bucket or stream, its KMS key swapped or removed, or the
association dropped sends the contact centre's evidence (and its customers' voices) somewhere the
suite does not control, or nowhere. logging_guard's StorageGuard re-reads the configs, compares
them with the snapshot (`drift`, pure) and puts the snapshot back (`restore_calls`).

Snapshots: one item per instance in the baseline table (`storage#<instance ARN>`, `snapshot`),
holding every resource type the operator approved; a type missing from it is approved as "no
association", so an association an attacker adds is drift too. `connect-guard approve-storage`
writes it; the function only reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

# Connect's InstanceStorageResourceType values the suite knows (botocore's model, 2026). An event
# naming another one is alerted, never restored: the suite does not know what it stores.
RESOURCE_TYPES = (
    "CALL_RECORDINGS",
    "CHAT_TRANSCRIPTS",
    "SCREEN_RECORDINGS",
    "EMAIL_MESSAGES",
    "SCHEDULED_REPORTS",
    "MEDIA_STREAMS",
    "CONTACT_TRACE_RECORDS",
    "AGENT_EVENTS",
    "REAL_TIME_CONTACT_ANALYSIS_SEGMENTS",
    "REAL_TIME_CONTACT_ANALYSIS_CHAT_SEGMENTS",
    "REAL_TIME_CONTACT_ANALYSIS_VOICE_SEGMENTS",
    "ATTACHMENTS",
    "CONTACT_EVALUATIONS",
)
# The types Connect may store in S3 or Kinesis Video Streams: the only storage whose config names a
# KMS key (EncryptionConfig.KeyId). Kinesis streams and Firehose (contact trace records, agent
# events, real-time analysis segments) are encrypted by the stream's own settings, not here.
_STREAMED_TYPES = frozenset(
    {
        "CONTACT_TRACE_RECORDS",
        "AGENT_EVENTS",
        "REAL_TIME_CONTACT_ANALYSIS_SEGMENTS",
        "REAL_TIME_CONTACT_ANALYSIS_CHAT_SEGMENTS",
        "REAL_TIME_CONTACT_ANALYSIS_VOICE_SEGMENTS",
    }
)
KEYED_RESOURCE_TYPES = tuple(t for t in RESOURCE_TYPES if t not in _STREAMED_TYPES)
# Customers' voices, screens and words: redirected, they are a data breach, not only lost evidence.
CONTENT_TYPES = frozenset({"CALL_RECORDINGS", "CHAT_TRANSCRIPTS", "SCREEN_RECORDINGS", "EMAIL_MESSAGES"})
SETTINGS = ("storage_type", "bucket", "prefix", "kms_key_id", "stream_arn", "retention_hours")


def snapshot_key(instance_arn: str) -> str:
    return f"storage#{instance_arn}"


@dataclass(frozen=True)
class StorageConfig:
    """One association of an instance, as Connect's InstanceStorageConfig describes it."""

    resource_type: str
    storage_type: str
    association_id: str | None = None
    bucket: str | None = None  # S3
    prefix: str | None = None  # S3 BucketPrefix, or the video streams' Prefix
    kms_key_id: str | None = None  # S3 or video streams, EncryptionConfig.KeyId (None: no SSE-KMS)
    stream_arn: str | None = None  # Kinesis stream or Firehose ARN
    retention_hours: int | None = None  # video streams

    @classmethod
    def from_api(cls, resource_type: str, raw: dict[str, Any]) -> StorageConfig:
        s3 = raw.get("S3Config") or {}
        video = raw.get("KinesisVideoStreamConfig") or {}
        encryption = s3.get("EncryptionConfig") or video.get("EncryptionConfig") or {}
        stream = (raw.get("KinesisStreamConfig") or {}).get("StreamArn")
        firehose = (raw.get("KinesisFirehoseConfig") or {}).get("FirehoseArn")
        retention = video.get("RetentionPeriodHours")
        return cls(
            resource_type=resource_type,
            storage_type=str(raw.get("StorageType", "")),
            association_id=raw.get("AssociationId"),
            bucket=s3.get("BucketName"),
            prefix=s3.get("BucketPrefix") or video.get("Prefix"),
            kms_key_id=encryption.get("KeyId"),
            stream_arn=stream or firehose,
            retention_hours=int(retention) if retention is not None else None,
        )

    def to_api(self) -> dict[str, Any]:
        """The StorageConfig parameter of Associate/UpdateInstanceStorageConfig."""
        encryption = {"EncryptionType": "KMS", "KeyId": self.kms_key_id} if self.kms_key_id else None
        body: dict[str, Any] = {"StorageType": self.storage_type}
        if self.storage_type == "S3":
            s3: dict[str, Any] = {"BucketName": self.bucket, "BucketPrefix": self.prefix}
            body["S3Config"] = {**s3, **({"EncryptionConfig": encryption} if encryption else {})}
        elif self.storage_type == "KINESIS_VIDEO_STREAM":
            video: dict[str, Any] = {"Prefix": self.prefix, "RetentionPeriodHours": self.retention_hours or 0}
            body["KinesisVideoStreamConfig"] = {**video, **({"EncryptionConfig": encryption} if encryption else {})}
        elif self.storage_type == "KINESIS_STREAM":
            body["KinesisStreamConfig"] = {"StreamArn": self.stream_arn}
        elif self.storage_type == "KINESIS_FIREHOSE":
            body["KinesisFirehoseConfig"] = {"FirehoseArn": self.stream_arn}
        return body

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTINGS}

    def describe(self) -> str:
        if self.storage_type == "S3":
            where = f"s3://{self.bucket}/{self.prefix or ''}"
        elif self.storage_type == "KINESIS_VIDEO_STREAM":
            where = f"video streams {self.prefix} ({self.retention_hours} h)"
        else:
            where = str(self.stream_arn)
        key = f", KMS key {self.kms_key_id}" if self.kms_key_id else ""
        unencrypted = ", no KMS encryption" if self.storage_type in ("S3", "KINESIS_VIDEO_STREAM") and not key else ""
        return f"{self.storage_type} {where}{key}{unencrypted}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> StorageConfig:
        return cls(**{k: body[k] for k in cls.__dataclass_fields__ if k in body})


@dataclass(frozen=True)
class StorageState:
    """An instance's approved storage configs (every type the snapshot covers)."""

    instance_arn: str
    configs: tuple[StorageConfig, ...] = ()
    taken_at: str | None = None
    approved_by: str | None = None

    def of_type(self, resource_type: str) -> tuple[StorageConfig, ...]:
        return tuple(c for c in self.configs if c.resource_type == resource_type)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_arn": self.instance_arn,
            "configs": [c.to_dict() for c in self.configs],
            "taken_at": self.taken_at,
            "approved_by": self.approved_by,
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> StorageState:
        return cls(
            body["instance_arn"],
            tuple(StorageConfig.from_dict(c) for c in body.get("configs") or []),
            body.get("taken_at"),
            body.get("approved_by"),
        )


def severity_name(resource_type: str | None) -> str:
    """CRITICAL for customer content (recordings, transcripts, emails), HIGH for the rest."""
    return "CRITICAL" if resource_type in CONTENT_TYPES else "HIGH"


def referenced_key_ids(configs: Iterable[StorageConfig]) -> set[str]:
    """The KMS keys (as the configs name them: ARN, ID or alias) that encrypt an instance's
    stored contact data: a key disabled or scheduled for deletion loses that data."""
    return {c.kms_key_id for c in configs if c.kms_key_id}


@dataclass(frozen=True)
class StorageDrift:
    """One way an instance's associations of a resource type differ from the snapshot:
    `changed` (same slot, other settings), `missing` (approved, now gone), `extra` (not approved)."""

    resource_type: str
    kind: str
    approved: StorageConfig | None
    now: StorageConfig | None
    settings: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        if self.kind == "missing":
            assert self.approved is not None
            return f"{self.resource_type}: disassociated (approved {self.approved.describe()})"
        if self.kind == "extra":
            assert self.now is not None
            return f"{self.resource_type}: associated without approval ({self.now.describe()})"
        assert self.approved is not None and self.now is not None
        return f"{self.resource_type}: approved {self.approved.describe()}, now {self.now.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource_type": self.resource_type,
            "kind": self.kind,
            "approved": self.approved.to_dict() if self.approved else None,
            "now": self.now.to_dict() if self.now else None,
            "settings": list(self.settings),
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> StorageDrift:
        return cls(
            body["resource_type"],
            body["kind"],
            StorageConfig.from_dict(body["approved"]) if body.get("approved") else None,
            StorageConfig.from_dict(body["now"]) if body.get("now") else None,
            tuple(body.get("settings") or ()),
        )


def drift(approved: Iterable[StorageConfig], current: Iterable[StorageConfig]) -> tuple[StorageDrift, ...]:
    """Per resource type: associations paired by AssociationId, then the rest in order (a slot
    re-associated gets a new ID; that alone is not drift). Settings compared, not IDs."""
    found: list[StorageDrift] = []
    wanted, now = list(approved), list(current)
    for resource_type in sorted({c.resource_type for c in (*wanted, *now)}):
        left = [c for c in wanted if c.resource_type == resource_type]
        right = [c for c in now if c.resource_type == resource_type]
        pairs: list[tuple[StorageConfig, StorageConfig]] = []
        for config in list(left):
            match = next((c for c in right if c.association_id and c.association_id == config.association_id), None)
            if match is not None:
                pairs.append((config, match))
                left.remove(config)
                right.remove(match)
        pairs += list(zip(left, right, strict=False))
        for config, other in pairs:
            changed = tuple(s for s in SETTINGS if getattr(config, s) != getattr(other, s))
            if changed:
                found.append(StorageDrift(resource_type, "changed", config, other, changed))
        found += [StorageDrift(resource_type, "missing", c, None) for c in left[len(right) :]]
        found += [StorageDrift(resource_type, "extra", None, c) for c in right[len(left) :]]
    return tuple(found)


def restore_calls(instance_id: str, found: Iterable[StorageDrift]) -> list[tuple[str, dict[str, Any]]]:
    """The Connect calls (operation, parameters) that put the snapshot back: extra associations
    off first (Connect keeps one per type), then updates in place, then re-associations. A slot
    whose storage type changed is disassociated and associated again, not updated across types."""
    off: list[tuple[str, dict[str, Any]]] = []
    update: list[tuple[str, dict[str, Any]]] = []
    on: list[tuple[str, dict[str, Any]]] = []

    def disassociate(config: StorageConfig) -> tuple[str, dict[str, Any]]:
        params = {"InstanceId": instance_id, "AssociationId": config.association_id}
        return "DisassociateInstanceStorageConfig", {**params, "ResourceType": config.resource_type}

    def associate(config: StorageConfig) -> tuple[str, dict[str, Any]]:
        params = {"InstanceId": instance_id, "ResourceType": config.resource_type}
        return "AssociateInstanceStorageConfig", {**params, "StorageConfig": config.to_api()}

    for d in found:
        if d.kind == "extra" and d.now is not None:
            off.append(disassociate(d.now))
        elif d.kind == "missing" and d.approved is not None:
            on.append(associate(d.approved))
        elif d.approved is not None and d.now is not None:
            if d.approved.storage_type != d.now.storage_type:
                off.append(disassociate(d.now))
                on.append(associate(d.approved))
                continue
            params = {"InstanceId": instance_id, "AssociationId": d.now.association_id}
            body = {"ResourceType": d.resource_type, "StorageConfig": d.approved.to_api()}
            update.append(("UpdateInstanceStorageConfig", {**params, **body}))
    return off + update + on


class StorageSnapshots:
    """Approved storage configs per instance, in the baseline table (`storage#<instance ARN>`)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    @staticmethod
    def _key(instance_arn: str) -> dict[str, Any]:
        return {"pk": {"S": snapshot_key(instance_arn)}, "sk": {"S": "snapshot"}}

    def put(self, state: StorageState) -> None:
        body = json.dumps(state.to_dict(), default=str)
        self._db.put_item(TableName=self._table, Item={**self._key(state.instance_arn), "snapshot": {"S": body}})

    def get(self, instance_arn: str) -> StorageState | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(instance_arn), ConsistentRead=True).get("Item")
        if not item:
            return None
        return StorageState.from_dict(json.loads(item["snapshot"]["S"]))
