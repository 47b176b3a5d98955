"""IAM Identity Center revocation: a person's permission-set sessions denied by a prepared deny-list SCP.

IAM refuses any change to an `AWSReservedSSO_*` role (only AWS may modify it), so an Identity
Center session cannot be quarantined in IAM. AWS documents two ways to stop a person's active
sessions: a deny on `identitystore:userId` in the permission set's inline policy (then
provisioning), or a deny-list SCP. The suite uses the SCP: it binds the person in every member
account and under every permission set at once (an inline deny binds one permission set, and the
person may hold others), takes effect without provisioning, and `organizations:UpdatePolicy` on
one SCP grants nothing (an SCP only limits), whereas `sso:PutInlinePolicyToPermissionSet` could
grant anyone anything. SCPs do not bind the organization's management account: a finding there
says so.

The SCP is prepared by the operator (attached to the organization root, or to the OUs holding the
Connect accounts) with the suite's one statement, recognised by Sid *and* content: `Deny * on *`
when `identitystore:userId` equals one of the listed IDs. With nobody listed it names NOBODY, an
ID no user has (an SCP needs a statement, and AWS's documented template starts so). Any other
statement is the operator's and is left as it is. Organizations has no conditional write, so every update is
read back: a concurrent update that dropped the ID is retried.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from connect_guard.aws_errors import transient
from connect_guard.findings import Action

DENY_SID = "ConnectGuardDenyIdentityCenterUsers"
NOBODY = "00000000-0000-0000-0000-000000000000"
CONDITION_KEY = "identitystore:userId"
# Organizations' limit for an SCP document (characters, whitespace included): written compact.
SCP_MAX_CHARACTERS = 5120
# Identity Center role names: AWSReservedSSO_<permission set name>_<16 hex digits>.
SSO_ROLE = re.compile(r"^AWSReservedSSO_(?P<permission_set>[\w+=,.@-]+)_[0-9a-f]{16}$")
_USER_ID = re.compile(r"^([0-9a-f]{10}-)?[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$")
_WRITE_ATTEMPTS = 3


class RevocationError(Exception):
    """The revocation cannot be made (the reason is the message): alert CRITICAL, act by hand."""


class LostUpdateError(Exception):
    """A concurrent update of the SCP dropped the ID after every attempt: retried by redelivery."""


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


@dataclass(frozen=True)
class DenyList:
    """The SCP as read: its document, the IDs the suite's statement denies, what was wrong with it."""

    policy_arn: str
    management_account: str
    document: dict[str, Any]
    user_ids: tuple[str, ...]
    problem: str | None  # the suite's statement was altered: rewritten in its own shape

    def with_users(self, user_ids: list[str]) -> str:
        """The document with the suite's statement denying exactly `user_ids`, compact."""
        statements = [s for s in _statements(self.document) if not (isinstance(s, dict) and s.get("Sid") == DENY_SID)]
        statements.append(deny_statement(user_ids))
        return json.dumps({**self.document, "Statement": statements}, separators=(",", ":"))


def deny_statement(user_ids: list[str]) -> dict[str, Any]:
    return {
        "Sid": DENY_SID,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringEquals": {CONDITION_KEY: sorted(set(user_ids)) or [NOBODY]}},
    }


def _statements(document: dict[str, Any]) -> list[Any]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _denied_ids(statement: Any) -> tuple[tuple[str, ...], str | None]:
    """The IDs the suite's statement denies, and what is wrong with it (None: exactly its shape)."""
    if not isinstance(statement, dict):
        return (), "is not a statement"
    condition = statement.get("Condition")
    values = condition.get("StringEquals", {}).get(CONDITION_KEY) if isinstance(condition, dict) else None
    values = [values] if isinstance(values, str) else values
    valid = [v for v in values or () if isinstance(v, str) and _USER_ID.match(v)]
    ids = tuple(v for v in valid if v != NOBODY)
    shape_ok = (
        set(statement) == {"Sid", "Effect", "Action", "Resource", "Condition"}
        and statement.get("Effect") == "Deny"
        and statement.get("Action") in ("*", ["*"])
        and statement.get("Resource") in ("*", ["*"])
        and isinstance(condition, dict)
        and set(condition) == {"StringEquals"}
        and set(condition["StringEquals"]) == {CONDITION_KEY}
        and values is not None
        and len(valid) == len(values)
    )
    return ids, None if shape_ok else "no longer denies everything to exactly the listed users"


class IdentityCenterRevocation:
    """Deny, and release, Identity Center users through the deny-list SCP (one account's clients)."""

    def __init__(self, organizations: Any, identitystore: Any, identity_store_id: str, policy_id: str) -> None:
        self.organizations = organizations
        self.identitystore = identitystore
        self.identity_store_id = identity_store_id
        self.policy_id = policy_id

    def user_id(self, user_name: str) -> str:
        """The identity store's ID for the user the session names (its user name)."""
        try:
            return str(
                self.identitystore.get_user_id(
                    IdentityStoreId=self.identity_store_id,
                    AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user_name}},
                )["UserId"]
            )
        except ClientError as error:
            if transient(error):
                raise
            raise RevocationError(
                f"user {user_name!r} not found in identity store {self.identity_store_id} ({_code(error)})"
            ) from error

    def read(self) -> DenyList:
        try:
            policy = self.organizations.describe_policy(PolicyId=self.policy_id)["Policy"]
            targets = self.organizations.list_targets_for_policy(PolicyId=self.policy_id)["Targets"]
        except ClientError as error:
            if transient(error):
                raise
            raise RevocationError(f"the deny-list SCP {self.policy_id} could not be read ({_code(error)})") from error
        summary = policy["PolicySummary"]
        if summary.get("Type") != "SERVICE_CONTROL_POLICY":
            raise RevocationError(f"{self.policy_id} is a {summary.get('Type')}, not a service control policy")
        if not targets:
            raise RevocationError(f"the deny-list SCP {self.policy_id} is attached to nothing: it would bind no one")
        try:
            document = json.loads(policy["Content"])
        except json.JSONDecodeError as error:
            raise RevocationError(f"the deny-list SCP {self.policy_id} is not a JSON document") from error
        if not isinstance(document, dict):
            raise RevocationError(f"the deny-list SCP {self.policy_id} is not a policy document")
        ours = [s for s in _statements(document) if isinstance(s, dict) and s.get("Sid") == DENY_SID]
        ids: list[str] = []
        problems = [] if ours else [f"had no {DENY_SID} statement"]
        for statement in ours:
            found, problem = _denied_ids(statement)
            ids += found
            if problem:
                problems.append(f"its {DENY_SID} statement {problem}")
        if len(ours) > 1:
            problems.append(f"it held {len(ours)} statements named {DENY_SID}")
        arn = str(summary["Arn"])
        return DenyList(
            policy_arn=arn,
            management_account=arn.split(":")[4],
            document=document,
            user_ids=tuple(dict.fromkeys(ids)),
            problem="; ".join(problems) or None,
        )

    def plan(self, user_id: str | None, user_name: str) -> Action:
        return Action(
            "organizations",
            "UpdatePolicy",
            {"PolicyId": self.policy_id, "DenyUserId": user_id or "(looked up in enforce mode)", "UserName": user_name},
            "proposed",
        )

    def deny(
        self, user_id: str, user_name: str, before_write: Callable[[], None] | None = None
    ) -> tuple[Action | None, DenyList]:
        """Add the user to the deny-list (read, write, read back). None: already denied, nothing written.

        `before_write` runs once, right before the first write (the responder journals it there).
        """
        return self._update(user_id, user_name, add=True, before_write=before_write)

    def allow(self, user_id: str, user_name: str) -> tuple[Action | None, DenyList]:
        """Remove the user from the deny-list (a release)."""
        return self._update(user_id, user_name, add=False)

    def _update(
        self, user_id: str, user_name: str, *, add: bool, before_write: Callable[[], None] | None = None
    ) -> tuple[Action | None, DenyList]:
        for _ in range(_WRITE_ATTEMPTS):
            current = self.read()
            listed = user_id in current.user_ids
            if listed == add and current.problem is None:
                return None, current
            wanted = [u for u in current.user_ids if u != user_id] + ([user_id] if add else [])
            content = current.with_users(wanted)
            if len(content) > SCP_MAX_CHARACTERS:
                raise RevocationError(
                    f"the deny-list SCP {self.policy_id} would exceed {SCP_MAX_CHARACTERS} characters with "
                    f"{len(wanted)} users: release users who no longer need denying, or prepare a second SCP"
                )
            parameters = {"PolicyId": self.policy_id, "UserId": user_id, "UserName": user_name}
            if before_write is not None:
                before_write()
                before_write = None
            try:
                self.organizations.update_policy(PolicyId=self.policy_id, Content=content)
            except ClientError as error:
                if transient(error):
                    raise
                failed = {**parameters, "error": f"{_code(error)}: {error.response['Error'].get('Message', '')}"}
                return Action("organizations", "UpdatePolicy", failed, "failed"), current
            after = self.read()
            if (user_id in after.user_ids) == add:  # what was wrong before stays told
                return Action("organizations", "UpdatePolicy", parameters, "taken"), replace(
                    after, problem=current.problem
                )
        raise LostUpdateError(f"concurrent updates of the deny-list SCP {self.policy_id} kept dropping {user_id}")


# ---- Permission sets: what a set grants, read through sso-admin (connect_guard.responders.permission_sets) ----


class PermissionSetUnreadableError(Exception):
    """The permission set could not be read (the reason is the message): alert HIGH, never lower."""


@dataclass(frozen=True)
class PolicyReference:
    """A customer managed policy a permission set names: the policy of that path and name in
    each account the set is provisioned to, which may differ from account to account."""

    name: str
    path: str = "/"

    def arn(self, partition: str, account_id: str) -> str:
        return f"arn:{partition}:iam::{account_id}:policy{self.path}{self.name}"

    @property
    def shown(self) -> str:
        return f"{self.path}{self.name}"


@dataclass(frozen=True)
class PermissionSetContents:
    """The policies a permission set grants, as sso-admin returns them (its boundary is not read:
    a boundary only limits, and the severity is the set's grants read conservatively)."""

    arn: str
    managed_policy_arns: tuple[str, ...]
    inline_policy: str | None
    customer_managed: tuple[PolicyReference, ...]


class PermissionSetReader:
    """One Identity Center instance's permission sets, read with an sso-admin client of the
    account that administers it: three reads a set (its managed policies, its inline policy,
    its customer managed policy references)."""

    def __init__(self, sso_admin: Any) -> None:
        self.sso_admin = sso_admin

    def read(self, instance_arn: str, permission_set_arn: str) -> PermissionSetContents:
        keys = {"InstanceArn": instance_arn, "PermissionSetArn": permission_set_arn}
        try:
            managed = self._pages("list_managed_policies_in_permission_set", "AttachedManagedPolicies", keys)
            inline = self.sso_admin.get_inline_policy_for_permission_set(**keys).get("InlinePolicy") or None
            references = self._pages(
                "list_customer_managed_policy_references_in_permission_set", "CustomerManagedPolicyReferences", keys
            )
        except ClientError as error:
            if transient(error):
                raise  # throttling, 5xx: SQS retries the event
            # Access denied, no such set, a malformed ARN: the finding says so (fail closed).
            raise PermissionSetUnreadableError(f"sso-admin {_code(error)} reading {permission_set_arn}") from error
        return PermissionSetContents(
            arn=permission_set_arn,
            managed_policy_arns=tuple(str(p["Arn"]) for p in managed),
            inline_policy=inline,
            customer_managed=tuple(PolicyReference(str(r["Name"]), str(r.get("Path") or "/")) for r in references),
        )

    def _pages(self, operation: str, key: str, keys: dict[str, str]) -> list[dict[str, Any]]:
        # A set holds at most 20 managed policies and references together: one page in practice.
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = getattr(self.sso_admin, operation)(**keys, **({"NextToken": token} if token else {}))
            items += page.get(key) or []
            token = page.get("NextToken")
            if not token:
                return items
