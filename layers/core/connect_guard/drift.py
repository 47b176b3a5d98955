"""Scheduled drift checks: settings re-read without an event, reported, and restored in enforce mode.

CloudTrail to EventBridge is best effort, and a change made while a trail was off has no event
at all: the event-driven restore can miss it. A drift check re-reads one kind of setting per
enrolled account and region, compares it with its approved state, and, in enforce mode, puts it
back exactly as the event path does (journal first, then the write, then the audit records).

One kind of setting is one `DriftCheck`; `DriftRun` walks the enrolled accounts, asks each check
where it has something to look at (`regions`), and publishes what `assess` finds. An account or
region the suite cannot read is a CRITICAL finding and nothing is changed there (fail closed);
any other failure of one scope does not stop the others, and the run raises at the end, so the
scheduled job alerts that it did not complete (connect_guard.scheduled).

To add a check: a class with `name`, `regions(account)` and `assess(account, region)` (returning
the findings to publish, after any restore it made), and one entry in the tuple its run is built
with (connect_guard.responders.logging_drift.checks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from connect_guard.clients import DEADLINE, REREAD_RESERVE_MS
from connect_guard.errors import MemberAccessError
from connect_guard.findings import Action, Attempt, Change, ConnectRef, EventRef, Finding, Target
from connect_guard.observability import logger
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.settings import Settings

UNREADABLE = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


class DriftCheck(Protocol):
    """One kind of setting, checked without an event in each enrolled account and region."""

    name: str  # in logs and in the run's error summary: "cloudtrail", "connect_flow_logs"

    def regions(self, account: str) -> Iterable[str]:
        """Where this check has something to look at in `account`."""
        ...

    def assess(self, account: str, region: str) -> list[Finding]:
        """Re-read, compare with the approved state, restore in enforce mode; the findings to publish."""
        ...


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def run_id(check: str, target: str) -> str:
    """The event ID of one check's finding about one target in this run (to the microsecond:
    a manual run beside the schedule is another finding, and the journal tells them apart)."""
    return f"drift:{check}:{target}:{now_iso()}"


@dataclass(frozen=True)
class DriftFinding:
    """What a check found about one target, in the terms of a Finding."""

    responder: str
    kind: str
    severity: Severity
    title: str
    reasons: tuple[str, ...]
    account: str
    region: str
    event_id: str
    target: Target
    change: Change | None = None
    actions: tuple[Action, ...] = ()
    connect: ConnectRef | None = None

    def finding(self, settings: Settings, summary: str) -> Finding:
        mode = settings.mode_for("logging_guard", self.account)  # every drift check is the logging guard's
        return Finding(
            responder=self.responder,
            kind=self.kind,
            severity=self.severity,
            title=self.title,
            summary=summary,
            event=EventRef(self.event_id, "DriftCheck", "connect-guard", now_iso(), self.account, self.region, ""),
            actor=Actor.system("connect-guard drift check"),
            attempt=Attempt("succeeded"),
            allowlisted=False,
            reasons=self.reasons,
            runbook_url=settings.runbook_url(self.responder),
            environment=settings.environment,
            mode=mode.mode,
            mode_reason=mode.reason,
            target=self.target,
            connect=self.connect,
            change=self.change,
            actions=self.actions,
        )


class DriftIncompleteError(RuntimeError):
    """Some scopes could not be checked (other than unreadable ones, which are alerted)."""


@dataclass
class DriftRun:
    settings: Settings
    publisher: Any  # SnsPublisher
    checks: Sequence[DriftCheck]
    responder: str  # for the "not assessed" findings and their runbook
    kind: str
    findings: list[Finding] = field(default_factory=list)

    def accounts(self) -> list[str]:
        return list(dict.fromkeys([self.settings.own_account_id, *self.settings.member_account_ids]))

    def run(self) -> list[Finding]:
        # The checks stop short of the function's timeout by what the run's FAILED alert needs.
        with DEADLINE.keeping(REREAD_RESERVE_MS):
            failures = self._run()
        if failures:
            raise DriftIncompleteError("; ".join(failures)[:1000])
        return self.findings

    def _run(self) -> list[str]:
        failures: list[str] = []
        for account in self.accounts():
            for check in self.checks:
                try:
                    regions = sorted(set(check.regions(account)))
                except Exception as error:  # the approved state itself could not be read
                    logger.exception("drift check could not list its regions", extra={"check": check.name})
                    failures.append(f"{check.name} {account}: {type(error).__name__}: {error}")
                    continue
                for region in regions:
                    failures += self._assess(check, account, region)
        return failures

    def _assess(self, check: DriftCheck, account: str, region: str) -> list[str]:
        try:
            found = check.assess(account, region)
        except MemberAccessError as error:
            found = [self._not_assessed(check, account, region, str(error))]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code not in UNREADABLE:
                logger.exception("drift check failed", extra={"check": check.name, "account": account})
                return [f"{check.name} {account} {region}: {code}"]
            found = [self._not_assessed(check, account, region, f"the settings could not be read ({code})")]
        except Exception as error:
            logger.exception("drift check failed", extra={"check": check.name, "account": account})
            return [f"{check.name} {account} {region}: {type(error).__name__}: {error}"]
        for finding in found:
            self.publisher.publish(finding)
            self.findings.append(finding)
        return []

    def _not_assessed(self, check: DriftCheck, account: str, region: str, why: str) -> Finding:
        """Unreadable: alerted, nothing changed (the state may have drifted, unseen)."""
        return DriftFinding(
            self.responder,
            self.kind,
            Severity.CRITICAL,
            f"Drift check not assessed: {check.name} in {account} ({region})",
            (f"{why}: not checked, nothing restored", "check the member stack's roles (runbook)"),
            account,
            region,
            run_id(check.name, f"{account}:{region}"),
            Target(check.name, f"{account}/{region}"),
        ).finding(self.settings, f"The scheduled drift check could not read {check.name} in {account} ({region}).")
