"""The approved (known-good) state of each Connect instance, in DynamoDB.

One partition per instance (`pk = instance#<arn>`): an item per security profile
(`profile#<id>`: name, permissions, and `access`: its access-control restrictions and
applications; an item written before `access` was recorded has none, and nothing is judged or
restored from what it lacks), per user (`user#<id>`: security profile IDs, identity info,
hierarchy group, tags; likewise none where an older item lacks them), and a `meta` item. The
rollback and the sweep read the whole partition with one Query (paged past 1 MB): its
completeness, the user or profile and the approved profiles at once.

The meta item records how many profiles and users were approved: a baseline is acted on only
when the items match it (a partial write or a deleted item must never read as "approved: none",
which would make a rollback strip or a sweep re-approve what it should restore). A registry item
(`pk = baselines`) remembers that an instance was ever baselined, so that a baseline that later
vanishes altogether is not taken for a first deployment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from connect_guard.profile_access import ProfileAccess

REGISTRY_PK = "baselines"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class ProfileBaseline:
    id: str
    name: str
    permissions: frozenset[str]
    # Access-control restrictions and applications; None: not recorded (an older baseline item).
    access: ProfileAccess | None = None


@dataclass(frozen=True)
class UserBaseline:
    id: str
    username: str
    security_profile_ids: frozenset[str]
    # What a takeover changes (connect_user_guard): None where the approval did not record it, which
    # is never read as "approved: none". `identity` holds the IdentityInfo fields that were read
    # (SearchUsers gives the names; DescribeUser, for privileged users, the emails too).
    identity: tuple[tuple[str, str], ...] | None = None
    hierarchy_group_id: str | None = None  # "" = in no hierarchy group
    tags: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class BaselineMeta:
    approved_at: str | None
    approved_by: str | None
    profile_count: int | None  # None: a meta item written before counts were recorded
    user_count: int | None


@dataclass
class InstanceBaseline:
    instance_arn: str
    profiles: dict[str, ProfileBaseline] = field(default_factory=dict)
    users: dict[str, UserBaseline] = field(default_factory=dict)
    meta: BaselineMeta | None = None

    @property
    def empty(self) -> bool:
        return not self.profiles and not self.users and self.meta is None

    @property
    def approved_at(self) -> str | None:
        return self.meta.approved_at if self.meta else None


def incomplete(meta: BaselineMeta | None, profiles: int, users: int) -> str | None:
    """Why a stored baseline can't be acted on (pure), or None when it is complete."""
    if meta is None:
        return "no approved baseline (meta item missing)"
    if meta.profile_count is None or meta.user_count is None:
        return "baseline partial: its meta item records no counts (re-approve it)"
    if (meta.profile_count, meta.user_count) != (profiles, users):
        return (
            f"baseline partial: approved {meta.profile_count} profiles and {meta.user_count} users, "
            f"the table holds {profiles} and {users}"
        )
    return None


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v not in (None, set(), "")}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _value(v) for k, v in item.items()}


def _value(value: dict[str, Any]) -> Any:
    """TypeDeserializer's value, the baseline's own types (strings, sets and lists) decoded inline:
    a rollback reads the whole partition every event, and the generic dispatch cost most of it."""
    if "S" in value:
        return value["S"]
    if "SS" in value:
        return set(value["SS"])
    if "L" in value:
        return [_value(v) for v in value["L"]]
    return _deserializer.deserialize(value)


class BaselineStore:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    @staticmethod
    def _pk(instance_arn: str) -> str:
        return f"instance#{instance_arn}"

    def _get(self, instance_arn: str, sk: str) -> dict[str, Any] | None:
        item = self._db.get_item(
            TableName=self._table, Key=_item({"pk": self._pk(instance_arn), "sk": sk}), ConsistentRead=True
        ).get("Item")
        return _plain(item) if item else None

    def profile(self, instance_arn: str, profile_id: str) -> ProfileBaseline | None:
        item = self._get(instance_arn, f"profile#{profile_id}")
        return _profile(item) if item else None

    def user(self, instance_arn: str, user_id: str) -> UserBaseline | None:
        item = self._get(instance_arn, f"user#{user_id}")
        return _user(item) if item else None

    def _query(self, instance_arn: str, prefix: str = "") -> Iterator[dict[str, Any]]:
        condition = "pk = :pk AND begins_with(sk, :prefix)" if prefix else "pk = :pk"
        values = {":pk": {"S": self._pk(instance_arn)}} | ({":prefix": {"S": prefix}} if prefix else {})
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**kwargs)
            yield from (_plain(raw) for raw in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def profiles(self, instance_arn: str) -> dict[str, ProfileBaseline]:
        """Every approved profile of an instance (one Query): names and permissions."""
        return {p.id: p for p in map(_profile, self._query(instance_arn, "profile#"))}

    def instance(self, instance_arn: str) -> InstanceBaseline:
        baseline = InstanceBaseline(instance_arn)
        for item in self._query(instance_arn):
            if item["sk"].startswith("profile#"):
                profile = _profile(item)
                baseline.profiles[profile.id] = profile
            elif item["sk"].startswith("user#"):
                user = _user(item)
                baseline.users[user.id] = user
            elif item["sk"] == "meta":
                baseline.meta = _meta(item)
        return baseline

    def meta(self, instance_arn: str) -> BaselineMeta | None:
        item = self._get(instance_arn, "meta")
        return _meta(item) if item else None

    def _count(self, instance_arn: str, prefix: str) -> int:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": self._pk(instance_arn)}, ":prefix": {"S": prefix}},
            "Select": "COUNT",
            "ConsistentRead": True,
        }
        total = 0
        while True:
            page = self._db.query(**kwargs)
            total += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def problem(self, instance_arn: str) -> str | None:
        """Why the instance's baseline is missing or partial (a GetItem and two counting Queries)."""
        meta = self.meta(instance_arn)
        if meta is None:
            return incomplete(None, 0, 0)
        return incomplete(meta, self._count(instance_arn, "profile#"), self._count(instance_arn, "user#"))

    def recorded(self, instance_arn: str) -> bool:
        """Whether this instance was ever baselined (its registry item)."""
        page = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk = :sk",
            ExpressionAttributeValues={":pk": {"S": REGISTRY_PK}, ":sk": {"S": self._pk(instance_arn)}},
            ConsistentRead=True,
        )
        return bool(page.get("Items"))

    def approve_profile(self, instance_arn: str, profile: ProfileBaseline, approved_by: str) -> None:
        new = self._get(instance_arn, f"profile#{profile.id}") is None
        self._db.put_item(TableName=self._table, Item=self._profile_item(instance_arn, profile, approved_by))
        self._count_approval(instance_arn, approved_by, profiles=int(new))

    def approve_user(self, instance_arn: str, user: UserBaseline, approved_by: str) -> None:
        new = self._get(instance_arn, f"user#{user.id}") is None
        self._db.put_item(TableName=self._table, Item=self._user_item(instance_arn, user, approved_by))
        self._count_approval(instance_arn, approved_by, users=int(new))

    def _count_approval(self, instance_arn: str, approved_by: str, profiles: int = 0, users: int = 0) -> None:
        """Keep the meta item's counts in step with an item approved on its own (callers check
        first that the baseline is complete). A crash in between leaves the counts short: the
        baseline then reads as partial, which fails closed."""
        meta = self.meta(instance_arn)
        if meta is None or meta.profile_count is None or meta.user_count is None:
            return
        self._db.put_item(
            TableName=self._table,
            Item=self._meta_item(instance_arn, approved_by, meta.profile_count + profiles, meta.user_count + users),
        )

    def _meta_item(self, instance_arn: str, approved_by: str, profiles: int, users: int) -> dict[str, Any]:
        counts = {"profile_count": profiles, "user_count": users, "complete": True}
        return self._approved_item(instance_arn, "meta", approved_by, counts)

    def approve_instance(self, baseline: InstanceBaseline, approved_by: str) -> None:
        """Replace an instance's whole baseline (first sweep, or an explicit approval)."""
        current = self.instance(baseline.instance_arn)
        items = [self._profile_item(baseline.instance_arn, p, approved_by) for p in baseline.profiles.values()]
        items += [self._user_item(baseline.instance_arn, u, approved_by) for u in baseline.users.values()]
        now = datetime.now(UTC).isoformat(timespec="seconds")
        # Meta and registry go in the last batch: until every item is written, the counts don't match.
        meta = self._meta_item(baseline.instance_arn, approved_by, len(baseline.profiles), len(baseline.users))
        registry = _item({"pk": REGISTRY_PK, "sk": self._pk(baseline.instance_arn), "recorded_at": now})
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in items]
        stale = [f"profile#{i}" for i in current.profiles if i not in baseline.profiles]
        stale += [f"user#{i}" for i in current.users if i not in baseline.users]
        requests += [
            {"DeleteRequest": {"Key": _item({"pk": self._pk(baseline.instance_arn), "sk": sk})}} for sk in stale
        ]
        requests += [{"PutRequest": {"Item": meta}}, {"PutRequest": {"Item": registry}}]
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self._table: requests[start : start + 25]}
            while pending:
                pending = self._db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    def _profile_item(self, instance_arn: str, profile: ProfileBaseline, approved_by: str) -> dict[str, Any]:
        fields = {
            "name": profile.name,
            "permissions": sorted(profile.permissions),
            "access": json.dumps(profile.access.to_api(), sort_keys=True) if profile.access else None,
        }
        return self._approved_item(instance_arn, f"profile#{profile.id}", approved_by, fields)

    def _user_item(self, instance_arn: str, user: UserBaseline, approved_by: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"username": user.username, "security_profile_ids": sorted(user.security_profile_ids)}
        # JSON, so that "" (no hierarchy group, an empty name) survives: _item drops empty strings.
        for key, value in (("identity", user.identity), ("hierarchy", user.hierarchy_group_id), ("tags", user.tags)):
            if value is not None:
                fields[key] = json.dumps(dict(value) if isinstance(value, tuple) else value)
        return self._approved_item(instance_arn, f"user#{user.id}", approved_by, fields)

    def _approved_item(self, instance_arn: str, sk: str, approved_by: str, fields: dict[str, Any]) -> dict[str, Any]:
        """An item of the instance's baseline, stamped with who approved it and when."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return _item({"pk": self._pk(instance_arn), "sk": sk, **fields, "approved_by": approved_by, "approved_at": now})


def _profile(item: dict[str, Any]) -> ProfileBaseline:
    return ProfileBaseline(
        item["sk"].removeprefix("profile#"),
        item.get("name", ""),
        frozenset(item.get("permissions") or []),
        ProfileAccess.from_stored(json.loads(item["access"])) if item.get("access") else None,
    )


def _meta(item: dict[str, Any]) -> BaselineMeta:
    def count(key: str) -> int | None:
        value = item.get(key)
        return int(value) if value is not None and item.get("complete") else None

    return BaselineMeta(item.get("approved_at"), item.get("approved_by"), count("profile_count"), count("user_count"))


def _user(item: dict[str, Any]) -> UserBaseline:
    def pairs(key: str) -> tuple[tuple[str, str], ...] | None:
        raw = item.get(key)
        return None if raw is None else tuple(sorted(json.loads(raw).items()))

    hierarchy = item.get("hierarchy")
    return UserBaseline(
        item["sk"].removeprefix("user#"),
        item.get("username", ""),
        frozenset(item.get("security_profile_ids") or []),
        pairs("identity"),
        None if hierarchy is None else str(json.loads(hierarchy)),
        pairs("tags"),
    )
