"""KMS keys that protect Connect data or the suite: the approved snapshot, the current state,
and what differs between them.

A key's state is what DescribeKey, GetKeyRotationStatus and GetKeyPolicy say: Enabled,
Disabled or PendingDeletion (with its deletion date), automatic rotation on or off, and the
key policy (canonical JSON). A snapshot (baseline table, `key#<key ARN>`) is the approved
state of one key. Without one, a protected key's approved state is derived (`approved`):
enabled, not pending deletion, rotation as it was; its policy is then unknown.

`state()` and `drift()` are pure of the event, so a scheduled drift check can reuse them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from connect_guard.connect_storage import StorageConfig, referenced_key_ids
from connect_guard.snapshots import IndexedSnapshots
from connect_guard.trails import Drift, canonical

KEY_GONE = {"NotFoundException"}
# A key ID (single- or multi-Region), as KMS mints them.
_KEY_ID = re.compile(r"^(mrk-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_KEY_ARN = re.compile(r"^arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:key/[\w-]+$")
_ALIAS = re.compile(r"^(alias/|arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:alias/)")


# ---- which key an event names -----------------------------------------------------------------
@dataclass(frozen=True)
class KeyReference:
    """The key an event names: its ARN when the event says it, or an alias to resolve."""

    arn: str | None = None
    alias: str | None = None

    @property
    def known(self) -> bool:
        return self.arn is not None or self.alias is not None


def key_arn(key_id: str, account_id: str, region: str, partition: str = "aws") -> str:
    return f"arn:{partition}:kms:{region}:{account_id}:key/{key_id}"


def key_reference(resources: Any, key_id: Any, account_id: str, region: str, partition: str = "aws") -> KeyReference:
    """From a CloudTrail record: `resources[]` carries the key ARN (also on many denied calls);
    `requestParameters.keyId` may hold a key ID, a key ARN, an alias name or an alias ARN.
    Anything else (null, "***", garbage) names no key."""
    for resource in resources if isinstance(resources, list) else ():
        if isinstance(resource, dict) and resource.get("type") == "AWS::KMS::Key":
            arn = resource.get("ARN")
            if isinstance(arn, str) and _KEY_ARN.match(arn):
                return KeyReference(arn=arn)
    if not isinstance(key_id, str):
        return KeyReference()
    text = key_id.strip()
    if _KEY_ARN.match(text):
        return KeyReference(arn=text)
    if _KEY_ID.match(text):
        return KeyReference(arn=key_arn(text, account_id, region, partition))
    if _ALIAS.match(text) and len(text) <= 256:
        return KeyReference(alias=text)
    return KeyReference()


def key_id_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def account_of(arn: str) -> str:
    return arn.split(":")[4]


def same_key(reference: str, arn: str) -> bool:
    """A storage config's key (by ARN, or bare ID) is this key."""
    return reference == arn or (_KEY_ID.match(reference) is not None and reference == key_id_of(arn))


# ---- the state ----------------------------------------------------------------------------------
def canonical_policy(policy: str | None) -> str | None:
    if policy is None:
        return None
    try:
        return json.dumps(json.loads(policy), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return policy


@dataclass(frozen=True)
class KeyState:
    arn: str
    key_state: str  # Enabled | Disabled | PendingDeletion | PendingImport | Unavailable | ...
    rotation: bool
    policy: str | None  # canonical JSON; None: not known (a derived approved state)
    description: str = ""
    deletion_date: str | None = None  # PendingDeletion only
    key_manager: str = "CUSTOMER"  # AWS-managed keys can't be disabled or deleted by anyone
    key_spec: str = "SYMMETRIC_DEFAULT"
    origin: str = "AWS_KMS"
    taken_at: str | None = None  # snapshots only

    @property
    def rotatable(self) -> bool:
        """Automatic rotation exists for symmetric keys with KMS-made key material only."""
        return self.key_spec == "SYMMETRIC_DEFAULT" and self.origin == "AWS_KMS"

    def describe_state(self) -> str:
        if self.key_state == "PendingDeletion":
            return f"PendingDeletion (to be deleted on {self.deletion_date or 'an unknown date'})"
        return self.key_state

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> KeyState:
        return cls(**{k: body[k] for k in cls.__dataclass_fields__ if k in body})


def approved(snapshot: KeyState | None, current: KeyState, *, rotation_wanted: bool) -> KeyState:
    """The state a protected key should be in: its snapshot, else derived from now: enabled and
    not pending deletion (a key that protects Connect data or the suite must stay usable), its
    rotation on when `rotation_wanted` (the suite's keys, or rotation just switched off), its
    policy unknown (never guessed)."""
    if snapshot is not None:
        return snapshot
    return replace(
        current,
        key_state="Enabled",
        deletion_date=None,
        rotation=current.rotation or (rotation_wanted and current.rotatable),
        policy=None,
        taken_at=None,
    )


def drift(wanted: KeyState, current: KeyState) -> tuple[Drift, ...]:
    """How the key differs from its approved state (the policy only when the approved one is known)."""
    found: list[Drift] = []
    if wanted.key_state != current.key_state:
        found.append(Drift("key_state", wanted.describe_state(), current.describe_state()))
    if wanted.rotation and not current.rotation:
        found.append(Drift("rotation", True, False))
    if wanted.policy is not None and wanted.policy != current.policy:
        found.append(Drift("policy", "(approved policy)", "(changed policy)"))
    return tuple(found)


def restore_calls(wanted: KeyState, current: KeyState, found: tuple[Drift, ...]) -> list[tuple[str, dict[str, Any]]]:
    """The KMS calls (operation, parameters) that put the key back, in order. A cancelled
    deletion leaves the key Disabled, so EnableKey follows; rotation can only be switched on
    for an enabled key, so it comes last. A policy is never written (see KeyGuard)."""
    settings = {d.setting for d in found}
    calls: list[tuple[str, dict[str, Any]]] = []
    if "key_state" in settings:
        if current.key_state == "PendingDeletion":
            calls.append(("CancelKeyDeletion", {"KeyId": current.arn}))
        if wanted.key_state == "Enabled" and current.key_state in ("PendingDeletion", "Disabled"):
            calls.append(("EnableKey", {"KeyId": current.arn}))
    if "rotation" in settings and current.rotatable:
        calls.append(("EnableKeyRotation", {"KeyId": current.arn}))
    return calls


class KeyGateway:
    """KMS reads and the restoring writes, for one account and region."""

    def __init__(self, kms: Any, writer: Any = None) -> None:
        self._kms = kms
        self._writer = writer

    def resolve(self, alias: str) -> str | None:
        """An alias's key ARN (DescribeKey accepts aliases); None when the alias names nothing."""
        try:
            return str(self._kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
        except ClientError as error:
            if error.response["Error"]["Code"] in KEY_GONE:
                return None
            raise

    def state(self, arn: str) -> KeyState | None:
        """The key as it is now; None when it does not exist (deleted, or never there)."""
        try:
            meta = self._kms.describe_key(KeyId=arn)["KeyMetadata"]
            rotatable = (
                meta.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
                and meta.get("Origin", "AWS_KMS") == "AWS_KMS"
            )
            rotation = (
                bool(self._kms.get_key_rotation_status(KeyId=arn).get("KeyRotationEnabled")) if rotatable else False
            )
            policy = self._kms.get_key_policy(KeyId=arn, PolicyName="default").get("Policy")
        except ClientError as error:
            if error.response["Error"]["Code"] in KEY_GONE:
                return None
            raise
        deletion = meta.get("DeletionDate")
        return KeyState(
            arn=meta.get("Arn") or arn,
            key_state=meta.get("KeyState") or ("Enabled" if meta.get("Enabled") else "Disabled"),
            rotation=rotation,
            policy=canonical_policy(policy),
            description=meta.get("Description") or "",
            deletion_date=deletion.isoformat() if hasattr(deletion, "isoformat") else deletion,
            key_manager=meta.get("KeyManager") or "CUSTOMER",
            key_spec=meta.get("KeySpec") or "SYMMETRIC_DEFAULT",
            origin=meta.get("Origin") or "AWS_KMS",
        )

    def call(self, operation: str, parameters: dict[str, Any]) -> None:
        kms = self._writer() if callable(self._writer) else (self._writer or self._kms)
        method = {
            "CancelKeyDeletion": kms.cancel_key_deletion,
            "EnableKey": kms.enable_key,
            "EnableKeyRotation": kms.enable_key_rotation,
        }[operation]
        method(**parameters)


INDEX_PREFIX = "key#index#"  # `key#index#<account>`, sk the key ARN: the approved keys of an account


class KeySnapshots(IndexedSnapshots[KeyState]):
    """The approved state of each key, in the baseline table (`key#<key ARN>`, `snapshot`), and
    an index of the approved keys per account (`key#index#<account>`, one item per ARN), so the
    drift check finds a snapshot whose key no longer exists. Both are written only by
    `connect-guard approve-key` (and the demo's seed): the functions read them."""

    kind = "key"
    index_prefix = INDEX_PREFIX

    def _load(self, body: dict[str, Any]) -> KeyState:
        return KeyState.from_dict(body)


# ---- Connect storage configs ------------------------------------------------------------------
def encrypted_types(configs: Iterable[StorageConfig], arn: str) -> tuple[str, ...]:
    """The resource types whose storage configs (live, or an approved snapshot's) name the key,
    by ARN or bare ID (connect_storage.referenced_key_ids)."""
    return tuple(sorted({c.resource_type for c in configs if any(same_key(k, arn) for k in referenced_key_ids((c,)))}))


# ---- key policies ------------------------------------------------------------------------------
def _statements(policy: str | None) -> list[dict[str, Any]]:
    if not policy:
        return []
    try:
        document = json.loads(policy)
    except ValueError:
        return []
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    return [s for s in statements or [] if isinstance(s, dict)]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


def _principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if isinstance(principal, dict):
        return [str(p) for p in _as_list(principal.get("AWS"))] + [str(p) for p in _as_list(principal.get("Service"))]
    return []


def _covers_all_kms(actions: Iterable[Any]) -> bool:
    return any(a in ("kms:*", "*") for a in actions)


def _is_account(principal: str, account_id: str) -> bool:
    return principal == account_id or re.fullmatch(rf"arn:aws[\w-]*:iam::{account_id}:root", principal) is not None


def _sids(documents: Iterable[str]) -> list[str]:
    return sorted({str(json.loads(d).get("Sid") or "(no Sid)") for d in documents})


def policy_findings(
    before: str | None, after: str | None, account_id: str, suite_principals: Iterable[str] = ()
) -> tuple[bool, tuple[str, ...]]:
    """What a key policy change does, as reasons for the SOC, and whether it takes away the
    suite's own access (the account's IAM policies no longer count, or a Deny reaches the
    suite's roles: its functions could neither read nor restore the key)."""
    suite = set(suite_principals)
    reasons: list[str] = []
    statements = _statements(after)
    if after is not None and not statements:
        reasons.append("the key policy has no readable statements: nobody may be able to use or manage the key")
    account_allowed = any(
        s.get("Effect") == "Allow"
        and _covers_all_kms(_as_list(s.get("Action")))
        and any(_is_account(p, account_id) for p in _principals(s))
        and not s.get("Condition")
        for s in statements
    )
    denies_suite = [
        s
        for s in statements
        if s.get("Effect") == "Deny"
        and not s.get("Condition")  # a conditional Deny (TLS only, org only) is the norm, not a lock-out
        and ("NotPrincipal" in s or any(p == "*" or _is_account(p, account_id) or p in suite for p in _principals(s)))
    ]
    removes = after is not None and (not account_allowed or bool(denies_suite))
    if after is not None and not account_allowed:
        reasons.append(
            f"the key policy no longer lets account {account_id}'s IAM policies grant the key: "
            "connect-guard's roles (and every administrator) lose access to it"
        )
    for statement in denies_suite:
        reasons.append(
            f"a Deny ({statement.get('Sid') or 'no Sid'}: {canonical(statement.get('Action'))}) applies "
            "to connect-guard's roles"
        )
    outside = sorted(
        {
            p
            for s in statements
            if s.get("Effect") == "Allow"
            for p in _principals(s)
            if p == "*" or (re.match(r"^(arn:aws[\w-]*:iam::)?\d{12}", p) and account_id not in p)
        }
    )
    if outside:
        reasons.append(f"the key policy allows principals outside account {account_id}: {', '.join(outside)}")
    if before is not None:
        old = {canonical(s) for s in _statements(before)}
        new = {canonical(s) for s in statements}
        if old - new:
            reasons.append(f"approved statements removed or changed: {', '.join(_sids(old - new))}")
        if new - old:
            reasons.append(f"statements added or changed: {', '.join(_sids(new - old))}")
    return removes, tuple(reasons)
