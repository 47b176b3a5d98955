"""IAM adapter for quarantines, and snapshots of protected roles.

A quarantined IAM user gets the stack's quarantine policy (an explicit deny of every action,
`connect:*` included) and a tag naming the reason and eventID. An assumed role gets an inline
deny on every session issued before a cut-off (`aws:TokenIssueTime`), which is how AWS revokes
active sessions: it affects every session of that role, the attacker's included.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from connect_guard.findings import Action

REVOKE_POLICY_NAME = "connect-guard-revoke-sessions"
QUARANTINE_TAG = "connect-guard:quarantined"
REASON_TAG = "connect-guard:quarantine-reason"


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def revoke_document(cutoff: datetime) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectGuardRevokeOlderSessions",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")}},
            }
        ],
    }


class QuarantineIam:
    """Quarantine and release principals in one account (own credentials or the member role)."""

    def __init__(self, iam: Any, account_id: str, policy_name: str, partition: str = "aws") -> None:
        self.client = iam
        self.account_id = account_id
        self.policy_arn = f"arn:{partition}:iam::{account_id}:policy/connect-guard/{policy_name}"

    # -- state ----------------------------------------------------------------------------
    def user_quarantined(self, user: str) -> bool:
        attached = self.client.list_attached_user_policies(UserName=user)["AttachedPolicies"]
        return any(p["PolicyArn"] == self.policy_arn for p in attached)

    def role_revoked_since(self, role: str, cutoff: datetime) -> bool:
        """True when a revocation already covers sessions issued before `cutoff`."""
        try:
            document = self.client.get_role_policy(RoleName=role, PolicyName=REVOKE_POLICY_NAME)["PolicyDocument"]
        except ClientError as error:
            if _code(error) == "NoSuchEntity":
                return False
            raise
        if isinstance(document, str):
            document = json.loads(unquote(document))
        existing = document["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        return bool(existing >= cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"))

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

    def role_actions(self, role: str, cutoff: datetime, reason: str, event_id: str) -> list[Action]:
        document = json.dumps(revoke_document(cutoff), separators=(",", ":"))
        return [
            Action(
                "iam",
                "PutRolePolicy",
                {"RoleName": role, "PolicyName": REVOKE_POLICY_NAME, "PolicyDocument": document},
                "proposed",
            ),
            Action("iam", "TagRole", {"RoleName": role, "Tags": _tags(reason, event_id)}, "proposed"),
        ]

    def release_actions(self, user: str | None = None, role: str | None = None) -> list[Action]:
        keys = [QUARANTINE_TAG, REASON_TAG]
        if user:
            return [
                Action("iam", "DetachUserPolicy", {"UserName": user, "PolicyArn": self.policy_arn}, "proposed"),
                Action("iam", "UntagUser", {"UserName": user, "TagKeys": keys}, "proposed"),
            ]
        return [
            Action("iam", "DeleteRolePolicy", {"RoleName": role, "PolicyName": REVOKE_POLICY_NAME}, "proposed"),
            Action("iam", "UntagRole", {"RoleName": role, "TagKeys": keys}, "proposed"),
        ]

    # -- act --------------------------------------------------------------------------------
    def execute(self, actions: list[Action]) -> list[Action]:
        """Run each action; a refusal that retrying cannot fix is recorded as failed, not raised."""
        done = []
        for action in actions:
            method = "".join("_" + c.lower() if c.isupper() else c for c in action.operation).lstrip("_")
            try:
                getattr(self.client, method)(**action.parameters)
                done.append(Action(action.service, action.operation, action.parameters, "taken"))
            except ClientError as error:
                if _code(error) in ("Throttling", "ServiceFailure", "InternalFailure"):
                    raise
                failed = {**action.parameters, "error": f"{_code(error)}: {error.response['Error'].get('Message', '')}"}
                done.append(Action(action.service, action.operation, failed, "failed"))
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


def take_snapshot(iam: Any, account_id: str, role_name: str) -> RoleSnapshot:
    role = iam.get_role(RoleName=role_name)["Role"]
    managed = []
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        managed += [p["PolicyArn"] for p in page["AttachedPolicies"]]
    inline = {}
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            if name != REVOKE_POLICY_NAME:  # our own quarantine is not part of the role
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
        tags={k: v for k, v in tags.items() if not k.startswith("connect-guard:quarantine")},
        description=role.get("Description", ""),
        max_session_duration=int(role.get("MaxSessionDuration", 3600)),
        taken_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


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
