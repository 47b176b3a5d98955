"""logging_guard's sub-control for the KMS keys that protect Connect data or the suite:
DisableKey, ScheduleKeyDeletion, PutKeyPolicy and DisableKeyRotation (succeeded or denied).

A key is protected when it is one of the suite's own (SUITE_KEY_ARNS: template.yaml's keys),
when it has an approved snapshot (`key#<ARN>`), or when a storage config of an instance in
ConnectInstanceArns names it: in the instance's approved storage snapshot (`storage#<instance
ARN>`, the storage guard's) or live (recordings, transcripts, screen recordings, emails,
reports, attachments, evaluations, media streams; connect_storage.KEYED_RESOURCE_TYPES). A disabled or
deleted key makes what it encrypts unreadable (recordings, the suite's queues and alerts), so
every change is CRITICAL; in enforce mode the key is made usable again: CancelKeyDeletion, then
EnableKey (a cancelled key is Disabled), then EnableKeyRotation when rotation was on.

A key policy is never written back, snapshot or not: kms:PutKeyPolicy is a right to grant
anyone the key (the trust model lets no suite role grant access), and a wrong policy can lock
the account out of the key for good. A policy change is alerted with the approved policy (the
snapshot's) and the one in force now, and says when it takes away the suite's own access.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.audit import action_record
from connect_guard.clients import reread
from connect_guard.connect import ConnectGateway, InstanceRef
from connect_guard.connect_storage import KEYED_RESOURCE_TYPES, StorageSnapshots
from connect_guard.errors import ConnectResourceNotFoundError, MemberAccessError
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Action, Change, Finding, Target, finding_id_of
from connect_guard.kms_keys import (
    KeyGateway,
    KeySnapshots,
    KeyState,
    account_of,
    approved,
    drift,
    encrypted_types,
    key_id_of,
    key_reference,
    policy_findings,
    region_of,
    restore_calls,
)
from connect_guard.observability import logger
from connect_guard.outcome import Outcome
from connect_guard.policy import Severity
from connect_guard.principals import CLOUDFORMATION, Actor, allowlist_match, exempt_service, is_suite_principal
from connect_guard.settings import MemberPurpose
from connect_guard.trails import Drift, canonical

if TYPE_CHECKING:
    from connect_guard.responders.logging_guard import LoggingGuardResponder

NAME = "logging_guard"
KIND = "logging.kms_key_tampering"
KMS = "kms.amazonaws.com"
KEY_EVENTS = ("DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy", "DisableKeyRotation")
UNREADABLE = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


@dataclass
class _KeyDecision:
    """What a key event calls for, from the key as it is now (nothing written in deciding)."""

    actor: Actor
    arn: str | None = None
    protected: str | None = None  # why the suite guards this key
    snapshot: KeyState | None = None
    current: KeyState | None = None
    wanted: KeyState | None = None
    found: tuple[Drift, ...] = ()
    report: tuple[Severity, str, tuple[str, ...]] | None = None  # alert only: nothing to restore
    ignore: str | None = None
    own: bool = False
    stack: bool = False  # made through CloudFormation

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        if self.wanted is None or self.current is None or not self.found:
            return []
        return restore_calls(self.wanted, self.current, self.found)


class KeyGuard:
    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings
        self.snapshots = KeySnapshots(responder.clients.dynamodb, responder.settings.baseline_table_name or "")
        self.storage_snapshots = StorageSnapshots(
            responder.clients.dynamodb, responder.settings.baseline_table_name or ""
        )

    def handles(self, event: CloudTrailEvent) -> bool:
        return event.detail.event_source == KMS and event.detail.event_name in KEY_EVENTS

    # -- clients ---------------------------------------------------------------------------------
    def _client(self, service: str, account: str, region: str, purpose: MemberPurpose) -> Any:
        return self.r.clients.for_account(service, account, region, self.settings, purpose)

    def gateway(self, arn: str) -> KeyGateway:
        account, region = account_of(arn), region_of(arn)
        # The security account's writes are the function's own role; a member's, its rollback role.
        purpose: MemberPurpose = "read" if account == self.settings.own_account_id else "rollback"
        return KeyGateway(
            self._client("kms", account, region, "read"),
            writer=lambda: self._client("kms", account, region, purpose),
        )

    # -- which keys are guarded ------------------------------------------------------------------
    def covered_instances(self, arn: str) -> list[InstanceRef]:
        """The instances of ConnectInstanceArns in the key's account and region."""
        own, region = self.settings.own_account_id, self.settings.region
        instances = [InstanceRef.parse(raw, own, region) for raw in self.settings.connect_instance_arns]
        return [i for i in instances if (i.account_id, i.region) == (account_of(arn), region_of(arn))]

    def storage_use(self, arn: str) -> str | None:
        """Which covered instance's storage the key encrypts, cheapest first: each instance's
        approved storage snapshot (one GetItem), then, only when no snapshot names the key, the
        live configs (one ListInstanceStorageConfigs per keyed type, on Connect's low, shared
        quota; the first that names the key ends the search). The snapshot comes first because it
        is what the attacker can't move: recordings pointed elsewhere (or their encryption
        dropped) before the approved key is deleted still leave that key guarded."""
        instances = self.covered_instances(arn)
        for instance in instances:
            approved_storage = self.storage_snapshots.get(instance.arn)
            kinds = encrypted_types(approved_storage.configs, arn) if approved_storage else ()
            if approved_storage is not None and kinds:
                named = ", ".join(f"{kind} of {instance.instance_id}" for kind in kinds)
                when = approved_storage.taken_at or "undated"
                return f"encrypts Connect storage: {named} (approved storage snapshot, {when})"
        for instance in instances:
            connect = ConnectGateway(self._client("connect", instance.account_id, instance.region, "read"), instance)
            for kind in KEYED_RESOURCE_TYPES:
                try:
                    configs = connect.storage_configs(kind)
                except ConnectResourceNotFoundError:  # the instance is gone: it stores nothing with the key
                    logger.info("covered instance not found", extra={"instance": instance.arn})
                    break
                if encrypted_types(configs, arn):
                    return f"encrypts Connect storage: {kind} of {instance.instance_id}"
        return None

    def protection(self, arn: str, snapshot: KeyState | None) -> str | None:
        """Why the suite guards the key, cheapest first: the storage configs are read last."""
        if arn in self.settings.suite_key_arns:
            return "is one of connect-guard's own keys (SUITE_KEY_ARNS): its queues, alerts, tables, logs or archive"
        if snapshot is not None:
            return f"has an approved snapshot ({snapshot.taken_at or 'undated'})"
        return self.storage_use(arn)

    def guarded_or_none(self, arn: str) -> str | None:
        """Why the key is guarded, best effort: an unreadable storage config is not a reason."""
        try:
            return self.protection(arn, self.snapshots.get(arn))
        except (MemberAccessError, ClientError) as error:
            logger.info("key protection not determined", extra={"error": str(error)})
            return None

    # -- deciding --------------------------------------------------------------------------------
    def decide(self, event: CloudTrailEvent) -> _KeyDecision:
        record = event.detail
        actor = Actor.from_record(record)
        account = record.recipient_account_id or event.account
        own = is_suite_principal(actor, self.settings)
        reference = key_reference(
            record.resources, record.param("keyId"), account, record.aws_region, self.settings.partition
        )
        arn = reference.arn
        if arn is None and reference.alias is not None and not record.denied:
            try:
                arn = KeyGateway(self._client("kms", account, record.aws_region, "read")).resolve(reference.alias)
            except (MemberAccessError, ClientError) as error:
                return self._unreadable(actor, None, error, f"the alias {reference.alias}")
        if record.denied:
            # A change, attempted: HIGH on a guarded key (someone tried to make it unusable).
            guarded = self.guarded_or_none(arn) if arn else None
            why = f"the call was denied ({record.error_code}): an attempt on the key, not a change"
            if guarded is None:
                severity, reasons = Severity.MEDIUM, (why, "the key is not known to protect Connect data or the suite")
            else:
                severity, reasons = Severity.HIGH, (why, f"the key {guarded}")
            return _KeyDecision(actor, arn, guarded, report=(severity, "Denied key change", reasons))
        if arn is None:
            why = "the event does not say which key changed; check the keys of the account by hand"
            return _KeyDecision(actor, report=(Severity.HIGH, "Unidentified key change", (why,)))
        allowed = allowlist_match(actor, self.settings.allowlisted_principals)
        if allowed:
            why = f"made by an allowlisted principal ({allowed}): kept, not restored"
            return _KeyDecision(actor, arn, report=(Severity.MEDIUM, "Allowlisted key change", (why,)))
        snapshot = self.snapshots.get(arn)
        try:
            protected = self.protection(arn, snapshot)
        except (MemberAccessError, ClientError) as error:
            return self._unreadable(actor, arn, error, "the storage configs that may name the key")
        if protected is None:
            why = "the key protects no covered Connect storage and is not the suite's: not the suite's to restore"
            return _KeyDecision(actor, arn, report=(Severity.LOW, "Change to a key the suite does not guard", (why,)))
        # Through CloudFormation: no exemption. No suite stack disables, deletes or unrotates a
        # key (its keys are retained), and a stack that does so to a guarded key destroys data
        # all the same: restored, with the stack named for the SOC (`stack`, in the finding).
        stack = exempt_service(actor, {CLOUDFORMATION}) is not None
        try:
            current = self.gateway(arn).state(arn)
        except (MemberAccessError, ClientError) as error:
            return self._unreadable(actor, arn, error, "the key")
        if current is None:
            why = "the key no longer exists: what it encrypted cannot be decrypted (runbook)"
            return _KeyDecision(actor, arn, protected, snapshot, report=(Severity.CRITICAL, "Key gone", (why,)))
        if current.key_manager != "CUSTOMER":
            return _KeyDecision(actor, ignore="an AWS managed key: only AWS changes it")
        suite = arn in self.settings.suite_key_arns  # the template turns rotation on for each
        wanted = approved(snapshot, current, rotation_wanted=suite or record.event_name == "DisableKeyRotation")
        # The suite's own role never makes any of these calls: its identity exempts nothing, and
        # its call is alerted even when the key is as approved again (the role is compromised).
        found = drift(wanted, current)
        return _KeyDecision(actor, arn, protected, snapshot, current, wanted, found, own=own, stack=stack)

    @staticmethod
    def _unreadable(actor: Actor, arn: str | None, error: Exception, what: str) -> _KeyDecision:
        """Fail closed: alert, don't act. A transient error is raised (retried; the last attempt alerts)."""
        if isinstance(error, ClientError):
            code = error.response["Error"]["Code"]
            if code not in UNREADABLE:
                raise error
            why = f"{what} could not be read ({code}): nothing is restored; check the key by hand"
        else:
            why = str(error)
        return _KeyDecision(actor, arn, report=(Severity.CRITICAL, "Key change not assessed", (why,)))

    # -- handling --------------------------------------------------------------------------------
    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        decision = self.decide(event)
        if decision.ignore:
            outcome.reason = decision.ignore
            return outcome
        if decision.report:
            severity, title, reasons = decision.report
            return self.r._publish(self.finding(event, decision, severity, title, reasons), outcome, "alerted")
        assert decision.current is not None and decision.arn is not None
        finding_id = finding_id_of(NAME, record.event_id)
        calls = decision.calls
        if not calls:
            pending = self.r.journal.get(finding_id) if self.r.mode_of(event).enforces else None
            if pending is not None:  # an earlier attempt restored the key and died before reporting
                actions = tuple(Action(a.service, a.operation, a.parameters, "taken") for a in pending.actions())
                drifts = tuple(Drift(**d) for d in pending.payload.get("drift", []))
                if not pending.audited:
                    self.r.journal.complete(pending, list(pending.records), "taken")
                return self.r._publish(self.tampered(event, decision, drifts, actions), outcome, "restored")
            if decision.found or decision.own or (record.event_name == "PutKeyPolicy" and decision.snapshot is None):
                return self.r._publish(self.tampered(event, decision, decision.found, ()), outcome, "alerted")
            outcome.reason = "the key is as approved: nothing to restore"
            return outcome
        if not self.r.mode_of(event).enforces:
            actions = tuple(Action("kms", op, params, "proposed") for op, params in calls)
            return self.r._publish(self.tampered(event, decision, decision.found, actions), outcome, "alerted")
        return self._restore(event, decision, outcome, finding_id, calls)

    def _restore(
        self,
        event: CloudTrailEvent,
        decision: _KeyDecision,
        outcome: Outcome,
        finding_id: str,
        calls: list[tuple[str, dict[str, Any]]],
    ) -> Outcome:
        record = event.detail
        assert decision.arn is not None and decision.current is not None
        why = "; ".join(d.describe() for d in decision.found)
        records = [
            action_record(
                self.r.audit,
                Action("kms", op, params, "taken"),
                responder=NAME,
                actor=decision.actor.arn,
                target=decision.arn,
                reason=f"{record.event_name}: {why}",
                before=decision.current.to_dict(),
                event_id=record.event_id,
                finding_id=finding_id,
                mode=self.settings.response_mode,
            )
            for op, params in calls
        ]
        payload = {"drift": [{"setting": d.setting, "approved": d.approved, "now": d.now} for d in decision.found]}
        pending = self.r.journal.begin(
            finding_id, responder=NAME, event_id=record.event_id, records=records, payload=payload
        )
        gateway = self.gateway(decision.arn)
        for op, params in calls:
            gateway.call(op, params)
        try:
            self.r.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        actions = tuple(Action("kms", op, params, "taken") for op, params in calls)
        return self.r._publish(self.tampered(event, decision, decision.found, actions), outcome, "restored")

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed: decide again from the key as it is now. Still unusable: a
        CRITICAL `Restore FAILED`; unreadable: UNCONFIRMED; restored or nothing due: no alert."""
        record = event.detail
        try:
            decision = reread(lambda: self.decide(event))
        except Exception as failure:
            verdict, state = "UNCONFIRMED", f"the key could not be re-read ({type(failure).__name__}: {failure})"
            decision = _KeyDecision(Actor.from_record(record))
        else:
            if decision.ignore:
                return
            if not decision.calls:
                self._undelivered(event, decision, error)
                return
            verdict = "FAILED"
            state = "re-read now, the key still differs: " + "; ".join(d.describe() for d in decision.found)
        reasons = (
            f"RESTORE DID NOT HAPPEN: {type(error).__name__}: {error}",
            state,
            "cancel the deletion and enable the key by hand (runbook)",
        )
        title = f"Key restore {verdict} for {record.event_name} in {record.recipient_account_id}"
        self.r.publisher.publish(self.finding(event, decision, Severity.CRITICAL, title, reasons, full_title=True))

    def _undelivered(self, event: CloudTrailEvent, decision: _KeyDecision, error: Exception) -> None:
        """Nothing to restore, but the alert itself may never have gone out (a key policy change is
        only ever alerted): publish it now, saying the earlier attempts failed."""
        record = event.detail
        if decision.report:
            severity, title, reasons = decision.report
            finding = self.finding(event, decision, severity, title, reasons)
        elif decision.found or decision.own or (record.event_name == "PutKeyPolicy" and decision.snapshot is None):
            finding = self.tampered(event, decision, decision.found, ())
        else:
            logger.info("last attempt failed; the key is as approved: no alert")
            return
        note = f"sent by the last attempt: the earlier ones failed ({type(error).__name__}: {error})"
        self.r.publisher.publish(replace(finding, reasons=(*finding.reasons, note)))

    # -- findings --------------------------------------------------------------------------------
    def tampered(
        self, event: CloudTrailEvent, decision: _KeyDecision, found: tuple[Drift, ...], actions: tuple[Action, ...]
    ) -> Finding:
        assert decision.current is not None and decision.arn is not None
        current, snapshot = decision.current, decision.snapshot
        restored = bool(actions) and all(a.status == "taken" for a in actions)
        policy_changed = event.detail.event_name == "PutKeyPolicy" or any(d.setting == "policy" for d in found)
        settings = {d.setting for d in found}
        if restored:
            title = "Key restored"
        elif policy_changed:
            title = "Key policy changed"
        elif current.key_state == "PendingDeletion":
            title = "Key scheduled for deletion"
        elif "key_state" in settings:
            title = "Key disabled"
        elif "rotation" in settings:
            title = "Key rotation off"
        else:
            title = "Key changed"
        # Rotation alone leaves the key usable and the suite seeing: HIGH (as narrowed Insights are
        # for trails); a key that can't decrypt, or whose policy changed, is CRITICAL.
        rotation_only = settings == {"rotation"} and not policy_changed and not decision.own
        severity = Severity.HIGH if rotation_only else Severity.CRITICAL
        reasons: list[str] = [f"the key {decision.protected}", *(d.describe() for d in found if d.setting != "policy")]
        before = snapshot.policy if snapshot else None
        state_drift = tuple(d for d in found if d.setting != "policy")
        change = None
        if state_drift:  # what the restore changes back (the policy never is)
            change = Change(
                tuple(f"{d.setting}={canonical(d.now)}" for d in state_drift),
                tuple(f"{d.setting}={canonical(d.approved)}" for d in state_drift),
                tuple(sorted({d.setting for d in state_drift})),
                "approved" if snapshot else "none",
            )
        if policy_changed:
            suite_principals = (
                *self.settings.suite_role_arns,
                self.settings.member_role_arn(account_of(decision.arn), "read"),
            )
            removes, policy_reasons = policy_findings(
                before, current.policy, account_of(decision.arn), suite_principals
            )
            if removes:
                reasons.insert(0, "the new key policy takes away connect-guard's own access to the key")
            reasons += policy_reasons
            reasons.append(
                "the policy is not reverted (the suite holds no right to write key policies: one that could grant "
                "anyone the key); put the approved policy back by hand (runbook)"
            )
            if snapshot is not None and before is not None:
                reasons.append(f"key policy before (approved snapshot, {snapshot.taken_at or 'undated'}): {before}")
            else:
                reasons.append(
                    "key policy before: not known to the suite (no approved snapshot); CloudTrail's earlier "
                    "PutKeyPolicy or CreateKey record of this key holds it"
                )
            reasons.append(f"key policy after (re-read now): {current.policy}")
        if decision.stack:
            reasons.insert(
                0,
                "made through CloudFormation: no connect-guard stack disables, deletes or unrotates a key (a suite "
                "stack update may put its own keys' policies: compare with template.yaml); find the stack and its "
                "deployer (runbook). A key is made usable again all the same",
            )
        if decision.own:
            reasons.insert(
                0,
                "made by connect-guard's own role, which never disables, deletes or re-policies a key: the role is "
                "compromised (treat it as such until checked)",
            )
        return self.finding(event, decision, severity, title, tuple(reasons), change=change, actions=actions)

    def finding(
        self,
        event: CloudTrailEvent,
        decision: _KeyDecision,
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
        name = key_id_of(decision.arn) if decision.arn else "(unidentified)"
        return Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=title if full_title else f"{title}: KMS key {name} ({record.event_name})",
            summary=f"{actor.display} called {record.event_name} on KMS key {name} in account "
            f"{record.recipient_account_id} ({record.aws_region}). Severity {severity}.",
            **self.r.event_fields(event, actor),
            reasons=reasons,
            target=Target("kms_key", name if decision.arn else None, decision.arn),
            change=change,
            actions=actions,
        )
