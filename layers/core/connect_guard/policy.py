"""What an IAM policy document grants, and how much that should worry a SOC.

Understands wildcards in actions (`*`, `iam:*`, `iam:Put*`), `NotAction` (grants everything
it does not list) and `NotResource` (treated as any resource). Deny statements and
Conditions are not subtracted: an alert that overstates a grant is safer than one that misses
it. They are said instead: a grant that drives the severity and is conditioned, or overlapped by
a Deny of the same document, gets a reason line of its own for the SOC to weigh.
"""

from __future__ import annotations

import json
import re
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
    condition_keys: tuple[str, ...] = ()  # e.g. aws:MultiFactorAuthPresent, in document order

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
                condition_keys=_condition_keys(item.get("Condition")),
            )
        )
    return statements


def _condition_keys(condition: Any) -> tuple[str, ...]:
    """The keys a Condition block tests ({operator: {key: value}}), each once."""
    if not isinstance(condition, dict):
        return ()
    keys = (key for test in condition.values() if isinstance(test, dict) for key in test)
    return tuple(dict.fromkeys(str(key) for key in keys))


def analyse(statements: list[Statement]) -> Analysis:
    """Severity of a set of statements and the reasons a SOC analyst can check."""
    allows = [s for s in statements if s.effect == "Allow"]
    denies = [s for s in statements if s.effect == "Deny"]
    analysis = Analysis(Severity.MEDIUM, grants=[s.describe() for s in statements][:20], grants_total=len(statements))
    critical: list[str] = []
    drivers: list[Statement] = []  # the statements the severity rests on
    for statement in allows:
        found: list[str] = []
        if statement.any_resource and statement.not_actions is None and "*" in statement.actions:
            found.append("full administrator access (Action * on Resource *)")
        if statement.not_actions is None and any(p.lower() == "iam:*" for p in statement.actions):
            found.append("iam:* (can grant itself anything)")
        escalations = [a for a in ESCALATION_ACTIONS if statement.grants(a)]
        if escalations:
            found.append("IAM privilege escalation: " + ", ".join(escalations))
        if statement.any_resource:
            found.extend(f"{a} on every resource" for a in ESCALATION_ON_ANY_RESOURCE if statement.grants(a))
        if found:
            critical.extend(found)
            drivers.append(statement)
    if critical:
        analysis.severity = Severity.CRITICAL
        analysis.reasons = list(dict.fromkeys([*critical, *caveats(drivers, denies)]))
        return analysis
    # Kept in CONNECT_WRITE_ACTIONS order: identity and profile changes first.
    connect_writes = [a for a in CONNECT_WRITE_ACTIONS if any(s.grants(a) for s in allows)]
    if connect_writes:
        analysis.severity = Severity.HIGH
        shown = ", ".join(connect_writes[:5]) + (" …" if len(connect_writes) > 5 else "")
        drivers = [s for s in allows if any(s.grants(a) for a in connect_writes)]
        analysis.reasons = list(dict.fromkeys([f"Amazon Connect write access: {shown}", *caveats(drivers, denies)]))
        return analysis
    analysis.reasons = ["no administrator, IAM escalation or Connect write permissions"]
    return analysis


# A document's caveats are a few lines and a bounded amount of work, however it is built: at most
# this many Deny lines, and this many pattern comparison steps (some 20 ms) before the
# remaining Deny statements are left to the reader.
MAX_DENY_LINES = 5
MAX_CAVEAT_STEPS = 20_000


class _OutOfSteps(Exception):
    pass


@dataclass
class _Steps:
    left: int

    def spend(self, count: int = 1) -> None:
        self.left -= count
        if self.left < 0:
            raise _OutOfSteps


def caveats(drivers: list[Statement], denies: list[Statement], max_steps: int = MAX_CAVEAT_STEPS) -> list[str]:
    """What the conservative reading set aside for the grants the severity rests on: their
    conditions (one line), and the Deny statements of the same document that overlap them."""
    lines = []
    conditioned = [g for g in drivers if g.conditional]
    if conditioned:
        keys = (
            ", ".join(dict.fromkeys(k for g in conditioned for k in g.condition_keys)) or "keys that could not be read"
        )
        if len(conditioned) == len(drivers):
            lines.append(f"grant conditioned on {keys}: the severity assumes the condition holds")
        else:
            lines.append(
                f"{len(conditioned)} of {len(drivers)} grants behind the severity conditioned on {keys}; "
                "the others are not"
            )
    steps, said = _Steps(max_steps), 0
    for index, deny in enumerate(denies):
        try:
            if said == MAX_DENY_LINES:
                raise _OutOfSteps
            line = _deny_line(drivers, deny, steps)
        except _OutOfSteps:
            left = len(denies) - index
            lines.append(
                f"{left} more Deny statement{'s' if left > 1 else ''} not compared: "
                f"read {'them' if left > 1 else 'it'} in the document"
            )
            break
        if line:
            lines.append(line)
            said += 1
    return lines


def _deny_line(drivers: list[Statement], deny: Statement, steps: _Steps) -> str | None:
    for grant in drivers:
        denied = _denied_actions(grant, deny, steps)
        if denied is not None and _resources_overlap(grant, deny, steps):
            where = "*" if deny.any_resource else _listed(deny.resources)
            when = f" (the deny conditioned on {', '.join(deny.condition_keys)})" if deny.condition_keys else ""
            return f"partly denied in the same document: {denied} denied on {where}{when}"
    return None


def _denied_actions(grant: Statement, deny: Statement, steps: _Steps) -> str | None:
    """The deny's actions that overlap the grant's, said as the deny lists them; None if none.

    NotAction on either side is read conservatively: it overlaps unless its list plainly
    covers everything the other side names."""
    if deny.not_actions is not None:
        if grant.not_actions is None and all(_covered(g, deny.not_actions, steps) for g in grant.actions):
            return None
        return EVERY_ACTION_EXCEPT + _listed(deny.not_actions)
    if grant.not_actions is not None:
        overlapping = [d for d in deny.actions if not _covered(d, grant.not_actions, steps)]
    else:
        overlapping = [d for d in deny.actions if any(patterns_overlap(d, g, steps) for g in grant.actions)]
    return _listed(tuple(overlapping)) if overlapping else None


def _covered(pattern: str, by: tuple[str, ...], steps: _Steps) -> bool:
    """Every action `pattern` names is matched by one of `by` (its wildcards read as text)."""
    steps.spend(len(by))
    return any(fnmatchcase(pattern.lower(), b.lower()) for b in by)


def _resources_overlap(grant: Statement, deny: Statement, steps: _Steps) -> bool:
    if grant.any_resource or deny.any_resource:
        return True
    return any(patterns_overlap(_unvariable(g), _unvariable(d), steps) for g in grant.resources for d in deny.resources)


def _unvariable(resource: str) -> str:
    # A policy variable (${aws:username}) can be anything at request time: a wildcard here.
    return re.sub(r"\$\{[^}]*\}", "*", resource)


def patterns_overlap(left: str, right: str, steps: _Steps | None = None) -> bool:
    """Whether two IAM patterns (`*` any run, `?` one character, case-insensitive) match a
    common string: a walk over positions in both, each `*` free to match nothing or one more
    character of the other side. `steps` bounds the walk (_OutOfSteps when spent)."""
    steps = steps or _Steps(MAX_CAVEAT_STEPS)
    steps.spend()
    a, b = left.lower(), right.lower()
    wild_a, wild_b = "*" in a or "?" in a, "*" in b or "?" in b
    if not wild_b:
        return fnmatchcase(b, a) if wild_a else a == b
    if not wild_a:
        return fnmatchcase(a, b)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        steps.spend()
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            todo.append((i + 1, j))
            if j < len(b):
                todo.append((i, j + 1))
        if j < len(b) and b[j] == "*":
            todo.append((i, j + 1))
            if i < len(a):
                todo.append((i + 1, j))
        if i < len(a) and j < len(b) and "*" not in (a[i], b[j]) and (a[i] == b[j] or "?" in (a[i], b[j])):
            todo.append((i + 1, j + 1))
    return False


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
