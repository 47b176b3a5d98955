"""logging_guard's scheduled drift check: trails and contact flow logs re-read without an event.

Runs in the logging-guard function (the schedule's Input selects it, as for the liveness check):
the same role holds exactly the reads and the restoring writes both paths need, and each check
restores through the responder's clients, journal and audit log, as the event path does.

- Trails (`TrailDrift`): every trail with an approved snapshot (the snapshot index), and every
  trail whose home is the region. Drifted: CRITICAL (Insights only: HIGH), restored in enforce
  mode; snapshot but no trail: CRITICAL "Trail deleted", with its last snapshot; never approved:
  LOW "Unapproved trail", once; index entry without its snapshot: CRITICAL, nothing restored.
- Contact flow logs (`FlowLogsDrift`): CONTACTFLOW_LOGS of every instance in ConnectInstanceArns;
  off: HIGH, turned back on in enforce mode.
- Connect storage configs (`storage_drift.StorageDrift`): each resource type of every instance
  with a storage snapshot; drifted: the type's severity, put back in enforce mode.
- KMS keys (`key_drift.KeyDrift`): the suite's keys, every key with an approved snapshot, and the
  keys the approved storage snapshots name; disabled or pending deletion: CRITICAL, rotation off:
  HIGH, made usable again in enforce mode; a changed key policy: CRITICAL, never written.

Each restore is journaled under a key per target (`logging_drift:<ARN>`) before the write: a run
that dies after writing and before reporting is reported by the next run, which finds the
setting as approved; a restore that completed (here or by the event path) is not reported again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.audit import action_record
from connect_guard.connect import InstanceRef
from connect_guard.drift import DriftCheck, DriftFinding, DriftRun, now_iso, run_id
from connect_guard.errors import ConnectResourceNotFoundError
from connect_guard.findings import Action, Change, ConnectRef, Target, finding_id_of
from connect_guard.observability import logger
from connect_guard.policy import Severity
from connect_guard.trails import Drift, TrailGateway, TrailState, canonical, drift, home_region

if TYPE_CHECKING:
    from connect_guard.clients import AwsClients
    from connect_guard.findings import Finding
    from connect_guard.responders.logging_guard import LoggingGuardResponder
    from connect_guard.settings import Settings

NAME = "logging_guard"
TRAIL_KIND = "logging.cloudtrail_drift"
FLOW_LOGS_KIND = "logging.connect_flow_logs_drift"
FLOW_LOGS = "CONTACTFLOW_LOGS"


def journal_key(target: str) -> str:
    return f"logging_drift:{target}"


class TrailDrift:
    name = "cloudtrail"

    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings
        self._approved: dict[str, list[str]] = {}

    def approved(self, account: str) -> list[str]:
        if account not in self._approved:
            self._approved[account] = self.r.snapshots.approved(account)
        return self._approved[account]

    def regions(self, account: str) -> Iterable[str]:
        """The stack's region, where Connect instances of the account live, and every approved
        trail's home region."""
        yield self.settings.region
        for arn in self.settings.connect_instance_arns:
            parts = arn.split(":")
            if len(parts) > 5 and parts[4] == account:
                yield parts[3]
        for arn in self.approved(account):
            yield home_region(arn)

    def assess(self, account: str, region: str) -> list[Finding]:
        reader = TrailGateway(self.r.clients.for_account("cloudtrail", account, region, self.settings, "read"))
        present = set(reader.home_trails(region, account))
        approved = {arn for arn in self.approved(account) if home_region(arn) == region}
        found: list[DriftFinding] = []
        for arn in sorted(approved | present):
            item = self._trail(reader, account, region, arn, listed=arn in approved)
            if item is not None:
                found.append(item)
        return [f.finding(self.settings, self._summary(f)) for f in found]

    def _summary(self, found: DriftFinding) -> str:
        return (
            f"The scheduled drift check compared trail {found.target.name} in account {found.account} "
            f"({found.region}) with its approved snapshot, without an event. Severity {found.severity}."
        )

    def _trail(self, reader: TrailGateway, account: str, region: str, arn: str, listed: bool) -> DriftFinding | None:
        name = arn.rsplit("/", 1)[-1]
        target = Target("trail", name, arn)
        event_id = run_id(self.name, arn)

        def report(
            severity: Severity,
            title: str,
            *reasons: str,
            change: Change | None = None,
            actions: tuple[Action, ...] = (),
        ) -> DriftFinding:
            title = f"{title}: CloudTrail trail {name}"
            return DriftFinding(
                NAME, TRAIL_KIND, severity, title, reasons, account, region, event_id, target, change, actions
            )

        snapshot = self.r.snapshots.get(arn)
        if snapshot is None:
            if listed:  # indexed as approved, and its snapshot is gone: the approved state is unknown
                why = "the trail is indexed as approved but its snapshot is missing: not checked, nothing restored"
                return report(Severity.CRITICAL, "Trail snapshot missing", why, "approve it again after review")
            if not self.r.snapshots.first_sighting(arn, now_iso()):
                return None  # reported once already
            why = "the trail has no approved snapshot: its changes are alerted, never restored"
            return report(Severity.LOW, "Unapproved trail", why, "approve it with `connect-guard approve-trail`")
        current = reader.state(arn)
        if current is None:
            lines = self.r._snapshot_lines(snapshot)
            why = "the trail no longer exists, and no event said so: re-create it from its last snapshot (runbook)"
            return report(Severity.CRITICAL, "Trail deleted", why, *lines)
        found = drift(snapshot, current)
        if not found:
            return earlier_restore(
                self.r, journal_key(arn), TRAIL_KIND, target, f"CloudTrail trail {name}", account, region
            )
        calls = TrailGateway.restore_calls(snapshot, found)
        change = Change(
            tuple(f"{d.setting}={canonical(d.now)}" for d in found),
            tuple(f"{d.setting}={canonical(d.approved)}" for d in found),
            tuple(sorted({d.setting for d in found})),
            "approved",
        )
        severity = Severity.HIGH if {d.setting for d in found} == {"insight_selectors"} else Severity.CRITICAL
        reasons = tuple(d.describe() for d in found)
        if not current.records_management_writes:
            reasons = ("the trail no longer records write management events: the suite is blind to them", *reasons)
        reasons = ("found by the scheduled drift check: no event reported this change", *reasons)
        if not self.r.mode_for(account).enforces:
            actions = tuple(Action("cloudtrail", op, params, "proposed") for op, params in calls)
            return report(severity, "Trail drifted", *reasons, change=change, actions=actions)
        actions = self._restore(account, arn, current, found, calls, event_id)
        return report(severity, "Trail drift restored", *reasons, change=change, actions=actions)

    def _restore(
        self,
        account: str,
        arn: str,
        current: TrailState,
        found: tuple[Drift, ...],
        calls: list[tuple[str, dict[str, object]]],
        event_id: str,
    ) -> tuple[Action, ...]:
        """Journaled before the first write, audited after the last, as the event path does."""
        why = "drift check: " + "; ".join(d.describe() for d in found)
        records = [
            action_record(
                self.r.audit,
                Action("cloudtrail", op, params, "taken"),
                responder=NAME,
                actor=None,
                target=arn,
                reason=why,
                before=current.to_dict(),
                event_id=None,
                finding_id=finding_id_of(NAME, event_id),
                mode=self.settings.response_mode,
            )
            for op, params in calls
        ]
        payload = {"drift": [{"setting": d.setting, "approved": d.approved, "now": d.now} for d in found]}
        pending = self.r.journal.begin(
            journal_key(arn), responder=NAME, event_id=event_id, records=records, payload=payload
        )
        writer = self.r.trail_gateway(account, arn, "rollback")
        for op, params in calls:
            writer.call(op, params)
        try:
            self.r.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        return tuple(Action("cloudtrail", op, params, "taken") for op, params in calls)


class FlowLogsDrift:
    name = "connect_flow_logs"

    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings

    def instances(self, account: str) -> list[InstanceRef]:
        own, region = self.settings.own_account_id, self.settings.region
        refs = (InstanceRef.parse(a, own, region) for a in self.settings.connect_instance_arns)
        return [ref for ref in refs if ref.account_id == account]

    def regions(self, account: str) -> Iterable[str]:
        return {ref.region for ref in self.instances(account)}

    def assess(self, account: str, region: str) -> list[Finding]:
        findings = []
        for instance in (i for i in self.instances(account) if i.region == region):
            found = self._instance(instance)
            if found is not None:
                summary = (
                    f"The scheduled drift check read contact flow logs of Connect instance {instance.instance_id} "
                    f"in account {account} ({region}), without an event. Severity {found.severity}."
                )
                findings.append(found.finding(self.settings, summary))
        return findings

    def _instance(self, instance: InstanceRef) -> DriftFinding | None:
        event_id = run_id(self.name, instance.arn)
        gateway = self.r.flow_logs.gateway(instance)
        target = Target("connect_instance", instance.instance_id, instance.arn)
        connect = ConnectRef(instance.instance_id, instance.arn)

        def report(severity: Severity, title: str, *reasons: str, actions: tuple[Action, ...] = ()) -> DriftFinding:
            return DriftFinding(
                NAME, FLOW_LOGS_KIND, severity, f"{title}: Connect instance {instance.instance_id}", reasons,
                instance.account_id, instance.region, event_id, target, actions=actions, connect=connect,
            )  # fmt: skip

        try:
            now = gateway.attribute(FLOW_LOGS)
        except ConnectResourceNotFoundError as error:
            why = f"the instance could not be read ({error}): not checked, nothing restored"
            return report(Severity.HIGH, "Flow logs not assessed", why)
        if now == "true":
            label = f"Connect instance {instance.instance_id}"
            key = journal_key(instance.arn)
            return earlier_restore(self.r, key, FLOW_LOGS_KIND, target, label, instance.account_id, instance.region)
        parameters = {"InstanceId": instance.instance_id, "AttributeType": FLOW_LOGS, "Value": "true"}
        why = "found by the scheduled drift check: contact flow logs are off, and no event reported it"
        if not self.r.mode_for(instance.account_id).enforces:
            action = Action("connect", "UpdateInstanceAttribute", parameters, "proposed")
            return report(Severity.HIGH, "Contact flow logs off", why, actions=(action,))
        action = Action("connect", "UpdateInstanceAttribute", parameters, "taken")
        record = action_record(
            self.r.audit,
            action,
            responder=NAME,
            actor=None,
            target=instance.arn,
            reason=why,
            before={FLOW_LOGS: now},
            event_id=None,
            finding_id=finding_id_of(NAME, event_id),
            mode=self.settings.response_mode,
        )
        pending = self.r.journal.begin(journal_key(instance.arn), responder=NAME, event_id=event_id, records=[record])
        gateway.set_attribute(FLOW_LOGS, "true")
        try:
            self.r.journal.complete(pending, [record], "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        return report(Severity.HIGH, "Contact flow logs restored", why, actions=(action,))


def earlier_restore(
    responder: LoggingGuardResponder, key: str, kind: str, target: Target, label: str, account: str, region: str
) -> DriftFinding | None:
    """The setting is as approved. In enforce mode, a restore journaled (under `key`) by an
    earlier run that died before reporting it is reported now, under that run's finding ID, and
    audited; one that was reported (or made by the event path) is not reported again."""
    if not responder.mode_for(account).enforces:
        return None
    pending = responder.journal.get(key)
    if pending is None or pending.audited or pending.responder != NAME:
        return None
    actions = tuple(Action(a.service, a.operation, a.parameters, "taken") for a in pending.actions())
    responder.journal.complete(pending, list(pending.records), "taken")
    return DriftFinding(
        NAME,
        kind,
        Severity.HIGH,
        f"Drift restored by an earlier check: {label}",
        (
            f"restored by the drift check of {pending.started_at}, which stopped before reporting it; "
            "re-read by this check, the setting is as approved",
        ),
        account,
        region,
        pending.event_id,
        target,
        actions=actions,
    )


def checks(responder: LoggingGuardResponder) -> tuple[DriftCheck, ...]:
    """The settings the drift check covers: one entry each (see connect_guard.drift)."""
    from connect_guard.responders.key_drift import KeyDrift  # it builds on this module
    from connect_guard.responders.plumbing_drift import PlumbingDrift
    from connect_guard.responders.storage_drift import StorageDrift  # it builds on this module

    return (
        TrailDrift(responder),
        FlowLogsDrift(responder),
        StorageDrift(responder),
        KeyDrift(responder),
        PlumbingDrift(responder),
    )


def build(settings: Settings, clients: AwsClients) -> DriftRun:
    from connect_guard.responders.logging_guard import LoggingGuardResponder

    responder = LoggingGuardResponder.from_settings(settings, clients)
    return DriftRun(settings, responder.publisher, checks(responder), NAME, "logging.drift_not_assessed")


def run(settings: Settings, clients: AwsClients) -> list[Finding]:
    return build(settings, clients).run()
