"""Detective control: IAM escalation without a policy attachment (a sub-control of policy alerts).

Someone who can't attach a policy can still gain one: join a group that has it
(AddUserToGroup), take over a user that has it (CreateAccessKey, CreateLoginProfile,
UpdateLoginProfile for another user), lift the bound on what a principal's own policies allow
(Delete*PermissionsBoundary, Put*PermissionsBoundary), or let someone else become a role
(UpdateAssumeRolePolicy). Each is alerted with the same document-aware severity as an
attachment (connect_guard.policy.analyse), over the policies the principal has now, read in its
account (the member read role in a source account). Nothing is changed.

De-escalations (DeletePolicyVersion, Detach*Policy, Delete*Policy, RemoveUserFromGroup) are not
routed: the rule leaves them out (README, "Policy alerts").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from connect_guard.errors import DocumentUnavailableError
from connect_guard.events import CloudTrailEvent, CloudTrailRecord
from connect_guard.findings import Attempt, EventRef, Finding, PolicyRef, Target
from connect_guard.iam import PrincipalDocument, PrincipalPolicies
from connect_guard.observability import logger
from connect_guard.outcome import Outcome
from connect_guard.policy import Analysis, Severity, analyse, known_aws_managed, parse_document
from connect_guard.principals import CLOUDFORMATION, Actor, allowlist_match, is_suite_principal, suite_role
from connect_guard.publisher import publish_outcome

if TYPE_CHECKING:
    from connect_guard.quarantine import RoleSnapshots
    from connect_guard.responders.policy_alerts import PolicyAlertResponder

NAME = "policy_alerts"  # the responder's: its queue, dedup claims and runbook
KIND = "iam.escalation"
RUNBOOK_SECTION = "escalation-without-an-attachment"
IAM = "iam.amazonaws.com"
# Reason lines taken from the principal's policies: the riskiest first, the rest counted.
MAX_SOURCE_LINES = 8

# eventName → (change, target kind, request parameter naming the target)
EVENTS: dict[str, tuple[str, str, str]] = {
    "AddUserToGroup": ("group_membership", "group", "groupName"),
    "CreateAccessKey": ("access_key", "user", "userName"),
    "CreateLoginProfile": ("console_password", "user", "userName"),
    "UpdateLoginProfile": ("console_password", "user", "userName"),
    "DeleteUserPermissionsBoundary": ("boundary_removed", "user", "userName"),
    "DeleteRolePermissionsBoundary": ("boundary_removed", "role", "roleName"),
    "PutUserPermissionsBoundary": ("boundary_set", "user", "userName"),
    "PutRolePermissionsBoundary": ("boundary_set", "role", "roleName"),
    "UpdateAssumeRolePolicy": ("trust", "role", "roleName"),
}
CREDENTIALS = {"access_key": "an access key", "console_password": "a console password"}


@dataclass(frozen=True)
class Escalation:
    """What the request asked for, from the CloudTrail record alone."""

    change: str
    target: Target
    member: str | None = None  # AddUserToGroup: the user added
    boundary_arn: str | None = None
    trust_document: str | dict[str, Any] | None = None
    self_service: bool = False  # a credential an IAM user made for itself
    root_key: bool = False  # CreateAccessKey by root, for no user: the root user's own key


def caller_user(actor: Actor, account: str | None) -> str | None:
    """The IAM user who made the call, when it is a user of `account` (the ARN's account and the
    identity's, both): never a role session, whatever its session name, nor another account's user."""
    if actor.type != "IAMUser" or not actor.arn or not account:
        return None
    parts = actor.arn.split(":")
    if len(parts) < 6 or parts[4] != account or actor.account_id != account or not parts[5].startswith("user/"):
        return None
    return parts[5].rsplit("/", 1)[-1]


def describe(record: CloudTrailRecord, actor: Actor) -> Escalation | None:
    """The requested change, or None when the record does not say whom it was about."""
    change, kind, param = EVENTS[record.event_name]
    account = record.recipient_account_id
    name = record.param(param) if record.request_parameters else None
    if change == "access_key" and not name:
        created = (record.response_elements or {}).get("accessKey") or {}
        name = created.get("userName")
    if change in CREDENTIALS and not name:
        # No user named: IAM makes the credential for the caller (a denied call says nothing).
        if record.denied:
            return None
        if actor.type == "Root" and change == "access_key":
            return Escalation(change, Target("user", "root"), root_key=True)
        name = caller_user(actor, account)
        if name is None:
            return None
    if not name:
        return None
    caller = caller_user(actor, account)
    # IAM user names are unique regardless of case: Bob and bob are one user.
    own = change in CREDENTIALS and caller is not None and caller.lower() == str(name).lower()
    return Escalation(
        change,
        Target(kind, str(name)),
        member=record.param("userName") if change == "group_membership" else None,
        boundary_arn=record.param("permissionsBoundary") if change == "boundary_set" else None,
        trust_document=record.param("policyDocument") if change == "trust" else None,
        self_service=own,
    )


def assess(documents: list[PrincipalDocument], subject: str) -> Analysis:
    """Severity of what the documents grant together: the most severe document's, its reasons
    prefixed with where they come from. No policy at all: LOW (nothing to gain today)."""
    if not documents:
        return Analysis(Severity.LOW, [f"{subject} has no policies today: nothing to gain from it now"])
    assessed: list[tuple[PrincipalDocument, Analysis]] = []
    for document in documents:
        if document.known:
            severity, reason = document.known
            assessed.append((document, Analysis(severity, [reason], [reason])))
            continue
        try:
            assessed.append((document, analyse(parse_document(document.document or {}))))
        except ValueError as error:
            reason = f"policy could not be analysed ({error}); review it by hand"
            assessed.append((document, Analysis(Severity.HIGH, [reason])))
    top = max(a.severity for _, a in assessed)
    lines = [f"{d.source}: {r}" for d, a in assessed if a.severity == top for r in a.reasons]
    grants = [f"{d.source}: {g}" for d, a in assessed if a.severity == top for g in a.grants]
    if len(lines) > MAX_SOURCE_LINES:
        lines = [*lines[:MAX_SOURCE_LINES], f"… and {len(lines) - MAX_SOURCE_LINES} more lines from its policies"]
    return Analysis(top, lines, grants[:20], len(grants))


def _trust_document(value: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    text = value.strip()
    document = json.loads(unquote(text) if text[:3].lower() == "%7b" else text)
    if not isinstance(document, dict) or "Statement" not in document:
        raise ValueError("not a policy document")
    return document


def _principal_lines(document: dict[str, Any]) -> list[str]:
    """Who a trust policy admits; ValueError for a Principal IAM would not have accepted."""
    from connect_guard.quarantine import trust_principals  # trust events only: not on every cold start

    try:
        return list(dict.fromkeys(trust_principals(document)))
    except (AttributeError, TypeError) as error:
        raise ValueError(f"a statement's Principal is not a principal map ({error})") from error


class IamEscalationGuard:
    """The escalation events, on the policy-alert responder's settings, readers and publisher."""

    def __init__(self, responder: PolicyAlertResponder) -> None:
        self.responder = responder
        self.settings = responder.settings
        self.principals = PrincipalPolicies(responder.policies.clients, responder.settings, responder.policies)
        self._snapshots: RoleSnapshots | None = None

    @property
    def snapshots(self) -> RoleSnapshots | None:
        """The role snapshots (connect_guard.quarantine), made on the first trust event."""
        table = self.settings.baseline_table_name
        if self._snapshots is None and table:
            from connect_guard.quarantine import RoleSnapshots

            self._snapshots = RoleSnapshots(self.responder.policies.clients.dynamodb, table)
        return self._snapshots

    def handles(self, event: CloudTrailEvent) -> bool:
        return event.detail.event_source == IAM and event.detail.event_name in EVENTS

    # -- deciding -----------------------------------------------------------------------------
    def decide(self, record: CloudTrailRecord, change: Escalation | None) -> Analysis:
        """What the change lets someone do; reads the principal's policies (never for a denied call)."""
        if change is None and record.denied:
            return Analysis(Severity.MEDIUM, ["denied attempt without request parameters: target unknown"])
        if change is None:
            return Analysis(Severity.HIGH, ["the event does not say whom the change is about; review it by hand"])
        if record.denied:
            return Analysis(Severity.MEDIUM, ["denied attempt; the principal's policies were not read"])
        if change.root_key:
            return Analysis(
                Severity.CRITICAL,
                ["an access key for the root user: full, unrestrictable access to the account; delete it"],
            )
        if change.self_service:
            credential = CREDENTIALS[change.change]
            return Analysis(
                Severity.LOW,
                [
                    f"self-service: IAM user {change.target.name} made {credential} for itself; "
                    "no other principal gains its access (a second key can still be persistence: check it)"
                ],
            )
        if change.change == "trust":
            return self._trust(record, change)
        account = str(record.recipient_account_id)
        subject = f"{change.target.kind} {change.target.name}"
        try:
            documents = self._documents(account, change.target)
        except DocumentUnavailableError as error:
            reason = f"the policies of {subject} could not be read ({error}); high until reviewed"
            return Analysis(Severity.HIGH, [reason])
        own = assess(documents, subject)
        if change.change == "group_membership":
            own.reasons.insert(0, f"user {change.member} now has everything group {change.target.name} grants")
        elif change.change in CREDENTIALS:
            own.reasons.insert(
                0, f"{CREDENTIALS[change.change]} for another user: whoever holds it acts as {subject} and can do this"
            )
        elif change.change == "boundary_removed":
            own.reasons.insert(0, f"permissions boundary removed: the own policies of {subject} now apply unbounded")
        else:
            return self._boundary(change, own, subject)
        return own

    def _documents(self, account: str, target: Target) -> list[PrincipalDocument]:
        name = str(target.name)
        if target.kind == "group":
            return self.principals.of_group(account, name)
        if target.kind == "role":
            return self.principals.of_role(account, name)
        # A user's own CRITICAL grant can't be raised by its groups: they are not read then.
        return self.principals.of_user(account, name, lambda own: assess(own, name).severity == Severity.CRITICAL)

    def _boundary(self, change: Escalation, own: Analysis, subject: str) -> Analysis:
        """A new boundary: the old one is not in the event and the suite keeps none, so the change is
        judged by what the principal can do under the new one: at most what both the boundary and
        its own policies grant (the lower of the two severities)."""
        arn = change.boundary_arn
        if not arn:
            return Analysis(Severity.HIGH, ["the event names no boundary policy; review the change by hand"])
        known = known_aws_managed(arn)
        try:
            if known:
                bound = Analysis(known[0], [known[1]])
            else:
                document, _ = self.responder.policies.document(arn)
                bound = analyse(parse_document(document))
        except DocumentUnavailableError as error:
            return Analysis(Severity.HIGH, [f"boundary {arn} could not be read ({error}); high until reviewed"])
        except ValueError as error:
            return Analysis(Severity.HIGH, [f"boundary {arn} could not be analysed ({error}); review it by hand"])
        severity = min(bound.severity, own.severity)
        lines = [
            "the previous boundary is not in the event and the suite keeps none: judged by what "
            f"{subject} can do under the new one (at most what both the boundary and its policies grant)"
        ]
        if bound.severity == Severity.CRITICAL:
            lines.append(f"admin-grade boundary ({arn.rsplit('/', 1)[-1]}): it bounds nothing")
        lines += [f"boundary: {r}" for r in bound.reasons] + own.reasons
        return Analysis(severity, lines, own.grants, own.grants_total)

    def _trust(self, record: CloudTrailRecord, change: Escalation) -> Analysis:
        """Who the new trust policy admits: CRITICAL for `*` or a principal outside the accounts the
        suite knows and the organization; HIGH for a new one inside; compared with the role's
        snapshot, when there is one, to name what is new."""
        role = str(change.target.name)
        try:
            if change.trust_document is None:
                raise ValueError("the event carries no trust policy")
            document = _trust_document(change.trust_document)
            now = _principal_lines(document)
        except ValueError as error:
            return Analysis(Severity.HIGH, [f"the new trust policy could not be read ({error}); review it by hand"])
        account = str(record.recipient_account_id)
        known = {self.settings.own_account_id, *self.settings.member_account_ids, *self.settings.snapshot_account_ids}
        snapshot = self.snapshots.get(account, role) if self.snapshots else None
        before = _principal_lines(snapshot.trust_policy) if snapshot else None
        new = [p for p in now if before is None or p not in before]
        from connect_guard.quarantine import external_trust

        outside = external_trust(document, known | {account}, self.settings.organization_id)
        anyone = [p for p in outside if "*" in p.partition(": ")[2]]
        outside_new = [p for p in outside if p in new]
        reasons: list[str] = []
        if anyone:
            reasons.append(f"the role now trusts any principal: {', '.join(anyone)}")
        named = [p for p in outside_new if p not in anyone]
        if named:
            reasons.append(
                "admits principals outside the accounts connect-guard knows and the organization: " + ", ".join(named)
            )
        if snapshot is None:
            reasons.append(
                f"role {role} has no snapshot: what is new can't be told; it now trusts {', '.join(now) or 'nobody'}"
            )
        elif new:
            reasons.append(f"new since the snapshot of {snapshot.taken_at or 'an unknown date'}: {', '.join(new)}")
        if anyone or outside_new:
            return Analysis(Severity.CRITICAL, reasons, now[:20], len(now))
        if new:
            reasons.append("every principal it admits is in the enrolled accounts or the organization, or is a service")
            return Analysis(Severity.HIGH, reasons, now[:20], len(now))
        same = snapshot is not None and snapshot.trust_policy == document
        if same:
            return Analysis(Severity.LOW, ["the trust policy is the role's snapshot: nothing new"], now[:20], len(now))
        reasons.append(
            "no new principal since the snapshot; its conditions or actions changed: compare it with the snapshot"
        )
        return Analysis(Severity.MEDIUM, reasons, now[:20], len(now))

    # -- handling -----------------------------------------------------------------------------
    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        actor = Actor.from_record(record)
        change = describe(record, actor)
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        analysis = self.decide(record, change)
        return self._publish(event, actor, change, analysis, outcome)

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed (its reads or its publish): one finding without the reads, so the
        SOC still hears of the change before the event ends in the DLQ."""
        record = event.detail
        actor = Actor.from_record(record)
        change = describe(record, actor)
        analysis = Analysis(
            Severity.HIGH,
            [f"NOT ASSESSED: {type(error).__name__}: {error}; what the principal can do was not read: review by hand"],
        )
        self._publish(event, actor, change, analysis, Outcome(NAME, record.event_id, record.event_name, "ignored"))

    def _publish(
        self, event: CloudTrailEvent, actor: Actor, change: Escalation | None, analysis: Analysis, outcome: Outcome
    ) -> Outcome:
        record = event.detail
        if record.denied:
            analysis.reasons.insert(0, f"the call was denied ({record.error_code}): an attempt, not a change")
        severity = analysis.severity
        allowlisted = allowlist_match(actor, self.settings.allowlisted_principals)
        if allowlisted:
            analysis.reasons.insert(0, f"actor is allowlisted ({allowlisted}); would otherwise be {severity}")
            severity = Severity.INFO
        guarded = self._guards_the_suite(record, change, actor)
        if guarded:
            # Never softened by the allowlist: the suite's own roles are not exempt.
            severity, reason = guarded
            analysis.reasons.insert(0, reason)
        boundary = change.boundary_arn if change else None
        finding = Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=title_for(record, change, actor),
            summary=summary_for(record, change, actor, severity),
            event=EventRef.of(event),
            actor=actor,
            attempt=Attempt.of(record),
            allowlisted=allowlisted is not None,
            reasons=tuple(analysis.reasons),
            runbook_url=f"{self.settings.runbook_url(NAME)}#{RUNBOOK_SECTION}",
            environment=self.settings.environment,
            mode=self.settings.response_mode,
            target=change.target if change else None,
            policy=PolicyRef(
                kind="aws_managed" if ":iam::aws:policy/" in boundary else "customer_managed",
                arn=boundary,
                name=boundary.rsplit("/", 1)[-1],
                document_source="known" if known_aws_managed(boundary) else "api",
                grants=tuple(analysis.grants),
                grants_total=analysis.grants_total,
            )
            if boundary
            else None,
        )
        publish_outcome(self.responder.publisher, finding, outcome, "alerted")
        logger.info("finding published", extra={"finding_id": finding.finding_id, "severity": str(severity)})
        return outcome

    def _guards_the_suite(
        self, record: CloudTrailRecord, change: Escalation | None, actor: Actor
    ) -> tuple[Severity, str] | None:
        """The suite's own role making any of these, or one of the suite's roles changed."""
        if is_suite_principal(actor, self.settings):
            return Severity.CRITICAL, (
                f"made by connect-guard's own role ({actor.session_issuer_arn}), which never makes this change: "
                "treat the role as compromised"
            )
        if change is None or change.target.kind != "role":
            return None
        if not suite_role(record.recipient_account_id, change.target.name, self.settings):
            return None
        if actor.invoked_by == CLOUDFORMATION:
            return Severity.HIGH, (
                f"{change.target.name} is one of connect-guard's own roles; changed through CloudFormation: "
                "confirm it was a deployment of the connect-guard stacks"
            )
        return Severity.CRITICAL, (
            f"{change.target.name} is one of connect-guard's own roles: a change to it can blind or subvert the suite"
        )


def title_for(record: CloudTrailRecord, change: Escalation | None, actor: Actor) -> str:
    attempt = "Denied attempt: " if record.denied else ""
    where = f" in {record.recipient_account_id}"
    if change is None:
        return f"{attempt}{record.event_name} by {actor.display}{where}"
    target = f"{change.target.kind} {change.target.name}"
    if change.change == "group_membership":
        return f"{attempt}user {change.member} added to {target}{where}"
    if change.root_key:
        return f"{attempt}access key created for the root user{where}"
    if change.change in CREDENTIALS:
        whose = "own " if change.self_service else ""
        return f"{attempt}{record.event_name}: {whose}credential of {target}{where}"
    if change.change == "boundary_removed":
        return f"{attempt}permissions boundary removed from {target}{where}"
    if change.change == "boundary_set":
        return f"{attempt}permissions boundary of {target} set to {str(change.boundary_arn).rsplit('/', 1)[-1]}{where}"
    return f"{attempt}trust policy of {target} changed{where}"


def summary_for(record: CloudTrailRecord, change: Escalation | None, actor: Actor, severity: Severity) -> str:
    happened = "tried to call" if record.denied else "called"
    what = f" on {change.target.kind} {change.target.name}" if change else ""
    return (
        f"{actor.display} {happened} {record.event_name}{what} in account {record.recipient_account_id} "
        f"({record.aws_region}): access gained without a policy attachment. Severity {severity}."
    )
