"""Instance discovery: Connect instances the suite does not watch.

ConnectInstanceArns is a static list; an instance created later (or never added) would be
watched by nothing. Each sweep lists the instances (ListInstances, paginated) of every account
and region that list names: a member account through its read role, the security account
directly. Every ACTIVE instance missing from the list is reported, in one MEDIUM finding per
sweep, but only when the set holds an instance not reported before: the last reported set of
each account and region is a small item in the baseline table (`pk = discovery`). A listing
that fails is alerted as "could not check" (fail closed), and its last reported set is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.clients import AwsClients
from connect_guard.connect import InstanceRef, InstanceSummary, list_instances
from connect_guard.errors import MemberAccessError
from connect_guard.findings import Attempt, EventRef, Finding
from connect_guard.observability import logger
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.publisher import SnsPublisher
from connect_guard.settings import Settings

NAME = "baseline_sweep"  # the sweep's runbook
KIND = "connect.unwatched_instances"
KIND_UNCHECKED = "connect.instance_discovery_failed"
STATE_PK = "discovery"
MAX_LISTED = 50  # instances named in one finding; the rest are counted


@dataclass(frozen=True, order=True)
class Scope:
    account_id: str
    region: str

    @property
    def key(self) -> str:
        return f"{self.account_id}:{self.region}"


@dataclass(frozen=True)
class Listing:
    scope: Scope
    unwatched: tuple[InstanceSummary, ...] = ()
    error: str | None = None  # why the instances could not be listed


@dataclass
class DiscoveryResult:
    listings: list[Listing] = field(default_factory=list)
    new: frozenset[str] = frozenset()  # unwatched ARNs not in the last reported set
    finding_ids: list[str] = field(default_factory=list)

    @property
    def unwatched(self) -> tuple[InstanceSummary, ...]:
        return tuple(i for listing in self.listings for i in listing.unwatched)

    @property
    def failed(self) -> tuple[Listing, ...]:
        return tuple(listing for listing in self.listings if listing.error is not None)


def scopes(instances: Iterable[InstanceRef]) -> list[Scope]:
    """The accounts and regions where instances are expected: those of the configured ones."""
    return sorted({Scope(i.account_id, i.region) for i in instances})


def unwatched(listed: Iterable[InstanceSummary], watched: frozenset[str]) -> tuple[InstanceSummary, ...]:
    """ACTIVE instances not watched (pure). One still being created is not a contact centre yet;
    the next sweep sees it ACTIVE."""
    return tuple(sorted((i for i in listed if i.status == "ACTIVE" and i.arn not in watched), key=lambda i: i.arn))


class DiscoveryState:
    """The last reported unwatched set of each account and region (one item each)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def _key(self, scope: Scope) -> dict[str, Any]:
        return {"pk": {"S": STATE_PK}, "sk": {"S": scope.key}}

    def reported(self, scope: Scope) -> frozenset[str]:
        item = self._db.get_item(TableName=self._table, Key=self._key(scope), ConsistentRead=True).get("Item")
        return frozenset(v["S"] for v in item["arns"]["L"]) if item else frozenset()

    def record(self, scope: Scope, arns: frozenset[str]) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._db.put_item(
            TableName=self._table,
            Item={
                **self._key(scope),
                "arns": {"L": [{"S": a} for a in sorted(arns)]},
                "recorded_at": {"S": now},
            },
        )


class InstanceDiscovery:
    def __init__(self, settings: Settings, clients: AwsClients, publisher: SnsPublisher, state: DiscoveryState) -> None:
        self.settings = settings
        self.clients = clients
        self.publisher = publisher
        self.state = state

    def configured(self) -> list[InstanceRef]:
        own, region = self.settings.own_account_id, self.settings.region
        return [InstanceRef.parse(a, own, region) for a in self.settings.connect_instance_arns]

    def _list(self, scope: Scope, watched: frozenset[str]) -> Listing:
        try:
            client = self.clients.for_account("connect", scope.account_id, scope.region, self.settings, "read")
            return Listing(scope, unwatched(list_instances(client), watched))
        except (ClientError, BotoCoreError, MemberAccessError) as error:
            code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
            logger.warning("could not list Connect instances", extra={"scope": scope.key, "error": str(error)})
            return Listing(scope, error=f"{code}: {error}")

    def run(self) -> DiscoveryResult:
        configured = self.configured()
        watched = frozenset(i.arn for i in configured)
        result = DiscoveryResult([self._list(scope, watched) for scope in scopes(configured)])
        changed: list[tuple[Scope, frozenset[str]]] = []
        new: set[str] = set()
        for listing in result.listings:
            if listing.error is not None:
                continue  # its last reported set stands until a listing succeeds
            now = frozenset(i.arn for i in listing.unwatched)
            before = self.state.reported(listing.scope)
            if now != before:
                changed.append((listing.scope, now))
                new |= now - before
        result.new = frozenset(new)
        if result.new:
            result.finding_ids.append(self._publish_unwatched(result))
        if result.failed:
            result.finding_ids.append(self._publish_unchecked(result.failed))
        # After the alert: a run that dies before it alerts again next time (at least once).
        for scope, arns in changed:
            self.state.record(scope, arns)
        return result

    def _publish_unwatched(self, result: DiscoveryResult) -> str:
        found = result.unwatched
        reasons = [
            f"{i.arn} (alias {i.alias or '-'}, created {i.created or 'unknown'})"
            + (", new since the last report" if i.arn in result.new else "")
            for i in found[:MAX_LISTED]
        ]
        if len(found) > MAX_LISTED:
            reasons.append(f"and {len(found) - MAX_LISTED} more")
        reasons.append(
            "nothing watches these instances: add each to ConnectInstanceArns (and its account to "
            "MemberAccountIds), or delete it if nobody should have created it"
        )
        accounts = sorted({i.arn.split(":")[4] for i in found})
        return self._publish(
            KIND,
            Severity.MEDIUM,
            f"{len(found)} Connect instance(s) not in ConnectInstanceArns ({len(result.new)} new)",
            "The scheduled sweep listed the Connect instances of the accounts and regions in ConnectInstanceArns "
            "and found instances it does not watch.",
            accounts[0] if len(accounts) == 1 else self.settings.own_account_id,
            tuple(reasons),
            Attempt("succeeded"),
        )

    def _publish_unchecked(self, failed: tuple[Listing, ...]) -> str:
        reasons = (
            *(f"COULD NOT CHECK {s.scope.account_id} in {s.scope.region}: {s.error}" for s in failed),
            "an instance created there is not being detected until a listing succeeds: grant "
            "connect:ListInstances to the member read role (or the sweep role) and check the account is enrolled",
        )
        first = failed[0]
        return self._publish(
            KIND_UNCHECKED,
            Severity.HIGH,
            f"Connect instance discovery could not check {len(failed)} account region(s)",
            "The scheduled sweep could not list the Connect instances of an account and region in ConnectInstanceArns.",
            first.scope.account_id,
            reasons,
            Attempt("failed", (first.error or "").split(":", 1)[0], (first.error or "")[:1000]),
        )

    def _publish(
        self,
        kind: str,
        severity: Severity,
        title: str,
        summary: str,
        account_id: str,
        reasons: tuple[str, ...],
        attempt: Attempt,
    ) -> str:
        now = datetime.now(UTC)
        stamp = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
        finding = Finding(
            responder=NAME,
            kind=kind,
            severity=severity,
            title=title,
            summary=summary,
            event=EventRef(
                f"discovery:{kind}:{stamp}",
                "BaselineSweep",
                "connect-guard",
                now.isoformat(timespec="seconds").replace("+00:00", "Z"),
                account_id,
                self.settings.region,
                "",
            ),
            actor=Actor.system("connect-guard baseline sweep"),
            attempt=attempt,
            allowlisted=False,
            reasons=reasons,
            runbook_url=self.settings.runbook_url(NAME),
            environment=self.settings.environment,
            mode=self.settings.response_mode,
        )
        self.publisher.publish(finding)
        return finding.finding_id
