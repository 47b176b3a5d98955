"""An in-memory Amazon Connect (users and security profiles) behind ordinary boto3 clients.

moto has no Connect users or security profiles. Like botocore's Stubber, this fake answers in
`before-call`, after botocore has validated the parameters against the real API model, so the
code under test keeps its real clients; operations it does not implement fall through to moto.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import botocore.session
from botocore import xform_name
from botocore.awsrequest import AWSResponse

from connect_guard.connect_storage import SETTINGS as STORAGE_SETTINGS
from connect_guard.connect_storage import StorageConfig

DEFAULT_REGION = "us-east-1"
_TAG_OPERATIONS = frozenset({"TagResource", "UntagResource", "ListTagsForResource"})
_AGENT_ARN = re.compile(r"^(arn:aws[a-z-]*:connect:[a-z0-9-]+:\d{12}:instance/([\w-]+))/agent/([\w-]+)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_TAGS = 50  # per resource (TagMap's maximum in the model)
_PARAMS_KEY = "connect_fake_params"  # where the API params wait, in the request context, for before-call
# Codes the Connect model does not declare but callers (and botocore's retry logic) know.
_EXTRA_STATUS = {"TooManyRequestsException": 429, "ThrottlingException": 429, "InternalServiceException": 500}
_SEARCH_FIELDS: dict[str, Callable[[dict[str, Any]], Sequence[str]]] = {
    "username": lambda u: [u["Username"]],
    "firstname": lambda u: [u["IdentityInfo"].get("FirstName", "")],
    "lastname": lambda u: [u["IdentityInfo"].get("LastName", "")],
    "resourceid": lambda u: [u["Id"]],
    "securityprofileid": lambda u: sorted(u["SecurityProfileIds"]),
    "routingprofileid": lambda u: [u["RoutingProfileId"]],
}


class ConnectApiError(Exception):
    """An error the fake answers with (becomes a botocore ClientError for the caller)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _not_found(message: str) -> ConnectApiError:
    return ConnectApiError("ResourceNotFoundException", message)


def _invalid(message: str) -> ConnectApiError:
    return ConnectApiError("InvalidParameterException", message)


def _found(items: dict[str, dict[str, Any]], key: str, what: str) -> dict[str, Any]:
    """`items[key]`, or the ResourceNotFoundException Connect answers for an unknown ID."""
    item = items.get(key)
    if item is None:
        raise _not_found(f"{what} not found: {key}")
    return item


@cache
def _service_model() -> Any:
    return botocore.session.get_session().get_service_model("connect")


def _now() -> datetime:
    # Connect returns epoch seconds with milliseconds.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws"


def _check_limits(shape: Any, value: Any, path: str) -> None:
    """botocore validates only the minimums of the model's constraints: the service checks the maximums."""
    limit = shape.metadata.get("max")
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                _check_limits(member, value[name], f"{path}.{name}" if path else name)
        return
    if shape.type_name == "list":
        for index, item in enumerate(value):
            _check_limits(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            _check_limits(shape.value, item, f"{path}.{key}")
    if limit is None:
        return
    size = value if shape.type_name in ("integer", "long") else len(value)
    if size > limit:
        raise _invalid(f"{path}: {size} exceeds the maximum of {limit}")


# What a new instance has (contact flow logs are off until an administrator turns them on; the
# demo's instances turn them on, as the approved state).
DEFAULT_ATTRIBUTES = {
    "INBOUND_CALLS": "true",
    "OUTBOUND_CALLS": "true",
    "CONTACTFLOW_LOGS": "false",
    "CONTACT_LENS": "true",
    "AUTO_RESOLVE_BEST_VOICES": "true",
    "USE_CUSTOM_TTS_VOICES": "false",
    "EARLY_MEDIA": "true",
}


@dataclass
class _Instance:
    id: str
    arn: str
    account_id: str
    region: str
    alias: str
    routing_profile_id: str  # the instance's "Basic Routing Profile", given to users created without one
    created: datetime = field(default_factory=_now)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Instance attributes as the API returns them ("true"/"false" strings); Connect's defaults.
    attributes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    # Storage configs by AssociationId: {"ResourceType": ..., "StorageConfig": {... as Describe returns it}}.
    storage: dict[str, dict[str, Any]] = field(default_factory=dict)
    hierarchy_groups: dict[str, str] = field(default_factory=dict)  # ID → name


@dataclass
class SeededInstance:
    """What `seed_from_spec` created, and the approved (baseline) state the spec describes."""

    instance_id: str
    instance_arn: str
    account_id: str
    region: str
    alias: str
    # {"profiles": {id: {"name", "permissions", "applications"}}, "users": {id: {"username", "security_profile_ids"}}}
    baseline: dict[str, Any] = field(default_factory=lambda: {"profiles": {}, "users": {}})
    storage: list[StorageConfig] = field(default_factory=list)  # the approved storage configs


class ConnectFake:
    """Connect instances, users and security profiles in memory; see `install`."""

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (operation, params) of every call the fake answered
        self._clock = clock
        self._instances: dict[str, _Instance] = {}
        self._failures: dict[str, list[str]] = {}
        self._associations = 0
        self._lock = threading.RLock()  # the replay may call from several threads
        self._operations: dict[str, Callable[[_Instance, dict[str, Any], str], dict[str, Any]]] = {
            "DescribeUser": self._describe_user,
            "SearchUsers": self._search_users,
            "ListUsers": self._list_users,
            "CreateUser": self._create_user,
            "UpdateUserSecurityProfiles": self._update_user_security_profiles,
            "UpdateUserIdentityInfo": self._update_user_identity_info,
            "UpdateUserHierarchy": self._update_user_hierarchy,
            "ListSecurityProfiles": self._list_security_profiles,
            "DescribeSecurityProfile": self._describe_security_profile,
            "ListSecurityProfilePermissions": self._list_security_profile_permissions,
            "ListSecurityProfileApplications": self._list_security_profile_applications,
            "CreateSecurityProfile": self._create_security_profile,
            "UpdateSecurityProfile": self._update_security_profile,
            "DeleteSecurityProfile": self._delete_security_profile,
            "DescribeInstance": self._describe_instance,
            "DescribeInstanceAttribute": self._describe_instance_attribute,
            "UpdateInstanceAttribute": self._update_instance_attribute,
            "AssociateInstanceStorageConfig": self._associate_instance_storage_config,
            "DescribeInstanceStorageConfig": self._describe_instance_storage_config,
            "ListInstanceStorageConfigs": self._list_instance_storage_configs,
            "UpdateInstanceStorageConfig": self._update_instance_storage_config,
            "DisassociateInstanceStorageConfig": self._disassociate_instance_storage_config,
        }

    # -- wiring --------------------------------------------------------------------------------

    @property
    def operations(self) -> frozenset[str]:
        """The Connect operations the fake answers; any other one goes on to moto."""
        return frozenset(self._operations)

    def install(self, emitter: Any) -> None:
        """Hook into a botocore emitter: a boto3 Session's `events` (clients created afterwards
        get the hooks, earlier ones do not) or one client's `meta.events`."""
        emitter.register("before-parameter-build.connect", self._capture, unique_id=f"connect-fake-params-{id(self)}")
        emitter.register("before-call.connect", self._answer, unique_id=f"connect-fake-call-{id(self)}")

    def uninstall(self, emitter: Any) -> None:
        emitter.unregister("before-parameter-build.connect", unique_id=f"connect-fake-params-{id(self)}")
        emitter.unregister("before-call.connect", unique_id=f"connect-fake-call-{id(self)}")

    def fail_next(self, operation_name: str, code: str = "ThrottlingException", times: int = 1) -> None:
        """The next `times` calls of the operation (API name, e.g. "UpdateSecurityProfile", or the
        client method name) fail with `code`. Any Connect operation, implemented by the fake or not."""
        names = {xform_name(name): name for name in _service_model().operation_names}
        name = names.get(operation_name, operation_name)
        if name not in names.values():
            raise ValueError(f"Connect has no operation {operation_name!r}")
        with self._lock:
            self._failures.setdefault(name, []).extend([code] * times)

    def _capture(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        # before-call only sees the serialised HTTP request: keep the API params for it.
        context[_PARAMS_KEY] = params

    def _answer(
        self, model: Any, context: dict[str, Any], request_signer: Any = None, **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        name = model.name
        with self._lock:
            failures = self._failures.get(name)
            injected = failures.pop(0) if failures else None
            operation = self._operations.get(name)
            tagged = self._tagged_user(name, context.get(_PARAMS_KEY) or {})
            if injected is None and operation is None and name != "ListInstances" and tagged is None:
                return None  # not ours (tags of anything but a user too): botocore sends it on, to moto
            params = copy.deepcopy(context.get(_PARAMS_KEY) or {})
            self.calls.append((name, copy.deepcopy(params)))
            try:
                if injected is not None:
                    raise ConnectApiError(injected, f"Injected failure of {name}")
                _check_limits(model.input_shape, params, "")
                region = context.get("client_region") or DEFAULT_REGION
                if tagged is not None:  # a user's tags: named by ARN, no InstanceId
                    parsed = self._user_tags(name, *tagged, params, region)
                    parsed["ResponseMetadata"] = self._metadata(200)
                    return AWSResponse(None, 200, {}, None), parsed
                if name == "ListInstances":  # the one read with no instance: the caller's account's
                    parsed = self._list_instances(_caller_account(request_signer), region, params)
                    parsed["ResponseMetadata"] = self._metadata(200)
                    return AWSResponse(None, 200, {}, None), parsed
                assert operation is not None
                instance = self._instance(params["InstanceId"], region)
                parsed = copy.deepcopy(operation(instance, params, region))
            except ConnectApiError as error:
                return self._error(model, error)
        parsed["ResponseMetadata"] = self._metadata(200)
        return AWSResponse(None, 200, {}, None), parsed

    def _error(self, model: Any, error: ConnectApiError) -> tuple[AWSResponse, dict[str, Any]]:
        # The shape of Stubber.add_client_error, with the status the model declares for the code.
        shape = model.service_model.shape_for_error_code(error.code)
        status = (shape.metadata.get("error") or {}).get("httpStatusCode") if shape is not None else None
        status = status or _EXTRA_STATUS.get(error.code, 400)
        parsed = {"Error": {"Code": error.code, "Message": error.message}, "ResponseMetadata": self._metadata(status)}
        return AWSResponse(None, status, {}, None), parsed

    @staticmethod
    def _metadata(status: int) -> dict[str, Any]:
        return {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0}

    # -- lookups -------------------------------------------------------------------------------

    def _instance(self, value: str, region: str | None = None) -> _Instance:
        """By ID or ARN, as the API accepts both; in the caller's region only, as in AWS."""
        instance_id = value.rsplit("/", 1)[-1] if value.startswith("arn:") else value
        instance = self._instances.get(instance_id)
        if instance is None or (value.startswith("arn:") and value != instance.arn):
            raise _not_found(f"Instance not found: {value}")
        if region is not None and region != instance.region:
            raise _not_found(f"Instance not found in {region}: {value}")
        return instance

    def _tagged_user(self, name: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
        """(instance ID, user ID) when a tag operation names a user of an instance of the fake."""
        if name not in _TAG_OPERATIONS:
            return None
        match = _AGENT_ARN.match(str(params.get("resourceArn", "")))
        if match is None or match[2] not in self._instances:
            return None
        return match[2], match[3]

    def _user_tags(
        self, name: str, instance_id: str, user_id: str, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        """TagResource, UntagResource and ListTagsForResource on a user (its agent ARN)."""
        instance = self._instance(params["resourceArn"].split("/agent/")[0], region)
        user = self._user(instance, user_id)
        if name == "ListTagsForResource":
            return {"tags": dict(user["Tags"])}
        if name == "TagResource":
            tags = params["tags"]
            if bad := sorted(k for k in tags if k.lower().startswith("aws:")):
                raise _invalid(f"Tag keys starting with aws: are reserved: {', '.join(bad)}")
            merged = {**user["Tags"], **tags}
            if len(merged) > _MAX_TAGS:
                raise _invalid(f"A resource can have at most {_MAX_TAGS} tags")
            user["Tags"] = merged
        else:
            user["Tags"] = {k: v for k, v in user["Tags"].items() if k not in set(params["tagKeys"])}
        return {}

    @staticmethod
    def _user(instance: _Instance, user_id: str) -> dict[str, Any]:
        return _found(instance.users, user_id, "User")

    @staticmethod
    def _profile(instance: _Instance, profile_id: str) -> dict[str, Any]:
        return _found(instance.profiles, profile_id, "Security profile")

    @staticmethod
    def _profile_ids(instance: _Instance, ids: Iterable[str]) -> set[str]:
        wanted = set(ids)
        if missing := sorted(wanted - instance.profiles.keys()):
            raise _not_found(f"Security profiles not found: {', '.join(missing)}")
        return wanted

    # -- seeding and inspection ----------------------------------------------------------------

    def add_instance(self, account_id: str, region: str, instance_id: str, alias: str) -> str:
        """Returns the instance ARN."""
        with self._lock:
            if instance_id in self._instances:
                raise ValueError(f"instance {instance_id} exists")
            arn = f"arn:{_partition(region)}:connect:{region}:{account_id}:instance/{instance_id}"
            routing = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{arn}/routing-profile/basic"))
            created = self._clock()
            self._instances[instance_id] = _Instance(instance_id, arn, account_id, region, alias, routing, created)
            return arn

    def add_security_profile(
        self,
        instance_id: str,
        name: str,
        permissions: Iterable[str],
        *,
        profile_id: str | None = None,
        applications: Iterable[Mapping[str, Any]] = (),
        tags: Mapping[str, str] | None = None,
        description: str = "",
        access: Mapping[str, Any] | None = None,
    ) -> str:
        """Returns the profile ID (generated when not given). `access`: its access-control fields,
        as UpdateSecurityProfile takes them (AllowedAccessControlTags, TagRestrictedResources, ...)."""
        with self._lock:
            instance = self._instance(instance_id)
            profile_id = profile_id or str(uuid.uuid4())
            if profile_id in instance.profiles or name in {
                p["SecurityProfileName"] for p in instance.profiles.values()
            }:
                raise ValueError(f"security profile {name!r} ({profile_id}) exists in {instance.id}")
            instance.profiles[profile_id] = {
                "Id": profile_id,
                "Arn": f"{instance.arn}/security-profile/{profile_id}",
                "SecurityProfileName": name,
                "Description": description,
                "Permissions": set(permissions),
                "Applications": [dict(a) for a in applications],
                "Tags": dict(tags or {}),
                "AllowedAccessControlTags": {},
                "TagRestrictedResources": [],
                "HierarchyRestrictedResources": [],
                "LastModifiedTime": self._clock(),
                "LastModifiedRegion": instance.region,
            }
            _set_access(instance.profiles[profile_id], access or {}, instance.hierarchy_groups)
            return profile_id

    def add_user(
        self,
        instance_id: str,
        username: str,
        security_profile_ids: Iterable[str],
        *,
        user_id: str | None = None,
        first_name: str = "",
        last_name: str = "",
        email: str | None = None,
        secondary_email: str | None = None,
        hierarchy_group_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Returns the user ID (generated when not given). The profiles (and group) must exist."""
        with self._lock:
            instance = self._instance(instance_id)
            user_id = user_id or str(uuid.uuid4())
            if user_id in instance.users or username in {u["Username"] for u in instance.users.values()}:
                raise ValueError(f"user {username!r} ({user_id}) exists in {instance.id}")
            try:
                profile_ids = self._profile_ids(instance, security_profile_ids)
            except ConnectApiError as error:
                raise ValueError(f"user {username!r}: {error.message}") from None
            identity = {"FirstName": first_name, "LastName": last_name, **({"Email": email} if email else {})}
            identity |= {"SecondaryEmail": secondary_email} if secondary_email else {}
            if hierarchy_group_id is not None and hierarchy_group_id not in instance.hierarchy_groups:
                raise ValueError(f"user {username!r}: no hierarchy group {hierarchy_group_id} in {instance.id}")
            user = self._new_user(instance, user_id, username, profile_ids, identity, tags=tags)
            if hierarchy_group_id:
                user["HierarchyGroupId"] = hierarchy_group_id
            instance.users[user_id] = user
            return user_id

    def add_hierarchy_group(self, instance_id: str, name: str, group_id: str | None = None) -> str:
        """Returns the group ID (generated when not given)."""
        with self._lock:
            instance = self._instance(instance_id)
            group_id = group_id or str(uuid.uuid4())
            instance.hierarchy_groups[group_id] = name
            return group_id

    def _new_user(
        self,
        instance: _Instance,
        user_id: str,
        username: str,
        profile_ids: set[str],
        identity: dict[str, Any],
        routing_profile_id: str | None = None,
        phone_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return {
            "Id": user_id,
            "Arn": f"{instance.arn}/agent/{user_id}",
            "Username": username,
            "IdentityInfo": identity,
            "PhoneConfig": dict(
                phone_config or {"PhoneType": "SOFT_PHONE", "AutoAccept": False, "AfterContactWorkTimeLimit": 0}
            ),
            "SecurityProfileIds": profile_ids,
            "RoutingProfileId": routing_profile_id or instance.routing_profile_id,
            "Tags": dict(tags or {}),
            "LastModifiedTime": self._clock(),
            "LastModifiedRegion": instance.region,
        }

    def user(self, instance_id: str, user_id: str) -> dict[str, Any]:
        """A copy of the user as it is now (DescribeUser's User; SecurityProfileIds sorted)."""
        with self._lock:
            return _user_view(self._user(self._instance(instance_id), user_id))

    def profile(self, instance_id: str, profile_id: str) -> dict[str, Any]:
        """A copy of the profile as it is now (DescribeSecurityProfile's fields plus sorted
        Permissions and Applications)."""
        with self._lock:
            instance = self._instance(instance_id)
            view = copy.deepcopy(self._profile(instance, profile_id))
            view["Permissions"] = sorted(view["Permissions"])
            view["OrganizationResourceId"] = instance.id
            return view

    def profile_id(self, instance_id: str, name: str) -> str:
        with self._lock:
            for profile in self._instance(instance_id).profiles.values():
                if profile["SecurityProfileName"] == name:
                    return str(profile["Id"])
        raise KeyError(f"no security profile {name!r} in {instance_id}")

    def user_id(self, instance_id: str, username: str) -> str:
        with self._lock:
            for user in self._instance(instance_id).users.values():
                if user["Username"] == username:
                    return str(user["Id"])
        raise KeyError(f"no user {username!r} in {instance_id}")

    # -- operations: users ---------------------------------------------------------------------

    def _describe_user(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        return {"User": _user_view(self._user(instance, params["UserId"]))}

    def _search_users(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        criteria = params.get("SearchCriteria")
        users = [u for u in instance.users.values() if not criteria or _matches(u, criteria)]
        page, token = _page(users, params, "SearchUsers", default=100)
        fields = ("Id", "Arn", "Username", "SecurityProfileIds", "RoutingProfileId", "PhoneConfig", "Tags")
        summaries = []
        for user in page:
            view = _user_view(user)
            summary = {key: view[key] for key in fields}
            if view.get("HierarchyGroupId"):
                summary["HierarchyGroupId"] = view["HierarchyGroupId"]
            identity = view["IdentityInfo"]
            summary["IdentityInfo"] = {k: identity[k] for k in ("FirstName", "LastName") if k in identity}
            summaries.append(summary)
        return {"Users": summaries, "ApproximateTotalCount": len(users), **token}

    def _list_users(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        page, token = _page(list(instance.users.values()), params, "ListUsers", default=100)
        keys = ("Id", "Arn", "Username", "LastModifiedTime", "LastModifiedRegion")
        return {"UserSummaryList": [{k: u[k] for k in keys} for u in page], **token}

    def _create_user(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        username = params["Username"]
        if username in {u["Username"] for u in instance.users.values()}:
            raise ConnectApiError("DuplicateResourceException", f"User {username} already exists")
        profile_ids = self._profile_ids(instance, params["SecurityProfileIds"])
        user_id = str(uuid.uuid4())
        identity = dict(params.get("IdentityInfo") or {"FirstName": "", "LastName": ""})
        user = self._new_user(
            instance,
            user_id,
            username,
            profile_ids,
            identity,
            params["RoutingProfileId"],
            params.get("PhoneConfig"),
            params.get("Tags"),
        )
        instance.users[user_id] = user
        return {"UserId": user_id, "UserArn": user["Arn"]}

    def _update_user_security_profiles(
        self, instance: _Instance, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        user = self._user(instance, params["UserId"])
        user["SecurityProfileIds"] = self._profile_ids(instance, params["SecurityProfileIds"])
        user["LastModifiedTime"], user["LastModifiedRegion"] = self._clock(), region
        return {}

    def _update_user_identity_info(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        """The IdentityInfo given replaces the user's (a restore sends every field it keeps)."""
        user = self._user(instance, params["UserId"])
        identity = dict(params["IdentityInfo"])
        for key in ("Email", "SecondaryEmail"):
            if identity.get(key) and not _EMAIL.match(identity[key]):
                raise _invalid(f"IdentityInfo.{key} is not a valid email address")
        if identity.get("Mobile") and not re.fullmatch(r"\+[1-9]\d{1,14}", identity["Mobile"]):
            raise _invalid("IdentityInfo.Mobile is not an E.164 phone number")
        user["IdentityInfo"] = identity
        user["LastModifiedTime"], user["LastModifiedRegion"] = self._clock(), region
        return {}

    def _update_user_hierarchy(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        """Into the group named, or out of every group when none is."""
        user = self._user(instance, params["UserId"])
        group = params.get("HierarchyGroupId")
        if group:
            _found({g: {} for g in instance.hierarchy_groups}, group, "Hierarchy group")
            user["HierarchyGroupId"] = group
        else:
            user.pop("HierarchyGroupId", None)
        user["LastModifiedTime"], user["LastModifiedRegion"] = self._clock(), region
        return {}

    # -- operations: security profiles ---------------------------------------------------------

    def _list_security_profiles(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        page, token = _page(list(instance.profiles.values()), params, "ListSecurityProfiles", default=100)
        summaries = [
            {
                "Id": p["Id"],
                "Arn": p["Arn"],
                "Name": p["SecurityProfileName"],
                "LastModifiedTime": p["LastModifiedTime"],
                "LastModifiedRegion": p["LastModifiedRegion"],
            }
            for p in page
        ]
        return {"SecurityProfileSummaryList": summaries, **token}

    def _describe_security_profile(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        profile = self._profile(instance, params["SecurityProfileId"])
        view = {k: v for k, v in profile.items() if k not in ("Permissions", "Applications")}
        view["OrganizationResourceId"] = instance.id
        return {"SecurityProfile": view}

    def _list_security_profile_permissions(
        self, instance: _Instance, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        profile = self._profile(instance, params["SecurityProfileId"])
        page, token = _page(sorted(profile["Permissions"]), params, "ListSecurityProfilePermissions", default=100)
        return {"Permissions": page, **token, **_modified(profile)}

    def _list_security_profile_applications(
        self, instance: _Instance, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        profile = self._profile(instance, params["SecurityProfileId"])
        page, token = _page(profile["Applications"], params, "ListSecurityProfileApplications", default=100)
        return {"Applications": page, **token, **_modified(profile)}

    def _create_security_profile(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        name = params["SecurityProfileName"]
        if name in {p["SecurityProfileName"] for p in instance.profiles.values()}:
            raise ConnectApiError("DuplicateResourceException", f"Security profile {name} already exists")
        _set_access({}, params, instance.hierarchy_groups)  # checked first: a refused create makes nothing
        profile_id = self.add_security_profile(
            instance.id,
            name,
            params.get("Permissions", ()),
            applications=params.get("Applications", ()),
            tags=params.get("Tags"),
            description=params.get("Description", ""),
        )
        profile = instance.profiles[profile_id]
        _set_access(profile, params, instance.hierarchy_groups)
        profile["LastModifiedRegion"] = region
        return {"SecurityProfileId": profile_id, "SecurityProfileArn": profile["Arn"]}

    def _update_security_profile(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        profile = self._profile(instance, params["SecurityProfileId"])
        # Connect replaces what is given, it does not merge: a rollback sends the full set.
        if "Permissions" in params:
            profile["Permissions"] = set(params["Permissions"])
        if "Applications" in params:
            profile["Applications"] = copy.deepcopy(params["Applications"])
        _set_access(profile, params, instance.hierarchy_groups)
        if "Description" in params:
            profile["Description"] = params["Description"]
        profile["LastModifiedTime"], profile["LastModifiedRegion"] = self._clock(), region
        return {}

    def _delete_security_profile(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        profile_id = params["SecurityProfileId"]
        self._profile(instance, profile_id)
        if any(profile_id in u["SecurityProfileIds"] for u in instance.users.values()):
            # Connect keeps a profile its users hold: they must be moved off it first.
            raise ConnectApiError("ResourceInUseException", f"Security profile {profile_id} is assigned to users")
        del instance.profiles[profile_id]
        return {}

    # -- instances (the log archive: an instance's alias names its flow-log group) ------------

    def _list_instances(self, account_id: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        """The instances of the caller's account in its region, as ListInstances pages them."""
        mine = [i for i in self._instances.values() if i.account_id == account_id and i.region == region]
        page, token = _page(mine, params, "ListInstances", default=10)
        summaries = [
            {
                "Id": i.id,
                "Arn": i.arn,
                "IdentityManagementType": "CONNECT_MANAGED",
                "InstanceAlias": i.alias,
                "CreatedTime": i.created,
                "InstanceStatus": "ACTIVE",
                "InboundCallsEnabled": i.attributes["INBOUND_CALLS"] == "true",
                "OutboundCallsEnabled": i.attributes["OUTBOUND_CALLS"] == "true",
            }
            for i in page
        ]
        return {"InstanceSummaryList": summaries, **token}

    def _describe_instance(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        return {
            "Instance": {
                "Id": instance.id,
                "Arn": instance.arn,
                "InstanceAlias": instance.alias,
                "InstanceStatus": "ACTIVE",
                "IdentityManagementType": "CONNECT_MANAGED",
            }
        }

    # -- instance attributes (logging_guard: contact flow logs) --------------------------------

    def _describe_instance_attribute(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        kind = params["AttributeType"]
        if kind not in instance.attributes:
            raise _invalid(f"Unsupported attribute type for this instance: {kind}")
        return {"Attribute": {"AttributeType": kind, "Value": instance.attributes[kind]}}

    def _update_instance_attribute(self, instance: _Instance, params: dict[str, Any], region: str) -> dict[str, Any]:
        kind, value = params["AttributeType"], params["Value"]
        if kind not in instance.attributes or value not in ("true", "false"):
            raise _invalid(f"Invalid value {value!r} for attribute {kind}")
        instance.attributes[kind] = value
        return {}

    def attribute(self, instance_id: str, kind: str) -> str:
        with self._lock:
            return self._instances[instance_id].attributes[kind]

    def set_attribute(self, instance_id: str, kind: str, value: str) -> None:
        with self._lock:
            self._instances[instance_id].attributes[kind] = value

    # -- storage configs (logging_guard: recordings, transcripts, streams) ---------------------

    def _storage_config(self, instance: _Instance, params: dict[str, Any]) -> dict[str, Any]:
        """The association named by AssociationId, of the resource type named (Connect answers
        ResourceNotFound for an ID of another type, as for one that never existed)."""
        kind = _resource_type(params["ResourceType"])
        association = instance.storage.get(params["AssociationId"])
        if association is None or association["ResourceType"] != kind:
            raise _not_found(f"Storage config {params['AssociationId']} ({kind}) not found")
        return association

    def _associate_instance_storage_config(
        self, instance: _Instance, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        kind = _resource_type(params["ResourceType"])
        config = _checked_storage(kind, params["StorageConfig"])
        if any(a["ResourceType"] == kind for a in instance.storage.values()):
            # One association per type: "you can't define an instance with multiple S3 buckets for
            # storing chat transcripts" (the API reference).
            raise ConnectApiError("ResourceConflictException", f"A storage config for {kind} already exists")
        return {"AssociationId": self.add_storage_config(instance.id, kind, config)}

    def _describe_instance_storage_config(
        self, instance: _Instance, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        return {"StorageConfig": self._storage_config(instance, params)["StorageConfig"]}

    def _list_instance_storage_configs(
        self, instance: _Instance, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        kind = _resource_type(params["ResourceType"])
        configs = [a["StorageConfig"] for a in instance.storage.values() if a["ResourceType"] == kind]
        page, token = _page(configs, params, "ListInstanceStorageConfigs", default=10)
        return {"StorageConfigs": page, **token}

    def _update_instance_storage_config(
        self, instance: _Instance, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        association = self._storage_config(instance, params)
        config = _checked_storage(association["ResourceType"], params["StorageConfig"])
        if config["StorageType"] != association["StorageConfig"]["StorageType"]:
            raise ConnectApiError("InvalidRequestException", "An update cannot change the storage type")
        association["StorageConfig"] = {"AssociationId": params["AssociationId"], **config}
        return {}

    def _disassociate_instance_storage_config(
        self, instance: _Instance, params: dict[str, Any], region: str
    ) -> dict[str, Any]:
        self._storage_config(instance, params)
        del instance.storage[params["AssociationId"]]
        return {}

    def add_storage_config(self, instance_id: str, resource_type: str, config: Mapping[str, Any]) -> str:
        """Associate a (checked) StorageConfig; returns its AssociationId (64 hex digits, as Connect's)."""
        with self._lock:
            instance = self._instance(instance_id)
            self._associations += 1  # deterministic IDs: the replay's output does not change run to run
            seed = f"{instance.arn}/{resource_type}/{self._associations}"
            association_id = hashlib.sha256(seed.encode()).hexdigest()
            body = {k: copy.deepcopy(v) for k, v in config.items() if k != "AssociationId"}
            instance.storage[association_id] = {
                "ResourceType": resource_type,
                "StorageConfig": {"AssociationId": association_id, **body},
            }
            return association_id

    def storage_configs(self, instance_id: str, resource_type: str) -> list[dict[str, Any]]:
        with self._lock:
            storage = self._instance(instance_id).storage.values()
            return [copy.deepcopy(a["StorageConfig"]) for a in storage if a["ResourceType"] == resource_type]


# Which storage a resource type may use (Connect's admin guide: recordings, transcripts, reports,
# attachments, evaluations and emails in S3; media streams in Kinesis Video Streams; contact trace
# records in a Kinesis stream or Firehose; agent events and real-time analysis segments in a stream).
STORAGE_TYPES_BY_RESOURCE = {
    **dict.fromkeys(
        (
            "CALL_RECORDINGS",
            "CHAT_TRANSCRIPTS",
            "SCREEN_RECORDINGS",
            "EMAIL_MESSAGES",
            "SCHEDULED_REPORTS",
            "ATTACHMENTS",
            "CONTACT_EVALUATIONS",
        ),
        frozenset({"S3"}),
    ),
    "MEDIA_STREAMS": frozenset({"KINESIS_VIDEO_STREAM"}),
    "CONTACT_TRACE_RECORDS": frozenset({"KINESIS_STREAM", "KINESIS_FIREHOSE"}),
    **dict.fromkeys(
        (
            "AGENT_EVENTS",
            "REAL_TIME_CONTACT_ANALYSIS_SEGMENTS",
            "REAL_TIME_CONTACT_ANALYSIS_CHAT_SEGMENTS",
            "REAL_TIME_CONTACT_ANALYSIS_VOICE_SEGMENTS",
        ),
        frozenset({"KINESIS_STREAM"}),
    ),
}
_STORAGE_MEMBER = {
    "S3": ("S3Config", None),
    "KINESIS_VIDEO_STREAM": ("KinesisVideoStreamConfig", None),
    "KINESIS_STREAM": ("KinesisStreamConfig", ("StreamArn", ":kinesis:", ":stream/")),
    "KINESIS_FIREHOSE": ("KinesisFirehoseConfig", ("FirehoseArn", ":firehose:", ":deliverystream/")),
}


def _resource_type(value: str) -> str:
    """botocore checks no enum: the service does."""
    if value not in _service_model().shape_for("InstanceStorageResourceType").enum:
        raise _invalid(f"Invalid ResourceType {value!r}")
    return value


def _checked_storage(resource_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A StorageConfig as Connect accepts it: the storage type fits the resource type, and the
    config of that storage type (and only it) is given."""
    storage_type = config["StorageType"]
    if storage_type not in STORAGE_TYPES_BY_RESOURCE.get(resource_type, frozenset()):
        raise ConnectApiError("InvalidRequestException", f"{storage_type} storage is not valid for {resource_type}")
    member, arn_rule = _STORAGE_MEMBER[storage_type]
    others = [m for m, _ in _STORAGE_MEMBER.values() if m != member and m in config]
    if member not in config or others:
        raise _invalid(f"{storage_type} storage needs {member} (and no {', '.join(others) or 'other config'})")
    if arn_rule is not None:
        key, service, kind = arn_rule
        arn = str(config[member][key])
        if not (arn.startswith("arn:") and service in arn and kind in arn):
            raise _invalid(f"{member}.{key} is not a valid ARN: {arn}")
    return {k: copy.deepcopy(v) for k, v in config.items() if k in ("StorageType", member)}


# HierarchyRestrictedResources: "Following are acceptable ResourceNames: User" (the API reference).
HIERARCHY_RESTRICTED_RESOURCES = frozenset({"User"})


def _set_access(profile: dict[str, Any], params: Mapping[str, Any], groups: Mapping[str, str]) -> None:
    """The access-control fields given (each replaced whole, as Connect does; an empty hierarchy
    group ID clears it), checked as the service checks them beyond botocore's validation: the
    hierarchy group must be one of the instance's (a restore naming a deleted group fails)."""
    group_id = params.get("AllowedAccessControlHierarchyGroupId")
    if group_id and group_id not in groups:
        raise _not_found(f"Hierarchy group not found: {group_id}")
    hierarchy = params.get("HierarchyRestrictedResources")
    if hierarchy is not None and (unknown := sorted(set(hierarchy) - HIERARCHY_RESTRICTED_RESOURCES)):
        raise _invalid(f"Invalid HierarchyRestrictedResources: {', '.join(unknown)}")
    if "AllowedAccessControlTags" in params:
        profile["AllowedAccessControlTags"] = dict(params["AllowedAccessControlTags"])
    if "TagRestrictedResources" in params:
        profile["TagRestrictedResources"] = list(params["TagRestrictedResources"])
    if hierarchy is not None:
        profile["HierarchyRestrictedResources"] = list(hierarchy)
    if "AllowedAccessControlHierarchyGroupId" in params:
        if group := params["AllowedAccessControlHierarchyGroupId"]:
            profile["AllowedAccessControlHierarchyGroupId"] = group
        else:
            profile.pop("AllowedAccessControlHierarchyGroupId", None)


def _user_view(user: dict[str, Any]) -> dict[str, Any]:
    view = copy.deepcopy(user)
    view["SecurityProfileIds"] = sorted(view["SecurityProfileIds"])
    return view


def _modified(profile: dict[str, Any]) -> dict[str, Any]:
    return {"LastModifiedTime": profile["LastModifiedTime"], "LastModifiedRegion": profile["LastModifiedRegion"]}


def _caller_account(request_signer: Any) -> str:
    """The account of the credentials signing the call, as the embedded AWS (moto) maps them:
    an assumed role's keys belong to the role's account, moto's default ones to its default."""
    from moto.iam.models import get_account_id_from  # the embedded AWS only; not at import time

    if account := os.environ.get("MOTO_ACCOUNT_ID"):
        return account
    credentials = getattr(request_signer, "_credentials", None)  # botocore keeps them private
    key = credentials.get_frozen_credentials().access_key if credentials is not None else ""
    return str(get_account_id_from(key))


def _page(
    items: Sequence[Any], params: dict[str, Any], operation: str, default: int
) -> tuple[list[Any], dict[str, str]]:
    """One page and, when more follow, the NextToken (opaque: the operation and an offset)."""
    start = 0
    if token := params.get("NextToken"):
        try:
            name, offset = base64.urlsafe_b64decode(token.encode()).decode().rsplit(":", 1)
            start = int(offset)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _invalid("Invalid NextToken") from None
        if name != operation or start < 0:
            raise _invalid("Invalid NextToken")
    end = start + params.get("MaxResults", default)
    if end >= len(items):
        return list(items[start:]), {}
    return list(items[start:end]), {"NextToken": base64.urlsafe_b64encode(f"{operation}:{end}".encode()).decode()}


def _matches(user: dict[str, Any], criteria: Mapping[str, Any]) -> bool:
    """SearchUsers criteria: string conditions on the fields below, with And/Or; other conditions
    (hierarchy, proficiency lists) match every user."""
    if "AndConditions" in criteria and not all(_matches(user, c) for c in criteria["AndConditions"]):
        return False
    if "OrConditions" in criteria and not any(_matches(user, c) for c in criteria["OrConditions"]):
        return False
    condition = criteria.get("StringCondition")
    if not condition:
        return True
    field_values = _SEARCH_FIELDS.get(str(condition.get("FieldName", "")).lower())
    if field_values is None:
        raise _invalid(f"Unsupported FieldName {condition.get('FieldName')!r}")
    wanted, comparison = condition.get("Value", ""), condition.get("ComparisonType", "EXACT")
    tests: dict[str, Callable[[str], bool]] = {
        "EXACT": lambda v: v == wanted,
        "STARTS_WITH": lambda v: v.startswith(wanted),
        "CONTAINS": lambda v: wanted in v,
    }
    return any(tests[comparison](value) for value in field_values(user))


_INSTANCE_KEYS = {"id", "alias", "region", "security_profiles", "users", "attributes", "storage", "hierarchy_groups"}
_STORAGE_KEYS = {"resource_type", *STORAGE_SETTINGS, "current", "in_baseline"}
# access / current_access: AllowedAccessControlTags, TagRestrictedResources, HierarchyRestrictedResources,
# AllowedAccessControlHierarchyGroupId and Applications as the API takes them; deleted: approved, gone now.
_PROFILE_KEYS = {
    "id",
    "name",
    "permissions",
    "current_permissions",
    "in_baseline",
    "access",
    "current_access",
    "deleted",
}
_ACCESS_KEYS = {
    "AllowedAccessControlTags",
    "TagRestrictedResources",
    "HierarchyRestrictedResources",
    "AllowedAccessControlHierarchyGroupId",
    "Applications",
}
_USER_KEYS = {
    "id",
    "username",
    "first_name",
    "last_name",
    "security_profiles",
    "current_security_profiles",
    "in_baseline",
    # identity, hierarchy group (by name) and tags as approved; current_*: as the sample left them
    "email",
    "secondary_email",
    "hierarchy_group",
    "tags",
    "current_identity",
    "current_hierarchy_group",
    "current_tags",
}


def _check_keys(kind: str, spec: Mapping[str, Any], allowed: set[str]) -> None:
    # A misspelt current_* key would silently seed no drift: refuse it.
    if unknown := sorted(set(spec) - allowed):
        raise ValueError(f"{kind} {spec.get('name') or spec.get('username') or spec.get('id')}: unknown keys {unknown}")


def seed_from_spec(fake: ConnectFake, account_id: str, spec: Mapping[str, Any]) -> SeededInstance:
    """Create one `accounts.<account>.connect.instances[]` entry of demo-state.yaml in the fake:
    the current state (current_* when given, else the approved values); return the approved
    state of the entries with in_baseline true (the default)."""
    _check_keys("instance", spec, _INSTANCE_KEYS)
    instance_id, region = str(spec["id"]), str(spec.get("region") or DEFAULT_REGION)
    arn = fake.add_instance(str(account_id), region, instance_id, str(spec.get("alias", "")))
    seeded = SeededInstance(instance_id, arn, str(account_id), region, str(spec.get("alias", "")))
    for kind, value in (spec.get("attributes") or {}).items():  # as the instance has them now
        fake.set_attribute(instance_id, str(kind), str(value).lower())
    groups = {
        str(g["name"]): fake.add_hierarchy_group(instance_id, str(g["name"]), str(g["id"]) if g.get("id") else None)
        for g in spec.get("hierarchy_groups") or []
    }
    names: dict[str, str] = {}
    for profile in spec.get("security_profiles") or []:
        _check_keys("security profile", profile, _PROFILE_KEYS)
        approved = sorted(str(p) for p in profile.get("permissions") or [])
        current = profile.get("current_permissions")
        name = str(profile["name"])
        access = dict(profile.get("access") or {})
        now = access | dict(profile.get("current_access") or {})
        for spec_access in (access, now):
            _check_keys("security profile access", spec_access, _ACCESS_KEYS)
        record = {"name": name, "permissions": approved, "access": access}
        if profile.get("deleted"):  # approved, then deleted: in the baseline only
            seeded.baseline["profiles"][str(profile["id"])] = record
            continue
        profile_id = fake.add_security_profile(
            instance_id,
            name,
            approved if current is None else [str(p) for p in current],
            profile_id=str(profile["id"]) if profile.get("id") else None,
            applications=now.get("Applications") or (),
            access={k: v for k, v in now.items() if k != "Applications"},
        )
        names[name] = profile_id
        if profile.get("in_baseline", True):
            seeded.baseline["profiles"][profile_id] = record

    def resolve(user: str, profile_names: Iterable[Any]) -> list[str]:
        unknown = [str(n) for n in profile_names if str(n) not in names]
        if unknown:
            raise ValueError(f"user {user}: no security profiles {unknown} in instance {instance_id}")
        return sorted({names[str(n)] for n in profile_names})

    for user in spec.get("users") or []:
        _check_keys("user", user, _USER_KEYS)
        username = str(user["username"])
        approved = resolve(username, user.get("security_profiles") or [])
        current = user.get("current_security_profiles")
        identity = {
            "FirstName": str(user.get("first_name", "")),
            "LastName": str(user.get("last_name", "")),
            "Email": str(user.get("email", "")),
            "SecondaryEmail": str(user.get("secondary_email", "")),
        }
        group = groups[str(user["hierarchy_group"])] if user.get("hierarchy_group") else ""
        tags = {str(k): str(v) for k, v in (user.get("tags") or {}).items()}
        now = {**identity, **{str(k): str(v) for k, v in (user.get("current_identity") or {}).items()}}
        now_group = group
        if "current_hierarchy_group" in user:
            now_group = groups[str(user["current_hierarchy_group"])] if user["current_hierarchy_group"] else ""
        now_tags = (
            tags if user.get("current_tags") is None else {str(k): str(v) for k, v in user["current_tags"].items()}
        )
        user_id = fake.add_user(
            instance_id,
            username,
            approved if current is None else resolve(username, current),
            user_id=str(user["id"]) if user.get("id") else None,
            first_name=now["FirstName"],
            last_name=now["LastName"],
            email=now["Email"] or None,
            secondary_email=now["SecondaryEmail"] or None,
            hierarchy_group_id=now_group or None,
            tags=now_tags,
        )
        if user.get("in_baseline", True):
            seeded.baseline["users"][user_id] = {
                "username": username,
                "security_profile_ids": approved,
                "identity": identity,
                "hierarchy_group_id": group,
                "tags": tags,
            }
    for entry in spec.get("storage") or []:
        _seed_storage(fake, seeded, entry)
    return seeded


def _seed_storage(fake: ConnectFake, seeded: SeededInstance, entry: Mapping[str, Any]) -> None:
    """One storage config: associated as approved (recorded in seeded.storage unless in_baseline is
    false), then as `current` leaves it: other settings, or `disassociated`."""
    _check_keys("storage config", entry, _STORAGE_KEYS)
    kind = str(entry["resource_type"])
    values = {k: entry[k] for k in STORAGE_SETTINGS if k in entry}
    approved = StorageConfig(kind, **values)
    association = fake.add_storage_config(seeded.instance_id, kind, _checked_storage(kind, approved.to_api()))
    if entry.get("in_baseline", True):
        seeded.storage.append(StorageConfig.from_api(kind, {**approved.to_api(), "AssociationId": association}))
    current = entry.get("current")
    if current is None:
        return
    instance = fake._instances[seeded.instance_id]
    if current == "disassociated":
        del instance.storage[association]
        return
    _check_keys("current storage config", current, set(STORAGE_SETTINGS))
    now = StorageConfig(kind, **{**values, **current})
    instance.storage[association]["StorageConfig"] = {
        "AssociationId": association,
        **_checked_storage(kind, now.to_api()),
    }
