"""What an IAM policy document grants, and how much that should worry a SOC.

Understands wildcards in actions (`*`, `iam:*`, `iam:Put*`), `NotAction` (grants everything
it does not list) and `NotResource` (treated as any resource). Deny statements are not
subtracted: an alert that overstates a grant is safer than one that misses it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

from connect_guard.errors import PoisonEventError

# IAM's largest policy (a role's inline policies) is 10,240 characters; anything far beyond
# is not a real document, and analysing it would only burn the function's time.
MAX_DOCUMENT_CHARS = 65_536


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name


# Actions that let a principal raise its own privileges, whatever resource they name.
ESCALATION_ACTIONS = (
    "iam:AttachUserPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachGroupPolicy",
    "iam:PutUserPolicy",
    "iam:PutRolePolicy",
    "iam:PutGroupPolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:UpdateAssumeRolePolicy",
    "iam:AddUserToGroup",
)
# Escalation only when granted on every resource.
ESCALATION_ON_ANY_RESOURCE = ("iam:PassRole", "sts:AssumeRole")

# Write access to Amazon Connect: who may change users, profiles, flows, instances.
CONNECT_WRITE_ACTIONS = (
    "connect:UpdateUserSecurityProfiles",
    "connect:UpdateSecurityProfile",
    "connect:CreateSecurityProfile",
    "connect:DeleteSecurityProfile",
    "connect:CreateUser",
    "connect:DeleteUser",
    "connect:UpdateUserIdentityInfo",
    "connect:UpdateUserRoutingProfile",
    "connect:UpdateUserHierarchy",
    "connect:CreateInstance",
    "connect:DeleteInstance",
    "connect:UpdateInstanceAttribute",
    "connect:AssociateApprovedOrigin",
    "connect:AssociateLambdaFunction",
    "connect:UpdateContactFlowContent",
    "connect:CreateContactFlow",
    "connect:PutUserStatus",
    "connect:StartOutboundVoiceContact",
    "connect:TagResource",
)

# AWS managed policies whose grant is their name: no document read needed.
KNOWN_AWS_MANAGED = {
    "AdministratorAccess": (Severity.CRITICAL, "full administrator access (Action * on Resource *)"),
    "IAMFullAccess": (Severity.CRITICAL, "iam:* on every resource (can grant itself anything)"),
    "PowerUserAccess": (
        Severity.HIGH,
        "admin-grade: every service except IAM, Organizations and Account management",
    ),
    "AmazonConnect_FullAccess": (Severity.HIGH, "connect:* on every resource (full Amazon Connect admin)"),
}


EVERY_ACTION_EXCEPT = "every action except "
_READ_VERBS = ("get", "list", "describe", "search", "query", "scan", "batchget", "head", "view", "lookup")


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...]
    any_resource: bool
    conditional: bool

    def grants(self, action: str) -> bool:
        action = action.lower()
        if self.not_actions is not None:
            return not any(fnmatchcase(action, p.lower()) for p in self.not_actions)
        return any(fnmatchcase(action, p.lower()) for p in self.actions)

    def describe(self) -> str:
        verbs = (
            EVERY_ACTION_EXCEPT + _listed(self.not_actions) if self.not_actions is not None else _listed(self.actions)
        )
        where = "*" if self.any_resource else _listed(self.resources)
        suffix = " (with conditions)" if self.conditional else ""
        return f"{self.effect} {verbs} on {where}{suffix}"


def _listed(items: tuple[str, ...]) -> str:
    # Every item: a grant too large for SNS is summarised, riskiest first, when the finding is
    # fitted (connect_guard.publisher.fit), not cut here in document order.
    return ", ".join(items)


@dataclass
class Analysis:
    severity: Severity
    reasons: list[str] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)
    grants_total: int | None = None  # statements in the document; grants lists at most 20


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"expected a string or a list of strings, got {type(value).__name__}")


def parse_document(document: str | dict[str, Any]) -> list[Statement]:
    """Statements of a policy document given as JSON text (plain or URL-encoded) or a dict.

    Raises PoisonEventError for an oversized document, ValueError for one that is not a policy.
    """
    if isinstance(document, str):
        if len(document) > MAX_DOCUMENT_CHARS:
            raise PoisonEventError(
                f"policy document too large: {len(document):,} characters "
                f"(IAM allows at most 10,240; limit here {MAX_DOCUMENT_CHARS:,})"
            )
        text = document.strip()
        if text.startswith("%7B") or text.startswith("%7b"):
            text = unquote(text)
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"policy document is not JSON: {error.msg}") from error
    if not isinstance(document, dict):
        raise ValueError("policy document is not a JSON object")
    raw = document.get("Statement")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise ValueError("policy document has no Statement list")
    statements = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("policy statement is not an object")
        resources = _as_tuple(item.get("Resource"))
        not_actions = _as_tuple(item["NotAction"]) if "NotAction" in item else None
        statements.append(
            Statement(
                effect=str(item.get("Effect", "")),
                actions=_as_tuple(item.get("Action")),
                not_actions=not_actions,
                resources=resources,
                any_resource="NotResource" in item or "*" in resources,
                conditional=bool(item.get("Condition")),
            )
        )
    return statements


def analyse(statements: list[Statement]) -> Analysis:
    """Severity of a set of statements and the reasons a SOC analyst can check."""
    allows = [s for s in statements if s.effect == "Allow"]
    analysis = Analysis(Severity.MEDIUM, grants=[s.describe() for s in statements][:20], grants_total=len(statements))
    critical: list[str] = []
    for statement in allows:
        if statement.any_resource and statement.not_actions is None and "*" in statement.actions:
            critical.append("full administrator access (Action * on Resource *)")
        if statement.not_actions is None and any(p.lower() == "iam:*" for p in statement.actions):
            critical.append("iam:* (can grant itself anything)")
        escalations = [a for a in ESCALATION_ACTIONS if statement.grants(a)]
        if escalations:
            critical.append("IAM privilege escalation: " + ", ".join(escalations))
        if statement.any_resource:
            critical.extend(f"{a} on every resource" for a in ESCALATION_ON_ANY_RESOURCE if statement.grants(a))
    if critical:
        analysis.severity = Severity.CRITICAL
        analysis.reasons = list(dict.fromkeys(critical))
        return analysis
    # Kept in CONNECT_WRITE_ACTIONS order: identity and profile changes first.
    connect_writes = [a for a in CONNECT_WRITE_ACTIONS if any(s.grants(a) for s in allows)]
    if connect_writes:
        analysis.severity = Severity.HIGH
        shown = ", ".join(connect_writes[:5]) + (" …" if len(connect_writes) > 5 else "")
        analysis.reasons = [f"Amazon Connect write access: {shown}"]
        return analysis
    analysis.reasons = ["no administrator, IAM escalation or Connect write permissions"]
    return analysis


def action_risk(pattern: str) -> int:
    """0 (riskiest) to 4: escalation, Connect writes, service wildcards, other writes, reads."""
    p = pattern.lower()
    if p == "*" or any(fnmatchcase(a.lower(), p) for a in (*ESCALATION_ACTIONS, *ESCALATION_ON_ANY_RESOURCE)):
        return 0
    if any(fnmatchcase(a.lower(), p) for a in CONNECT_WRITE_ACTIONS):
        return 1
    verb = p.partition(":")[2]
    if verb.startswith("*"):
        return 2
    return 4 if verb.startswith(_READ_VERBS) else 3


def summarise_grant(grant: str, full_document: str, shown: int = 12) -> str:
    """A `Statement.describe()` line listing many actions, in a few hundred characters and always
    the same way: action and service counts, the riskiest actions first, the largest services."""
    effect, _, rest = grant.partition(" ")
    prefix = EVERY_ACTION_EXCEPT if rest.startswith(EVERY_ACTION_EXCEPT) else ""
    verbs, _, where = rest.removeprefix(prefix).partition(" on ")  # actions hold no spaces
    actions = [a for a in verbs.split(", ") if a]
    ranked = sorted(dict.fromkeys(actions), key=lambda a: (action_risk(a), a.lower()))
    services = Counter(a.partition(":")[0].lower() for a in actions)
    largest = sorted(services.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
    where = where if len(where) <= 300 else where[:300] + "…"
    more = len(ranked) - shown
    return (
        f"{effect} {prefix}{len(actions):,} actions in {len(services):,} services on {where}: "
        + ", ".join(ranked[:shown])
        + (f" … and {more:,} more (full document: {full_document})" if more > 0 else "")
        + "; per service: "
        + ", ".join(f"{service} {count:,}" for service, count in largest)
        + (" …" if len(services) > len(largest) else "")
    )


def known_aws_managed(policy_arn: str) -> tuple[Severity, str] | None:
    """Severity of an admin-grade AWS managed policy known by name."""
    if ":iam::aws:policy/" not in policy_arn:
        return None
    return KNOWN_AWS_MANAGED.get(policy_arn.rsplit("/", 1)[-1])
