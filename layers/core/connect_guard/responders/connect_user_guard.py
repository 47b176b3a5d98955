"""Responsive control: Connect user takeover paths (a sub-control of profile_rollback).

- `UpdateUserIdentityInfo`: change a user's email to one you own, then reset the password (AWS's
  security-profile best practices warn of it). The user's FirstName, LastName, Email and
  SecondaryEmail, re-read with DescribeUser (CloudTrail hides the values), are compared with the
  baseline. CRITICAL when the user is privileged, or when an email's domain is outside
  OrganizationEmailDomains (when set); MEDIUM otherwise: renaming an agent, or moving an agent's
  email within the organization, is routine, but the SOC sees every change.
- `UpdateUserHierarchy`, and `TagResource` / `UntagResource` on a user (agent ARN): under
  hierarchy- or tag-based access control a security profile reaches the users of its hierarchy
  groups or tags, so moving or retagging an administrator makes them manageable by a restricted
  supervisor, a takeover path. The rule: any change of a privileged user's hierarchy group or tags
  from the approved ones is HIGH and restored; an unprivileged user's is MEDIUM, alert only.

A user is privileged when a profile it holds now or in its approved baseline is privileged by name
(PrivilegedProfileNames) or carries a privileged permission. In enforce mode only privileged users
are restored, and only to approved values: the identity fields that differ (the others sent as
they are now: the update replaces the whole IdentityInfo), the approved hierarchy group, the
approved tags (TagResource for changed or removed keys, UntagResource for added ones). Never for
an unprivileged user, nor without a recorded approved value (the sweep reads emails of privileged
users only: an agent's email has no approved value), nor for the suite's own change (exact
identity); allowlisted: INFO, not acted on. Tag events on other Connect resources are not routed
here (the rule matches agent ARNs); any that arrive are ignored with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from connect_guard.audit import actions_record
from connect_guard.baseline import UserBaseline, incomplete
from connect_guard.clients import reread
from connect_guard.connect import ConnectGateway, ConnectUser, InstanceRef
from connect_guard.errors import ConnectResourceNotFoundError, MemberAccessError
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Action, Attempt, Change, ConnectRef, EventRef, Finding, Target, finding_id_of
from connect_guard.observability import logger
from connect_guard.outcome import Outcome
from connect_guard.policy import Severity
from connect_guard.principals import CONNECT_REPLICATION, Actor, allowlist_match, exempt_service, is_suite_principal
from connect_guard.settings import ModeDecision

if TYPE_CHECKING:
    from connect_guard.responders.profile_rollback import ProfileRollbackResponder

NAME = "profile_rollback"
KIND = "connect.user_change"
RUNBOOK_ANCHOR = "#connect-user-takeover"
IDENTITY_FIELDS = ("FirstName", "LastName", "Email", "SecondaryEmail")
ASPECTS = {
    "UpdateUserIdentityInfo": "identity",
    "UpdateUserHierarchy": "hierarchy",
    "TagResource": "tags",
    "UntagResource": "tags",
}
_AGENT_ARN = re.compile(r"^arn:aws[a-z-]*:connect:([a-z0-9-]+):(\d{12}):instance/([\w-]+)/agent/([\w-]+)$")
_REFUSED = ("InvalidParameterException", "InvalidRequestException", "AccessDeniedException")


@dataclass(frozen=True)
class FieldChange:
    """One approved value that differs now: `field` is an IdentityInfo field, `hierarchy` or `tag:<key>`."""

    field: str
    approved: str | None  # None: the key was not approved (an added tag)
    now: str | None  # None: removed since (a tag)

    def shown(self, value: str | None) -> str:
        return f"{self.field}={value!r}" if value is not None else f"{self.field} (none)"


def identity_changes(
    user: ConnectUser, baseline: UserBaseline | None
) -> tuple[tuple[FieldChange, ...], tuple[str, ...]]:
    """Changed identity fields, and the fields with no approved value (pure)."""
    approved = dict(baseline.identity) if baseline and baseline.identity is not None else {}
    now = dict(user.identity)
    changes = tuple(
        FieldChange(f, approved[f], now.get(f, ""))
        for f in IDENTITY_FIELDS
        if f in approved and approved[f] != now.get(f, "")
    )
    return changes, tuple(f for f in IDENTITY_FIELDS if f not in approved)


def hierarchy_changes(
    user: ConnectUser, baseline: UserBaseline | None
) -> tuple[tuple[FieldChange, ...], tuple[str, ...]]:
    if baseline is None or baseline.hierarchy_group_id is None:
        return (), ("hierarchy",)
    if baseline.hierarchy_group_id == user.hierarchy_group_id:
        return (), ()
    return (FieldChange("hierarchy", baseline.hierarchy_group_id, user.hierarchy_group_id),), ()


def tag_changes(user: ConnectUser, baseline: UserBaseline | None) -> tuple[tuple[FieldChange, ...], tuple[str, ...]]:
    """Tags added, changed or removed since the approval; `aws:` tags are AWS's own, not compared."""
    if baseline is None or baseline.tags is None:
        return (), ("tags",)
    approved = {k: v for k, v in baseline.tags if not k.startswith("aws:")}
    now = {k: v for k, v in user.tags if not k.startswith("aws:")}
    keys = sorted(approved.keys() | now.keys())
    return tuple(
        FieldChange(f"tag:{k}", approved.get(k), now.get(k)) for k in keys if approved.get(k) != now.get(k)
    ), ()


CHANGES = {"identity": identity_changes, "hierarchy": hierarchy_changes, "tags": tag_changes}


def outside_domains(user: ConnectUser, domains: tuple[str, ...]) -> tuple[str, ...]:
    """The user's emails whose domain is not one of the organization's (empty list: no check)."""
    if not domains:
        return ()
    identity = dict(user.identity)
    emails = [identity.get(f, "") for f in ("Email", "SecondaryEmail")]
    return tuple(e for e in emails if e and e.rsplit("@", 1)[-1].casefold() not in domains)


def restore_calls(
    aspect: str, instance: InstanceRef, user: ConnectUser, changes: tuple[FieldChange, ...]
) -> tuple[Action, ...]:
    """The writes that put the approved values back (pure); status `proposed` until made."""
    base = {"InstanceId": instance.instance_id, "UserId": user.id}
    if aspect == "identity":
        identity = dict(user.identity) | {c.field: c.approved or "" for c in changes}
        info = {k: v for k, v in sorted(identity.items()) if v}  # Connect takes no empty values
        return (Action("connect", "UpdateUserIdentityInfo", {**base, "IdentityInfo": info}, "proposed"),)
    if aspect == "hierarchy":
        (change,) = changes
        group = {"HierarchyGroupId": change.approved} if change.approved else {}  # none: out of every group
        return (Action("connect", "UpdateUserHierarchy", {**base, **group}, "proposed"),)
    arn = f"{instance.arn}/agent/{user.id}"
    actions = []
    put = {c.field.removeprefix("tag:"): c.approved for c in changes if c.approved is not None}
    drop = sorted(c.field.removeprefix("tag:") for c in changes if c.approved is None)
    if put:
        actions.append(Action("connect", "TagResource", {"resourceArn": arn, "tags": put}, "proposed"))
    if drop:
        actions.append(Action("connect", "UntagResource", {"resourceArn": arn, "tagKeys": drop}, "proposed"))
    return tuple(actions)


@dataclass
class _Decision:
    """What the event calls for, from the user as it is now (nothing written in deciding)."""

    actor: Actor
    aspect: str
    instance: InstanceRef | None = None
    user_id: str | None = None
    ignore: str | None = None
    report: tuple[Severity, str, tuple[str, ...]] | None = None  # alert only
    user: ConnectUser | None = None
    baseline: UserBaseline | None = None
    privileged: tuple[str, ...] = ()  # what makes the user privileged
    changes: tuple[FieldChange, ...] = ()
    unrecorded: tuple[str, ...] = ()  # fields the baseline has no approved value for
    outside: tuple[str, ...] = ()  # emails outside the organization's domains
    calls: tuple[Action, ...] = ()  # the restore, when one is due
    approver: str | None = None
    unreadable: bool = False


class ConnectUserGuard:
    """UpdateUserIdentityInfo, UpdateUserHierarchy and user tag changes, on profile_rollback's
    clients, baseline, journal and publisher."""

    def __init__(self, responder: ProfileRollbackResponder) -> None:
        self.r = responder
        self.settings = responder.settings

    def handles(self, event: CloudTrailEvent) -> bool:
        record = event.detail
        return record.event_source == "connect.amazonaws.com" and record.event_name in ASPECTS

    # -- deciding -----------------------------------------------------------------------------
    def _target(self, event: CloudTrailEvent) -> tuple[InstanceRef | None, str | None, bool]:
        """The instance and user the event names; the last: a tag event on something else."""
        record = event.detail
        home = record.recipient_account_id or event.account
        if ASPECTS[record.event_name] == "tags":
            raw = record.param("resourceArn")
            if not isinstance(raw, str) or not raw:
                return None, None, False
            match = _AGENT_ARN.match(unquote(raw.strip()))
            if match is None:
                return None, None, True
            region, account, instance_id, user_id = match.groups()
            return InstanceRef(account, region, instance_id), user_id, False
        user_id = record.param("UserId")
        user_id = user_id.rsplit("/", 1)[-1] if isinstance(user_id, str) and user_id not in ("", "***") else None
        raw_instance = record.param("InstanceId")
        instance = None
        if isinstance(raw_instance, str) and raw_instance not in ("", "***"):
            instance = InstanceRef.parse(raw_instance, home, record.aws_region)
        return instance, user_id, False

    def decide(self, event: CloudTrailEvent) -> _Decision:
        record = event.detail
        actor = Actor.from_record(record)
        aspect = ASPECTS[record.event_name]
        decision = _Decision(actor, aspect)
        # The suite's restores are exactly these calls, by its exact roles: never judged again.
        if is_suite_principal(actor, self.settings):
            decision.ignore = "change made by connect-guard itself"
            return decision
        if actor.type == "AWSService" and exempt_service(actor, (CONNECT_REPLICATION,)):
            decision.ignore = "Global Resiliency replication of a change already assessed in its source region"
            return decision
        instance, user_id, other = self._target(event)
        decision.instance, decision.user_id = instance, user_id
        if other:
            decision.ignore = f"{record.event_name} on a Connect resource that is not a user: not a user change"
            return decision
        if record.denied:
            why = f"the call was denied ({record.error_code}): an attempt, not a change"
            decision.report = (Severity.MEDIUM, "Denied attempt", (why,))
            return decision
        if instance is None or user_id is None:
            why = "the event does not say which instance or user changed; review by hand"
            decision.report = (Severity.HIGH, "Unidentified Connect user change", (why,))
            return decision
        home = (record.recipient_account_id or event.account, record.aws_region)
        if (instance.account_id, instance.region) != home:
            # A user is changed from its own account and region: an ARN of another is not read.
            why = (
                f"the event from account {home[0]} in {home[1]} names a user of account {instance.account_id} "
                f"in {instance.region}: not read, not restored"
            )
            decision.report = (Severity.HIGH, "Connect user change not assessed", (why,))
            return decision
        if not self.r.configured(instance):
            why = "the instance is not in ConnectInstanceArns; not read, not restored"
            decision.report = (Severity.HIGH, "Connect user change not assessed", (why,))
            return decision
        approved = self.r.baselines.instance(instance.arn)
        problem = incomplete(approved.meta, len(approved.profiles), len(approved.users))
        if problem:
            decision.report = (Severity.CRITICAL, "Connect user change not assessed", (f"{problem}; not restored",))
            return decision
        gateway = self.r.gateway(instance)
        try:
            user = gateway.user(user_id)
            baseline = approved.users.get(user.id)
            decision.privileged = self._privileged(gateway, user, baseline, approved.profiles)
        except ConnectResourceNotFoundError as error:
            why = f"the user {user_id} could not be read ({error}): nothing checked, nothing restored"
            decision.report = (Severity.HIGH, "Connect user change not assessed", (why,))
            return decision
        except MemberAccessError as error:  # fail closed: the suite is blind there
            why = f"cannot reach the instance (member account unreachable): {error}"
            decision.report = (Severity.CRITICAL, "Connect user change not assessed", (why,))
            decision.unreadable = True
            return decision
        decision.user, decision.baseline = user, baseline
        decision.changes, decision.unrecorded = CHANGES[aspect](user, baseline)
        if aspect == "identity":
            decision.outside = outside_domains(user, self.settings.organization_email_domains)
        decision.approver = allowlist_match(actor, self.settings.baseline_approvers)
        if decision.privileged and decision.changes and not decision.unrecorded:
            decision.calls = restore_calls(aspect, instance, user, decision.changes)
        return decision

    def _privileged(
        self, gateway: ConnectGateway, user: ConnectUser, baseline: UserBaseline | None, approved: dict[str, Any]
    ) -> tuple[str, ...]:
        """Why the user is privileged: its privileged profiles (now or approved), by name or by
        the privileged permissions they carry (the baseline's, then Connect's for unknown ones)."""
        rules = self.r.rules
        ids = user.security_profile_ids | (baseline.security_profile_ids if baseline else frozenset())
        names = {p.id: p.name for p in approved.values()}
        if any(i not in approved for i in ids):
            names.update(gateway.profile_names())
        why = []
        for profile_id in sorted(ids):
            name = names.get(profile_id, profile_id)
            if name.casefold() in rules.privileged_profiles:
                why.append(name)
                continue
            permissions = (
                approved[profile_id].permissions if profile_id in approved else gateway.permissions(profile_id)
            )
            if held := sorted(permissions & rules.privileged_permissions):
                why.append(f"{name} ({', '.join(held)})")
        return tuple(why)

    def severity(self, decision: _Decision) -> Severity:
        if decision.aspect == "identity":
            return Severity.CRITICAL if decision.privileged or decision.outside else Severity.MEDIUM
        return Severity.HIGH if decision.privileged else Severity.MEDIUM

    # -- handling -----------------------------------------------------------------------------
    def mode_of(self, decision: _Decision, event: CloudTrailEvent) -> ModeDecision:
        """The instance's account: the restore writes there."""
        account = decision.instance.account_id if decision.instance else None
        return self.settings.mode_for("profile_rollback", account or event.detail.recipient_account_id or event.account)

    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        decision = self.decide(event)
        if decision.ignore:
            outcome.reason = decision.ignore
            return outcome
        if decision.report:
            severity, title, reasons = decision.report
            return self._publish(self.finding(event, decision, severity, title, reasons), outcome, "alerted")
        assert decision.user is not None and decision.instance is not None
        allowed = allowlist_match(decision.actor, self.settings.allowlisted_principals)
        if decision.approver:
            return self._approve(event, decision, outcome)
        if not decision.changes and not decision.unrecorded and not decision.outside:
            recovered = self._recovered(event, decision)
            if recovered is not None:
                return self._publish(recovered, outcome, "restored")
            outcome.reason = "the user's values are the approved ones (or already restored)"
            return outcome
        severity, reasons = self.severity(decision), self.reasons(decision)
        if allowed:
            notes = (f"actor is allowlisted ({allowed}): not acted on", f"would otherwise be {severity}", *reasons)
            finding = self.finding(event, decision, Severity.INFO, "Allowlisted Connect user change", notes)
            return self._publish(finding, outcome, "alerted")
        if not decision.calls:
            return self._publish(
                self.finding(event, decision, severity, "Connect user change", reasons), outcome, "alerted"
            )
        mode = self.mode_of(decision, event)
        if not mode.enforces:
            reasons += (
                "detect mode: no change made; the actions show the exact calls enforce mode makes "
                f"(detect: {mode.reason})",
            )
            finding = self.finding(event, decision, severity, "Connect user change", reasons, decision.calls)
            return self._publish(finding, outcome, "alerted")
        return self._restore(event, decision, severity, reasons, outcome)

    def reasons(self, decision: _Decision) -> tuple[str, ...]:
        found: list[str] = []
        if decision.baseline is None:
            found.append("the user is not in the approved baseline: no approved values, nothing restored")
        for change in decision.changes:
            found.append(f"{change.field}: approved {change.shown(change.approved)}, now {change.shown(change.now)}")
        if decision.baseline is not None and decision.unrecorded:
            shown = ", ".join(decision.unrecorded)
            found.append(f"no approved value recorded for {shown}: not compared, not restored (the sweep records them)")
        found += [f"email outside the organization's domains: {e}" for e in decision.outside]
        if decision.privileged:
            found.append(f"privileged user: holds {', '.join(decision.privileged)}")
            if decision.aspect == "identity":
                found.append("a privileged user's email reset is an account takeover: check the password reset too")
            else:
                found.append("restricted profiles scoped by tag or hierarchy group may now manage this user")
        elif decision.changes or decision.unrecorded:
            found.append("unprivileged user: alert only, never restored")
        return tuple(found)

    def _restore(
        self,
        event: CloudTrailEvent,
        decision: _Decision,
        severity: Severity,
        reasons: tuple[str, ...],
        outcome: Outcome,
    ) -> Outcome:
        """Journal, act, audit, report: a retry that finds it made reports it (`_recovered`)."""
        assert decision.user is not None and decision.instance is not None
        record = event.detail
        finding_id = finding_id_of(NAME, record.event_id)
        taken = [replace(a, status="taken") for a in decision.calls]
        audit = self._audit(event, decision, taken, reasons[0])
        pending = self.r.journal.begin(finding_id, responder=NAME, event_id=record.event_id, records=[audit])
        gateway = self.r.gateway(decision.instance)
        done: list[Action] = []
        failure = None
        for action in decision.calls:
            try:
                gateway.user_call(action.operation, action.parameters)
            except (ConnectResourceNotFoundError, MemberAccessError) as error:
                failure = str(error)
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code not in _REFUSED:
                    raise  # throttling, 5xx: retried; the last attempt alerts
                failure = f"{code}: {error.response['Error']['Message']}"
            if failure:
                done += [replace(a, status="failed") for a in decision.calls[len(done) :]]
                break
            done.append(replace(action, status="taken"))
        status = "failed" if failure else "taken"
        audit = self._audit(event, decision, done, reasons[0])
        try:
            self.r.journal.complete(pending, [audit], status)
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        if failure:
            reasons = (f"RESTORE DID NOT HAPPEN: {failure}", *reasons)
            severity = Severity.CRITICAL
        title = "Connect user change restore FAILED" if failure else "Connect user restored"
        finding = self.finding(event, decision, severity, title, reasons, tuple(done))
        return self._publish(finding, outcome, "alerted" if failure else "restored")

    def _audit(self, event: CloudTrailEvent, decision: _Decision, actions: list[Action], reason: str) -> dict[str, Any]:
        assert decision.user is not None and decision.instance is not None
        return actions_record(
            self.r.audit,
            actions,
            responder=NAME,
            actor=decision.actor.arn,
            target=f"{decision.instance.arn}/agent/{decision.user.id}",
            reason=reason,
            before=[c.shown(c.now) for c in decision.changes],
            event_id=event.detail.event_id,
            finding_id=finding_id_of(NAME, event.detail.event_id),
            mode="enforce",
        )

    def _recovered(self, event: CloudTrailEvent, decision: _Decision) -> Finding | None:
        """The restore an earlier attempt of this event journaled, found made: its finding."""
        if not self.mode_of(decision, event).enforces:
            return None
        pending = self.r.journal.get(finding_id_of(NAME, event.detail.event_id))
        if pending is None or pending.responder != NAME or not pending.records:
            return None
        actions = tuple(replace(a, status="taken") for a in pending.actions())
        if not pending.audited:
            self.r.journal.complete(pending, list(pending.records), "taken")
        note = "restored by an earlier attempt at this event, which stopped before reporting it; re-read now, in place"
        severity = Severity.CRITICAL if decision.aspect == "identity" else Severity.HIGH
        return self.finding(event, decision, severity, "Connect user restored", (note,), actions)

    def _approve(self, event: CloudTrailEvent, decision: _Decision, outcome: Outcome) -> Outcome:
        """A baseline approver's change becomes the approved value (the other fields kept)."""
        assert decision.user is not None and decision.instance is not None
        user, known = decision.user, decision.baseline
        approved = known or UserBaseline(user.id, user.username, user.security_profile_ids)
        if decision.aspect == "identity":
            approved = replace(approved, identity=tuple((k, v) for k, v in user.identity if k in IDENTITY_FIELDS))
        elif decision.aspect == "hierarchy":
            approved = replace(approved, hierarchy_group_id=user.hierarchy_group_id)
        else:
            approved = replace(approved, tags=user.tags)
        by = decision.actor.arn or str(decision.approver)
        self.r.baselines.approve_user(decision.instance.arn, approved, by)
        reasons = (
            f"actor is a baseline approver ({decision.approver}): the change is now the approved baseline",
            *self.reasons(decision),
        )
        finding = self.finding(event, decision, Severity.INFO, "Baseline approved: Connect user change", reasons)
        return self._publish(finding, outcome, "alerted")

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed: decide again; a restore still due is a CRITICAL FAILED alert."""
        record = event.detail
        try:
            decision = reread(lambda: self.decide(event))
        except ParamValidationError:
            return  # the event names nothing Connect could hold: no restore could be due
        except Exception as failure:
            decision = _Decision(Actor.from_record(record), ASPECTS[record.event_name])
            verdict, state = "UNCONFIRMED", f"the user could not be re-read ({type(failure).__name__}: {failure})"
        else:
            if decision.unreadable and decision.report:
                verdict, state = "UNCONFIRMED", "; ".join(decision.report[2])
            elif not decision.calls:
                if decision.ignore is None and decision.report is None and not decision.changes:
                    recovered = reread(lambda: self._recovered(event, decision))
                    if recovered is not None:
                        self.r.publisher.publish(recovered)
                return  # restored since, or no restore was due (the DLQ and its alarm keep it)
            elif not self.mode_of(decision, event).enforces:
                verdict = "NOT EVALUATED (detect mode)"
                state = "detect mode: nothing is restored; this alert is what the attempts failed to send"
            else:
                verdict, state = "FAILED", "re-read now, the user still differs from the approved values"
        reasons = (
            f"RESTORE DID NOT HAPPEN: {type(error).__name__}: {error}",
            state,
            *self.reasons(decision),
            "compare with the approved baseline and restore it by hand (runbook)",
        )
        title = f"Connect user restore {verdict} for {record.event_name} in {record.recipient_account_id}"
        finding = self.finding(event, decision, Severity.CRITICAL, title, reasons, decision.calls, full_title=True)
        self.r.publisher.publish(finding)

    # -- reporting ----------------------------------------------------------------------------
    def finding(
        self,
        event: CloudTrailEvent,
        decision: _Decision,
        severity: Severity,
        title: str,
        reasons: tuple[str, ...],
        actions: tuple[Action, ...] = (),
        *,
        full_title: bool = False,
    ) -> Finding:
        record, actor, instance, user = event.detail, decision.actor, decision.instance, decision.user
        name = user.username if user else decision.user_id or "(unnamed)"
        shown = f"{name} ({decision.aspect})" if user or decision.user_id else f"{record.event_name} by {actor.display}"
        mode = self.mode_of(decision, event)
        arn = f"{instance.arn}/agent/{user.id if user else decision.user_id}" if instance and decision.user_id else None
        connect = None
        if instance:
            connect = ConnectRef(
                instance.instance_id,
                instance.arn,
                user_id=user.id if user else decision.user_id,
                username=user.username if user else None,
            )
        change = None
        if actions and decision.changes:  # what a restore puts back; alert-only changes are in the reasons
            change = Change(
                tuple(c.shown(c.now) for c in decision.changes),
                tuple(c.shown(c.approved) for c in decision.changes),
                tuple(c.field for c in decision.changes),
                "approved",
            )
        return Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=title if full_title else f"{title}: {shown} in {record.recipient_account_id}",
            summary=f"{actor.display} called {record.event_name} on Connect user {name} in account "
            f"{record.recipient_account_id} ({record.aws_region}). Severity {severity}.",
            event=EventRef.of(event),
            actor=actor,
            attempt=Attempt.of(record),
            allowlisted=allowlist_match(actor, self.settings.allowlisted_principals) is not None,
            reasons=reasons,
            runbook_url=self.settings.runbook_url(NAME) + RUNBOOK_ANCHOR,
            environment=self.settings.environment,
            mode=mode.mode,
            mode_reason=mode.reason,
            target=Target("connect_user", name, arn),
            connect=connect,
            change=change,
            actions=actions,
        )

    def _publish(self, finding: Finding, outcome: Outcome, result: str) -> Outcome:
        return self.r._publish(finding, outcome, result)
