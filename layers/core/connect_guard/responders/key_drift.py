"""The drift check for the KMS keys that protect Connect data or the suite (a `DriftCheck`, see
connect_guard.drift): each key re-read without an event, compared with its approved state and,
in enforce mode, made usable again with the calls the event path makes (kms_keys.restore_calls),
journaled first and audited.

The keys checked, per enrolled account and region:
- the suite's own keys (SUITE_KEY_ARNS): approved enabled, rotating;
- every key with an approved snapshot (the index `key#index#<account>` that approve-key writes);
- the keys named by the approved storage snapshots of the instances in ConnectInstanceArns
  (recordings, transcripts, reports, media streams): approved enabled, rotation as it is.

Disabled or pending deletion: CRITICAL; rotation off (alone): HIGH. A key policy that differs
from its snapshot is CRITICAL and never written back (see key_guard: kms:PutKeyPolicy could
grant anyone the key). A key that is gone, or indexed with its snapshot missing: CRITICAL.
A key that can't be read (its policy may shut the suite out): CRITICAL "not assessed", nothing
changed; the other keys of the region are still checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.audit import action_record
from connect_guard.connect import InstanceRef
from connect_guard.connect_storage import StorageSnapshots, referenced_key_ids
from connect_guard.drift import UNREADABLE, DriftFinding, run_id
from connect_guard.findings import Action, Change, Target, finding_id_of
from connect_guard.kms_keys import (
    KeyGateway,
    KeyState,
    account_of,
    approved,
    drift,
    key_arn,
    key_id_of,
    policy_findings,
    region_of,
    restore_calls,
)
from connect_guard.observability import logger
from connect_guard.policy import Severity
from connect_guard.responders.key_guard import KeyGuard
from connect_guard.responders.logging_drift import NAME, earlier_restore, journal_key
from connect_guard.trails import Drift, canonical

if TYPE_CHECKING:
    from connect_guard.findings import Finding
    from connect_guard.responders.logging_guard import LoggingGuardResponder

KIND = "logging.kms_key_drift"
SUITE_KEY = "is one of connect-guard's own keys (SUITE_KEY_ARNS): its queues, alerts, tables, logs or archive"


@dataclass
class _Candidate:
    """A key to check, as it is named (an ARN, or an alias a storage snapshot names), and why."""

    reference: str
    why: list[str] = field(default_factory=list)
    storage: list[str] = field(default_factory=list)  # "CALL_RECORDINGS of <instance ID>"
    suite: bool = False
    indexed: bool = False


class KeyDrift:
    name = "kms_keys"

    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings
        self.guard = KeyGuard(responder)  # the event path's gateway (member read and rollback roles)
        self.snapshots = self.guard.snapshots
        self.storage = StorageSnapshots(responder.clients.dynamodb, responder.settings.baseline_table_name or "")
        self._candidates: dict[str, dict[str, dict[str, _Candidate]]] = {}

    # -- which keys ------------------------------------------------------------------------------
    def candidates(self, account: str) -> dict[str, dict[str, _Candidate]]:
        """The account's keys to check, by region, then by reference (read once per run)."""
        if account in self._candidates:
            return self._candidates[account]
        found: dict[str, dict[str, _Candidate]] = {}

        def add(region: str, reference: str, why: str | None = None) -> _Candidate:
            candidate = found.setdefault(region, {}).setdefault(reference, _Candidate(reference))
            if why is not None and why not in candidate.why:
                candidate.why.append(why)
            return candidate

        for arn in self.settings.suite_key_arns:
            if account_of(arn) == account:
                add(region_of(arn), arn, SUITE_KEY).suite = True
        for arn in self.snapshots.approved(account):
            add(region_of(arn), arn, "has an approved snapshot (connect-guard approve-key)").indexed = True
        own, region = self.settings.own_account_id, self.settings.region
        for raw in self.settings.connect_instance_arns:
            instance = InstanceRef.parse(raw, own, region)
            if instance.account_id != account:
                continue
            snapshot = self.storage.get(instance.arn)
            for config in snapshot.configs if snapshot else ():
                for key in sorted(referenced_key_ids([config])):
                    reference = self._arn_or_alias(key, instance)
                    if _is_key_arn(reference) and account_of(reference) != account:
                        continue  # another account's key: checked with that account, if enrolled
                    where = region_of(reference) if _is_key_arn(reference) else instance.region
                    add(where, reference).storage.append(f"{config.resource_type} of {instance.instance_id}")
        self._candidates[account] = found
        return found

    def _arn_or_alias(self, key: str, instance: InstanceRef) -> str:
        """A storage config's KeyId as a key ARN (a bare ID is the instance's account and region's),
        or the alias it names, resolved when the key is read."""
        if key.startswith(("arn:", "alias/")):
            return key
        return key_arn(key, instance.account_id, instance.region, self.settings.partition)

    def regions(self, account: str) -> Iterable[str]:
        return self.candidates(account).keys()

    # -- assessing -------------------------------------------------------------------------------
    def assess(self, account: str, region: str) -> list[Finding]:
        """Each key of the region; a MemberAccessError (the member role) propagates: the region
        is not assessed at all."""
        # The region's reads and writes (KeyGuard.gateway goes by the ARN's account and region only).
        gateway = self.guard.gateway(key_arn("*", account, region, self.settings.partition))
        found: list[DriftFinding] = []
        seen: set[str] = set()
        for _, candidate in sorted(self.candidates(account).get(region, {}).items()):
            item = self._key(gateway, account, region, candidate, seen)
            if item is not None:
                found.append(item)
        return [f.finding(self.settings, self._summary(f)) for f in found]

    def _summary(self, found: DriftFinding) -> str:
        return (
            f"The scheduled drift check re-read KMS key {found.target.name} in account {found.account} "
            f"({found.region}) without an event. Severity {found.severity}."
        )

    def _key(
        self, gateway: KeyGateway, account: str, region: str, candidate: _Candidate, seen: set[str]
    ) -> DriftFinding | None:
        reference = candidate.reference
        arn: str | None = reference if _is_key_arn(reference) else None

        def report(
            severity: Severity,
            title: str,
            *reasons: str,
            change: Change | None = None,
            actions: tuple[Action, ...] = (),
            event_id: str | None = None,
        ) -> DriftFinding:
            name = key_id_of(arn) if arn else reference
            target = Target("kms_key", name, arn)
            event_id = event_id or run_id(self.name, arn or f"{account}:{region}:{reference}")
            return DriftFinding(
                NAME, KIND, severity, f"{title}: KMS key {name}", reasons, account, region, event_id, target,
                change, actions,
            )  # fmt: skip

        whys = [*candidate.why]
        if candidate.storage:
            whys.append(f"encrypts Connect storage (its approved snapshot): {', '.join(candidate.storage)}")
        guarded = "the key " + "; ".join(whys)
        try:
            if arn is None:  # an alias a storage snapshot names
                arn = gateway.resolve(reference)
                if arn is None:
                    why = f"the alias {reference} names no key: Connect cannot encrypt or read that storage"
                    return report(Severity.CRITICAL, "Key gone", guarded, why, "see the runbook")
            if arn in seen:
                return None  # named twice (by ARN and by alias): checked once
            seen.add(arn)
            snapshot = self.snapshots.get(arn)
            current = gateway.state(arn)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code not in UNREADABLE:
                raise
            why = (
                f"the key could not be read ({code}): not checked, nothing restored; its key policy may now "
                "deny connect-guard's roles (runbook)"
            )
            return report(Severity.CRITICAL, "Key not assessed", guarded, why)
        if snapshot is None and candidate.indexed:
            why = "the key is indexed as approved but its snapshot is missing: not checked, nothing restored"
            return report(Severity.CRITICAL, "Key snapshot missing", guarded, why, "approve it again after review")
        if current is None:
            why = "the key no longer exists, and no event said so: what it encrypted cannot be decrypted (runbook)"
            return report(Severity.CRITICAL, "Key gone", guarded, why)
        if current.key_manager != "CUSTOMER":
            return None  # an AWS managed key: only AWS changes it
        wanted = approved(snapshot, current, rotation_wanted=candidate.suite)
        found = drift(wanted, current)
        target = Target("kms_key", key_id_of(arn), arn)
        key = journal_key(arn)
        if not found:
            return earlier_restore(self.r, key, KIND, target, f"KMS key {key_id_of(arn)}", account, region)
        calls = restore_calls(wanted, current, found)
        state = tuple(d for d in found if d.setting != "policy")
        reasons = ["found by the scheduled drift check: no event reported this change", guarded]
        reasons += [d.describe() for d in state]
        policy = any(d.setting == "policy" for d in found)
        if policy:
            reasons += self._policy_reasons(snapshot, current)
        if state and not calls:
            reasons.append(f"the key is {current.describe_state()}: the suite cannot restore that; see the runbook")
        change = None
        if state:  # what the restore changes back (the policy never is)
            change = Change(
                tuple(f"{d.setting}={canonical(d.now)}" for d in state),
                tuple(f"{d.setting}={canonical(d.approved)}" for d in state),
                tuple(sorted({d.setting for d in state})),
                "approved" if snapshot else "none",
            )
        severity = Severity.HIGH if {d.setting for d in found} == {"rotation"} else Severity.CRITICAL
        drifted = _title(current, state)
        if not self.r.mode_for(account).enforces or not calls:
            actions = tuple(Action("kms", op, params, "proposed") for op, params in calls)
            return report(severity, drifted, *reasons, change=change, actions=actions)
        event_id = run_id(self.name, arn)  # the journal's and the audit records' finding
        actions = self._restore(gateway, arn, current, state, calls, event_id)
        return report(severity, "Key drift restored", *reasons, change=change, actions=actions, event_id=event_id)

    def _policy_reasons(self, snapshot: KeyState | None, current: KeyState) -> list[str]:
        """As the event path says it: what the policy now does, before and after; never written."""
        account = account_of(current.arn)
        before = snapshot.policy if snapshot else None
        suite = (*self.settings.suite_role_arns, self.settings.member_role_arn(account, "read"))
        removes, found = policy_findings(before, current.policy, account, suite)
        reasons = ["the key policy differs from its approved snapshot", *found]
        if removes:
            reasons.insert(0, "the key policy now takes away connect-guard's own access to the key")
        reasons.append(
            "the policy is not reverted (the suite holds no right to write key policies: one that could grant "
            "anyone the key); put the approved policy back by hand, or approve this one (runbook)"
        )
        taken = snapshot.taken_at if snapshot else None
        reasons.append(f"key policy before (approved snapshot, {taken or 'undated'}): {before}")
        reasons.append(f"key policy after (re-read now): {current.policy}")
        return reasons

    def _restore(
        self,
        gateway: KeyGateway,
        arn: str,
        current: KeyState,
        found: tuple[Drift, ...],
        calls: list[tuple[str, dict[str, Any]]],
        event_id: str,
    ) -> tuple[Action, ...]:
        """Journaled before the first write, audited after the last, as the event path does."""
        why = "drift check: " + "; ".join(d.describe() for d in found)
        records = [
            action_record(
                self.r.audit,
                Action("kms", op, params, "taken"),
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
        for op, params in calls:
            gateway.call(op, params)
        try:
            self.r.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        return tuple(Action("kms", op, params, "taken") for op, params in calls)


def _is_key_arn(reference: str) -> bool:
    return reference.startswith("arn:") and ":key/" in reference


def _title(current: KeyState, state: tuple[Drift, ...]) -> str:
    settings = {d.setting for d in state}
    if not settings:
        return "Key policy changed"
    if "key_state" in settings:
        return {"PendingDeletion": "Key scheduled for deletion", "Disabled": "Key disabled"}.get(
            current.key_state, "Key drifted"
        )
    return "Key rotation off"
