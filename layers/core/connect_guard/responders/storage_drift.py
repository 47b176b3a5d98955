"""The drift check for Connect storage configs (a `DriftCheck`, see connect_guard.drift): every
instance in ConnectInstanceArns with a storage snapshot, each resource type re-read without an
event, compared with the snapshot and, in enforce mode, put back with the calls the event path
makes (connect_storage.restore_calls), journaled first and audited.

An instance with no snapshot is left to the event path (its changes are alerted there, never
restored); a resource type the instance does not offer reads as none, as `approve-storage`
records it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.audit import action_record
from connect_guard.connect import ConnectGateway, InstanceRef
from connect_guard.connect_storage import (
    RESOURCE_TYPES,
    StorageConfig,
    StorageSnapshots,
    drift,
    restore_calls,
    severity_name,
)
from connect_guard.drift import DriftFinding, run_id
from connect_guard.errors import ConnectResourceNotFoundError
from connect_guard.findings import Action, Change, ConnectRef, Target, finding_id_of
from connect_guard.observability import logger
from connect_guard.policy import Severity
from connect_guard.responders.connect_storage_guard import StorageGuard
from connect_guard.responders.logging_drift import NAME, earlier_restore, journal_key

if TYPE_CHECKING:
    from connect_guard.findings import Finding
    from connect_guard.responders.logging_guard import LoggingGuardResponder

KIND = "logging.connect_storage_drift"
NOT_OFFERED = ("InvalidRequestException", "InvalidParameterException")  # as approve-storage treats them


class StorageDrift:
    name = "connect_storage"

    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings
        self.guard = StorageGuard(responder)  # the event path's gateway (member read and rollback roles)
        self.snapshots: StorageSnapshots = self.guard.snapshots

    def instances(self, account: str) -> list[InstanceRef]:
        own, region = self.settings.own_account_id, self.settings.region
        refs = (InstanceRef.parse(a, own, region) for a in self.settings.connect_instance_arns)
        return [ref for ref in refs if ref.account_id == account]

    def regions(self, account: str) -> Iterable[str]:
        return {ref.region for ref in self.instances(account)}

    def assess(self, account: str, region: str) -> list[Finding]:
        findings: list[Finding] = []
        for instance in (i for i in self.instances(account) if i.region == region):
            snapshot = self.snapshots.get(instance.arn)
            if snapshot is None:
                continue  # never approved: the event path alerts its changes, nothing is restored
            gateway = self.guard.gateway(instance)
            for kind in RESOURCE_TYPES:
                found = self._type(gateway, instance, kind, snapshot.of_type(kind))
                if found is not None:
                    summary = (
                        f"The scheduled drift check re-read the {kind} storage of Connect instance "
                        f"{instance.instance_id} ({account}, {region}) without an event. Severity {found.severity}."
                    )
                    findings.append(found.finding(self.settings, summary))
        return findings

    def _current(self, gateway: ConnectGateway, kind: str) -> tuple[StorageConfig, ...]:
        try:
            return tuple(gateway.storage_configs(kind))
        except ClientError as error:
            if error.response["Error"]["Code"] in NOT_OFFERED:
                return ()
            raise

    def _type(
        self, gateway: ConnectGateway, instance: InstanceRef, kind: str, approved: tuple[StorageConfig, ...]
    ) -> DriftFinding | None:
        event_id = run_id(self.name, f"{instance.arn}#{kind}")
        target = Target("connect_storage", kind, instance.arn)
        connect = ConnectRef(instance.instance_id, instance.arn)
        severity = Severity[severity_name(kind)]
        where = f"{kind} of Connect instance {instance.instance_id}"

        def report(
            title: str, *reasons: str, change: Change | None = None, actions: tuple[Action, ...] = ()
        ) -> DriftFinding:
            return DriftFinding(
                NAME, KIND, severity, f"{title}: {where}", reasons, instance.account_id, instance.region,
                event_id, target, change, actions, connect,
            )  # fmt: skip

        try:
            current = self._current(gateway, kind)
        except ConnectResourceNotFoundError as error:
            return report("Storage drift not assessed", f"the instance could not be read ({error}): nothing restored")
        found = drift(approved, current)
        key = journal_key(f"{instance.arn}#{kind}")
        if not found:
            label = where
            return earlier_restore(self.r, key, KIND, target, label, instance.account_id, instance.region)
        calls = restore_calls(instance.instance_id, found)
        reasons = ("found by the scheduled drift check: no event reported this change", *(d.describe() for d in found))
        change = Change(
            tuple(f"{kind}={d.now.describe() if d.now else 'none'}" for d in found),
            tuple(f"{kind}={d.approved.describe() if d.approved else 'none'}" for d in found),
            tuple(sorted({f"{kind}.{s}" for d in found for s in (d.settings or (d.kind,))})),
            "approved",
        )
        if not self.r.mode_for(instance.account_id).enforces:
            actions = tuple(Action("connect", op, params, "proposed") for op, params in calls)
            return report("Connect storage drifted", *reasons, change=change, actions=actions)
        records = [
            action_record(
                self.r.audit,
                Action("connect", op, params, "taken"),
                responder=NAME,
                actor=None,
                target=instance.arn,
                reason="drift check: " + "; ".join(d.describe() for d in found),
                before={"storage_configs": [c.to_dict() for c in current]},
                event_id=None,
                finding_id=finding_id_of(NAME, event_id),
                mode=self.settings.response_mode,
            )
            for op, params in calls
        ]
        payload = {"drift": [d.to_dict() for d in found]}
        pending = self.r.journal.begin(key, responder=NAME, event_id=event_id, records=records, payload=payload)
        for op, params in calls:
            gateway.storage_call(op, params)
        try:
            self.r.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        actions = tuple(Action("connect", op, params, "taken") for op, params in calls)
        return report("Connect storage drift restored", *reasons, change=change, actions=actions)
