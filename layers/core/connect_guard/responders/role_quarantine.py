"""Responsive control: quarantine principals that try to delete protected roles.

Triggers: IAM DeleteRole / DeleteServiceLinkedRole and Connect DeleteInstance, succeeded or
denied (a denied attempt, e.g. by an SCP, is the earliest sign of an attacker), and tampering
with a protected role (alert HIGH; quarantine only when QuarantineOnTampering is set).
IAM users and the roles behind assumed sessions get the deny-all quarantine policy attached, once
its document has been checked; a missing or tampered policy is a CRITICAL alert, never an
attachment. An IAM Identity Center (SSO) permission-set role is never attached to: IAM lets only
AWS modify it. With the Identity Center integration configured, the person behind the session is
added to the prepared deny-list SCP (connect_guard.identity_center); without it, the finding says
nothing was revoked and what to do in Identity Center. Root,
service-linked roles, CloudFormation stack operations, the suite itself and allowlisted
break-glass principals are never touched: the SOC is alerted instead.
A detach of the quarantine policy is a release, never tampering, whoever makes it. A deleted
role with no snapshot may have carried the protection tag: CRITICAL, quarantined only when
protected by name. Every write is journaled first (connect_guard.audit): a retry that finds the
quarantine in place reports it as made. When the last delivery attempt fails, IAM is read again:
the SOC is told the principal is NOT quarantined only when a quarantine was due and is not there
(give_up).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from connect_guard.audit import ActionJournal, AuditLog, action_record, actions_record
from connect_guard.aws_errors import transient
from connect_guard.clients import AwsClients, reread
from connect_guard.connect import InstanceRef
from connect_guard.errors import MemberAccessError, PoisonEventError
from connect_guard.events import CloudTrailEvent, CloudTrailRecord
from connect_guard.findings import Action, Attempt, EventRef, Finding, Target, finding_id_of
from connect_guard.identity_center import SSO_ROLE, IdentityCenterRevocation, RevocationError
from connect_guard.observability import logger
from connect_guard.outcome import Alert, Outcome
from connect_guard.policy import Severity
from connect_guard.principals import (
    CLOUDFORMATION,
    EXEMPT_SERVICES,
    Actor,
    allowlist_match,
    exempt_service,
    is_suite_principal,
    suite_role,
)
from connect_guard.publisher import SnsPublisher, fit
from connect_guard.quarantine import ATTACH_OPERATIONS, QuarantineIam, RoleSnapshot, RoleSnapshots, VerifiedPolicies
from connect_guard.settings import MemberPurpose, ModeDecision, Settings

NAME = "role_quarantine"
DELETIONS = {"DeleteRole", "DeleteServiceLinkedRole"}
TAMPERING = {"DetachRolePolicy", "DeleteRolePolicy", "UpdateAssumeRolePolicy", "PutRolePermissionsBoundary"}
INSTANCE_DELETION = "DeleteInstance"
# Services whose calls are alerted, never quarantined (connect_guard.principals says why).
QUARANTINE_EXEMPT_SERVICES = (CLOUDFORMATION,)
# IAM Identity Center's permission-set roles (AWSReservedSSO_*): IAM refuses any change to them
# (UnmodifiableEntity), so the suite can't quarantine their sessions in IAM.
SSO_ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"
# Denied IAM calls often carry no parameters; the error message still names the resource.
_DENIED_ROLE = re.compile(r"on resource:? (?:arn:aws[\w-]*:iam::\d{12}:role/|role )([\w+=,.@/-]+)")


def exemption(actor: Actor, settings: Settings) -> str | None:
    """Why this actor must never be quarantined (None: it may be)."""
    if actor.type == "Root":
        return "the root user cannot be quarantined: follow the runbook (credentials, MFA, support case)"
    service = exempt_service(actor, QUARANTINE_EXEMPT_SERVICES)
    if service:
        return f"an AWS service ({service}) made the call: {EXEMPT_SERVICES[service]}"
    if actor.session_issuer_arn and ":role/aws-service-role/" in actor.session_issuer_arn:
        return "a service-linked role made the call; its policies cannot be changed"
    allowed = allowlist_match(actor, settings.allowlisted_principals)
    if allowed:
        return f"allowlisted break-glass principal ({allowed})"
    return None


def principal_to_quarantine(actor: Actor) -> tuple[str, str] | None:
    """('user', name) or ('role', name) behind the actor, or None for other identity types."""
    if actor.type == "IAMUser" and actor.arn:
        return "user", actor.arn.rsplit("/", 1)[-1]
    issuer = actor.session_issuer_arn
    if actor.type == "AssumedRole" and issuer:
        return "role", issuer.rsplit("/", 1)[-1]
    if actor.type == "FederatedUser" and issuer and ":user/" in issuer:
        return "user", issuer.rsplit("/", 1)[-1]  # a deny on the user also binds its federation tokens
    return None


class NoSnapshotError(Exception):
    """The role is gone and was never snapshotted: whether it carried the protection tag is unknown."""


@dataclass(frozen=True)
class RoleTarget:
    kind: str  # role | connect_instance
    name: str | None
    arn: str | None


@dataclass(frozen=True)
class QuarantineResult:
    note: str  # the finding's reason: what was done, or why nothing was
    actions: list[Action] = field(default_factory=list)
    critical: bool = False  # the SOC must act now: the policy is tampered or the quarantine failed
    in_place: bool = False  # re-read or made: the principal is quarantined now


@dataclass
class _Decision:
    """What an event calls for, from the state re-read now. Nothing is written in deciding:
    the last attempt's give_up decides again to tell whether a quarantine was due."""

    actor: Actor
    outcome: Outcome
    account: str
    target: RoleTarget
    kind: str = "iam.protected_role_deletion"
    severity: Severity = Severity.CRITICAL
    reasons: list[str] = field(default_factory=list)
    alert: bool = True  # False: not alerted (outcome.reason says why)
    due: bool = False  # the principal behind the actor is to be quarantined
    # The state that decides it could not be read (a refusal, an unreachable account): a
    # quarantine may have been due. The last attempt says so as a FAILED alert.
    undetermined: bool = False
    # The role snapshots read in deciding, by (account, role): the finding attaches them unread again.
    snapshots: dict[tuple[str, str], RoleSnapshot | None] = field(default_factory=dict)


# What a quarantine does, said in the finding (a role's deny binds every session, old and new).
_EFFECT = {
    "user": "every call it makes is denied until released",
    "role": "every session of the role, current and new, is denied everything until released "
    "(stronger than revoking its sessions: assuming the role again does not help)",
}


class RoleQuarantineResponder:
    name = NAME

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        publisher: SnsPublisher,
        snapshots: RoleSnapshots,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.publisher = publisher
        self.snapshots = snapshots
        self.audit = audit
        self.journal = ActionJournal(audit)
        self.verified = VerifiedPolicies()  # per container: see VerifiedPolicies

    def iam_for(self, account_id: str, purpose: MemberPurpose = "read") -> QuarantineIam:
        """IAM in `account_id`: the read role to decide, the quarantine role (enforce only) to act."""
        iam = self.clients.for_account("iam", account_id, self.clients.region, self.settings, purpose)
        return QuarantineIam(iam, account_id, self.settings.quarantine_policy_name, self.settings.partition)

    def _mode(self, actor: Actor, account: str | None) -> ModeDecision:
        """The mode for the account a quarantine writes to: the principal's (the event's when the
        actor names none). An Identity Center person is judged by the account of the session."""
        return self.settings.mode_for("quarantine", actor.account_id or account)

    # -- decide -----------------------------------------------------------------------------
    def _target(self, record: CloudTrailRecord, account: str) -> RoleTarget:
        if record.event_name == INSTANCE_DELETION:
            raw = record.param("InstanceId")
            if not isinstance(raw, str) or raw in ("", "***"):
                return RoleTarget("connect_instance", None, None)
            instance = InstanceRef.parse(raw, account, record.aws_region)
            return RoleTarget("connect_instance", instance.instance_id, instance.arn)
        name = record.param("roleName")
        if not name and record.error_message:
            match = _DENIED_ROLE.search(record.error_message)
            if match:
                name = match.group(1).rsplit("/", 1)[-1]
        arn = f"arn:aws:iam::{account}:role/{name}" if name else None
        return RoleTarget("role", name, arn)

    def _is_release(self, record: CloudTrailRecord, account: str) -> bool:
        """The one role change the suite makes: detaching its quarantine policy on release."""
        return record.event_name == "DetachRolePolicy" and record.param(
            "policyArn"
        ) == self.settings.quarantine_policy_arn(account)

    def _snapshot(
        self, account: str, role: str, read: dict[tuple[str, str], RoleSnapshot | None]
    ) -> RoleSnapshot | None:
        """The role's last snapshot, read at most once per event (`read` keeps what was read)."""
        if (account, role) not in read:
            read[account, role] = self.snapshots.get(account, role)
        return read[account, role]

    def _protected(
        self, account: str, role: str, read: dict[tuple[str, str], RoleSnapshot | None] | None = None
    ) -> str | None:
        """Why the role is protected, or None. Its snapshot is read only when the role is gone,
        into `read` (the event's snapshot reads, which its finding reuses); `read` None: the
        role was just listed (the scheduled snapshot), and one gone since has nothing to snapshot.

        Raises ClientError/MemberAccessError when IAM can't be read, NoSnapshotError when the
        role is gone and no snapshot says how it was tagged.
        """
        if suite_role(account, role, self.settings):
            return "one of connect-guard's own roles (protected by default: changing it can blind the suite)"
        for pattern in self.settings.protected_role_names:
            if fnmatchcase(role.lower(), pattern.lower()) or fnmatchcase(
                f"arn:aws:iam::{account}:role/{role}".lower(), pattern.lower()
            ):
                return f"protected by name ({pattern})"
        tags = self.iam_for(account).role_tags(role)
        if tags is None:
            if read is None:
                return None
            snapshot = self._snapshot(account, role, read)
            if snapshot is None:  # gone, never snapshotted: it may have carried the tag
                raise NoSnapshotError(role)
            tags = snapshot.tags  # already deleted: its last snapshot says how it was tagged
        if tags and self.settings.protected_role_tag_key in tags:
            return f"protected by tag {self.settings.protected_role_tag_key}"
        return None

    # -- the event --------------------------------------------------------------------------
    def handle(self, event: CloudTrailEvent) -> Outcome:
        self.settings.require("baseline_table_name", "audit_table_name")
        name = event.detail.event_name
        if name not in DELETIONS and name not in TAMPERING and name != INSTANCE_DELETION:
            raise PoisonEventError(f"unsupported event {name!r} for {NAME}")
        decision = self._decide(event)
        if not decision.alert:
            return decision.outcome  # never acted on: the reason says why
        actions: list[Action] = []
        if decision.due:
            result = self._quarantine(event.detail, decision.actor, decision.account, decision.target)
            assert result is not None
            actions = result.actions
            decision.reasons.append(result.note)
            if result.critical:
                decision.severity = Severity.CRITICAL
        return self._report(event, decision, actions)

    def _report(self, event: CloudTrailEvent, decision: _Decision, actions: list[Action]) -> Outcome:
        """The finding of a decision, with the actions taken (or proposed) for it."""
        return self._alert(
            event,
            decision.actor,
            decision.outcome,
            decision.severity,
            decision.target,
            decision.kind,
            decision.reasons,
            actions,
            decision.snapshots,
        )

    def _decide(self, event: CloudTrailEvent) -> _Decision:
        """What the event calls for, from IAM and the snapshots as they are now (reads only)."""
        record = event.detail
        name = record.event_name
        actor = Actor.from_record(record)
        outcome = Outcome(NAME, record.event_id, name, "ignored")
        account = record.recipient_account_id or event.account
        own = is_suite_principal(actor, self.settings)
        target = self._target(record, account)
        decision = _Decision(actor, outcome, account, target)
        if self._is_release(record, account):
            return self._release_seen(decision, record, own)
        if target.kind == "role":

            def review_by_hand(
                reason: str, severity: Severity = Severity.HIGH, *, unread: bool = False
            ) -> _Decision:  # fail closed: alert
                decision.kind, decision.severity, decision.reasons = "iam.protected_role_deletion", severity, [reason]
                decision.undetermined = unread
                return decision

            if target.name is None:
                return review_by_hand("the event does not say which role; review by hand")
            try:
                why = self._protected(account, target.name, decision.snapshots)
            except MemberAccessError as error:  # the account can't be reached: the suite is blind there
                return review_by_hand(
                    f"member account unreachable: could not tell whether {target.name} is protected ({error}); "
                    "no action taken",
                    Severity.CRITICAL,
                    unread=True,
                )
            except ClientError as error:
                if transient(error):
                    raise  # a throttle or a 5xx: SQS delivers the event again
                return review_by_hand(
                    f"could not tell whether {target.name} is protected ({error}); no action taken", unread=True
                )
            except NoSnapshotError:
                # Snapshots are the only record of a deleted role's tags: without one, a
                # tag-protected role and an ordinary one look alike. Alert; quarantine only by name.
                return review_by_hand(
                    f"whether {target.name} was protected cannot be determined: the role is gone and no "
                    f"snapshot of it exists, so its tags (e.g. {self.settings.protected_role_tag_key}) are "
                    "unknown; not quarantined (roles protected by name are); review by hand",
                    Severity.CRITICAL,
                )
            if why is None and not own:
                outcome.reason = f"role {target.name} is not protected"
                decision.alert = False
                return decision
            if why:
                decision.reasons.append(f"{target.name} is {why}")
        else:
            decision.reasons.append(
                "deleting an Amazon Connect instance destroys its users, flows, queues and phone numbers"
            )

        # A change to the suite's own roles blinds or subverts it: as grave as a deletion.
        guards_suite = self._guards_suite(record, account)
        tampering = name in TAMPERING and not guards_suite
        decision.kind = {True: "iam.protected_role_tampering", False: "iam.protected_role_deletion"}[tampering]
        if target.kind == "connect_instance":
            decision.kind = "connect.instance_deletion"
        decision.severity = Severity.HIGH if tampering else Severity.CRITICAL
        verb = "tried to" if record.denied else "did"
        decision.reasons.insert(
            0,
            f"{actor.display} {verb} {name} ({'denied: ' + str(record.error_code) if record.denied else 'succeeded'})",
        )
        never = self._never_quarantined(record, actor, account)
        if never is not None:
            note, severity = never
            decision.reasons.append(note)
            # Only CloudFormation (deploying the stacks) softens a change to the suite's own roles.
            by_stack = exempt_service(actor, {CLOUDFORMATION}) is not None
            if severity is Severity.CRITICAL:
                decision.severity = Severity.CRITICAL
            elif severity is Severity.HIGH and actor.type != "Root" and (by_stack or not guards_suite):
                decision.severity = Severity.HIGH
        else:
            decision.due = True
        return decision

    def _guards_suite(self, record: CloudTrailRecord, account: str) -> bool:
        target = self._target(record, account)
        return target.kind == "role" and suite_role(account, target.name, self.settings)

    def _never_quarantined(
        self, record: CloudTrailRecord, actor: Actor, account: str
    ) -> tuple[str, Severity | None] | None:
        """Why this event's actor is never quarantined (the finding's note, and the severity it
        sets: CRITICAL, HIGH unless it guards the suite, None unchanged), or None: it may be.
        Needs no read, so the last attempt's give_up can tell even when IAM can't be read."""
        if is_suite_principal(actor, self.settings):
            # The suite deletes and changes no role: its own role doing so is compromised. It is
            # never quarantined by the suite itself (its roles deny that): the SOC acts.
            return (
                f"made by connect-guard's own role ({actor.session_issuer_arn}), which never does this: "
                "treat the role as compromised; not quarantined automatically, act by hand"
            ), Severity.CRITICAL
        tampering = record.event_name in TAMPERING and not self._guards_suite(record, account)
        if tampering and not self.settings.quarantine_on_tampering:
            return "tampering alerts only (QuarantineOnTampering is off)", None
        exempt = exemption(actor, self.settings)
        if exempt:
            return f"not quarantined: {exempt}", Severity.HIGH
        return None

    def _release_seen(self, decision: _Decision, record: CloudTrailRecord, own: bool) -> _Decision:
        """A detach of the quarantine policy is a release, whoever made it: alerted, never quarantined.

        Quarantining the releaser would quarantine the operators who lift quarantines, and the
        detach weakens nothing but the quarantine itself. Through `connect-guard release` (the
        member quarantine role, a suite principal) the tool has already published a CRITICAL
        finding and written audit records: INFO. Anyone else bypassed that record: HIGH.
        """
        actor, target = decision.actor, decision.target
        if record.denied:
            reasons = [f"{actor.display} tried to detach the quarantine policy from {target.name} (denied)"]
            severity = Severity.HIGH
        elif own:
            reasons = [f"quarantine of role {target.name} released through connect-guard release (see its finding)"]
            severity = Severity.INFO
        else:
            reasons = [
                f"{actor.display} detached the quarantine policy from role {target.name} outside "
                "connect-guard release: no audit record was written; confirm the release was sanctioned"
            ]
            severity = Severity.HIGH
        reasons.append("a release is never treated as tampering: the releaser is not quarantined")
        decision.kind, decision.severity, decision.reasons = "iam.quarantine_release", severity, reasons
        return decision

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last delivery attempt failed: decide again from the state as it is now.

        A quarantine an earlier attempt of this event made is reported as made (its finding, not
        a FAILED one). A quarantine that was due and is not in place is a CRITICAL `Quarantine
        FAILED ...: the principal is NOT quarantined`. An event that called for no quarantine (a
        release, an exempt actor, tampering without the flag, an unprotected role) alerts nothing
        here: the DLQ and its alarm keep it.
        """
        record = event.detail
        name = record.event_name
        if name not in DELETIONS and name not in TAMPERING and name != INSTANCE_DELETION:
            return  # not an event this responder acts on: no quarantine was ever due
        account = record.recipient_account_id or event.account
        actor = Actor.from_record(record)
        try:
            decision = reread(lambda: self._decide(event))
        except ParamValidationError:
            return  # the event names nothing IAM could hold: no quarantine could be due
        except Exception as failure:  # IAM can't be read either: whether it was due is unknown
            if self._is_release(record, account) or self._never_quarantined(record, actor, account):
                return  # never quarantined, whatever IAM says: nothing failed to happen
            self._publish_failed(
                event,
                error,
                f"whether a quarantine was due could not be re-read ({type(failure).__name__}: {failure})",
                unconfirmed=True,
            )
            return
        if decision.undetermined:  # the fault-free path would have decided; this one can't
            self._publish_failed(event, error, decision.reasons[0], unconfirmed=True)
            return
        if not decision.due:
            if decision.alert:  # the alert the failed attempts never got out
                decision.reasons.append(f"reported by the last delivery attempt ({type(error).__name__})")
                self._report(event, decision, [])
                return
            logger.info("last attempt failed; no quarantine was due: no FAILED alert")
            return
        mode = self._mode(actor, account)
        if not mode.enforces:
            self._publish_failed(
                event,
                error,
                f"detect mode: nothing is ever quarantined, the alert is what failed (detect: {mode.reason})",
            )
            return
        try:
            found = reread(lambda: self._quarantine(record, actor, account, decision.target, act=False))
        except Exception as failure:
            self._publish_failed(
                event,
                error,
                f"whether the principal is quarantined could not be re-read ({type(failure).__name__})",
                unconfirmed=True,
            )
            return
        if found is None or not found.in_place:  # not attached, or it can't be (the note says why)
            self._publish_failed(event, error, found.note if found else "re-read now, the quarantine is not in place")
            return
        if not found.actions:  # quarantined, by another event's quarantine: nothing failed here
            logger.info("last attempt failed; the principal is quarantined already: no FAILED alert")
            return
        decision.reasons.append(found.note)
        decision.severity = Severity.CRITICAL
        self._report(
            event,
            decision,
            found.actions,
        )

    def _publish_failed(
        self, event: CloudTrailEvent, error: Exception, state: str, *, unconfirmed: bool = False
    ) -> None:
        """The last attempt's CRITICAL alert: FAILED (re-read, not in place), or UNCONFIRMED (the
        state could not be re-read: it may or may not be in place, and the alert says only that)."""
        record = event.detail
        name = record.event_name
        account = record.recipient_account_id or event.account
        actor = Actor.from_record(record)
        target = self._target(record, account)
        what = f"{target.kind.replace('_', ' ')} {target.name or '(unknown)'}"
        # Detect mode quarantines nobody: what failed is the alert, not a quarantine.
        mode = self._mode(actor, account)
        outcome = "the principal is NOT quarantined" if mode.enforces else "the event was NOT evaluated (detect mode)"
        if unconfirmed and mode.enforces:
            verdict, outcome = "UNCONFIRMED", "whether the principal is quarantined is unknown"
            first = f"QUARANTINE NOT CONFIRMED: {type(error).__name__}: {error}; it may or may not be in place"
        else:
            verdict, first = "FAILED", f"QUARANTINE DID NOT HAPPEN: {type(error).__name__}: {error}"
        finding = Finding(
            responder=NAME,
            kind=f"iam.quarantine_{verdict.lower()}",
            severity=Severity.CRITICAL,
            title=f"Quarantine {verdict} for {actor.display} ({name} on {what}) in {account}: {outcome}",
            summary=f"connect-guard could not process {name} by {actor.display} on {what} after repeated "
            f"attempts ({type(error).__name__}: {error}). The event goes to the DLQ.",
            event=EventRef.of(event),
            actor=actor,
            attempt=Attempt.of(record),
            allowlisted=False,
            reasons=(
                first,
                state,
                f"check whether {what} is protected and whether {actor.display} carries the quarantine "
                "policy; quarantine by hand if it is due and missing (runbook)",
            ),
            runbook_url=self.settings.runbook_url(NAME),
            environment=self.settings.environment,
            mode=mode.mode,
            mode_reason=mode.reason,
            target=Target(target.kind, target.name, target.arn),
        )
        self.publisher.publish(finding)

    # -- act --------------------------------------------------------------------------------
    def _quarantine(
        self, record: CloudTrailRecord, actor: Actor, account: str, target: RoleTarget, act: bool = True
    ) -> QuarantineResult | None:
        """Quarantine the principal behind the actor (enforce), or say what enforce mode would do.

        `act=False` (the last attempt's give_up) only looks, and returns None when the quarantine
        is not in place. Either way a quarantine found in place that an earlier attempt of this
        event journaled is reported as made: that attempt stopped before telling the SOC.
        """
        principal = principal_to_quarantine(actor)
        if principal is None:  # nothing IAM can attach to: the SOC must act, now
            return QuarantineResult(
                f"a {actor.type} principal cannot be quarantined automatically; act by hand", critical=True
            )
        kind, name = principal
        if kind == "role" and f":role{SSO_ROLE_PATH}" in (actor.session_issuer_arn or "") and SSO_ROLE.match(name):
            return self._revoke_identity_center(record, actor, name, act)
        where = actor.account_id or account
        why = f"{record.event_name} on {target.kind} {target.name}"
        mode = self._mode(actor, account)
        enforce = mode.enforces
        try:
            iam = self.iam_for(where)
            if iam.quarantined(kind, name):
                earlier = self._earlier_attempt(record, actor, kind, name, where, why, finish=act) if enforce else None
                return earlier or QuarantineResult(
                    f"{kind} {name} is already quarantined: nothing added", in_place=True
                )
            if not act:
                return None
            check = iam.check_policy(self.verified)
            if check.problem:
                return QuarantineResult(
                    f"{kind} {name} not quarantined: {check.problem}; nothing attached, act by hand",
                    critical=check.tampered or enforce,
                )
            planned = iam.plan(kind, name, why, record.event_id, self.settings.deactivate_access_keys)
        except MemberAccessError as error:
            if not act:
                raise  # give_up can't see whether it is in place: UNCONFIRMED, never FAILED
            return QuarantineResult(
                f"cannot reach account {where} to quarantine ({error}): {kind} {name} not quarantined, act by hand",
                critical=True,
            )
        except ClientError as error:
            if transient(error) or (not act and error.response["Error"]["Code"] != "NoSuchEntity"):
                raise  # a throttle or a 5xx: SQS delivers it again; give_up, unread: UNCONFIRMED
            return QuarantineResult(_unreachable(kind, name, where, error), critical=True)
        if not enforce:
            return QuarantineResult(
                f"detect mode: the actions show what enforce mode does to {kind} {name} ({_EFFECT[kind]}); "
                f"detect: {mode.reason}",
                planned,
            )
        try:
            writer = self.iam_for(where, "quarantine")
        except MemberAccessError as error:
            return QuarantineResult(
                f"cannot reach account {where} to quarantine ({error}): {kind} {name} not quarantined, act by hand",
                planned,
                critical=True,
            )
        # Journaled before the first write: if this attempt dies after it, the retry reports it.
        subject = f"{kind}/{name}"
        pending = self.journal.begin(
            finding_id_of(NAME, record.event_id),
            responder=NAME,
            event_id=record.event_id,
            records=[self._audit_record(actor, subject, why, record, [replace(a, status="taken") for a in planned])],
        )
        done = writer.execute(planned)
        self.journal.complete(
            pending,
            [self._audit_record(actor, subject, why, record, done)],
            "taken" if _attached(done) else "failed",
        )
        return _iam_result(kind, name, done)

    def _earlier_attempt(
        self, record: CloudTrailRecord, actor: Actor, kind: str, name: str, where: str, why: str, finish: bool
    ) -> QuarantineResult | None:
        """The quarantine policy is attached: this event's earlier attempt's doing, if it journaled it.

        That attempt died after the attachment and before its finding (a timeout, out of memory,
        a failed publish), maybe before its tags and key deactivations: those are made now (the
        same writes, idempotent) unless `finish` is off (give_up only reports).
        """
        pending = self.journal.get(finding_id_of(NAME, record.event_id))
        if pending is None or pending.responder != NAME:
            return None
        note = (
            "; completed by an earlier attempt of this event: it recorded the quarantine, attached the policy and "
            "stopped before reporting it (re-read now, the policy is attached)"
        )
        if pending.audited:
            return _iam_result(kind, name, pending.actions(), note)
        journaled = pending.actions()
        done = [a for a in journaled if a.operation in ATTACH_OPERATIONS]
        if finish:
            # Planned afresh from the state: a key already deactivated is no longer planned, so
            # the earlier attempt's deactivation stands as made; the tags are written again.
            fresh = self.iam_for(where).plan(kind, name, why, record.event_id, self.settings.deactivate_access_keys)
            rest = self.iam_for(where, "quarantine").execute([a for a in fresh if a.operation not in ATTACH_OPERATIONS])
            made = {_step(a): a for a in rest}
            for step in journaled:
                if step.operation not in ATTACH_OPERATIONS:
                    done.append(made.pop(_step(step), step))
            done += made.values()
        else:
            note += "; its tags and key deactivations are not confirmed"
        records = [self._audit_record(actor, f"{kind}/{name}", why, record, done, "confirmed on a retry")]
        try:
            self.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            if finish:
                raise  # retried: the audit records are written before the finding
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        return _iam_result(kind, name, done, note)

    def _audit_fields(
        self, actor: Actor, subject: str, reason: str, record: CloudTrailRecord, note: str, before: Any
    ) -> dict[str, Any]:
        return {
            "responder": NAME,
            "actor": actor.arn,
            "target": subject,
            "reason": f"{reason} ({note})" if note else reason,
            "before": before,
            "event_id": record.event_id,
            "finding_id": finding_id_of(NAME, record.event_id),  # the finding _alert publishes
            "mode": "enforce",
        }

    def _audit_entry(
        self,
        actor: Actor,
        subject: str,
        reason: str,
        record: CloudTrailRecord,
        action: Action,
        note: str = "",
        before: Any = None,
    ) -> dict[str, Any]:
        return action_record(self.audit, action, **self._audit_fields(actor, subject, reason, record, note, before))

    def _audit_record(
        self, actor: Actor, subject: str, reason: str, record: CloudTrailRecord, actions: list[Action], note: str = ""
    ) -> dict[str, Any]:
        """The one audit record of an IAM quarantine: its actions (attach first) in `steps`."""
        return actions_record(self.audit, actions, **self._audit_fields(actor, subject, reason, record, note, None))

    def identity_center(self, purpose: MemberPurpose = "sso") -> IdentityCenterRevocation:
        """The deny-list SCP and identity store, in the account that administers them."""
        settings = self.settings
        assert settings.identity_center_account_id and settings.identity_store_id and settings.sso_deny_list_policy_id
        account, region = settings.identity_center_account_id, settings.identity_center_region or self.clients.region
        return IdentityCenterRevocation(
            self.clients.for_account("organizations", account, region, settings, purpose),
            self.clients.for_account("identitystore", account, region, settings, purpose),
            settings.identity_store_id,
            settings.sso_deny_list_policy_id,
        )

    def _revoke_identity_center(
        self, record: CloudTrailRecord, actor: Actor, role: str, act: bool = True
    ) -> QuarantineResult | None:
        """An Identity Center session: deny its person through the deny-list SCP (configured), else say how."""
        person = actor.session_name
        policy = self.settings.sso_deny_list_policy_id
        if not self.settings.identity_center or not person or not policy:
            return QuarantineResult(_sso_note(actor, role), critical=True)
        mode = self._mode(actor, record.recipient_account_id)
        if not mode.enforces:
            planned = IdentityCenterRevocation(None, None, "", policy).plan(None, person)
            return QuarantineResult(
                f"detect mode: enforce mode adds IAM Identity Center user {person} to the deny-list SCP {policy} "
                f"(everything denied in every account it binds, whatever the permission set; {role} is not "
                f"modifiable in IAM); detect: {mode.reason}",
                [planned],
            )
        finding_id = finding_id_of(NAME, record.event_id)
        subject, why = f"identity-center-user/{person}", f"{record.event_name} by {person} via {role}"
        journaled = []
        try:
            revocation = self.identity_center()
            user_id = revocation.user_id(person)
            subject = f"identity-center-user/{user_id}"
            parameters = {"PolicyId": policy, "UserId": user_id, "UserName": person}
            planned = Action("organizations", "UpdatePolicy", parameters, "taken")

            def journal_it() -> None:  # right before the SCP is written
                records = [self._audit_entry(actor, subject, why, record, planned)]
                journaled.append(
                    self.journal.begin(finding_id, responder=NAME, event_id=record.event_id, records=records)
                )

            if act:
                action, deny_list = revocation.deny(user_id, person, before_write=journal_it)
            else:
                deny_list = revocation.read()
                if user_id not in deny_list.user_ids:
                    return None
                action = None
        except (MemberAccessError, RevocationError) as error:
            return QuarantineResult(f"nothing revoked: {error}; {_sso_note(actor, role)}", critical=True)
        note = ""
        if action is None:  # already on the list: an earlier attempt of this event may have put them there
            pending = self.journal.get(finding_id)
            if pending is not None and pending.responder == NAME:
                action = planned
                note = (
                    " (completed by an earlier attempt of this event: it recorded the update, made it and stopped "
                    "before reporting it; re-read now, the user is on the list)"
                )
                if not pending.audited:
                    records = [self._audit_entry(actor, subject, why, record, action, "confirmed on a retry")]
                    try:
                        self.journal.complete(pending, records, "taken")
                    except (ClientError, BotoCoreError) as error:
                        if act:
                            raise  # retried: the audit record is written before the finding
                        logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        elif journaled:
            before = {"denied_users": list(deny_list.user_ids)} if action.status == "failed" else None
            entry = self._audit_entry(actor, subject, why, record, action, before=before)
            self.journal.complete(journaled[0], [entry], action.status)
        done = [action] if action else []
        if action and action.status == "failed":
            return QuarantineResult(
                f"nothing revoked: the deny-list SCP {policy} was not updated ({action.parameters['error']}); "
                + _sso_note(actor, role),
                done,
                critical=True,
            )
        notes = [
            f"IAM Identity Center user {person} ({user_id}) "
            + ("is already on" if action is None else "added to")
            + f" the deny-list SCP {policy}{note}: every call they make is denied, in every session and permission "
            "set, in the accounts it binds, until released (connect-guard release --sso-user); also end their "
            "access-portal session and disable the user in IAM Identity Center (runbook)"
        ]
        where = actor.account_id or record.recipient_account_id
        if where == deny_list.management_account:
            notes.append(
                f"the call was made in the organization's management account {where}, which SCPs do not bind: "
                "the person is NOT contained there; remove their account assignment there now"
            )
        if deny_list.problem:
            notes.append(f"the deny-list SCP had been altered ({deny_list.problem}): rewritten in the suite's form")
        return QuarantineResult("; ".join(notes), done, critical=True, in_place=True)

    def _alert(
        self,
        event: CloudTrailEvent,
        actor: Actor,
        outcome: Outcome,
        severity: Severity,
        target: RoleTarget,
        kind: str,
        reasons: list[str],
        actions: list[Action],
        snapshots: dict[tuple[str, str], RoleSnapshot | None] | None = None,
    ) -> Outcome:
        record = event.detail
        snapshot = None
        if record.event_name in DELETIONS and not record.denied and target.name:
            account = record.recipient_account_id or event.account
            stored = self._snapshot(account, target.name, {} if snapshots is None else snapshots)
            if stored:
                snapshot = stored.to_dict()
                reasons.append(
                    "the role is gone: its last snapshot is attached; recreate it with connect-guard restore-role"
                )
            else:
                reasons.append("the role is gone and no snapshot of it exists")
        attempt = "Attempt to delete" if record.denied else "Deleted"
        what = f"{target.kind.replace('_', ' ')} {target.name or '(unknown)'}"
        title = (
            f"{attempt} {what}" if record.event_name not in TAMPERING else f"Tampering with {what}: {record.event_name}"
        )
        if kind == "iam.quarantine_release":
            title = f"Quarantine released: {what} by {actor.display}"
        taken = _attached(actions)
        if taken:
            title = f"Quarantined {actor.display}: {title}"
            severity = Severity.CRITICAL  # every quarantine is CRITICAL, tampering included
        mode = self._mode(actor, record.recipient_account_id or event.account)
        finding = Finding(
            responder=NAME,
            kind=kind,
            severity=severity,
            title=f"{title} in {record.recipient_account_id}",
            summary=f"{actor.display} called {record.event_name} on {what} in account {record.recipient_account_id}.",
            event=EventRef.of(event),
            actor=actor,
            attempt=Attempt.of(record),
            allowlisted=allowlist_match(actor, self.settings.allowlisted_principals) is not None,
            reasons=tuple(reasons),
            runbook_url=self.settings.runbook_url(NAME),
            environment=self.settings.environment,
            mode=mode.mode,
            mode_reason=mode.reason,
            target=Target(target.kind, target.name, target.arn),
            actions=tuple(actions),
            snapshot=snapshot,
        )
        message_id = self.publisher.publish(finding)  # the runtime's "event processed" line names it
        outcome.outcome = "quarantined" if taken else "alerted"
        outcome.severity = str(severity)
        outcome.alerts.append(Alert(finding.subject, str(severity), finding.finding_id, message_id))
        outcome.finding = fit(finding).published()
        return outcome


def _sso_note(actor: Actor, role: str) -> str:
    """What to do instead when the actor came through IAM Identity Center (docs/runbooks)."""
    person = actor.source_identity or actor.session_name or "the user"
    return (
        f"not quarantined, nothing revoked: {role} is an IAM Identity Center permission-set role, which "
        "only AWS may modify (no attachment attempted); act in IAM Identity Center now: remove "
        f"{person}'s account assignment or disable the user (sessions already issued stay valid until they "
        "expire), or attach the quarantine policy to the permission set as a customer managed policy "
        "(blocks everyone using it, in every account it is assigned to)"
    )


_LIMIT_HINT = " (IAM allows 10 managed policies per user or role by default: the principal has no room left)"


def _iam_result(kind: str, name: str, done: list[Action], note: str = "") -> QuarantineResult:
    """What the finding says of an IAM quarantine, from the actions as made."""
    failed = "; ".join(f"{a.operation} {a.parameters.get('error', '')}" for a in done if a.status == "failed")
    if not _attached(done):
        return QuarantineResult(
            f"{kind} {name} not quarantined: {failed}{_LIMIT_HINT if 'LimitExceeded' in failed else ''}; act by hand",
            done,
            critical=True,
        )
    text = f"quarantine policy attached to {kind} {name}: {_EFFECT[kind]}{note}"
    return QuarantineResult(text + (f" (some steps failed: {failed})" if failed else ""), done, in_place=True)


def _step(action: Action) -> tuple[str, str]:
    """One step of a quarantine plan, whatever its outcome (the tags' reason text aside)."""
    keep = {k: v for k, v in action.parameters.items() if k not in ("Tags", "error")}
    return action.operation, json.dumps(keep, sort_keys=True)


def _unreachable(kind: str, name: str, where: str, error: ClientError) -> str:
    """The actor can't be reached in IAM: said plainly, the SOC acts by hand."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code == "NoSuchEntity":
        return (
            f"{kind} {name} does not exist in account {where} (NoSuchEntity: deleted since the call?): there is "
            "nothing to attach the quarantine policy to, so it is NOT quarantined; find who deleted it and whether "
            "the person behind it holds other credentials (runbook)"
        )
    return (
        f"{kind} {name} in account {where} could not be read to quarantine it ({code}: "
        f"{error.response.get('Error', {}).get('Message', '')}): NOT quarantined, act by hand"
    )


def _attached(actions: list[Action]) -> bool:
    """The quarantine policy was attached, or the person denied by the SCP: a quarantine took effect."""
    return any(a.operation in QUARANTINE_OPERATIONS and a.status == "taken" for a in actions)


QUARANTINE_OPERATIONS = ATTACH_OPERATIONS | {"UpdatePolicy"}


def release(
    responder: RoleQuarantineResponder,
    account_id: str,
    *,
    user: str | None = None,
    role: str | None = None,
    sso_user: str | None = None,
    by: str,
    reason: str,
) -> list[Action]:
    """Lift a quarantine, record who released it and why, and tell the SOC.

    `sso_user`: an IAM Identity Center user name, taken off the deny-list SCP (in the account that
    administers it, whatever `account_id` says).
    """
    name: str | None = user or role
    if sso_user:
        if not responder.settings.identity_center:
            raise RevocationError("the Identity Center integration is not configured in this stack")
        account_id = responder.settings.identity_center_account_id or account_id
        revocation = responder.identity_center()
        action, _ = revocation.allow(revocation.user_id(sso_user), sso_user)
        done = [action] if action else []
        subject, kind, name = f"identity-center-user/{sso_user}", "identity_center_user", sso_user
    else:
        iam = responder.iam_for(account_id, "quarantine")
        done = iam.execute(iam.release_actions(user=user, role=role))
        subject = f"user/{user}" if user else f"role/{role}"
        kind = "user" if user else "role"
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    event_id = f"release:{account_id}:{subject}:{now}"
    if done:  # one audit item for the release, its actions (detach first) in `steps`
        responder.audit.write(
            actions_record(
                responder.audit,
                done,
                responder=NAME,
                actor=by,
                target=subject,
                reason=f"released: {reason}",
                before=None,
                event_id=None,
                finding_id=finding_id_of(NAME, event_id),
                mode="release",
            )
        )
    nothing = [] if done or not sso_user else [f"{sso_user} was not on the deny-list SCP: nothing changed"]
    finding = Finding(
        responder=NAME,
        kind="iam.quarantine_release",
        severity=Severity.CRITICAL,
        title=f"Quarantine released: {subject} in {account_id} by {by}",
        summary=f"{by} released the quarantine of {subject} in account {account_id}: {reason}",
        event=EventRef(
            event_id,
            "ReleaseQuarantine",
            "connect-guard",
            now,
            account_id,
            responder.clients.region,
            "",
        ),
        actor=Actor.system(f"connect-guard release by {by}"),
        attempt=Attempt("succeeded"),
        allowlisted=False,
        reasons=(f"released by {by}: {reason}", *nothing),
        runbook_url=responder.settings.runbook_url(NAME),
        environment=responder.settings.environment,
        mode=responder.settings.response_mode,
        target=Target(kind, name),
        actions=tuple(done),
    )
    responder.publisher.publish(finding)
    return done


def build(settings: Settings, clients: AwsClients) -> RoleQuarantineResponder:
    settings.require("baseline_table_name", "audit_table_name")
    assert settings.baseline_table_name and settings.audit_table_name
    return RoleQuarantineResponder(
        settings,
        clients,
        SnsPublisher(clients.sns, settings.alert_topic_arn),
        RoleSnapshots(clients.dynamodb, settings.baseline_table_name),
        AuditLog(clients.dynamodb, settings.audit_table_name),
    )


def snapshot_protected_roles(responder: RoleQuarantineResponder) -> dict[str, list[str]]:
    """Snapshot every protected role of each configured account (the restore source)."""
    from connect_guard.quarantine import take_snapshot

    settings = responder.settings
    taken: dict[str, list[str]] = {}
    for account in settings.snapshot_account_ids or (settings.own_account_id,):
        quarantine = responder.iam_for(account)
        iam = quarantine.client
        taken[account] = []
        for page in iam.get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                if responder._protected(account, role["RoleName"]):
                    snapshot = take_snapshot(
                        iam, account, role["RoleName"], quarantine_policy_arn=quarantine.policy_arn
                    )
                    responder.snapshots.put(snapshot)
                    taken[account].append(role["RoleName"])
    return taken
