"""KMS in the embedded AWS as strict as AWS where the key guard depends on it, the Connect
storage configs that name keys, and the demo's keys (events/demo-state.yaml `kms_keys`).

moto's KMS lets a key pending deletion be enabled (AWS: KMSInvalidStateException, cancel the
deletion first), cancels a deletion that was never scheduled, turns rotation on for a disabled
key, and fails with a server error when these calls name the key by ARN (AWS takes an ID or an
ARN). `KmsKeyStates` puts AWS's rules in moto's backend.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import Any
from unittest import mock

from botocore.awsrequest import AWSResponse
from moto.core.exceptions import JsonRESTError
from moto.kms.models import KmsBackend, kms_backends

from connect_guard.kms_keys import KeyGateway, KeySnapshots, KeyState


class KMSInvalidStateException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("KMSInvalidStateException", message)


# The backend method, and the key states AWS allows it in (key state table, KMS Developer Guide).
_ALLOWED_STATES: dict[str, tuple[str, ...]] = {
    "enable_key": ("Enabled", "Disabled"),
    "disable_key": ("Enabled", "Disabled"),
    "cancel_key_deletion": ("PendingDeletion",),
    "schedule_key_deletion": ("Enabled", "Disabled"),
    "enable_key_rotation": ("Enabled",),
    "disable_key_rotation": ("Enabled",),
}


class KmsKeyStates:
    """AWS's key-state rules for the calls the key guard makes or replays (started before the
    mock, stopped after it, like local_aws.BackendPatches)."""

    _active: tuple[Any, ...] = ()

    def start(self) -> None:
        self._active = tuple(
            mock.patch.object(KmsBackend, name, _in_state(getattr(KmsBackend, name), name, states))
            for name, states in _ALLOWED_STATES.items()
        )
        for patch in self._active:
            patch.start()

    def stop(self) -> None:
        for patch in reversed(self._active):
            patch.stop()
        self._active = ()


def _in_state(call: Callable[..., Any], name: str, states: tuple[str, ...]) -> Callable[..., Any]:
    def checked(backend: KmsBackend, key_id: str, *args: Any) -> Any:
        raw = backend.any_id_to_key_id(key_id)  # an ARN, as AWS accepts
        key = backend.keys[raw]
        if key.key_state not in states:
            raise KMSInvalidStateException(f"{key.arn} is {key.key_state}: {name} needs {' or '.join(states)}")
        return call(backend, raw, *args)

    return checked


class StorageConfigs:
    """Connect's ListInstanceStorageConfigs, from what the demo seeds: the in-memory Connect fake
    answers it itself once it knows storage configs; until then this answers before moto (which
    lacks the API). Registered on the session before any Connect client exists."""

    def __init__(self) -> None:
        # instance ID -> resource type -> storage configs, as Connect returns them
        self.configs: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def install(self, session: Any, implemented: frozenset[str]) -> None:
        if "ListInstanceStorageConfigs" in implemented:
            return
        session.events.register("before-parameter-build.connect.ListInstanceStorageConfigs", self._capture)
        session.events.register("before-call.connect.ListInstanceStorageConfigs", self._answer)

    def add(self, instance_id: str, resource_type: str, key_arn: str, bucket: str = "connect-storage") -> None:
        config: dict[str, Any] = {"AssociationId": str(uuid.uuid4()), "StorageType": "S3"}
        if resource_type == "MEDIA_STREAMS":
            config |= {
                "StorageType": "KINESIS_VIDEO_STREAM",
                "KinesisVideoStreamConfig": {
                    "Prefix": "connect",
                    "RetentionPeriodHours": 24,
                    "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": key_arn},
                },
            }
        else:
            config["S3Config"] = {
                "BucketName": bucket,
                "BucketPrefix": resource_type.lower(),
                "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": key_arn},
            }
        self.configs.setdefault(instance_id, {}).setdefault(resource_type, []).append(config)

    @staticmethod
    def _capture(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["local-kms-params"] = params

    def _answer(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = context.get("local-kms-params") or {}
        instance = str(params.get("InstanceId", "")).rsplit("/", 1)[-1]
        configs = copy.deepcopy(self.configs.get(instance, {}).get(str(params.get("ResourceType")), []))
        metadata = {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}
        return AWSResponse(None, 200, {}, None), {"StorageConfigs": configs, "ResponseMetadata": metadata}


def create_key(session: Any, account_id: str, region: str, spec: dict[str, Any]) -> str:
    """A customer managed key with the spec's fixed ID (the samples name it), description,
    policy and rotation; returns its ARN."""
    kms = session.client("kms", region_name=region)
    created = kms.create_key(
        Description=spec.get("description", ""),
        **({"Policy": json.dumps(spec["policy"])} if spec.get("policy") else {}),
    )["KeyMetadata"]["KeyId"]
    key_id = str(spec.get("id") or created)
    if key_id != created:  # moto mints random IDs: the demo's key keeps the one its samples name
        backend = kms_backends[account_id][region]
        key = backend.keys.pop(created)
        key.id = key_id
        key.arn = key.arn.rsplit("/", 1)[0] + f"/{key_id}"
        backend.keys[key_id] = key
    if spec.get("rotation", True):
        kms.enable_key_rotation(KeyId=key_id)
    for alias in spec.get("aliases") or []:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])


def seed_key(
    session: Any,
    account_id: str,
    region: str,
    spec: dict[str, Any],
    dynamodb: Any,
    baseline_table: str,
    storage: StorageConfigs,
) -> str:
    """A key as approved (its snapshot when `snapshot: true`), the storage configs that name it
    (`connect_storage: [{instance, type}]`), then as `tampered` leaves it (`disabled`,
    `pending_deletion_days`, `rotation: false`, `policy`)."""
    arn = create_key(session, account_id, region, spec)
    kms = session.client("kms", region_name=region)
    for use in spec.get("connect_storage") or []:
        storage.add(str(use["instance"]), str(use["type"]), arn)
    if spec.get("snapshot"):
        state = KeyGateway(kms).state(arn)
        assert state is not None
        approved = KeyState.from_dict({**state.to_dict(), "taken_at": "2026-11-20T06:00:00+00:00"})
        KeySnapshots(dynamodb, baseline_table).put(approved)
    tamper_key(kms, arn, spec.get("tampered") or {})
    return arn


def tamper_key(kms: Any, arn: str, tampered: dict[str, Any]) -> None:
    if tampered.get("policy") is not None:
        kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=json.dumps(tampered["policy"]))
    if tampered.get("rotation") is False:
        kms.disable_key_rotation(KeyId=arn)
    if tampered.get("disabled"):
        kms.disable_key(KeyId=arn)
    if tampered.get("pending_deletion_days"):
        kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=int(tampered["pending_deletion_days"]))
