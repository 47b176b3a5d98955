"""logging_guard sub-control: the suite's own plumbing (its EventBridge rules, the archive bucket,
its log groups and Connect's), tampered with to blind it.

Which plumbing is the suite's is known exactly, never by a name an attacker can copy: the
security stack's rule names, log groups and archive bucket come from the stack's own SSM
parameter (connect_guard.plumbing); the member stack's forwarding rules have fixed names.
Every change is CRITICAL. The state is re-read, compared with the template's, and in enforce
mode put back where that is exact (rule enabled, its targets, log retention, a deleted log
group re-created, versioning, lifecycle and encryption of the archive); what can't be put back
exactly (a rule deleted or its pattern replaced, the bucket policy, Object Lock, the bucket
itself) says "redeploy the stack". Denied calls, allowlisted principals, CloudFormation and
member accounts are alerted, not restored; the suite's own role is left alone only when its
change leaves the plumbing as the template says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.audit import action_record
from connect_guard.clients import reread
from connect_guard.connect import InstanceRef
from connect_guard.errors import MemberAccessError
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Action, Change, Finding, Target, finding_id_of
from connect_guard.observability import logger
from connect_guard.outcome import Outcome
from connect_guard.plumbing import (
    MEMBER_RULES,
    Difference,
    KnownArchive,
    KnownPlumbing,
    bucket_differences,
    log_group_differences,
    member_rule_name,
    rule_differences,
    rule_restore_calls,
    snake,
)
from connect_guard.policy import Severity
from connect_guard.principals import (
    CLOUDFORMATION,
    Actor,
    allowlist_match,
    exempt_service,
    is_suite_deployment,
    is_suite_principal,
)

if TYPE_CHECKING:
    from connect_guard.responders.logging_guard import LoggingGuardResponder

NAME = "logging_guard"
KIND = "logging.suite_plumbing"
EVENTS = "events.amazonaws.com"
LOGS = "logs.amazonaws.com"
S3 = "s3.amazonaws.com"
RULE_EVENTS = ("DeleteRule", "DisableRule", "RemoveTargets", "PutRule", "PutTargets")
LOG_EVENTS = ("DeleteLogGroup", "PutRetentionPolicy")
BUCKET_EVENTS = (
    "DeleteBucketPolicy",
    "PutBucketPolicy",
    "PutBucketLifecycle",
    "DeleteBucketLifecycle",
    "PutBucketVersioning",
    "PutObjectLockConfiguration",
    "PutBucketObjectLockConfiguration",
    "PutBucketEncryption",
    "DeleteBucketEncryption",
    "PutBucketLogging",
    "DeleteBucket",
)
HANDLED = {EVENTS: RULE_EVENTS, LOGS: LOG_EVENTS, S3: BUCKET_EVENTS}
UNREADABLE = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "ParameterNotFound"}
REDEPLOY = "redeploy the stack to put the template's version back (runbook)"

Call = tuple[str, str, dict[str, Any]]  # service, operation, parameters


@dataclass
class _Decision:
    actor: Actor
    target: Target | None = None
    account: str = ""
    report: tuple[Severity, str, tuple[str, ...]] | None = None
    ignore: str | None = None
    found: tuple[Difference, ...] = ()
    calls: list[Call] = field(default_factory=list)
    notes: tuple[str, ...] = ()  # what can't be restored exactly, or what was lost
    own: bool = False
    deployment: bool = False  # CloudFormation through the suite's exact deploy role


class PlumbingGuard:
    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings
        self._known: KnownPlumbing | None = None
        self._read_for: str | None = None  # the event the known state was last read for

    def handles(self, event: CloudTrailEvent) -> bool:
        record = event.detail
        return record.event_name in HANDLED.get(record.event_source, ())

    # -- the known state -------------------------------------------------------------------------
    def known(self, event_id: str) -> KnownPlumbing:
        """The stack's SSM parameter. Unreadable: raises (the caller alerts and acts on nothing).
        Kept per container, and read again for an event that concerns the plumbing (see decide):
        a deployment since may have changed it."""
        if self._known is None:
            name = self.settings.plumbing_state_parameter
            if not name:
                raise LookupError("PLUMBING_STATE_PARAMETER is not set: the suite's plumbing is unknown")
            value = self.r.clients.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
            self._known, self._read_for = KnownPlumbing.parse(value), event_id
        return self._known

    def client(self, service: str) -> Any:
        return self.r.clients.for_account(
            service, self.settings.own_account_id, self.settings.region, self.settings, "read"
        )

    # -- deciding ----------------------------------------------------------------------------------
    def decide(self, event: CloudTrailEvent) -> _Decision:
        record = event.detail
        actor = Actor.from_record(record)
        account = record.recipient_account_id or event.account
        known = self._load(record.event_id)
        if isinstance(known, str):
            why = f"the suite's known plumbing {known}: not restored"
            return _Decision(actor, account=account, report=(Severity.CRITICAL, "Plumbing change not assessed", (why,)))
        decision = self._decide(event, actor, account, known)
        if self._read_for != record.event_id and (decision.target is not None or _not_the_suites(decision)):
            # Decided on a state read for an earlier event: a deployment since may have added,
            # changed or removed plumbing. Read it again before anything is said or done.
            self._known = None
            return self.decide(event)
        return decision

    def reload(self, event_id: str) -> KnownPlumbing | str:
        """The known state read again now (the drift check's: a deployment may have changed it)."""
        self._known = None
        return self._load(event_id)

    def _load(self, event_id: str) -> KnownPlumbing | str:
        """The known state, or why it is unusable (fail closed); transient errors are raised."""
        try:
            return self.known(event_id)
        except ClientError as error:
            if error.response["Error"]["Code"] not in UNREADABLE:
                raise
            return f"could not be read ({error.response['Error']['Code']})"
        except (LookupError, ValueError, TypeError, AttributeError) as error:
            return f"is unusable ({type(error).__name__}: {error})"

    def _decide(self, event: CloudTrailEvent, actor: Actor, account: str, known: KnownPlumbing) -> _Decision:
        kind = {EVENTS: self._rule, LOGS: self._log_group, S3: self._bucket}[event.detail.event_source]
        return kind(event, actor, account, known)

    def _gate(self, event: CloudTrailEvent, decision: _Decision, what: str) -> _Decision | None:
        """The checks every kind shares, once the target is known to be the suite's."""
        record = event.detail
        if record.denied:
            why = f"the call was denied ({record.error_code}): an attempt on the suite's {what}, not a change"
            decision.report = (Severity.HIGH, "Denied attempt", (why,))
            return decision
        allowed = allowlist_match(decision.actor, self.settings.allowlisted_principals)
        if allowed:
            why = f"made by an allowlisted principal ({allowed}): kept, not restored; {REDEPLOY} if unintended"
            decision.report = (Severity.MEDIUM, "Allowlisted plumbing change", (why,))
            return decision
        if is_suite_deployment(decision.actor, self.settings):
            decision.deployment = True  # decided from the state it left (see _settle)
        elif exempt_service(decision.actor, {CLOUDFORMATION}):
            why = (
                "made through CloudFormation by a role that is not the suite's deployer (SuiteDeployRoleArn and its "
                f"unique ID): nothing is restored; check the stack's events ({what})"
            )
            decision.report = (Severity.CRITICAL, "Plumbing changed by a stack", (why,))
            return decision
        if decision.account != self.settings.own_account_id:
            why = (
                f"account {decision.account}: the member stack grants no access to its {what}; "
                "it was not re-read: redeploy the member stack there (runbook)"
            )
            decision.report = (Severity.CRITICAL, "Plumbing change not assessed", (why,))
            return decision
        if event.detail.aws_region != self.settings.region:
            why = f"region {event.detail.aws_region}: the security stack's plumbing is in {self.settings.region}"
            decision.ignore = why
            return decision
        decision.own = is_suite_principal(decision.actor, self.settings)
        return None

    def _read(self, decision: _Decision, read: Any) -> _Decision | None:
        """Run a re-read; unreadable state is alerted and nothing is done (fail closed)."""
        try:
            read()
        except MemberAccessError as error:
            decision.report = (Severity.CRITICAL, "Plumbing change not assessed", (str(error),))
            return decision
        except ClientError as error:
            if error.response["Error"]["Code"] not in UNREADABLE:
                raise  # transient: retried, and the last attempt alerts
            why = f"the current state could not be read ({error.response['Error']['Code']}): not restored"
            decision.report = (Severity.CRITICAL, "Plumbing change not assessed", (why,))
            return decision
        return None

    def _settle(self, decision: _Decision) -> _Decision:
        as_template = not decision.found and not decision.notes
        if decision.own and as_template:
            decision.ignore = "the suite's own restore of its plumbing, left as the template says"
        elif decision.deployment and as_template:
            decision.ignore = "the suite's own deployment, which left its plumbing as the template says"
        elif decision.deployment:
            # Its own deployment, yet not as its template: alerted, never undone (a deployment
            # may be mid-way; the SOC decides).
            reasons = tuple(d.describe() for d in decision.found) + decision.notes
            why = "made by the suite's own deployment (SuiteDeployRoleArn), which left it other than its template"
            decision.report = (Severity.CRITICAL, "Suite deployment left the plumbing changed", (why, *reasons))
            decision.calls = []
        return decision

    # EventBridge rules
    def _rule(self, event: CloudTrailEvent, actor: Actor, account: str, known: KnownPlumbing) -> _Decision:
        record = event.detail
        name = record.param("name") or record.param("rule") or record.param("Name") or record.param("Rule")
        bus = record.param("eventBusName") or record.param("EventBusName")
        if not isinstance(name, str) or name in ("", "***"):
            if record.denied:
                why = f"the call was denied ({record.error_code}) and does not say which rule: an attempt"
                return _Decision(actor, account=account, report=(Severity.MEDIUM, "Denied rule change", (why,)))
            why = "the event does not say which rule changed: check the suite's rules by hand"
            return _Decision(actor, account=account, report=(Severity.HIGH, "Unidentified rule change", (why,)))
        if isinstance(bus, str) and bus not in ("default", "") and not bus.endswith(":event-bus/default"):
            return _Decision(actor, ignore=f"rule {name} on bus {bus}: the suite's rules are on the default bus")
        own_account = account == self.settings.own_account_id
        suite_rule = name in known.rules if own_account else self._member_rule(account, name)
        if not suite_rule:
            return _Decision(actor, ignore=f"rule {name} is not one of the suite's rules")
        arn = f"arn:{self.settings.partition}:events:{record.aws_region}:{account}:rule/{name}"
        decision = _Decision(actor, Target("eventbridge_rule", name, arn), account)
        gated = self._gate(event, decision, f"EventBridge rule {name}")
        if gated is not None:
            return gated
        events = self.client("events")
        state: dict[str, Any] = {}

        def read() -> None:
            try:
                state["rule"] = events.describe_rule(Name=name)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                return
            state["targets"] = events.list_targets_by_rule(Rule=name).get("Targets", [])

        failed = self._read(decision, read)
        if failed is not None:
            return failed
        if "rule" not in state:
            why = f"the rule no longer exists: the suite receives none of its events; {REDEPLOY}"
            decision.report = (Severity.CRITICAL, "Suite rule deleted", (why,))
            return decision
        targets = known.rules[name]
        decision.found = rule_differences(
            targets, known.dead_letter_arn, state["rule"].get("State", ""), state["targets"]
        )
        now_ids = [str(t.get("Id")) for t in state["targets"]]
        decision.calls = [
            ("events", op, p)
            for op, p in rule_restore_calls(name, targets, known.dead_letter_arn, decision.found, now_ids)
        ]
        if record.event_name == "PutRule":
            asked = {
                k: record.param(k) for k in ("eventPattern", "state", "description") if record.param(k) is not None
            }
            decision.notes = (
                f"PutRule replaced the rule's definition ({', '.join(sorted(asked)) or 'parameters not recorded'}): "
                f"the suite cannot re-check an event pattern exactly; {REDEPLOY}",
            )
        return self._settle(decision)

    def _member_rule(self, account: str, name: str) -> bool:
        if account not in self.settings.member_account_ids:
            return False
        return name in {member_rule_name(self.settings.environment, rule) for rule in MEMBER_RULES}

    # Log groups
    def _log_group(self, event: CloudTrailEvent, actor: Actor, account: str, known: KnownPlumbing) -> _Decision:
        record = event.detail
        name = record.param("logGroupName")
        if not isinstance(name, str) or name in ("", "***"):
            if record.denied:
                return _Decision(actor, ignore="a denied log-group call that does not say which group")
            why = "the event does not say which log group changed: check the suite's and Connect's by hand"
            return _Decision(actor, account=account, report=(Severity.HIGH, "Unidentified log group change", (why,)))
        approved = known.retention_days
        asked = record.param("retentionInDays")
        if record.event_name == "PutRetentionPolicy" and isinstance(asked, int) and asked >= approved:
            return _Decision(actor, ignore=f"retention set to {asked} days, not below the approved {approved}")
        own_account = account == self.settings.own_account_id
        if own_account and name not in known.log_groups:
            return _Decision(actor, ignore=f"log group {name} is not one of the suite's or Connect's")
        if not own_account and not self._member_connect_group(account, name):
            return _Decision(actor, ignore=f"log group {name} is not a Connect log group the suite covers")
        arn = f"arn:{self.settings.partition}:logs:{record.aws_region}:{account}:log-group:{name}"
        decision = _Decision(actor, Target("log_group", name, arn), account)
        gated = self._gate(event, decision, f"log group {name}")
        if gated is not None:
            return gated
        logs = self.client("logs")
        state: dict[str, Any] = {}

        def read() -> None:
            groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
            state["group"] = next((g for g in groups if g.get("logGroupName") == name), None)

        failed = self._read(decision, read)
        if failed is not None:
            return failed
        group = state["group"]
        found, calls = log_group_differences(name, group, known)
        decision.found, decision.calls = found, [("logs", op, params) for op, params in calls]
        if group is None:
            decision.notes = (
                "the log group was deleted with every event it held: that evidence is gone, the archive keeps "
                "what was exported before; re-created so that logging continues",
            )
            return self._settle(decision)
        if record.event_name == "DeleteLogGroup":
            decision.notes = ("the log group was deleted and exists again: the events it held until then are gone",)
        return self._settle(decision)

    def _member_connect_group(self, account: str, name: str) -> bool:
        if not name.startswith("/aws/connect/") or account not in self.settings.member_account_ids:
            return False
        own, region = self.settings.own_account_id, self.settings.region
        return any(InstanceRef.parse(a, own, region).account_id == account for a in self.settings.connect_instance_arns)

    # The archive bucket
    def _bucket(self, event: CloudTrailEvent, actor: Actor, account: str, known: KnownPlumbing) -> _Decision:
        record = event.detail
        name = record.param("bucketName")
        archive = known.archive
        if archive is None or name != archive.bucket:
            return _Decision(actor, ignore=f"bucket {name} is not the suite's archive bucket")
        decision = _Decision(actor, Target("s3_bucket", name, f"arn:{self.settings.partition}:s3:::{name}"), account)
        gated = self._gate(event, decision, f"archive bucket {name}")
        if gated is not None:
            return gated
        event_name = record.event_name
        if event_name in ("PutBucketPolicy", "DeleteBucketPolicy"):
            decision.notes = (
                f"the archive's bucket policy was {'replaced' if event_name.startswith('Put') else 'deleted'}: "
                f"the suite does not carry its document; {REDEPLOY}",
            )
            return self._settle(decision)
        if "ObjectLock" in event_name:
            decision.notes = (
                "Object Lock settings changed: in compliance mode retention can't be shortened, in governance mode it "
                f"can; check the bucket's default retention and {REDEPLOY}",
            )
            return self._settle(decision)
        if event_name == "PutBucketLogging":
            decision.notes = (
                "the archive bucket's server access logging changed (turned off or sent elsewhere, a deletion of "
                f"evidence would go unrecorded); the suite does not carry its target; {REDEPLOY}",
            )
            return self._settle(decision)
        if event_name == "DeleteBucket":
            decision.notes = (
                "the archive bucket was deleted (it must have been emptied, every version, first): its evidence is "
                f"gone; {REDEPLOY}",
            )
            return self._settle(decision)
        s3 = self.client("s3")
        failed = self._read(decision, lambda: self._bucket_state(s3, archive, event_name, decision))
        return failed if failed is not None else self._settle(decision)

    @staticmethod
    def _bucket_state(s3: Any, archive: KnownArchive, event_name: str, decision: _Decision) -> None:
        found, calls = bucket_differences(s3, archive, event_name)
        if found:
            decision.found, decision.calls = found, [("s3", op, params) for op, params in calls]

    # -- handling ----------------------------------------------------------------------------------
    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        decision = self.decide(event)
        if decision.ignore:
            outcome.reason = decision.ignore
            logger.info("no finding", extra={"reason": decision.ignore})
            return outcome
        if decision.report:
            severity, title, reasons = decision.report
            return self.r._publish(self.finding(event, decision, severity, title, reasons), outcome, "alerted")
        finding_id = finding_id_of(NAME, record.event_id)
        if not decision.calls:
            pending = self.r.journal.get(finding_id) if self.r.mode_of(event).enforces else None
            if pending is not None:  # an earlier attempt restored it and died before reporting
                actions = tuple(Action(a.service, a.operation, a.parameters, "taken") for a in pending.actions())
                if not pending.audited:
                    self.r.journal.complete(pending, list(pending.records), "taken")
                return self.r._publish(self._changed(event, decision, actions), outcome, "restored")
            return self.r._publish(self._changed(event, decision, ()), outcome, "alerted")
        if not self.r.mode_of(event).enforces:
            actions = tuple(Action(s, op, p, "proposed") for s, op, p in decision.calls)
            return self.r._publish(self._changed(event, decision, actions), outcome, "alerted")
        assert decision.target is not None
        why = "; ".join(d.describe() for d in decision.found)
        records = [
            action_record(
                self.r.audit,
                Action(service, op, params, "taken"),
                responder=NAME,
                actor=decision.actor.arn,
                target=decision.target.arn,
                reason=f"{record.event_name}: {why}",
                before={d.setting: d.now for d in decision.found},
                event_id=record.event_id,
                finding_id=finding_id,
                mode=self.settings.response_mode,
            )
            for service, op, params in decision.calls
        ]
        pending = self.r.journal.begin(finding_id, responder=NAME, event_id=record.event_id, records=records)
        for service, op, params in decision.calls:
            client = self.r.clients.for_account(service, decision.account, record.aws_region, self.settings, "read")
            getattr(client, _snake(op))(**params)
        try:
            self.r.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        actions = tuple(Action(s, op, p, "taken") for s, op, p in decision.calls)
        return self.r._publish(self._changed(event, decision, actions), outcome, "restored")

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed: decide again from the plumbing as it is now; still differing
        (or unreadable), a CRITICAL FAILED / UNCONFIRMED alert; restored or nothing due, none."""
        record = event.detail
        try:
            decision = reread(lambda: self.decide(event))
        except Exception as failure:
            verdict = "UNCONFIRMED"
            state = f"the plumbing could not be re-read ({type(failure).__name__}: {failure}): it may still differ"
            decision = _Decision(Actor.from_record(record))
        else:
            if decision.ignore or decision.report or not decision.found:  # nothing to restore (as for trails)
                logger.info("last attempt failed; no restore is due: no FAILED alert")
                return
            verdict = "FAILED"
            state = "re-read now, it still differs: " + "; ".join(d.describe() for d in decision.found)
        reasons = (
            f"RESTORE DID NOT HAPPEN: {type(error).__name__}: {error}",
            state,
            *decision.notes,
            "restore it by hand or redeploy the stack (runbook)",
        )
        title = f"Plumbing restore {verdict} for {record.event_name} in {record.recipient_account_id}"
        self.r.publisher.publish(self.finding(event, decision, Severity.CRITICAL, title, reasons, full_title=True))

    # -- findings ----------------------------------------------------------------------------------
    def _changed(self, event: CloudTrailEvent, decision: _Decision, actions: tuple[Action, ...]) -> Finding:
        restored = bool(actions) and all(a.status == "taken" for a in actions)
        what = {"eventbridge_rule": "Suite rule", "log_group": "Log group", "s3_bucket": "Archive bucket"}
        noun = what.get(decision.target.kind if decision.target else "", "Plumbing")
        if restored:
            title = f"{noun} restored"
        elif decision.found:
            title = f"{noun} tampered with"
        elif decision.notes:
            title = f"{noun} changed"
        else:
            title = f"{noun} changed, now as the template says"
        reasons = tuple(d.describe() for d in decision.found) + decision.notes
        if not reasons:
            reasons = (
                "re-read, it is as the template says again: whatever it missed in between is lost; "
                "look for that window's calls in CloudTrail event history",
            )
        if decision.own:
            reasons = (
                "made by connect-guard's own role, which only restores: a partial restore, or the role is "
                "compromised (treat it as such until checked)",
                *reasons,
            )
        change = None
        if decision.found:
            change = Change(
                tuple(f"{d.setting}={json.dumps(d.now, sort_keys=True, default=str)}" for d in decision.found),
                tuple(f"{d.setting}={json.dumps(d.approved, sort_keys=True, default=str)}" for d in decision.found),
                tuple(d.setting for d in decision.found),
                "approved",
            )
        # Put back by hand (or another tool) before the re-read: HIGH, for the gap it left.
        severity = Severity.CRITICAL if decision.found or decision.notes else Severity.HIGH
        return self.finding(event, decision, severity, title, reasons, actions, change=change)

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
        change: Change | None = None,
    ) -> Finding:
        record = event.detail
        target = decision.target
        what = f"{target.kind.replace('_', ' ')} {target.name}" if target else "the suite's plumbing"
        return Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=title if full_title else f"{title}: {what} ({record.event_name})",
            summary=f"{decision.actor.display} called {record.event_name} on {what} in account "
            f"{record.recipient_account_id} ({record.aws_region}). Severity {severity}.",
            **self.r.event_fields(event, decision.actor),
            reasons=reasons,
            target=target or Target("plumbing", None),
            change=change,
            actions=actions,
        )


def _not_the_suites(decision: _Decision) -> bool:
    """Ignored because the target is not (in the state read) the suite's."""
    reason = decision.ignore or ""
    return "not one of the suite's" in reason or "not the suite's archive" in reason


def _snake(operation: str) -> str:
    return snake(operation)
