"""logging_guard sub-control: Amazon Connect storage configs changed (Associate, Update,
DisassociateInstanceStorageConfig) for call recordings, chat transcripts, scheduled reports,
media streams, contact trace records, agent events and the other resource types.

The event says which instance and resource type; the configs are re-read (the event's
StorageConfig is the caller's claim, and a denied call carries none) and compared with the
instance's approved snapshot (connect_guard.connect_storage). In enforce mode the snapshot is put
back through the member rollback role: attacker-added associations off, settings updated back,
dropped associations associated again; journaled before Connect is called. Recordings,
transcripts, screen recordings and emails are CRITICAL (customers' content), the rest HIGH.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.audit import action_record
from connect_guard.clients import reread
from connect_guard.connect import ConnectGateway, InstanceRef
from connect_guard.connect_storage import (
    RESOURCE_TYPES,
    StorageConfig,
    StorageDrift,
    StorageSnapshots,
    drift,
    restore_calls,
    severity_name,
)
from connect_guard.errors import ConnectResourceNotFoundError, MemberAccessError
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Action, Change, ConnectRef, Finding, Target, finding_id_of
from connect_guard.observability import logger
from connect_guard.outcome import Outcome
from connect_guard.policy import Severity
from connect_guard.principals import CLOUDFORMATION, Actor, allowlist_match, exempt_service, is_suite_principal
from connect_guard.settings import MemberPurpose

if TYPE_CHECKING:
    from connect_guard.responders.logging_guard import LoggingGuardResponder

NAME = "logging_guard"
KIND = "logging.connect_storage"
CONNECT = "connect.amazonaws.com"
STORAGE_EVENTS = (
    "AssociateInstanceStorageConfig",
    "UpdateInstanceStorageConfig",
    "DisassociateInstanceStorageConfig",
)
UNREADABLE = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


@dataclass
class _StorageDecision:
    """What a storage config event calls for, from the instance's configs as they are now."""

    actor: Actor
    instance: InstanceRef | None = None
    resource_type: str | None = None
    approved: tuple[StorageConfig, ...] = ()
    current: tuple[StorageConfig, ...] = ()
    found: tuple[StorageDrift, ...] = ()
    report: tuple[Severity, str, tuple[str, ...]] | None = None  # alert only: no restore is due
    ignore: str | None = None
    own: bool = False  # made by the suite's own role, which only ever restores

    @property
    def severity(self) -> Severity:
        return Severity[severity_name(self.resource_type)]

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        if self.instance is None or not self.found:
            return []
        return restore_calls(self.instance.instance_id, self.found)


class StorageGuard:
    """An instance's storage configs must stay as approved: same bucket, prefix and KMS key, same
    streams, no association dropped or added. Instances outside ConnectInstanceArns, and
    instances with no snapshot, are alerted and never changed."""

    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings
        self.snapshots = StorageSnapshots(responder.clients.dynamodb, responder.settings.baseline_table_name or "")

    def handles(self, event: CloudTrailEvent) -> bool:
        return event.detail.event_source == CONNECT and event.detail.event_name in STORAGE_EVENTS

    def gateway(self, instance: InstanceRef) -> ConnectGateway:
        def client(purpose: MemberPurpose) -> Any:
            return self.r.clients.for_account("connect", instance.account_id, instance.region, self.settings, purpose)

        return ConnectGateway(client("read"), instance, writer=lambda: client("rollback"))

    def configured(self, instance: InstanceRef) -> bool:
        own, region = self.settings.own_account_id, self.settings.region
        return instance.arn in {InstanceRef.parse(a, own, region).arn for a in self.settings.connect_instance_arns}

    # -- deciding -----------------------------------------------------------------------------
    def decide(self, event: CloudTrailEvent) -> _StorageDecision:
        record = event.detail
        actor = Actor.from_record(record)
        raw_instance = record.param("InstanceId")
        instance = None
        if isinstance(raw_instance, str) and raw_instance not in ("", "***"):
            # (A malformed ID or ARN never gets here: the event model refuses it as poison.)
            instance = InstanceRef.parse(raw_instance, record.recipient_account_id or event.account, record.aws_region)
        # ResourceType travels in the query string: CloudTrail may name it either way.
        kind = record.param("ResourceType") or record.param("resourceType")
        kind = kind if isinstance(kind, str) and kind not in ("", "***") else None
        d = _StorageDecision(actor, instance, kind)
        if record.denied:
            # A denied call changes nothing; null parameters may hide which type it aimed at.
            why = f"the call was denied ({record.error_code}): an attempt to redirect stored contact data, not a change"
            return self._report(d, Severity.HIGH, "Denied attempt", why)
        if instance is None:
            why = "the event does not say which instance; check the storage configs of every instance by hand"
            return self._report(d, d.severity, "Unidentified instance", why)
        if kind is None:
            why = "the event does not say which resource type; check every storage config of the instance by hand"
            return self._report(d, Severity.HIGH, "Unidentified storage type", why)
        if kind not in RESOURCE_TYPES:
            why = f"storage resource type {kind} is not one the suite knows: alerted, not assessed or restored"
            return self._report(d, Severity.HIGH, "Unknown storage type changed", why)
        allowed = allowlist_match(actor, self.settings.allowlisted_principals)
        if allowed:
            why = f"made by an allowlisted principal ({allowed}): kept, not restored"
            return self._report(d, Severity.MEDIUM, "Allowlisted storage change", why)
        if exempt_service(actor, {CLOUDFORMATION}):
            why = "made through CloudFormation: a stack owns this instance; the SOC decides, nothing is restored"
            return self._report(d, d.severity, "Storage changed by a stack", why)
        if not self.configured(instance):
            why = "the instance is not in ConnectInstanceArns: its storage is not the suite's to restore"
            return self._report(d, d.severity, "Storage change not assessed", why)
        d.own = is_suite_principal(actor, self.settings)
        try:
            d.current = tuple(self.gateway(instance).storage_configs(kind))
        except (MemberAccessError, ConnectResourceNotFoundError) as error:
            why = f"the instance could not be read ({error}): not restored"
            return self._report(d, d.severity, "Storage change not assessed", why)
        except ClientError as error:
            if error.response["Error"]["Code"] not in UNREADABLE:
                raise  # transient: retried, and the last attempt alerts
            why = f"the storage configs could not be read ({error.response['Error']['Code']}): not restored"
            return self._report(d, d.severity, "Storage change not assessed", why)
        snapshot = self.snapshots.get(instance.arn)
        if snapshot is None:
            now = "; ".join(c.describe() for c in d.current) or "no association"
            why = f"the instance has no approved storage snapshot: nothing is restored (now: {now})"
            return self._report(d, Severity.HIGH, "Unknown storage changed", why)
        d.approved = snapshot.of_type(kind)
        d.found = drift(d.approved, d.current)
        if not d.found:
            d.ignore = f"the {kind} storage config is as approved: nothing to restore"
        return d

    @staticmethod
    def _report(d: _StorageDecision, severity: Severity, title: str, why: str) -> _StorageDecision:
        d.report = (severity, title, (why,))
        return d

    # -- handling -----------------------------------------------------------------------------
    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        decision = self.decide(event)
        finding_id = finding_id_of(NAME, record.event_id)
        if decision.report:
            severity, title, reasons = decision.report
            return self.r._publish(self.finding(event, decision, severity, title, reasons), outcome, "alerted")
        if decision.ignore:
            pending = self.r.journal.get(finding_id) if self.r.mode_of(event).enforces else None
            if pending is None:
                outcome.reason = decision.ignore
                return outcome
            # An earlier attempt restored it and died before reporting: report what it did.
            actions = tuple(Action(a.service, a.operation, a.parameters, "taken") for a in pending.actions())
            decision.found = tuple(StorageDrift.from_dict(d) for d in pending.payload.get("drift", []))
            if not pending.audited:
                self.r.journal.complete(pending, list(pending.records), "taken")
            return self.r._publish(self.changed(event, decision, actions), outcome, "restored")
        if not self.r.mode_of(event).enforces:
            actions = tuple(Action("connect", op, params, "proposed") for op, params in decision.calls)
            return self.r._publish(self.changed(event, decision, actions), outcome, "alerted")
        return self._restore(event, decision, outcome, finding_id)

    def _restore(self, event: CloudTrailEvent, d: _StorageDecision, outcome: Outcome, finding_id: str) -> Outcome:
        record = event.detail
        assert d.instance is not None
        calls = d.calls
        why = "; ".join(x.describe() for x in d.found)
        records = [
            action_record(
                self.r.audit,
                Action("connect", op, params, "taken"),
                responder=NAME,
                actor=d.actor.arn,
                target=d.instance.arn,
                reason=f"{record.event_name}: {why}",
                before={"storage_configs": [c.to_dict() for c in d.current]},
                event_id=record.event_id,
                finding_id=finding_id,
                mode=self.settings.response_mode,
            )
            for op, params in calls
        ]
        payload = {"drift": [x.to_dict() for x in d.found]}
        pending = self.r.journal.begin(
            finding_id, responder=NAME, event_id=record.event_id, records=records, payload=payload
        )
        gateway = self.gateway(d.instance)
        for op, params in calls:
            gateway.storage_call(op, params)
        try:
            self.r.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        actions = tuple(Action("connect", op, params, "taken") for op, params in calls)
        return self.r._publish(self.changed(event, d, actions), outcome, "restored")

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed: decide again from the configs as they are now. Still drifted:
        a CRITICAL `Restore FAILED`; unreadable: UNCONFIRMED; restored or nothing due: no alert."""
        record = event.detail
        try:
            decision = reread(lambda: self.decide(event))
        except Exception as failure:
            verdict = "UNCONFIRMED"
            state = f"the storage configs could not be re-read ({type(failure).__name__}: {failure})"
            decision = _StorageDecision(Actor.from_record(record))
        else:
            if decision.ignore or decision.report or not decision.found:
                logger.info("last attempt failed; no restore is due: no FAILED alert")
                return
            verdict = "FAILED"
            state = "re-read now, the storage still differs: " + "; ".join(x.describe() for x in decision.found)
        reasons = (
            f"RESTORE DID NOT HAPPEN: {type(error).__name__}: {error}",
            state,
            "restore the storage config from its snapshot by hand (runbook)",
        )
        title = f"Storage restore {verdict} for {record.event_name} in {record.recipient_account_id}"
        self.r.publisher.publish(self.finding(event, decision, Severity.CRITICAL, title, reasons, full_title=True))

    # -- findings -----------------------------------------------------------------------------
    def changed(self, event: CloudTrailEvent, d: _StorageDecision, actions: tuple[Action, ...]) -> Finding:
        restored = bool(actions) and all(a.status == "taken" for a in actions)
        title = "Connect storage restored" if restored else "Connect storage changed"
        reasons = tuple(x.describe() for x in d.found)
        if any(x.kind == "changed" and "kms_key_id" in x.settings and x.now and not x.now.kms_key_id for x in d.found):
            reasons = ("KMS encryption removed: new contact data is stored without the approved key", *reasons)
        if d.own:
            reasons = (
                "made by connect-guard's own role, which only restores storage configs to their snapshot: a "
                "partial restore, or the role is compromised (treat it as such until checked)",
                *reasons,
            )
        change = Change(
            tuple(f"{x.resource_type}={x.now.describe() if x.now else 'none'}" for x in d.found),
            tuple(f"{x.resource_type}={x.approved.describe() if x.approved else 'none'}" for x in d.found),
            tuple(sorted({f"{x.resource_type}.{s}" for x in d.found for s in (x.settings or (x.kind,))})),
            "approved",
        )
        return self.finding(event, d, d.severity, title, reasons, actions, change=change)

    def finding(
        self,
        event: CloudTrailEvent,
        d: _StorageDecision,
        severity: Severity,
        title: str,
        reasons: tuple[str, ...],
        actions: tuple[Action, ...] = (),
        *,
        change: Change | None = None,
        full_title: bool = False,
    ) -> Finding:
        record = event.detail
        instance = d.instance
        where = instance.instance_id if instance else "(not recorded)"
        kind = d.resource_type or "storage config"
        return Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=title if full_title else f"{title}: {kind} of Connect instance {where}",
            summary=f"{d.actor.display} called {record.event_name} ({kind}) on Connect instance {where} in account "
            f"{record.recipient_account_id} ({record.aws_region}). Severity {severity}.",
            **self.r.event_fields(event, d.actor),
            reasons=reasons,
            target=Target("connect_storage", kind, instance.arn if instance else None),
            connect=ConnectRef(instance.instance_id, instance.arn) if instance else None,
            change=change,
            actions=actions,
        )
