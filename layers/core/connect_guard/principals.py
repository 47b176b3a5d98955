"""Who made a call: the actor as a SOC analyst reads it, and the suite's safety checks on it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from connect_guard import arn_patterns
from connect_guard.events import CloudTrailRecord
from connect_guard.settings import (
    MEMBER_PURPOSES,
    SUITE_ROLES,
    WRITE_PURPOSES,
    Settings,
    member_role_name,
    suite_role_name,
)


@dataclass(frozen=True)
class Actor:
    arn: str | None
    type: str | None
    account_id: str | None
    principal_id: str | None
    session_issuer_arn: str | None
    session_issuer_id: str | None
    session_name: str | None
    source_identity: str | None
    source_ip: str | None
    user_agent: str | None
    mfa_authenticated: bool | None
    invoked_by: str | None
    console_session: bool | None

    @classmethod
    def from_record(cls, record: CloudTrailRecord) -> Actor:
        identity = record.user_identity
        return cls(
            arn=identity.arn,
            type=identity.type,
            account_id=identity.account_id,
            principal_id=identity.principal_id,
            session_issuer_arn=identity.session_issuer_arn,
            session_issuer_id=identity.session_issuer_principal_id,
            session_name=identity.session_name,
            source_identity=identity.source_identity,
            source_ip=record.source_ip_address,
            user_agent=record.user_agent,
            mfa_authenticated=identity.mfa_authenticated,
            invoked_by=identity.invoked_by,
            console_session=record.session_credential_from_console,
        )

    @classmethod
    def system(cls, name: str) -> Actor:
        """No CloudTrail actor: a finding of the suite's own scheduled checks."""
        return cls(None, "connect-guard", None, None, None, None, None, None, None, None, None, name, None)

    @property
    def display(self) -> str:
        """Short human name: the person behind a session where CloudTrail tells it."""
        if self.type == "Root":
            return f"root user of {self.account_id}"
        if self.type == "AssumedRole" and self.session_issuer_arn:
            role = self.session_issuer_arn.rsplit("/", 1)[-1]
            who = self.source_identity or self.session_name
            return f"{who} via role {role}" if who else f"role {role}"
        if self.arn:
            return self.arn.rsplit("/", 1)[-1] if "/" in self.arn else self.arn
        return self.invoked_by or self.principal_id or "unknown principal"


# The AWS service principals whose calls a responder may leave alone, each for a stated reason.
# `invokedBy` is a plain string in the record: any other value (`attacker.example.com`,
# `evil.amazonaws.com`), and the AWSService identity type by itself, exempt nothing.
CLOUDFORMATION = "cloudformation.amazonaws.com"
CONNECT_REPLICATION = "synchronization.connect.amazonaws.com"
EXEMPT_SERVICES: dict[str, str] = {
    # A stack operation: the stack's service role (or its deployer) acts through CloudFormation;
    # revoking it mid-deployment is the SOC's call, so the alert stays and the quarantine waits.
    CLOUDFORMATION: "a CloudFormation stack operation; the SOC decides on the stack's role",
    # Global Resiliency replays, in the replica region, a change already assessed in its source region.
    CONNECT_REPLICATION: "Amazon Connect Global Resiliency replication of a change assessed in its source region",
}


def exempt_service(actor: Actor, honoured: Collection[str]) -> str | None:
    """The AWS service that made the call, when it is one of `honoured` (all in EXEMPT_SERVICES)."""
    service = actor.invoked_by
    if service is None or service not in honoured or service not in EXEMPT_SERVICES:
        return None
    return service


def is_suite_principal(actor: Actor, settings: Settings) -> bool:
    """The suite's own writing roles, recognised by exact identity only.

    In the security account: the session issuer's exact ARN, and its unique ID (which a role
    deleted and re-created under the same name does not keep). In an enrolled source account:
    the exact ARN of a member-stack write role. A path, a name pattern or a session name proves
    nothing: whoever creates or assumes a role chooses them.
    """
    issuer = actor.session_issuer_arn
    if actor.type != "AssumedRole" or not issuer:
        return False
    if issuer in settings.suite_role_arns:
        return not settings.suite_role_ids or actor.session_issuer_id in settings.suite_role_ids
    account = issuer.split(":")[4] if issuer.count(":") >= 5 else ""
    if account == settings.own_account_id or account not in settings.member_account_ids:
        return False
    return issuer in {settings.member_role_arn(account, purpose) for purpose in WRITE_PURPOSES}


def is_suite_deployment(actor: Actor, settings: Settings) -> bool:
    """CloudFormation deploying the suite's stack: through cloudformation.amazonaws.com, with the
    exact service role the operator named (ARN and unique ID). The same name on another path or
    in another account, or the role re-created (a new unique ID), is not it."""
    if not settings.suite_deploy_role_arn or exempt_service(actor, {CLOUDFORMATION}) is None:
        return False
    return (
        actor.type == "AssumedRole"
        and actor.session_issuer_arn == settings.suite_deploy_role_arn
        and actor.session_issuer_id == settings.suite_deploy_role_id
    )


def suite_role(account_id: str | None, role_name: str | None, settings: Settings) -> bool:
    """Whether a role is one of the suite's own (its stack's, or a member stack's in an enrolled
    account). These are protected like Connect's roles: whoever changes them can blind the suite."""
    if not account_id or not role_name:
        return False
    env, name = settings.environment, role_name.lower()
    names: set[str] = set()
    if account_id == settings.own_account_id:
        # The forward role (a member stack here) and the canary role (the security stack's own).
        names |= {suite_role_name(env, control) for control in SUITE_ROLES} | {
            member_role_name(env, "forward"),
            member_role_name(env, "canary"),
        }
    if account_id in settings.member_account_ids:
        names |= {member_role_name(env, purpose) for purpose in MEMBER_PURPOSES}
    return name in {n.lower() for n in names}


def principal_arn(actor: Actor) -> str | None:
    """The IAM ARN a pattern may name: an IAM user's, or the role behind a session (never the
    session's own ARN, whose name the caller chooses). Root, services and federated users: none."""
    if actor.type == "IAMUser":
        return actor.arn
    if actor.type == "AssumedRole":
        return actor.session_issuer_arn
    return None


def allowlist_match(actor: Actor, patterns: tuple[str, ...]) -> str | None:
    """The entry (validated by Settings, see connect_guard.arn_patterns) this actor matches.

    A role ARN covers every session of that role; a session ARN or session name matches nothing.
    """
    arn = principal_arn(actor)
    if not arn:
        return None
    return next((p for p in patterns if arn_patterns.matches(p, arn)), None)
