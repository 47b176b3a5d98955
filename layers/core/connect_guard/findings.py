"""The finding: what every responder reports, in one documented, versioned schema.

Machine subscribers (SQS, Lambda, HTTPS, SIEM) receive `Finding.to_json()`; email gets
`render_text()`. The schema is documented in docs/finding-schema.md; bump SCHEMA_VERSION on
any breaking change.
"""

from __future__ import annotations

import copy
import hashlib
import json
import unicodedata
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import quote

from connect_guard.events import CloudTrailEvent, CloudTrailRecord
from connect_guard.policy import Severity
from connect_guard.principals import Actor

SCHEMA_VERSION = "1.2"
SCHEMA_ID = "connect-guard/finding"
SUBJECT_MAX = 99  # SNS: under 100 characters


@dataclass(frozen=True)
class EventRef:
    event_id: str
    event_name: str
    event_source: str
    event_time: str
    account_id: str
    region: str
    console_url: str

    @classmethod
    def of(cls, event: CloudTrailEvent) -> EventRef:
        record = event.detail
        return cls(
            event_id=record.event_id,
            event_name=record.event_name,
            event_source=record.event_source,
            event_time=record.event_time.isoformat().replace("+00:00", "Z"),
            account_id=record.recipient_account_id or event.account,
            region=record.aws_region,
            console_url=console_url(record.aws_region, record.event_id),
        )


@dataclass(frozen=True)
class Attempt:
    status: str  # succeeded | denied
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def of(cls, record: CloudTrailRecord) -> Attempt:
        return cls("denied" if record.denied else "succeeded", record.error_code, record.error_message)


@dataclass(frozen=True)
class Target:
    kind: str  # user | group | role | policy
    name: str | None
    arn: str | None = None


@dataclass(frozen=True)
class PolicyRef:
    kind: str  # aws_managed | customer_managed | inline
    arn: str | None
    name: str | None
    version_id: str | None = None
    set_as_default: bool | None = None
    document_source: str = "event"  # event | api | known | unavailable
    grants: tuple[str, ...] = ()
    grants_total: int | None = None  # statements in the document (grants lists at most 20)


@dataclass(frozen=True)
class ConnectRef:
    """Where in Amazon Connect: the instance, the user or profile, and the admin-website user."""

    instance_id: str
    instance_arn: str
    user_id: str | None = None
    username: str | None = None
    security_profile_id: str | None = None
    security_profile_name: str | None = None
    actor_user_id: str | None = None
    actor_username: str | None = None


@dataclass(frozen=True)
class Change:
    """State before and after (after = what the rollback restores, or would restore)."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    gained: tuple[str, ...]
    baseline: str  # approved | none


@dataclass(frozen=True)
class Action:
    """An action taken (enforce mode) or proposed (detect mode) by a responder."""

    service: str
    operation: str
    parameters: dict[str, Any]
    status: str  # taken | proposed | failed


@lru_cache(maxsize=64)  # asked several times per event (journal, audit records, finding)
def finding_id_of(responder: str, event_id: str) -> str:
    """A finding's ID, known before the finding is built (audit records written first carry it)."""
    digest = hashlib.sha256(f"{responder}:{event_id}".encode()).hexdigest()
    return f"cg-{digest[:32]}"


@dataclass(frozen=True)
class Finding:
    responder: str
    kind: str
    severity: Severity
    title: str
    summary: str
    event: EventRef
    actor: Actor
    attempt: Attempt
    allowlisted: bool
    reasons: tuple[str, ...]
    runbook_url: str
    environment: str
    mode: str
    # Why the mode applied to this account (Settings.mode_for), for the responsive controls:
    # "QuarantineMode=enforce", "account 111122223333 is in DetectOnlyAccountIds; ...". Empty elsewhere.
    mode_reason: str = ""
    target: Target | None = None
    policy: PolicyRef | None = None
    connect: ConnectRef | None = None
    change: Change | None = None
    actions: tuple[Action, ...] = ()
    # Last snapshot of a deleted role: what `connect-guard restore-role` recreates.
    snapshot: dict[str, Any] | None = None
    # Fields shortened to fit SNS's message limit (publisher.fit), e.g. "policy.grants".
    truncated: tuple[str, ...] = ()
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    # A finding is immutable (frozen, and nothing changes its contents once built): what is
    # derived from it is computed once, although the publisher sizes, sends and records it.
    @cached_property
    def finding_id(self) -> str:
        """Stable across redeliveries, so downstream tools can update instead of duplicate."""
        return finding_id_of(self.responder, self.event.event_id)

    @cached_property
    def subject(self) -> str:
        return sns_subject(f"[{self.severity}] {self.title}")

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = _plain(self)
        body["severity"] = str(self.severity)
        body["actor"]["allowlisted"] = self.allowlisted
        body["actor"]["display"] = self.actor.display
        del body["allowlisted"]
        return {"schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION, "finding_id": self.finding_id, **body}

    def to_json(self) -> str:
        return self._json

    def published(self) -> dict[str, Any]:
        """The finding as its JSON says (what machine subscribers got): a fresh dict each call."""
        body: dict[str, Any] = json.loads(self._json)
        return body

    @cached_property
    def _json(self) -> str:
        # Encoded straight from the dataclasses (to_dict's text, byte for byte): the C encoder
        # walks the tree; building to_dict's copy of it first cost as much as encoding it.
        return json.dumps(
            self._head(), ensure_ascii=False, separators=(",", ":"), default=_encodable, check_circular=False
        )

    def _head(self) -> dict[str, Any]:
        """The top level of to_dict, its values left as they are (the encoder converts them)."""
        body = {name: getattr(self, name) for name in _field_names(Finding)}
        body["severity"] = str(self.severity)
        body["actor"] = {**_shallow(self.actor), "allowlisted": self.allowlisted, "display": self.actor.display}
        del body["allowlisted"]
        return {"schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION, "finding_id": self.finding_id, **body}

    @cached_property
    def text(self) -> str:
        """The readable rendering (render_text), for email."""
        return render_text(self)

    @cached_property
    def sns_message(self) -> str:
        """Per-protocol SNS message (MessageStructure=json): email gets the text; every other
        protocol falls back to `default`, the JSON finding."""
        return json.dumps({"default": self.to_json(), "email": self.text}, ensure_ascii=False)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # per dataclass, for _plain


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


def _shallow(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in _field_names(type(value))}


def _encodable(value: Any) -> Any:
    """json.dumps' `default`: a dataclass as its fields (what _plain makes of it), else str."""
    if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
        return _shallow(value)
    return str(value)


def _plain(value: Any) -> Any:
    """What `dataclasses.asdict` makes of `value`, with a dataclass's tuple fields as JSON-native
    lists (machine subscribers and the replay get lists), and without its deep copy of every
    immutable leaf (a third of an acting event's CPU)."""
    if value is None or isinstance(value, str | int | float):
        return value
    kind = type(value)
    if hasattr(kind, "__dataclass_fields__"):
        body = {}
        for name in _field_names(kind):
            item = _plain(getattr(value, name))
            body[name] = list(item) if isinstance(item, tuple) else item
        return body
    if kind is list or kind is tuple:
        return kind(_plain(v) for v in value)
    if kind is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


def sns_subject(text: str) -> str:
    """SNS subjects must be ASCII, one line, under 100 characters: fold accents, cut cleanly."""
    folded = unicodedata.normalize("NFKD", " ".join(text.split()))
    ascii_text = "".join(c if 32 <= ord(c) < 127 else ("" if unicodedata.combining(c) else "?") for c in folded)
    if len(ascii_text) <= SUBJECT_MAX:
        return ascii_text
    return ascii_text[: SUBJECT_MAX - 3].rstrip() + "..."


def _line(label: str, value: object) -> str | None:
    return f"  {label:<18}{value}" if value not in (None, "", ()) else None


def render_text(finding: Finding) -> str:
    """Readable email body: what happened, why it matters, who, evidence, what to do."""
    a, e = finding.actor, finding.event
    verb = "was DENIED" if finding.attempt.status == "denied" else "succeeded"
    lines: list[str | None] = [
        f"{finding.severity} | {finding.title}",
        "",
        finding.summary,
        "",
        "WHAT",
        _line("Event", f"{e.event_name} {verb} at {e.event_time}"),
        _line("Mode", finding.mode_reason and f"{finding.mode} ({finding.mode_reason})"),
        _line(
            "Error",
            finding.attempt.error_code and f"{finding.attempt.error_code}: {finding.attempt.error_message}",
        ),
    ]
    if finding.target:
        lines.append(_line("Target", f"{finding.target.kind} {finding.target.name}"))
    if finding.policy:
        p = finding.policy
        lines.append(_line("Policy", f"{p.arn or p.name} ({p.kind.replace('_', ' ')})"))
        lines.append(_line("Version", p.version_id and f"{p.version_id} (default: {p.set_as_default})"))
        if "policy.grants" in finding.truncated:
            lines.append(_line("Grants", f"{p.grants_total} statements, summarised to fit SNS's 256 KB limit"))
        lines.extend(_line("Grants" if i == 0 else "", g) for i, g in enumerate(p.grants[:10]))
    if finding.connect:
        c = finding.connect
        lines.append(_line("Instance", c.instance_arn))
        lines.append(_line("Connect user", c.username and f"{c.username} ({c.user_id})"))
        lines.append(
            _line("Profile", c.security_profile_name and f"{c.security_profile_name} ({c.security_profile_id})")
        )
    if finding.change:
        ch = finding.change
        lines.append(_line("Gained", ", ".join(ch.gained)))
        lines.append(_line("Before", ", ".join(ch.before) or "(none)"))
        lines.append(_line("After rollback", ", ".join(ch.after) or "(none)"))
        lines.append(_line("Baseline", ch.baseline))
    lines += ["", "WHY THIS SEVERITY", *(f"  - {r}" for r in finding.reasons), "", "WHO"]
    lines += [
        _line("Principal", f"{a.arn or a.principal_id} ({a.type})"),
        _line("Person", a.source_identity or a.session_name),
        _line(
            "Connect user",
            finding.connect and finding.connect.actor_username and f"{finding.connect.actor_username} (admin website)",
        ),
        _line("Session issuer", a.session_issuer_arn),
        _line("Invoked by", a.invoked_by),
        _line("Source IP", a.source_ip),
        _line("User agent", a.user_agent),
        _line(
            "MFA",
            {True: "yes", False: "no"}.get(a.mfa_authenticated) if a.mfa_authenticated is not None else None,
        ),
        _line("Allowlisted", "yes (change expected; no action will be taken)" if finding.allowlisted else None),
        "",
        "WHERE",
        _line("Account", e.account_id),
        _line("Region", e.region),
    ]
    if finding.actions:
        lines += ["", "ACTIONS"]
        lines += [f"  [{x.status}] {x.service}:{x.operation} {json.dumps(x.parameters)}" for x in finding.actions]
    if finding.snapshot:
        snap = finding.snapshot
        lines += ["", f"LAST SNAPSHOT OF {snap.get('role_name')} (taken {snap.get('taken_at')})"]
        lines.append(_line("Trust policy", json.dumps(snap.get("trust_policy"), sort_keys=True)))
        lines.append(_line("Managed", ", ".join(snap.get("managed_policies") or []) or "(none)"))
        lines.append(_line("Inline", ", ".join(snap.get("inline_policies") or {}) or "(none)"))
        lines.append(_line("Tags", json.dumps(snap.get("tags") or {}, sort_keys=True)))
        lines.append(
            _line(
                "Restore",
                f"connect-guard restore-role --account {snap.get('account_id')} --role {snap.get('role_name')}",
            )
        )
    lines += [
        "",
        "EVIDENCE",
        _line("CloudTrail event", e.event_id),
        _line("Console", e.console_url),
        _line("Runbook", finding.runbook_url),
        _line(
            "Finding",
            f"{finding.finding_id} ({SCHEMA_ID} v{SCHEMA_VERSION}, mode {finding.mode}, {finding.environment})",
        ),
        _line("Shortened", finding.truncated and f"{', '.join(finding.truncated)} (to fit SNS's 256 KB limit)"),
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def console_url(region: str, event_id: str) -> str:
    # Both come from the event: quoted, so a forged value cannot point the link elsewhere.
    region, event_id = quote(region, safe=""), quote(event_id, safe="")
    return f"https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/events/{event_id}"
