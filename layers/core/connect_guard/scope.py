"""Is an event one the suite may act on? Pure checks of the envelope against the record.

The queue and bus policies keep other senders out; these checks catch what would still get
through: an event naming an account the suite does not guard, a record in someone else's
envelope, times that cannot be true. An out-of-scope event is reported to the SOC (CRITICAL)
and never reaches a responder: its actor, target and exemptions are claims, not facts.
Nothing here calls AWS, so an in-scope event pays a few comparisons.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Attempt, EventRef, Finding
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.settings import Settings

NAME = "event_scope"
KIND = "suite.forged_event"
TITLE = "Forged or out-of-scope event"
# CloudTrail stamps eventTime with AWS's clock; ours may differ by a little, never by more.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# EventBridge sets an AWS API call event's time from its record; a wide gap means one was rewritten.
MAX_ENVELOPE_DRIFT = timedelta(minutes=15)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _span(delta: timedelta) -> str:
    seconds = int(abs(delta).total_seconds())
    if seconds >= 3 * 86_400:  # "49 h old" reads against a 48 h limit; days past that
        return f"{seconds // 86_400} days"
    if seconds >= 2 * 3_600:
        return f"{seconds // 3_600} h"
    if seconds >= 120:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def out_of_scope(event: CloudTrailEvent, settings: Settings, now: datetime) -> str | None:
    """Why the suite must not act on this event, or None when it may."""
    account = event.account
    if not settings.enrolled(account):
        return f"account {account} is not enrolled (MemberAccountIds)"
    recipient = event.detail.recipient_account_id
    if recipient is not None and recipient != account:
        return f"recipientAccountId {recipient} is not the event's account {account}"
    event_time, now = _utc(event.detail.event_time), _utc(now)
    if event_time - now > MAX_CLOCK_SKEW:
        return f"eventTime {_iso(event_time)} is {_span(event_time - now)} in the future"
    limit = settings.max_event_age_hours
    if limit is not None and now - event_time > timedelta(hours=limit):
        return f"eventTime {_iso(event_time)} is {_span(now - event_time)} old (delivery horizon {limit} h)"
    drift = _utc(event.time) - event_time
    if abs(drift) > MAX_ENVELOPE_DRIFT:
        return f"envelope time {_iso(event.time)} is {_span(drift)} from eventTime {_iso(event_time)}"
    return None


def rejection_finding(event: CloudTrailEvent, reason: str, responder: str, settings: Settings) -> Finding:
    """The CRITICAL finding for an event the suite refused: what it claimed, and why refused."""
    record = event.detail
    actor = Actor.from_record(record)
    return Finding(
        responder=NAME,
        kind=KIND,
        severity=Severity.CRITICAL,
        title=f"{TITLE}: {reason}",
        summary=(
            f"An event claiming {record.event_name} by {actor.display} in account {event.account} reached "
            f"{responder}, but it is out of scope: {reason}. No responder ran and nothing was changed."
        ),
        event=EventRef.of(event),
        actor=actor,
        attempt=Attempt.of(record),
        allowlisted=False,
        reasons=(
            reason,
            f"received by {responder}; no responder ran, no action was taken",
            "everything the event says (actor, target, time) is unverified: look up its eventID in "
            "CloudTrail in that account, and check who can send to the suite's queues and bus",
        ),
        runbook_url=settings.runbook_url(NAME),
        environment=settings.environment,
        mode=settings.response_mode,
    )
