"""Responsive control: CloudTrail stopped or weakened (StopLogging, DeleteTrail, UpdateTrail,
PutEventSelectors, PutInsightSelectors), and Connect contact flow logs switched off
(UpdateInstanceAttribute CONTACTFLOW_LOGS, see FlowLogsGuard).

Without a trail that logs management events the suite is blind: every other control reads
CloudTrail. The responder re-reads the trail (the event's parameters are the attacker's claim,
and a denied call carries none), compares it with its approved snapshot (connect_guard.trails)
and, in enforce mode, puts the snapshot back: delivery settings, selectors, then StartLogging.
A deleted trail is alerted with its last snapshot (re-creating it is the SOC's call: its bucket
policy and key grants must be checked first). A trail with no snapshot, an account the suite
cannot read, or a change made through CloudFormation is alerted, never changed. The restore is
journaled before CloudTrail is called (connect_guard.audit), as for the other responders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.audit import ActionJournal, AuditLog, PendingAction, action_record
from connect_guard.clients import AwsClients, reread
from connect_guard.connect import ConnectGateway, InstanceRef
from connect_guard.errors import ConnectResourceNotFoundError, MemberAccessError
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Action, Attempt, Change, ConnectRef, EventRef, Finding, Target, finding_id_of
from connect_guard.observability import logger
from connect_guard.outcome import Outcome
from connect_guard.policy import Severity
from connect_guard.principals import CLOUDFORMATION, Actor, allowlist_match, exempt_service, is_suite_principal
from connect_guard.publisher import SnsPublisher, publish_outcome
from connect_guard.responders.connect_storage_guard import StorageGuard
from connect_guard.responders.key_guard import KeyGuard
from connect_guard.responders.plumbing_guard import PlumbingGuard
from connect_guard.settings import MemberPurpose, ModeDecision, Settings
from connect_guard.trails import (
    Drift,
    TrailGateway,
    TrailSnapshots,
    TrailState,
    canonical,
    drift,
    home_region,
    trail_account,
    trail_arn,
)

NAME = "logging_guard"
KIND = "logging.cloudtrail_tampering"
CLOUDTRAIL = "cloudtrail.amazonaws.com"
TRAIL_EVENTS = ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "PutInsightSelectors")
UNREADABLE = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


_TRAIL_ARN = re.compile(r"^arn:(aws[a-z-]*):cloudtrail:([a-z]{2}(?:-[a-z]+)+-\d):(\d{12}):trail/([\w.-]{3,128})$")
# CloudTrail's naming rules: 3-128 of letters, digits and single . _ - between them; no IP address.
_TRAIL_NAME = re.compile(r"^(?!\d+\.\d+\.\d+\.\d+$)[A-Za-z0-9](?:[A-Za-z0-9]|[._-](?=[A-Za-z0-9])){2,127}$")


def _unusable_trail(reference: str, account: str, partition: str) -> str | None:
    """Why the trail the event names can't be read (None: it can). A trail is changed from its
    own account; an ARN of another account or partition, or no trail name at all, is not read."""
    shown = repr(reference[:160])
    if reference.startswith("arn:"):
        match = _TRAIL_ARN.match(reference)
        if match is None or _TRAIL_NAME.match(match[4]) is None:
            return f"the event names {shown}, which is not a CloudTrail trail ARN: nothing was read"
        if match[1] != partition:
            return f"the event names a trail in partition {match[1]}, not {partition}: nothing was read"
        if match[3] != account:
            return (
                f"the event from account {account} names a trail of account {match[3]}: nothing was read; "
                "check that account's trails"
            )
        return None
    if _TRAIL_NAME.match(reference) is None:
        return f"the event names {shown}, which is not a trail name: nothing was read; check every trail by hand"
    return None


class SubControl(Protocol):
    """A logging setting other than trails (flow logs, storage, keys, the suite's plumbing): its
    own events, decided and restored by itself, on the responder's clients, journal and publisher."""

    def handles(self, event: CloudTrailEvent) -> bool: ...

    def handle(self, event: CloudTrailEvent) -> Outcome: ...

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None: ...


@dataclass
class _Decision:
    """What the event calls for, from the trail as it is now (nothing written in deciding)."""

    actor: Actor
    arn: str | None = None
    snapshot: TrailState | None = None
    current: TrailState | None = None
    found: tuple[Drift, ...] = ()
    report: tuple[Severity, str, tuple[str, ...]] | None = None  # alert only: no restore is due
    ignore: str | None = None
    own: bool = False  # made by the suite's own role, which only ever restores
    unreadable: bool = False  # the trail could not be read: it may be weakened, nobody knows

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        if self.snapshot is None or not self.found:
            return []
        return TrailGateway.restore_calls(self.snapshot, self.found)


class LoggingGuardResponder:
    name = NAME

    def __init__(self, settings: Settings, clients: AwsClients, snapshots: TrailSnapshots, audit: AuditLog) -> None:
        self.settings = settings
        self.clients = clients
        self.snapshots = snapshots
        self.audit = audit
        self.journal = ActionJournal(audit)
        self.publisher = SnsPublisher(clients.sns, settings.alert_topic_arn)
        self.flow_logs = FlowLogsGuard(self)
        self.plumbing = PlumbingGuard(self)
        # Sub-controls for the other logging settings, each with its own events: one line each.
        self.sub_controls: tuple[SubControl, ...] = (self.flow_logs, StorageGuard(self), KeyGuard(self), self.plumbing)

    def _sub_control(self, event: CloudTrailEvent) -> SubControl | None:
        return next((sub for sub in self.sub_controls if sub.handles(event)), None)

    @classmethod
    def from_settings(cls, settings: Settings, clients: AwsClients) -> LoggingGuardResponder:
        if not settings.baseline_table_name or not settings.audit_table_name:
            raise ValueError("logging_guard needs BASELINE_TABLE_NAME (trail snapshots) and AUDIT_TABLE_NAME")
        return cls(
            settings,
            clients,
            TrailSnapshots(clients.dynamodb, settings.baseline_table_name),
            AuditLog(clients.dynamodb, settings.audit_table_name),
        )

    def mode_for(self, account: str | None) -> ModeDecision:
        """Whether the guard restores in `account` (the account the write touches), and why."""
        return self.settings.mode_for("logging_guard", account)

    def event_fields(self, event: CloudTrailEvent, actor: Actor) -> dict[str, Any]:
        """What every logging-guard finding about `event` says of it, its caller and the mode."""
        mode = self.mode_of(event)
        return {
            "event": EventRef.of(event),
            "actor": actor,
            "attempt": Attempt.of(event.detail),
            "allowlisted": allowlist_match(actor, self.settings.allowlisted_principals) is not None,
            "runbook_url": self.settings.runbook_url(NAME),
            "environment": self.settings.environment,
            "mode": mode.mode,
            "mode_reason": mode.reason,
        }

    def mode_of(self, event: CloudTrailEvent) -> ModeDecision:
        """The event's account: every restore of the event path writes there (a change is made,
        and put back, in its own account)."""
        return self.mode_for(event.detail.recipient_account_id or event.account)

    def trail_gateway(self, account: str, arn: str, purpose: MemberPurpose = "read") -> TrailGateway:
        """The trail's account and home region: this account's own role, else the member stack's
        role for `purpose` (read; rollback, in enforce mode only, for the restoring writes)."""
        return TrailGateway(self.clients.for_account("cloudtrail", account, home_region(arn), self.settings, purpose))

    # -- deciding -----------------------------------------------------------------------------
    def _decide(self, event: CloudTrailEvent) -> _Decision:
        record = event.detail
        actor = Actor.from_record(record)
        if record.event_source != CLOUDTRAIL or record.event_name not in TRAIL_EVENTS:
            return _Decision(actor, ignore=f"{record.event_name} is not a trail change this responder handles")
        # The suite's own role only restores: its change is left alone only when the trail is
        # then as approved (decided below, from the trail), never on its identity alone.
        own = is_suite_principal(actor, self.settings)
        account = record.recipient_account_id or event.account
        reference = record.param("name") or record.param("trailName")  # the selector calls say trailName
        arn, unusable = None, None
        if isinstance(reference, str) and reference not in ("", "***"):
            unusable = _unusable_trail(reference, account, self.settings.partition)
            arn = None if unusable else trail_arn(reference, account, record.aws_region, self.settings.partition)
        if record.denied:
            # A denied call changes nothing, but someone tried to blind the suite: HIGH, not MEDIUM.
            why = f"the call was denied ({record.error_code}): an attempt to switch logging off, not a change"
            return _Decision(actor, arn, report=(Severity.HIGH, "Denied attempt", (why,)))
        if unusable:
            return _Decision(actor, report=(Severity.CRITICAL, "Trail change not assessed", (unusable,)))
        if arn is None:
            why = "the event does not say which trail changed; check every trail of the account by hand"
            return _Decision(actor, report=(Severity.CRITICAL, "Unidentified trail change", (why,)))
        allowed = allowlist_match(actor, self.settings.allowlisted_principals)
        if allowed:
            why = f"made by an allowlisted principal ({allowed}): kept, not restored"
            return _Decision(actor, arn, report=(Severity.MEDIUM, "Allowlisted trail change", (why,)))
        if exempt_service(actor, {CLOUDFORMATION}):
            why = "made through CloudFormation: a stack owns this trail; the SOC decides, nothing is restored"
            return _Decision(actor, arn, report=(Severity.CRITICAL, "Trail changed by a stack", (why,)))
        if trail_account(arn) != account:
            # Another account's trail (an organization trail's shadow): its owner's events say it.
            why = f"trail of account {trail_account(arn)}, changed from {account}: not re-read here"
            return _Decision(actor, arn, report=(Severity.CRITICAL, "Trail change not assessed", (why,)))
        snapshot = self.snapshots.get(arn)
        try:
            # A member account's trail through the member stack's read role (for_account).
            current = self.trail_gateway(account, arn).state(arn)
        except MemberAccessError as error:
            report = (Severity.CRITICAL, "Trail change not assessed", (str(error),))
            return _Decision(actor, arn, snapshot, report=report, unreadable=True)
        except ClientError as error:
            if error.response["Error"]["Code"] not in UNREADABLE:
                raise  # transient: retried, and the last attempt alerts
            why = f"the trail could not be read ({error.response['Error']['Code']}): not restored"
            report = (Severity.CRITICAL, "Trail change not assessed", (why,))
            return _Decision(actor, arn, snapshot, report=report, unreadable=True)
        if current is None:
            shown = self._snapshot_lines(snapshot) if snapshot else ("no snapshot of this trail was ever taken",)
            why = "the trail no longer exists: re-create it from its last snapshot (runbook)"
            severity = Severity.CRITICAL if snapshot else Severity.HIGH
            return _Decision(actor, arn, snapshot, report=(severity, "Trail deleted", (why, *shown)))
        if snapshot is None:
            why = "the trail has no approved snapshot: the suite does not know its approved state, nothing is restored"
            return _Decision(actor, arn, None, current, report=(Severity.HIGH, "Unknown trail changed", (why,)))
        found = drift(snapshot, current)
        if own and not found:
            return _Decision(actor, ignore="the suite's own restore of the approved trail")
        return _Decision(actor, arn, snapshot, current, found, own=own)

    @staticmethod
    def _snapshot_lines(snapshot: TrailState) -> tuple[str, ...]:
        return (
            f"last snapshot ({snapshot.taken_at or 'undated'}): logging {'on' if snapshot.is_logging else 'off'}, "
            f"bucket {snapshot.s3_bucket}, prefix {snapshot.s3_prefix or '(none)'}, "
            f"KMS key {snapshot.kms_key_id or '(none)'}, "
            f"multi-region {snapshot.multi_region}, global events {snapshot.global_events}",
        )

    # -- handling -----------------------------------------------------------------------------
    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        sub = self._sub_control(event)
        if sub is not None:
            return sub.handle(event)
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        decision = self._decide(event)
        if decision.ignore:
            outcome.reason = decision.ignore
            logger.info("no finding", extra={"reason": decision.ignore})
            return outcome
        if decision.report:
            severity, title, reasons = decision.report
            return self._publish(self._finding(event, decision, severity, title, reasons), outcome, "alerted")
        assert decision.snapshot is not None and decision.current is not None and decision.arn is not None
        finding_id = finding_id_of(NAME, record.event_id)
        if not decision.found:
            pending = self.journal.get(finding_id) if self.mode_of(event).enforces else None
            if pending is None and record.event_name == "StopLogging":
                # Restarted since (by hand, or another tool): nothing to restore, but the trail
                # recorded nothing in between, and the gap is evidence the SOC needs.
                why = (
                    "the trail is logging again, as approved; it recorded nothing from "
                    f"{record.event_time:%Y-%m-%d %H:%M:%S} UTC until it was restarted: look for that "
                    "window's calls in CloudTrail event history"
                )
                return self._publish(
                    self._finding(event, decision, Severity.HIGH, "Trail was stopped", (why,)), outcome, "alerted"
                )
            if pending is None:
                outcome.reason = "the trail matches its approved snapshot: nothing to restore"
                return outcome
            # An earlier attempt restored it and died before reporting: report what it did.
            finding = self._journaled(event, decision, pending)
            if not pending.audited:
                self.journal.complete(pending, list(pending.records), "taken")
            return self._publish(finding, outcome, "restored")
        calls = decision.calls
        if not self.mode_of(event).enforces:
            actions = tuple(Action("cloudtrail", op, params, "proposed") for op, params in calls)
            return self._publish(self._weakened(event, decision, decision.found, actions), outcome, "alerted")
        return self._restore(event, decision, outcome, finding_id)

    def _restore(self, event: CloudTrailEvent, decision: _Decision, outcome: Outcome, finding_id: str) -> Outcome:
        record = event.detail
        assert decision.arn is not None
        why = "; ".join(d.describe() for d in decision.found)
        records = [
            action_record(
                self.audit,
                Action("cloudtrail", op, params, "taken"),
                responder=NAME,
                actor=decision.actor.arn,
                target=decision.arn,
                reason=f"{record.event_name}: {why}",
                before=decision.current.to_dict() if decision.current else None,
                event_id=record.event_id,
                finding_id=finding_id,
                mode=self.settings.response_mode,
            )
            for op, params in decision.calls
        ]
        found = decision.found
        earlier = self.journal.get(finding_id)
        if earlier is not None and not earlier.audited:
            # An attempt that died halfway: what it set out to do and the re-read no longer finds
            # due was made. Carried into this journal item: audited and reported with the rest.
            due = {op for op, _ in decision.calls}
            records = [r for r in earlier.records if r.get("action") not in due] + records
            now = {d.setting for d in found}
            before = tuple(Drift(**d) for d in earlier.payload.get("drift", []) if d["setting"] not in now)
            found = before + found
        payload = {"drift": [{"setting": d.setting, "approved": d.approved, "now": d.now} for d in found]}
        pending = self.journal.begin(
            finding_id, responder=NAME, event_id=record.event_id, records=records, payload=payload
        )
        gateway = self.trail_gateway(record.recipient_account_id or event.account, decision.arn, "rollback")
        for op, params in decision.calls:
            gateway.call(op, params)
        try:
            self.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        actions = tuple(Action(a.service, a.operation, a.parameters, "taken") for a in pending.actions())
        return self._publish(self._weakened(event, decision, found, actions), outcome, "restored")

    def _journaled(self, event: CloudTrailEvent, decision: _Decision, pending: PendingAction) -> Finding:
        """The finding of a restore an earlier attempt made (its journal) and did not report."""
        actions = tuple(Action(a.service, a.operation, a.parameters, "taken") for a in pending.actions())
        drifts = tuple(Drift(**d) for d in pending.payload.get("drift", []))
        return self._weakened(event, decision, drifts, actions)

    def _report_journaled(self, event: CloudTrailEvent, decision: _Decision) -> bool:
        """Last attempt, nothing left to restore: if an attempt restored it (its answer lost, or
        it died before its finding), say so now; else the restore would go unreported."""
        if not self.mode_of(event).enforces:
            return False
        pending = reread(lambda: self.journal.get(finding_id_of(NAME, event.detail.event_id)))
        if pending is None:
            return False
        self.publisher.publish(self._journaled(event, decision, pending))
        if not pending.audited:
            try:
                self.journal.complete(pending, list(pending.records), "taken")
            except (ClientError, BotoCoreError) as failure:
                logger.warning("audit record not written; the journal keeps it", extra={"error": str(failure)})
        return True

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed: decide again from the trail as it is now. Still weakened: a
        CRITICAL `Restore FAILED`; unreadable: UNCONFIRMED; restored by an attempt: its report;
        nothing due: no alert."""
        record = event.detail
        sub = self._sub_control(event)
        if sub is not None:
            sub.give_up(event, error)
            return
        if record.event_name not in TRAIL_EVENTS:
            return
        try:
            decision = reread(lambda: self._decide(event))
        except Exception as failure:
            state = f"the trail could not be re-read ({type(failure).__name__}: {failure}): it may still be weakened"
            verdict = "UNCONFIRMED"
            decision = _Decision(Actor.from_record(record))
        else:
            if decision.unreadable and decision.report:
                # Refused on the re-read: whether the trail is still weakened is unknown.
                verdict, state = "UNCONFIRMED", "; ".join(decision.report[2])
            elif decision.ignore or decision.report or not decision.found:
                if not (decision.ignore or decision.report) and self._report_journaled(event, decision):
                    return
                logger.info("last attempt failed; no restore is due: no FAILED alert")
                return
            else:
                state = "re-read now, the trail still differs: " + "; ".join(d.describe() for d in decision.found)
                verdict = "FAILED"
        outcome = "the trail is NOT restored" if self.mode_of(event).enforces else "NOT evaluated"
        reasons = (
            f"RESTORE DID NOT HAPPEN: {type(error).__name__}: {error}",
            state,
            "restore the trail from its snapshot by hand (runbook)",
        )
        title = f"Trail restore {verdict} for {record.event_name} in {record.recipient_account_id}: {outcome}"
        self.publisher.publish(self._finding(event, decision, Severity.CRITICAL, title, reasons, full_title=True))

    # -- findings -----------------------------------------------------------------------------
    def _weakened(
        self, event: CloudTrailEvent, decision: _Decision, found: tuple[Drift, ...], actions: tuple[Action, ...]
    ) -> Finding:
        settings = {d.setting for d in found}
        # Logging off, or delivery or management-event selectors changed: the suite is blind.
        insights_only = settings == {"insight_selectors"}
        severity = Severity.HIGH if insights_only else Severity.CRITICAL
        restored = bool(actions) and all(a.status == "taken" for a in actions)
        title = "Trail restored" if restored else "Trail weakened"
        reasons = tuple(d.describe() for d in found)
        if decision.own:
            reasons = (
                "made by connect-guard's own role, which only restores trails to their snapshot: a partial "
                "restore, or the role is compromised (treat it as such until checked)",
                *reasons,
            )
        if decision.current is not None and not decision.current.records_management_writes:
            reasons = ("the trail no longer records write management events: the suite is blind to them", *reasons)
        change = Change(
            tuple(f"{d.setting}={canonical(d.now)}" for d in found),
            tuple(f"{d.setting}={canonical(d.approved)}" for d in found),
            tuple(sorted(settings)),
            "approved",
        )
        return self._finding(event, decision, severity, title, reasons, change=change, actions=actions)

    def _finding(
        self,
        event: CloudTrailEvent,
        decision: _Decision,
        severity: Severity,
        title: str,
        reasons: tuple[str, ...],
        *,
        full_title: bool = False,
        change: Change | None = None,
        actions: tuple[Action, ...] = (),
    ) -> Finding:
        record = event.detail
        actor = decision.actor
        name = decision.arn.rsplit("/", 1)[-1] if decision.arn else None
        headline = title if full_title else f"{title}: CloudTrail trail {name or '(unnamed)'} ({record.event_name})"
        return Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=headline,
            summary=f"{actor.display} called {record.event_name} on trail {name or '(unnamed)'} in account "
            f"{record.recipient_account_id} ({record.aws_region}). Severity {severity}.",
            **self.event_fields(event, actor),
            reasons=reasons,
            target=Target("trail", name, decision.arn),
            change=change,
            actions=actions,
        )

    def _publish(self, finding: Finding, outcome: Outcome, result: str) -> Outcome:
        return publish_outcome(self.publisher, finding, outcome, result)


def build(settings: Settings, clients: AwsClients) -> LoggingGuardResponder:
    return LoggingGuardResponder.from_settings(settings, clients)


# ---- Connect contact flow logs ----------------------------------------------------------------
CONNECT = "connect.amazonaws.com"
FLOW_LOGS = "CONTACTFLOW_LOGS"
FLOW_LOGS_KIND = "logging.connect_flow_logs"


@dataclass
class _FlowDecision:
    """What an UpdateInstanceAttribute calls for, from the instance as it is now."""

    actor: Actor
    instance: InstanceRef | None = None
    report: tuple[Severity, str, tuple[str, ...]] | None = None
    ignore: str | None = None
    off: bool = False  # re-read: flow logs are off on an instance the suite covers
    unreadable: bool = False  # the instance could not be read: flow logs may be off
    on_again: bool = False  # re-read: on, on an instance the suite covers (an earlier attempt's restore?)


class FlowLogsGuard:
    """Contact flow logs (the instance's `/aws/connect/<alias>` log group, which the archive
    exports) must stay on for every instance in ConnectInstanceArns: that is the approved state,
    no snapshot needed. Turned off, they are HIGH and, in enforce mode, turned back on."""

    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings

    def handles(self, event: CloudTrailEvent) -> bool:
        return event.detail.event_source == CONNECT and event.detail.event_name == "UpdateInstanceAttribute"

    def gateway(self, instance: InstanceRef) -> ConnectGateway:
        def client(purpose: MemberPurpose) -> Any:
            return self.r.clients.for_account("connect", instance.account_id, instance.region, self.settings, purpose)

        return ConnectGateway(client("read"), instance, writer=lambda: client("rollback"))

    def configured(self, instance: InstanceRef) -> bool:
        own, region = self.settings.own_account_id, self.settings.region
        return instance.arn in {InstanceRef.parse(a, own, region).arn for a in self.settings.connect_instance_arns}

    def decide(self, event: CloudTrailEvent) -> _FlowDecision:
        record = event.detail
        actor = Actor.from_record(record)
        kind, value = record.param("AttributeType"), record.param("Value")
        raw = record.param("InstanceId")
        instance = None
        if isinstance(raw, str) and raw not in ("", "***"):
            instance = InstanceRef.parse(raw, record.recipient_account_id or event.account, record.aws_region)
        if record.denied:
            # Null parameters: which attribute it tried is unknown. An attempt, not a change.
            why = f"the call was denied ({record.error_code}): an attempt, not a change"
            return _FlowDecision(actor, instance, report=(Severity.MEDIUM, "Denied attempt", (why,)))
        # No attribute named (missing, truncated, not a string): it may have been the flow logs;
        # the instance's re-read decides, as for CONTACTFLOW_LOGS with no value.
        unnamed = not isinstance(kind, str) or kind in ("", "***")
        if not unnamed and kind != FLOW_LOGS:
            return _FlowDecision(actor, ignore=f"instance attribute {kind} is not a logging setting")
        if not unnamed and str(value).lower() == "true":
            return _FlowDecision(actor, ignore="contact flow logs turned on")
        if instance is None:
            why = "the event does not say which instance; check the flow logs of every instance by hand"
            return _FlowDecision(actor, report=(Severity.HIGH, "Unidentified instance", (why,)))
        home = (record.recipient_account_id or event.account, record.aws_region)
        if (instance.account_id, instance.region) != home:
            # An instance is changed from its own account and region only: not one to act on.
            why = (
                f"the event from account {home[0]} in {home[1]} names an instance of account "
                f"{instance.account_id} in {instance.region}: not read, not restored"
            )
            return _FlowDecision(actor, instance, report=(Severity.HIGH, "Flow logs change not assessed", (why,)))
        allowed = allowlist_match(actor, self.settings.allowlisted_principals)
        if allowed:
            why = f"made by an allowlisted principal ({allowed}): kept, not restored"
            return _FlowDecision(actor, instance, report=(Severity.MEDIUM, "Allowlisted flow logs change", (why,)))
        if exempt_service(actor, {CLOUDFORMATION}):
            why = "made through CloudFormation: a stack owns this instance; the SOC decides, nothing is restored"
            return _FlowDecision(actor, instance, report=(Severity.HIGH, "Flow logs changed by a stack", (why,)))
        if not self.configured(instance):
            why = "the instance is not in ConnectInstanceArns: its flow logs are not the suite's to restore"
            return _FlowDecision(actor, instance, report=(Severity.HIGH, "Flow logs change not assessed", (why,)))
        try:
            now = self.gateway(instance).attribute(FLOW_LOGS)
        except (MemberAccessError, ConnectResourceNotFoundError) as error:
            why = f"the instance could not be read ({error}): not restored"
            report = (Severity.HIGH, "Flow logs change not assessed", (why,))
            return _FlowDecision(actor, instance, report=report, unreadable=True)
        except ClientError as error:
            if error.response["Error"]["Code"] not in UNREADABLE:
                raise
            why = f"the instance could not be read ({error.response['Error']['Code']}): not restored"
            report = (Severity.HIGH, "Flow logs change not assessed", (why,))
            return _FlowDecision(actor, instance, report=report, unreadable=True)
        if now == "true":
            why = "contact flow logs are on again: nothing to restore"
            if unnamed:
                why = "the event does not say which attribute it changed; contact flow logs are on: nothing to restore"
            return _FlowDecision(actor, instance, ignore=why, on_again=True)
        return _FlowDecision(actor, instance, off=True)

    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        decision = self.decide(event)
        why = "contact flow logs are off: the flows' logging blocks write nothing the archive can keep"
        finding_id = finding_id_of(NAME, record.event_id)
        if decision.ignore:
            pending = None
            if decision.on_again and self.r.mode_of(event).enforces:
                pending = self.r.journal.get(finding_id)
            if pending is None:
                outcome.reason = decision.ignore
                return outcome
            # An earlier attempt turned them on and died before its finding: report that restore.
            if not pending.audited:
                self.r.journal.complete(pending, list(pending.records), "taken")
            return self.r._publish(self.journaled(event, decision), outcome, "restored")
        if decision.report:
            severity, title, reasons = decision.report
            return self.r._publish(self.finding(event, decision, severity, title, reasons), outcome, "alerted")
        assert decision.instance is not None
        instance = decision.instance
        parameters = self.restore_parameters(instance)
        if not self.r.mode_of(event).enforces:
            action = Action("connect", "UpdateInstanceAttribute", parameters, "proposed")
            finding = self.finding(event, decision, Severity.HIGH, "Contact flow logs off", (why,), (action,))
            return self.r._publish(finding, outcome, "alerted")
        action = Action("connect", "UpdateInstanceAttribute", parameters, "taken")
        audit = action_record(
            self.r.audit,
            action,
            responder=NAME,
            actor=decision.actor.arn,
            target=instance.arn,
            reason=why,
            before={FLOW_LOGS: "false"},
            event_id=record.event_id,
            finding_id=finding_id,
            mode=self.settings.response_mode,
        )
        pending = self.r.journal.begin(finding_id, responder=NAME, event_id=record.event_id, records=[audit])
        self.gateway(instance).set_attribute(FLOW_LOGS, "true")
        try:
            self.r.journal.complete(pending, [audit], "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        finding = self.finding(event, decision, Severity.HIGH, "Contact flow logs restored", (why,), (action,))
        return self.r._publish(finding, outcome, "restored")

    @staticmethod
    def restore_parameters(instance: InstanceRef) -> dict[str, Any]:
        return {"InstanceId": instance.instance_id, "AttributeType": FLOW_LOGS, "Value": "true"}

    def journaled(self, event: CloudTrailEvent, decision: _FlowDecision) -> Finding:
        """The finding of a restore an earlier attempt made (its journal) and did not report."""
        assert decision.instance is not None
        action = Action("connect", "UpdateInstanceAttribute", self.restore_parameters(decision.instance), "taken")
        why = "contact flow logs were off: the flows' logging blocks wrote nothing the archive can keep"
        earlier = "restored by an earlier attempt at this event, which stopped before reporting it"
        return self.finding(event, decision, Severity.HIGH, "Contact flow logs restored", (why, earlier), (action,))

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        record = event.detail
        try:
            decision = reread(lambda: self.decide(event))
        except Exception as failure:
            verdict, state = "UNCONFIRMED", f"the instance could not be re-read ({type(failure).__name__}: {failure})"
            decision = _FlowDecision(Actor.from_record(record))
        else:
            if decision.unreadable and decision.report:
                verdict, state = "UNCONFIRMED", "; ".join(decision.report[2])  # refused on the re-read
            elif not decision.off:
                if decision.on_again and self.r.mode_of(event).enforces:
                    # Restored by an attempt whose answer was lost, or that died before its finding.
                    pending = reread(lambda: self.r.journal.get(finding_id_of(NAME, record.event_id)))
                    if pending is not None:
                        self.r.publisher.publish(self.journaled(event, decision))
                return  # restored since, or nothing was due
            else:
                verdict, state = "FAILED", "re-read now, contact flow logs are still off"
        reasons = (f"RESTORE DID NOT HAPPEN: {type(error).__name__}: {error}", state, "turn them on by hand (runbook)")
        title = f"Flow logs restore {verdict} for {record.event_name} in {record.recipient_account_id}"
        self.r.publisher.publish(self.finding(event, decision, Severity.CRITICAL, title, reasons, full_title=True))

    def finding(
        self,
        event: CloudTrailEvent,
        decision: _FlowDecision,
        severity: Severity,
        title: str,
        reasons: tuple[str, ...],
        actions: tuple[Action, ...] = (),
        *,
        full_title: bool = False,
    ) -> Finding:
        record = event.detail
        instance = decision.instance
        where = instance.instance_id if instance else "(unnamed)"
        return Finding(
            responder=NAME,
            kind=FLOW_LOGS_KIND,
            severity=severity,
            title=title if full_title else f"{title}: Connect instance {where}",
            summary=f"{decision.actor.display} called {record.event_name} on Connect instance {where} in account "
            f"{record.recipient_account_id} ({record.aws_region}). Severity {severity}.",
            **self.r.event_fields(event, decision.actor),
            reasons=reasons,
            target=Target("connect_instance", where, instance.arn if instance else None),
            connect=ConnectRef(instance.instance_id, instance.arn) if instance else None,
            actions=actions,
        )
