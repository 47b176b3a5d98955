"""IAM adapter for quarantines, and snapshots of protected roles.

A quarantined IAM user or role gets the stack's quarantine policy attached (a fixed managed
policy denying every action, `connect:*` included) and tags naming the reason and eventID. On a
role the deny binds every session, current and new, until the policy is detached: stronger than
revoking the sessions issued so far, which the attacker undoes by assuming the role again. No
inline policy is ever written: `iam:PutRolePolicy` on any role would let the suite grant anything.
Before it is attached, the policy's default version is read and compared with the deny-all: a
policy that now allows something is reported, never attached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from connect_guard.aws_errors import transient
from connect_guard.errors import PoisonEventError
from connect_guard.findings import Action
from connect_guard.policy import parse_document

QUARANTINE_TAG = "connect-guard:quarantined"
REASON_TAG = "connect-guard:quarantine-reason"
# The only tag keys the suite writes: the templates' tag statements allow exactly these
# (aws:TagKeys), so the protected-role tag key is never the suite's to set or remove.
SUITE_TAG_KEYS = (QUARANTINE_TAG, REASON_TAG)
ATTACH_OPERATIONS = {"AttachUserPolicy", "AttachRolePolicy"}
# Statement keys the deny-all may carry; any other (Condition, NotAction, NotResource,
# Principal) narrows the deny.
_DENY_ALL_KEYS = {"Sid", "Effect", "Action", "Resource"}


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def _is_everything(value: object) -> bool:
    return value in ("*", ["*"])


def deny_all_deviation(document: str | dict[str, Any]) -> str | None:
    """None when `document` is the quarantine policy's deny-all; else what it says instead."""
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document))
        except json.JSONDecodeError:
            return "is not a JSON policy document"
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if isinstance(statements, list) and len(statements) == 1:
        (only,) = statements
        if (
            isinstance(only, dict)
            and set(only) <= _DENY_ALL_KEYS
            and only.get("Effect") == "Deny"
            and _is_everything(only.get("Action"))
            and _is_everything(only.get("Resource"))
        ):
            return None
    try:
        parsed = parse_document(document)
    except (ValueError, PoisonEventError) as error:  # the event is fine: the policy is not
        return f"is not a valid policy ({error})"
    allowed = [s.describe().removeprefix("Allow ") for s in parsed if s.effect == "Allow"]
    if allowed:
        return "allows " + "; ".join(allowed[:5])
    return "no longer denies everything: " + "; ".join(s.describe() for s in parsed[:5])


@dataclass(frozen=True)
class PolicyCheck:
    """Whether the quarantine policy may be attached; `problem` says why not."""

    problem: str | None = None
    tampered: bool = False  # missing or altered: an incident in itself, not a configuration gap


class VerifiedPolicies:
    """Successful checks of the quarantine policy, per account, kept for a few minutes.

    Keyed on the policy's unique ID and default version: a tampering always changes one of
    them (a new default version, SetDefaultPolicyVersion, or delete and re-create), and IAM
    policy versions are immutable, so a cached pass never covers a tampered document. GetPolicy
    is still called for every quarantine (it yields the key); what a burst saves is one
    GetPolicyVersion each. The TTL bounds how long a container trusts its own earlier read.
    """

    def __init__(self, ttl_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._until: dict[tuple[str, str, str], float] = {}

    def fresh(self, key: tuple[str, str, str]) -> bool:
        return self._until.get(key, 0.0) > self._clock()

    def remember(self, key: tuple[str, str, str]) -> None:
        self._until[key] = self._clock() + self._ttl


class QuarantineIam:
    """Quarantine and release principals in one account (own credentials or a member role)."""

    def __init__(self, iam: Any, account_id: str, policy_name: str, partition: str = "aws") -> None:
        self.client = iam
        self.account_id = account_id
        self.policy_arn = f"arn:{partition}:iam::{account_id}:policy/connect-guard/{policy_name}"

    # -- state ----------------------------------------------------------------------------
    def user_quarantined(self, user: str) -> bool:
        attached = self.client.list_attached_user_policies(UserName=user)["AttachedPolicies"]
        return any(p["PolicyArn"] == self.policy_arn for p in attached)

    def role_quarantined(self, role: str) -> bool:
        attached = self.client.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        return any(p["PolicyArn"] == self.policy_arn for p in attached)

    def quarantined(self, kind: str, name: str) -> bool:
        """Whether the quarantine policy is attached to the user or role (NoSuchEntity: it is gone)."""
        return self.user_quarantined(name) if kind == "user" else self.role_quarantined(name)

    def check_policy(self, verified: VerifiedPolicies) -> PolicyCheck:
        """Read the quarantine policy's default version and compare it with the deny-all."""
        arn = self.policy_arn
        try:
            policy = self.client.get_policy(PolicyArn=arn)["Policy"]
            key = (self.account_id, policy["PolicyId"], policy["DefaultVersionId"])
            if verified.fresh(key):
                return PolicyCheck()
            version = self.client.get_policy_version(PolicyArn=arn, VersionId=key[2])["PolicyVersion"]
        except ClientError as error:
            if transient(error):
                raise
            if _code(error) == "NoSuchEntity":
                return PolicyCheck(f"the quarantine policy {arn} is missing", tampered=True)
            return PolicyCheck(f"the quarantine policy {arn} could not be read ({_code(error)})")
        deviation = deny_all_deviation(version["Document"])
        if deviation is None:
            verified.remember(key)
            return PolicyCheck()
        return PolicyCheck(
            f"the quarantine policy {arn} was tampered with: its default version {key[2]} {deviation}",
            tampered=True,
        )

    def role_tags(self, role: str) -> dict[str, str] | None:
        """The role's tags, or None when the role no longer exists."""
        try:
            tags = self.client.list_role_tags(RoleName=role)["Tags"]
        except ClientError as error:
            if _code(error) == "NoSuchEntity":
                return None
            raise
        return {t["Key"]: t["Value"] for t in tags}

    # -- plans (what would be done) ---------------------------------------------------------
    def user_actions(self, user: str, reason: str, event_id: str, deactivate_keys: bool) -> list[Action]:
        actions = [
            Action("iam", "AttachUserPolicy", {"UserName": user, "PolicyArn": self.policy_arn}, "proposed"),
            Action("iam", "TagUser", {"UserName": user, "Tags": _tags(reason, event_id)}, "proposed"),
        ]
        if deactivate_keys:
            for key in self.client.list_access_keys(UserName=user)["AccessKeyMetadata"]:
                if key["Status"] == "Active":
                    parameters = {"UserName": user, "AccessKeyId": key["AccessKeyId"], "Status": "Inactive"}
                    actions.append(Action("iam", "UpdateAccessKey", parameters, "proposed"))
        return actions

    def plan(self, kind: str, name: str, reason: str, event_id: str, deactivate_keys: bool) -> list[Action]:
        if kind == "user":
            return self.user_actions(name, reason, event_id, deactivate_keys)
        return self.role_actions(name, reason, event_id)

    def role_actions(self, role: str, reason: str, event_id: str) -> list[Action]:
        return [
            Action("iam", "AttachRolePolicy", {"RoleName": role, "PolicyArn": self.policy_arn}, "proposed"),
            Action("iam", "TagRole", {"RoleName": role, "Tags": _tags(reason, event_id)}, "proposed"),
        ]

    def release_actions(self, user: str | None = None, role: str | None = None) -> list[Action]:
        keys = list(SUITE_TAG_KEYS)
        if user:
            return [
                Action("iam", "DetachUserPolicy", {"UserName": user, "PolicyArn": self.policy_arn}, "proposed"),
                Action("iam", "UntagUser", {"UserName": user, "TagKeys": keys}, "proposed"),
            ]
        return [
            Action("iam", "DetachRolePolicy", {"RoleName": role, "PolicyArn": self.policy_arn}, "proposed"),
            Action("iam", "UntagRole", {"RoleName": role, "TagKeys": keys}, "proposed"),
        ]

    # -- act --------------------------------------------------------------------------------
    def execute(self, actions: list[Action]) -> list[Action]:
        """Run each action; a refusal that retrying cannot fix is recorded as failed, not raised.

        A passing refusal (5xx, throttling: connect_guard.aws_errors) raises, so the event is
        delivered again; the retry re-reads what is attached before reporting anything. When the
        attachment is refused for good (e.g. LimitExceeded: 10 managed policies already), the
        quarantine tags are not written: they would claim a quarantine that is not there.
        """
        done = []
        attach_failed = False
        for action in actions:
            if attach_failed and action.operation in ("TagUser", "TagRole"):
                continue
            method = "".join("_" + c.lower() if c.isupper() else c for c in action.operation).lstrip("_")
            try:
                getattr(self.client, method)(**action.parameters)
                done.append(Action(action.service, action.operation, action.parameters, "taken"))
            except ClientError as error:
                if transient(error):
                    raise
                failed = {**action.parameters, "error": f"{_code(error)}: {error.response['Error'].get('Message', '')}"}
                done.append(Action(action.service, action.operation, failed, "failed"))
                attach_failed = attach_failed or action.operation in ATTACH_OPERATIONS
        return done


def _tags(reason: str, event_id: str) -> list[dict[str, str]]:
    # IAM tag values: up to 256 characters of a restricted set.
    cleaned = "".join(c if c.isalnum() or c in " _.:/=+-@" else " " for c in reason)[:256]
    return [{"Key": QUARANTINE_TAG, "Value": event_id[:256]}, {"Key": REASON_TAG, "Value": cleaned}]


@dataclass(frozen=True)
class RoleSnapshot:
    """Enough to recreate a role: trust policy, path, policies and tags."""

    account_id: str
    role_name: str
    path: str
    arn: str
    trust_policy: dict[str, Any]
    managed_policies: tuple[str, ...] = ()
    inline_policies: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    max_session_duration: int = 3600
    taken_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["managed_policies"] = list(self.managed_policies)
        return body


def take_snapshot(iam: Any, account_id: str, role_name: str, *, quarantine_policy_arn: str) -> RoleSnapshot:
    """The role as it is, less our own quarantine (policy and tags): a restore must not re-apply it."""
    role = iam.get_role(RoleName=role_name)["Role"]
    managed = []
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        managed += [p["PolicyArn"] for p in page["AttachedPolicies"] if p["PolicyArn"] != quarantine_policy_arn]
    inline = {}
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            inline[name] = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role_name)["Tags"]}
    trust = role["AssumeRolePolicyDocument"]
    return RoleSnapshot(
        account_id=account_id,
        role_name=role_name,
        path=role.get("Path", "/"),
        arn=role["Arn"],
        trust_policy=json.loads(unquote(trust)) if isinstance(trust, str) else trust,
        managed_policies=tuple(sorted(managed)),
        inline_policies=inline,
        tags={k: v for k, v in tags.items() if k not in SUITE_TAG_KEYS},
        description=role.get("Description", ""),
        max_session_duration=int(role.get("MaxSessionDuration", 3600)),
        taken_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _account_of(principal: str) -> str | None:
    if principal.isdigit() and len(principal) == 12:
        return principal
    parts = principal.split(":")
    return parts[4] if principal.startswith("arn:") and len(parts) > 5 and parts[4] else None


def _org_bound(statement: dict[str, Any], organization_id: str | None) -> bool:
    """The statement admits only principals of `organization_id` (aws:PrincipalOrgID)."""
    if not organization_id:
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        if operator.removeprefix("ForAnyValue:") not in ("StringEquals", "StringEqualsIgnoreCase"):
            continue
        for key, values in keys.items():
            if key.lower() == "aws:principalorgid" and set(_as_list(values)) == {organization_id}:
                return True
    return False


def trust_principals(trust_policy: dict[str, Any]) -> list[str]:
    """Who the trust policy admits, as `Kind: principal` lines (Allow statements)."""
    found = []
    for statement in _as_list(trust_policy.get("Statement", [])):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        if "NotPrincipal" in statement:
            found.append(f"NotPrincipal: everyone but {json.dumps(statement['NotPrincipal'])}")
        principal = statement.get("Principal", {})
        entries = [("AWS", "*")] if principal == "*" else [(k, v) for k, vs in principal.items() for v in _as_list(vs)]
        found += [f"{kind}: {value}" for kind, value in entries]
    return found


def external_trust(trust_policy: dict[str, Any], trusted_accounts: set[str], organization_id: str | None) -> list[str]:
    """Principals the trust policy admits from outside `trusted_accounts` and the organization.

    AWS service principals are AWS's own. `*`, another account, a federation that is not an
    identity provider of a trusted account (e.g. accounts.google.com) and NotPrincipal are
    outside, unless the statement is bound to the organization by aws:PrincipalOrgID.
    """
    outside = []
    for statement in _as_list(trust_policy.get("Statement", [])):
        if (
            not isinstance(statement, dict)
            or statement.get("Effect") != "Allow"
            or _org_bound(statement, organization_id)
        ):
            continue
        if "NotPrincipal" in statement:
            outside.append(f"NotPrincipal: everyone but {json.dumps(statement['NotPrincipal'])}")
        principal = statement.get("Principal", {})
        entries = [("AWS", "*")] if principal == "*" else [(k, v) for k, vs in principal.items() for v in _as_list(vs)]
        for kind, value in entries:
            if kind == "Service" or _account_of(str(value)) in trusted_accounts:
                continue
            outside.append(f"{kind}: {value}")
    return outside


def restore_plan(snapshot: RoleSnapshot) -> list[str]:
    """What restore_role creates, line by line (shown before it runs)."""
    lines = [f"role {snapshot.path}{snapshot.role_name} in {snapshot.account_id} (snapshot {snapshot.taken_at})"]
    lines += [f"  trusts {p}" for p in trust_principals(snapshot.trust_policy)] or ["  trusts nobody"]
    lines += [f"  attaches {arn}" for arn in snapshot.managed_policies]
    lines += [f"  puts inline policy {name}" for name in snapshot.inline_policies]
    lines += [f"  tags {k}={v}" for k, v in snapshot.tags.items()]
    return lines


def restore_role(iam: Any, snapshot: RoleSnapshot) -> list[str]:
    """Recreate a deleted role from its snapshot; returns what was done, step by step."""
    steps = []
    if snapshot.path.startswith("/aws-service-role/"):
        service = snapshot.path.strip("/").split("/")[1]
        suffix = snapshot.role_name.split("_", 1)[1] if "_" in snapshot.role_name else None
        kwargs = {"AWSServiceName": service} | ({"CustomSuffix": suffix} if suffix else {})
        iam.create_service_linked_role(**kwargs)
        return [f"recreated service-linked role for {service} (its policies are managed by AWS)"]
    iam.create_role(
        Path=snapshot.path,
        RoleName=snapshot.role_name,
        AssumeRolePolicyDocument=json.dumps(snapshot.trust_policy),
        Description=snapshot.description,
        MaxSessionDuration=snapshot.max_session_duration,
        Tags=[{"Key": k, "Value": v} for k, v in snapshot.tags.items()],
    )
    steps.append(f"created role {snapshot.path}{snapshot.role_name}")
    for arn in snapshot.managed_policies:
        iam.attach_role_policy(RoleName=snapshot.role_name, PolicyArn=arn)
        steps.append(f"attached {arn}")
    for name, document in snapshot.inline_policies.items():
        body = document if isinstance(document, str) else json.dumps(document)
        iam.put_role_policy(RoleName=snapshot.role_name, PolicyName=name, PolicyDocument=body)
        steps.append(f"put inline policy {name}")
    return steps


class RoleSnapshots:
    """Last known snapshot of each protected role, in the baseline table (`roles#<account>`)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def put(self, snapshot: RoleSnapshot) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"roles#{snapshot.account_id}"},
                "sk": {"S": f"role#{snapshot.role_name}"},
                "snapshot": {"S": json.dumps(snapshot.to_dict(), default=str)},
            },
        )

    def get(self, account_id: str, role_name: str) -> RoleSnapshot | None:
        item = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"roles#{account_id}"}, "sk": {"S": f"role#{role_name}"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        body = json.loads(item["snapshot"]["S"])
        body["managed_policies"] = tuple(body.get("managed_policies", ()))
        return RoleSnapshot(**body)
