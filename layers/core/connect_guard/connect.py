"""Amazon Connect adapter: read users and security profiles, restore them.

Connect's quotas are low (about 2 requests/s per API, shared with the admin website): clients
use adaptive retries, pages are as large as the API allows, and a user's profiles come from
one DescribeUser (or SearchUsers pages of 100), never a call per profile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from connect_guard.connect_storage import StorageConfig, StorageState
from connect_guard.errors import ConnectResourceNotFoundError
from connect_guard.profile_access import ProfileAccess

_NOT_FOUND = {"ResourceNotFoundException"}


@dataclass(frozen=True)
class InstanceRef:
    account_id: str
    region: str
    instance_id: str

    @property
    def arn(self) -> str:
        partition = "aws-cn" if self.region.startswith("cn-") else "aws"
        return f"arn:{partition}:connect:{self.region}:{self.account_id}:instance/{self.instance_id}"

    @classmethod
    def parse(cls, value: str, account_id: str, region: str) -> InstanceRef:
        """From an instance ID or ARN, URL-encoded as CloudTrail sometimes records it."""
        text = unquote(value.strip())
        if text.startswith("arn:"):
            parts = text.split(":")
            return cls(parts[4], parts[3], parts[5].split("/")[1])
        return cls(account_id, region, text)


@dataclass(frozen=True)
class InstanceSummary:
    """One instance as ListInstances returns it."""

    arn: str
    alias: str
    status: str  # ACTIVE | CREATION_IN_PROGRESS | CREATION_FAILED
    created: str  # ISO 8601; "" when Connect did not say

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> InstanceSummary:
        created = raw.get("CreatedTime")  # a datetime, as botocore parses it
        when = created.isoformat() if isinstance(created, datetime) else str(created or "")
        return cls(raw["Arn"], raw.get("InstanceAlias", ""), raw.get("InstanceStatus", ""), when)


def list_instances(client: Any) -> Iterator[InstanceSummary]:
    """Every instance of the client's account and region, 10 a page (the API's maximum).
    Errors are the caller's: a listing that failed is not an empty one."""
    token: dict[str, str] = {}
    while True:
        page = client.list_instances(MaxResults=10, **token)
        yield from (InstanceSummary.from_api(raw) for raw in page.get("InstanceSummaryList", []))
        if not page.get("NextToken"):
            return
        token = {"NextToken": page["NextToken"]}


@dataclass(frozen=True)
class ConnectUser:
    id: str
    username: str
    security_profile_ids: frozenset[str]
    name: str = ""
    # IdentityInfo as read (DescribeUser: every field; SearchUsers: the names only), the hierarchy
    # group ("" = none) and the tags: what connect_user_guard compares with the baseline.
    identity: tuple[tuple[str, str], ...] = ()
    hierarchy_group_id: str = ""
    tags: tuple[tuple[str, str], ...] = ()


def _user(raw: dict[str, Any]) -> ConnectUser:
    identity = raw.get("IdentityInfo") or {}
    full_name = " ".join(p for p in (identity.get("FirstName"), identity.get("LastName")) if p)
    return ConnectUser(
        raw["Id"],
        raw.get("Username", ""),
        frozenset(raw.get("SecurityProfileIds", [])),
        full_name,
        tuple(sorted((k, str(v)) for k, v in identity.items() if isinstance(v, str))),
        str(raw.get("HierarchyGroupId") or ""),
        tuple(sorted((raw.get("Tags") or {}).items())),
    )


class ConnectGateway:
    """One instance's users and profiles, through a client in the instance's account and region
    (reads) and a writer built on first use (the rollback role in a source account)."""

    def __init__(self, client: Any, instance: InstanceRef, writer: Callable[[], Any] | None = None) -> None:
        self._client = client
        self._writer = writer or (lambda: client)
        self.instance = instance
        self._id = instance.instance_id

    def _call(self, operation: str, **params: Any) -> Any:
        return self._invoke(self._client, operation, params)

    def _write(self, operation: str, **params: Any) -> Any:
        return self._invoke(self._writer(), operation, params)

    def _invoke(self, client: Any, operation: str, params: dict[str, Any]) -> Any:
        try:
            return getattr(client, operation)(InstanceId=self._id, **params)
        except ClientError as error:
            if error.response["Error"]["Code"] in _NOT_FOUND:
                api = "".join(part.title() for part in operation.split("_"))  # as the SOC reads it in CloudTrail
                raise ConnectResourceNotFoundError(f"{api}: {error.response['Error']['Message']}") from error
            raise  # throttling, 5xx, access: retried by SQS, then the DLQ

    def user(self, user_id: str) -> ConnectUser:
        return _user(self._call("describe_user", UserId=user_id)["User"])

    def users(self) -> Iterator[ConnectUser]:
        token: dict[str, str] = {}
        while True:
            page = self._call("search_users", MaxResults=100, **token)
            yield from (_user(raw) for raw in page.get("Users", []))
            if not page.get("NextToken"):
                return
            token = {"NextToken": page["NextToken"]}

    def profile_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        token: dict[str, str] = {}
        while True:
            page = self._call("list_security_profiles", MaxResults=1000, **token)
            names.update({p["Id"]: p["Name"] for p in page.get("SecurityProfileSummaryList", [])})
            if not page.get("NextToken"):
                return names
            token = {"NextToken": page["NextToken"]}

    def _paged(self, operation: str, key: str, profile_id: str) -> list[Any]:
        items: list[Any] = []
        token: dict[str, str] = {}
        while True:
            page = self._call(operation, SecurityProfileId=profile_id, MaxResults=1000, **token)
            items.extend(page.get(key, []))
            if not page.get("NextToken"):
                return items
            token = {"NextToken": page["NextToken"]}

    def permissions(self, profile_id: str) -> frozenset[str]:
        return frozenset(self._paged("list_security_profile_permissions", "Permissions", profile_id))

    def applications(self, profile_id: str) -> list[dict[str, Any]]:
        return self._paged("list_security_profile_applications", "Applications", profile_id)

    def describe_profile(self, profile_id: str) -> dict[str, Any]:
        return dict(self._call("describe_security_profile", SecurityProfileId=profile_id)["SecurityProfile"])

    def access(self, profile_id: str, described: dict[str, Any] | None = None) -> ProfileAccess:
        """The profile's access-control restrictions (DescribeSecurityProfile, unless given) and
        applications (ListSecurityProfileApplications)."""
        described = described if described is not None else self.describe_profile(profile_id)
        return ProfileAccess.from_api(described, self.applications(profile_id))

    def set_user_profiles(self, user_id: str, profile_ids: frozenset[str]) -> None:
        self._write("update_user_security_profiles", UserId=user_id, SecurityProfileIds=sorted(profile_ids))

    # -- a user's identity, hierarchy group and tags (connect_user_guard restores them) ----------
    def user_call(self, operation: str, parameters: dict[str, Any]) -> None:
        """One restoring write of connect_user_guard's plan, through the writer. The tag calls
        name the user by ARN and take no InstanceId."""
        params = {k: v for k, v in parameters.items() if k != "InstanceId"}
        if operation == "UpdateUserIdentityInfo":
            self._write("update_user_identity_info", **params)
        elif operation == "UpdateUserHierarchy":
            self._write("update_user_hierarchy", **params)
        elif operation in ("TagResource", "UntagResource"):
            method = "tag_resource" if operation == "TagResource" else "untag_resource"
            try:
                getattr(self._writer(), method)(**params)
            except ClientError as error:
                if error.response["Error"]["Code"] in _NOT_FOUND:
                    raise ConnectResourceNotFoundError(f"{operation}: {error.response['Error']['Message']}") from error
                raise
        else:
            raise ValueError(f"not a user write: {operation}")

    def attribute(self, kind: str) -> str:
        """An instance attribute's value as Connect returns it ("true" or "false" for the flags)."""
        return str(self._call("describe_instance_attribute", AttributeType=kind)["Attribute"]["Value"])

    def set_attribute(self, kind: str, value: str) -> None:
        self._write("update_instance_attribute", AttributeType=kind, Value=value)

    def set_permissions(self, profile_id: str, permissions: frozenset[str]) -> None:
        """Replaces the whole permission set: Connect's update does not merge."""
        self._write("update_security_profile", SecurityProfileId=profile_id, Permissions=sorted(permissions))

    def restore_profile(self, profile_id: str, permissions: frozenset[str], fields: dict[str, Any]) -> None:
        """Permissions (the whole set) and the access-control fields given, in one update."""
        self._write("update_security_profile", SecurityProfileId=profile_id, Permissions=sorted(permissions), **fields)

    # -- storage configs (logging_guard: where recordings, transcripts and streams go) ---------
    def storage_configs(self, resource_type: str) -> list[StorageConfig]:
        """The instance's associations of one resource type (Connect pages them 10 at a time)."""
        configs: list[StorageConfig] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("list_instance_storage_configs", ResourceType=resource_type, MaxResults=10, **token)
            configs.extend(StorageConfig.from_api(resource_type, raw) for raw in page.get("StorageConfigs", []))
            if not page.get("NextToken"):
                return configs
            token = {"NextToken": page["NextToken"]}

    def storage_state(self, resource_types: tuple[str, ...]) -> StorageState:
        """Every association of the given types, as a snapshot would record them."""
        configs = tuple(c for kind in resource_types for c in self.storage_configs(kind))
        return StorageState(self.instance.arn, configs)

    def storage_call(self, operation: str, parameters: dict[str, Any]) -> None:
        """One restoring write of connect_storage.restore_calls, through the writer."""
        method = {
            "AssociateInstanceStorageConfig": "associate_instance_storage_config",
            "UpdateInstanceStorageConfig": "update_instance_storage_config",
            "DisassociateInstanceStorageConfig": "disassociate_instance_storage_config",
        }[operation]
        params = {k: v for k, v in parameters.items() if k != "InstanceId"}
        self._write(method, **params)
