"""The drift check for the suite's own plumbing (a `DriftCheck`, see connect_guard.drift): the
security stack's rules, its and the Connect instances' log groups and the archive bucket,
re-read without an event in the security account and the stack's region, compared with the
known state (the stack's SSM parameter, read again on every run: a deployment may have changed
it) and, in enforce mode, put back with the calls the event path makes (responders.plumbing_guard),
journaled first and audited.

Every difference is CRITICAL. What can't be put back exactly (a rule gone, the bucket gone) is
alerted with "redeploy". The known state unreadable or unusable: CRITICAL "not assessed",
nothing changed; the plumbing unreadable (AccessDenied) propagates to the run, which says the
same. Member accounts' forwarding rules are not read here (the member stack grants no access).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.audit import action_record
from connect_guard.drift import DriftFinding, run_id
from connect_guard.findings import Action, Change, Target, finding_id_of
from connect_guard.observability import logger
from connect_guard.plumbing import (
    Difference,
    KnownPlumbing,
    bucket_differences,
    log_group_differences,
    rule_differences,
    rule_restore_calls,
    snake,
)
from connect_guard.policy import Severity
from connect_guard.responders.logging_drift import NAME, earlier_restore, journal_key
from connect_guard.responders.plumbing_guard import REDEPLOY, PlumbingGuard

if TYPE_CHECKING:
    from connect_guard.findings import Finding
    from connect_guard.responders.logging_guard import LoggingGuardResponder

KIND = "logging.suite_plumbing_drift"
BUCKET_READS = ("PutBucketVersioning", "PutBucketLifecycle", "PutBucketEncryption")  # the guard's re-reads
NOUN = {"eventbridge_rule": "Suite rule", "log_group": "Log group", "s3_bucket": "Archive bucket"}

Call = tuple[str, str, dict[str, Any]]  # service, operation, parameters


@dataclass
class _Item:
    """One piece of plumbing as re-read: how it differs, the exact calls that put it back, and
    what can't be put back exactly."""

    target: Target
    found: tuple[Difference, ...] = ()
    calls: list[Call] = field(default_factory=list)
    notes: tuple[str, ...] = ()


class PlumbingDrift:
    name = "suite_plumbing"

    def __init__(self, responder: LoggingGuardResponder) -> None:
        self.r = responder
        self.settings = responder.settings
        self.guard = PlumbingGuard(responder)  # the event path's known state and re-reads

    def regions(self, account: str) -> Iterable[str]:
        return (self.settings.region,) if account == self.settings.own_account_id else ()

    def assess(self, account: str, region: str) -> list[Finding]:
        known = self.guard.reload(run_id(self.name, "known-state"))
        if isinstance(known, str):
            return [self._not_assessed(account, region, f"the suite's known plumbing {known}")]
        items = [*self._rules(known), *self._log_groups(known), *self._archive(known)]
        findings = []
        for item in items:
            found = self._settle(account, region, item)
            if found is not None:
                summary = (
                    f"The scheduled drift check re-read the suite's {item.target.kind.replace('_', ' ')} "
                    f"{item.target.name} in account {account} ({region}) without an event and compared it with "
                    f"the stack's known plumbing. Severity {found.severity}."
                )
                findings.append(found.finding(self.settings, summary))
        return findings

    # -- re-reads ----------------------------------------------------------------------------------
    def _arn(self, service: str, resource: str) -> str:
        s = self.settings
        return f"arn:{s.partition}:{service}:{s.region}:{s.own_account_id}:{resource}"

    def _rules(self, known: KnownPlumbing) -> Iterable[_Item]:
        events = self.guard.client("events")
        for name in sorted(known.rules):
            item = _Item(Target("eventbridge_rule", name, self._arn("events", f"rule/{name}")))
            try:
                rule = events.describe_rule(Name=name)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                item.notes = (f"the rule no longer exists: the suite receives none of its events; {REDEPLOY}",)
                yield item
                continue
            targets = events.list_targets_by_rule(Rule=name).get("Targets", [])
            wanted = known.rules[name]
            item.found = rule_differences(wanted, known.dead_letter_arn, rule.get("State", ""), targets)
            now_ids = [str(t.get("Id")) for t in targets]
            calls = rule_restore_calls(name, wanted, known.dead_letter_arn, item.found, now_ids)
            item.calls = [("events", op, params) for op, params in calls]
            yield item

    def _log_groups(self, known: KnownPlumbing) -> Iterable[_Item]:
        logs = self.guard.client("logs")
        for name in known.log_groups:
            item = _Item(Target("log_group", name, self._arn("logs", f"log-group:{name}")))
            groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
            group = next((g for g in groups if g.get("logGroupName") == name), None)
            found, calls = log_group_differences(name, group, known)
            item.found, item.calls = found, [("logs", op, params) for op, params in calls]
            if group is None:
                item.notes = (
                    "the log group is gone with every event it held, and no event said so: that evidence is lost; "
                    "re-created so that logging continues",
                )
            yield item

    def _archive(self, known: KnownPlumbing) -> Iterable[_Item]:
        archive = known.archive
        if archive is None:
            return
        bucket = archive.bucket
        item = _Item(Target("s3_bucket", bucket, f"arn:{self.settings.partition}:s3:::{bucket}"))
        s3 = self.guard.client("s3")
        found: list[Difference] = []
        try:
            for event_name in BUCKET_READS:
                differs, calls = bucket_differences(s3, archive, event_name)
                found += differs
                item.calls += [("s3", op, params) for op, params in calls]
        except ClientError as error:
            if error.response["Error"]["Code"] != "NoSuchBucket":
                raise
            item.calls = []
            item.notes = (f"the archive bucket no longer exists: its evidence is gone; {REDEPLOY}",)
        item.found = tuple(found) if not item.notes else ()
        yield item

    # -- reporting and restoring -------------------------------------------------------------------
    def _settle(self, account: str, region: str, item: _Item) -> DriftFinding | None:
        target = item.target
        noun = NOUN[target.kind]
        label = f"{target.kind.replace('_', ' ')} {target.name}"
        ref = target.arn or str(target.name)
        key = journal_key(ref)
        if not item.found and not item.notes:
            return earlier_restore(self.r, key, KIND, target, label, account, region)
        event_id = run_id(self.name, ref)
        reasons = (
            "found by the scheduled drift check: no event reported this change",
            *(d.describe() for d in item.found),
            *item.notes,
        )
        change = None
        if item.found:
            change = Change(
                tuple(f"{d.setting}={json.dumps(d.now, sort_keys=True, default=str)}" for d in item.found),
                tuple(f"{d.setting}={json.dumps(d.approved, sort_keys=True, default=str)}" for d in item.found),
                tuple(d.setting for d in item.found),
                "approved",
            )

        def report(title: str, actions: tuple[Action, ...] = ()) -> DriftFinding:
            return DriftFinding(
                NAME, KIND, Severity.CRITICAL, f"{title}: {label}", reasons, account, region, event_id, target,
                change, actions,
            )  # fmt: skip

        if not item.calls:
            return report(f"{noun} changed")
        if not self.r.mode_for(account).enforces:
            return report(f"{noun} drifted", tuple(Action(s, op, p, "proposed") for s, op, p in item.calls))
        records = [
            action_record(
                self.r.audit,
                Action(service, op, params, "taken"),
                responder=NAME,
                actor=None,
                target=target.arn,
                reason="drift check: " + "; ".join(d.describe() for d in item.found),
                before={d.setting: d.now for d in item.found},
                event_id=None,
                finding_id=finding_id_of(NAME, event_id),
                mode=self.settings.response_mode,
            )
            for service, op, params in item.calls
        ]
        payload = {"drift": [{"setting": d.setting, "approved": d.approved, "now": d.now} for d in item.found]}
        pending = self.r.journal.begin(key, responder=NAME, event_id=event_id, records=records, payload=payload)
        for service, op, params in item.calls:  # the clients the event path writes with
            getattr(self.guard.client(service), snake(op))(**params)
        try:
            self.r.journal.complete(pending, records, "taken")
        except (ClientError, BotoCoreError) as error:
            logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        return report(f"{noun} drift restored", tuple(Action(s, op, p, "taken") for s, op, p in item.calls))

    def _not_assessed(self, account: str, region: str, why: str) -> Finding:
        target = Target("plumbing", self.settings.plumbing_state_parameter or None)
        return DriftFinding(
            NAME,
            KIND,
            Severity.CRITICAL,
            f"Drift check not assessed: the suite's plumbing in {account} ({region})",
            (f"{why}: not checked, nothing restored", "check the stack's SSM parameter (runbook)"),
            account,
            region,
            run_id(self.name, f"{account}:{region}"),
            target,
        ).finding(self.settings, f"The scheduled drift check could not assess the suite's plumbing in {account}.")
