"""Liveness: a canary per enrolled account and region proves the event path end to end.

The member stack's scheduler role tags itself (IAM, us-east-1) and the region's Connect instance
(Connect, each Connect region) with `connect-guard:canary`; the CloudTrail events travel the path
real events take (CloudTrail → EventBridge → forwarding → the security bus → a rule → a queue →
this responder). Each arrival is recorded per account, region and service in the baseline table
(`pk = canary#<account>#<region>`, `sk = iam | connect`). A scheduled check alerts HIGH when an
expected canary has been silent longer than CanarySilenceMinutes; the first canary heard after
that alert is a finding too (recovered). Only the exact scheduler role of the event's own account
counts: a forged canary (right tag, other identity or account) is reported, never recorded.

The security account runs its own canary (template.yaml CanaryRole and schedules: the same role
name and grant as a member stack's), so it proves its path without a member stack; there the
role's unique ID must match too (CANARY_ROLE_ID).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from connect_guard.clients import AwsClients
from connect_guard.events import CloudTrailEvent, CloudTrailRecord
from connect_guard.findings import Attempt, EventRef, Finding
from connect_guard.observability import logger, metrics
from connect_guard.outcome import Alert, Outcome
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.publisher import SnsPublisher, fit
from connect_guard.settings import Settings, member_role_name

NAME = "liveness"
CANARY_AGE_METRIC = "CanaryAgeSeconds"  # EMF, namespace ConnectGuard, dimension service
TAG_KEY = "connect-guard:canary"
IAM_REGION = "us-east-1"  # IAM delivers its CloudTrail events to EventBridge only there
PK_PREFIX = "canary#"
# (eventSource, eventName) of each canary write, by the service it proves.
CANARY_CALLS = {"iam": ("iam.amazonaws.com", "TagRole"), "connect": ("connect.amazonaws.com", "TagResource")}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 120 else f"{minutes} min"


@dataclass(frozen=True)
class Source:
    """One expected canary: an enrolled account, a region, the service whose path it proves."""

    account: str
    region: str
    service: str  # iam | connect

    @property
    def key(self) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"{PK_PREFIX}{self.account}#{self.region}"}, "sk": {"S": self.service}}

    @property
    def label(self) -> str:
        return f"{self.service.upper()} canary of {self.account} in {self.region}"


def expected_sources(settings: Settings) -> list[Source]:
    """IAM in us-east-1 for every enrolled account; Connect where a configured instance lives."""
    accounts = dict.fromkeys([settings.own_account_id, *settings.member_account_ids])
    sources = [Source(account, IAM_REGION, "iam") for account in accounts]
    for arn in settings.connect_instance_arns:
        parts = arn.split(":")
        if len(parts) > 5 and parts[4] in accounts:
            sources.append(Source(parts[4], parts[3], "connect"))
    return list(dict.fromkeys(sources))


def canary_role_arn(settings: Settings, account: str) -> str:
    """The member stack's scheduler role in `account`: the only identity a canary may carry."""
    return settings.member_role_arn(account, "canary")


def _tag_value(record: CloudTrailRecord) -> str | None:
    tags = record.param("tags")
    if isinstance(tags, dict):  # Connect: a map
        value = tags.get(TAG_KEY)
        return value if isinstance(value, str) else None
    if isinstance(tags, list):  # IAM: [{"key": ..., "value": ...}]
        for tag in tags:
            if isinstance(tag, dict) and tag.get("key") == TAG_KEY and isinstance(tag.get("value"), str):
                return str(tag["value"])
    return None


def not_a_canary(event: CloudTrailEvent, settings: Settings) -> tuple[str | None, str]:
    """(service, why it doesn't count): service None when it is no canary write at all; an
    empty reason when it is the suite's own canary from the event's own account."""
    record = event.detail
    service = next((s for s, call in CANARY_CALLS.items() if call == (record.event_source, record.event_name)), None)
    if service is None:
        return None, f"{record.event_source} {record.event_name} is not a canary write"
    if _tag_value(record) is None:
        return service, f"no {TAG_KEY} tag in the request"
    if record.denied:
        return service, f"the canary write was denied ({record.error_code}): its role lacks its grant"
    account = event.account
    expected = canary_role_arn(settings, account)
    issuer = record.user_identity.session_issuer_arn
    if record.user_identity.type != "AssumedRole" or issuer != expected:
        return service, f"made by {issuer or record.user_identity.arn or 'an unknown identity'}, not {expected}"
    role_id = record.user_identity.session_issuer_principal_id
    if account == settings.own_account_id and settings.canary_role_id and role_id != settings.canary_role_id:
        # The security stack knows its own role's unique ID: a role deleted and re-created
        # under the canary's name (by whoever can create roles here) is not its canary.
        return (
            service,
            f"made by a role {expected} whose unique ID {role_id} is not the stack's {settings.canary_role_id}",
        )
    if service == "iam":
        if record.param("roleName") != member_role_name(settings.environment, "canary"):
            return service, f"tags role {record.param('roleName')!r}, not the canary role"
        if record.aws_region != IAM_REGION:
            return service, f"an IAM canary recorded in {record.aws_region}, not {IAM_REGION}"
    else:
        target = unquote(str(record.param("resourceArn") or ""))
        if f":connect:{record.aws_region}:{account}:instance/" not in target:
            return (
                service,
                f"tags {target or 'no resource'}, not a Connect instance of {account} in {record.aws_region}",
            )
    return service, ""


class CanaryState:
    """Arrivals and silence alerts, one item per expected canary (its own partitions only)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def heard(self, source: Source, at: datetime, event_id: str) -> dict[str, Any] | None:
        """Record an arrival newer than the last one; the item as it was (None: this arrival is
        not newer, nothing changed). Removing the silence mark in the same write means exactly
        one arrival after an alert reports the recovery, however many arrive at once."""
        try:
            answer = self._dynamodb.update_item(
                TableName=self._table,
                Key=source.key,
                UpdateExpression="SET heard_at = :at, event_id = :id REMOVE silent_alerted_at",
                ConditionExpression="attribute_not_exists(heard_at) OR heard_at < :at",
                ExpressionAttributeValues={":at": {"S": _iso(at)}, ":id": {"S": event_id}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return {k: v.get("S") for k, v in answer.get("Attributes", {}).items()}

    def revert(self, source: Source, before: dict[str, Any], at: datetime) -> None:
        """Put the item back as it was before this arrival (unless a later canary came since):
        a recovery whose alert could not be sent is reported again when SQS retries the event."""
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={**source.key, **{k: {"S": v} for k, v in before.items() if k not in ("pk", "sk") and v}},
                ConditionExpression="heard_at = :at",
                ExpressionAttributeValues={":at": {"S": _iso(at)}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def get(self, source: Source) -> dict[str, str | None] | None:
        item = self._dynamodb.get_item(TableName=self._table, Key=source.key, ConsistentRead=True).get("Item")
        return None if item is None else {k: v.get("S") for k, v in item.items()}

    def expect(self, source: Source, since: datetime) -> None:
        """First sight of an expected canary: its silence is measured from now, not from ever."""
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={**source.key, "expected_since": {"S": _iso(since)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def mark_silent(self, source: Source, at: datetime) -> bool:
        """Mark the silence alerted; False when another run did, or a canary arrived meanwhile."""
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=source.key,
                UpdateExpression="SET silent_alerted_at = :at",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(silent_alerted_at)",
                ExpressionAttributeValues={":at": {"S": _iso(at)}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def unmark_silent(self, source: Source) -> None:
        self._dynamodb.update_item(TableName=self._table, Key=source.key, UpdateExpression="REMOVE silent_alerted_at")


def _system_event(settings: Settings, event_id: str, name: str, at: datetime, source: Source) -> EventRef:
    return EventRef(event_id, name, "connect-guard", _iso(at), source.account, source.region, "")


class LivenessResponder:
    name = NAME

    def __init__(self, settings: Settings, publisher: SnsPublisher, state: CanaryState) -> None:
        self.settings = settings
        self.publisher = publisher
        self.state = state

    def _publish(self, finding: Finding, outcome: Outcome) -> Outcome:
        message_id = self.publisher.publish(finding)
        outcome.outcome = "alerted"
        outcome.severity = str(finding.severity)
        outcome.alerts.append(Alert(finding.subject, str(finding.severity), finding.finding_id, message_id))
        outcome.finding = fit(finding).to_dict()
        return outcome

    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        service, reason = not_a_canary(event, self.settings)
        if service is None:
            outcome.reason = reason
            return outcome
        source = Source(event.account, record.aws_region, service)
        if reason:
            # Someone writes the canary tag who isn't the canary: never proof of life, and worth
            # a look (a forged heartbeat is how a blinded pipeline would be hidden).
            finding = self._finding(
                event,
                "suite.canary_not_counted",
                Severity.MEDIUM,
                f"Canary not counted: {source.label}",
                f"A {TAG_KEY} write reached the liveness check but does not count as the suite's canary: "
                f"{reason}. The last genuine canary stands; nothing was recorded.",
                (reason, "a forged or misconfigured canary never counts as proof that events arrive"),
            )
            logger.warning("canary not counted", extra={"reason": reason})
            self._publish(finding, outcome)
            outcome.reason = reason
            return outcome
        before = self.state.heard(source, record.event_time, record.event_id)
        if before is None:
            outcome.outcome, outcome.reason = "recorded", "an older canary than the last one heard"
            return outcome
        alerted = before.get("silent_alerted_at")
        last = before.get("heard_at")
        logger.info("canary heard", extra={"source": source.label, "previous": last})
        if not alerted:
            outcome.outcome, outcome.reason = "recorded", f"{source.label} heard"
            return outcome
        since = f"last heard {last}" if last else f"never heard before (expected since {before.get('expected_since')})"
        finding = self._finding(
            event,
            "suite.canary_recovered",
            Severity.LOW,
            f"Canary heard again: {source.label}",
            f"Events from account {source.account} in {source.region} reach connect-guard again: the "
            f"{service.upper()} canary arrived at {_iso(record.event_time)} after the silence alerted at "
            f"{alerted} ({since}). Events in between may have been missed: the sweep is the safety net.",
            (f"silence alerted at {alerted}", since, f"heard again at {_iso(record.event_time)}"),
        )
        try:
            return self._publish(finding, outcome)
        except Exception:
            self.state.revert(source, before, record.event_time)  # the retry reports the recovery
            raise

    def _finding(
        self, event: CloudTrailEvent, kind: str, severity: Severity, title: str, summary: str, reasons: tuple[str, ...]
    ) -> Finding:
        record = event.detail
        return Finding(
            responder=NAME,
            kind=kind,
            severity=severity,
            title=title,
            summary=summary,
            event=EventRef.of(event),
            actor=Actor.from_record(record),
            attempt=Attempt.of(record),
            allowlisted=False,
            reasons=reasons,
            runbook_url=self.settings.runbook_url(NAME),
            environment=self.settings.environment,
            mode=self.settings.response_mode,
        )

    def check(self, now: datetime) -> list[Finding]:
        """Alert each expected canary silent longer than the limit, once per silence."""
        limit = timedelta(minutes=self.settings.canary_silence_minutes)
        published = []
        ages: list[float] = []
        for source, item in self._items(now):
            heard, since = item.get("heard_at"), item.get("expected_since")
            reference = heard or since
            if reference is not None:
                ages.append((now - _parse(reference)).total_seconds())
            if reference is None or now - _parse(reference) <= limit or item.get("silent_alerted_at"):
                continue
            if not self.state.mark_silent(source, now):
                continue
            finding = self._silence(source, heard, since, now, limit)
            try:
                self.publisher.publish(finding)
            except Exception:
                # Unmark, so that the next run alerts again; the error fails the run (FAILED alert).
                self.state.unmark_silent(source)
                raise
            logger.warning("canary silent", extra={"source": source.label, "last_heard": heard})
            published.append(finding)
        if ages:  # the dashboard's canary age: the longest any expected canary has been unheard
            metrics.add_metric(name=CANARY_AGE_METRIC, unit=MetricUnit.Seconds, value=max(ages))
        return published

    def _items(self, now: datetime) -> Iterator[tuple[Source, dict[str, Any]]]:
        for source in expected_sources(self.settings):
            item = self.state.get(source)
            if item is None:
                self.state.expect(source, now)
                continue
            yield source, item

    def _silence(
        self, source: Source, heard: str | None, since: str | None, now: datetime, limit: timedelta
    ) -> Finding:
        last = f"last heard {heard}" if heard else f"never heard (expected since {since})"
        silent_for = _span(now - _parse(heard or since or _iso(now)))
        return Finding(
            responder=NAME,
            kind="suite.canary_silent",
            severity=Severity.HIGH,
            title=f"Canary silent: {source.service.upper()} events of {source.account} in {source.region}",
            summary=(
                f"No {source.service.upper()} canary from account {source.account} in {source.region} for "
                f"{silent_for} ({last}; the limit is {_span(limit)}). Events from there may not be reaching "
                "connect-guard: a forwarding rule, the trail, the schedule or the bus policy may be broken."
            ),
            event=_system_event(
                self.settings,
                f"canary-silent:{source.account}:{source.region}:{source.service}:{_iso(now)}",
                "CanarySilent",
                now,
                source,
            ),
            actor=Actor.system("connect-guard liveness check"),
            attempt=Attempt("succeeded"),
            allowlisted=False,
            reasons=(
                f"account {source.account}, region {source.region}: {last}",
                f"silent for {silent_for}, over CanarySilenceMinutes ({self.settings.canary_silence_minutes})",
                "check the member stack's forwarding rules and canary schedule there, and the trail",
            ),
            runbook_url=self.settings.runbook_url(NAME),
            environment=self.settings.environment,
            mode=self.settings.response_mode,
        )


def build(settings: Settings, clients: AwsClients) -> LivenessResponder:
    settings.require("baseline_table_name")
    return LivenessResponder(
        settings,
        SnsPublisher(clients.sns, settings.alert_topic_arn),
        CanaryState(clients.dynamodb, str(settings.baseline_table_name)),
    )


def run_check(settings: Settings, clients: AwsClients, clock: Callable[[], datetime] | None = None) -> list[Finding]:
    """The scheduled silence check."""
    now = (clock or (lambda: datetime.now(UTC)))()
    return build(settings, clients).check(now)
