"""KMS in the embedded AWS as strict as AWS where the key guard depends on it, and the demo's
keys (events/demo-state.yaml `kms_keys`). Which keys Connect uses is the embedded Connect's
storage configs (connect_fake, the instance's `storage:` list), not anything here.

moto's KMS lets a key pending deletion be enabled (AWS: KMSInvalidStateException, cancel the
deletion first), cancels a deletion that was never scheduled, turns rotation on for a disabled
key, and fails with a server error when these calls name the key by ARN (AWS takes an ID or an
ARN). `KmsKeyStates` puts AWS's rules in moto's backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from unittest import mock

from moto.core.exceptions import JsonRESTError
from moto.kms.models import KmsBackend, kms_backends
from moto.kms.utils import generate_private_key

from connect_guard.kms_keys import KeyGateway, KeySnapshots, KeyState
from connect_guard_tools.backend_patches import BackendPatches


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


class KmsKeyStates(BackendPatches):
    """AWS's key-state rules for the calls the key guard makes or replays (started before the
    mock, stopped after it, as every BackendPatches)."""

    def patches(self) -> list[Any]:
        return [
            mock.patch.object(KmsBackend, name, _in_state(getattr(KmsBackend, name), name, states))
            for name, states in _ALLOWED_STATES.items()
        ]


def _in_state(call: Callable[..., Any], name: str, states: tuple[str, ...]) -> Callable[..., Any]:
    def checked(backend: KmsBackend, key_id: str, *args: Any) -> Any:
        raw = backend.any_id_to_key_id(key_id)  # an ARN, as AWS accepts
        key = backend.keys[raw]
        if key.key_state not in states:
            raise KMSInvalidStateException(f"{key.arn} is {key.key_state}: {name} needs {' or '.join(states)}")
        return call(backend, raw, *args)

    return checked


class _DeferredKeyPair:
    """moto's key pair for a KMS key, generated when first used (Sign, Verify, GetPublicKey):
    moto makes an RSA-2048 pair for every key, even a symmetric one, ~50 ms of CPU each."""

    def __init__(self, key_spec: str) -> None:
        self._key_spec = key_spec
        self._pair: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_key_spec", "_pair"):  # copy and pickle probe these
            raise AttributeError(name)
        if self._pair is None:
            self._pair = generate_private_key(self._key_spec)
        return getattr(self._pair, name)


class DeferredKeyPairs(BackendPatches):
    """Every key's pair made on first use instead of at CreateKey (symmetric keys never use it)."""

    def patches(self) -> list[Any]:
        return [mock.patch("moto.kms.models.generate_private_key", _DeferredKeyPair)]


# What a `kms_keys` entry may say.
KEY_SPEC = frozenset({"id", "region", "description", "policy", "rotation", "aliases", "snapshot", "tampered"})


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
) -> str:
    """A key as approved (its snapshot when `snapshot: true`), then as `tampered` leaves it
    (`disabled`, `pending_deletion_days`, `rotation: false`, `policy`)."""
    unknown = set(spec) - KEY_SPEC
    if unknown:  # e.g. the former `connect_storage`: the instance's `storage:` list names keys now
        raise ValueError(f"kms_keys entry {spec.get('id')}: unknown settings {sorted(unknown)}")
    arn = create_key(session, account_id, region, spec)
    kms = session.client("kms", region_name=region)
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
