"""What a responder did with one event: the record the replay prints and the handler logs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Every outcome a responder reports (the runtime's metric Outcome_<outcome>, on the dashboard).
OUTCOMES = (
    "alerted",
    "rolled_back",
    "quarantined",
    "restored",
    "ignored",
    "duplicate",
    "rejected",
    "recorded",
    "dead_lettered",
)


@dataclass
class Alert:
    subject: str
    severity: str
    finding_id: str
    message_id: str


@dataclass
class Outcome:
    responder: str
    event_id: str
    event_name: str
    # alerted | ignored | duplicate | rolled_back | quarantined | rejected (out of scope) | recorded (a canary)
    outcome: str
    severity: str | None = None
    reason: str | None = None
    alerts: list[Alert] = field(default_factory=list)
    # The published finding, for callers in-process; not part of the stored dedup record,
    # which keeps only what a redelivery needs to report.
    finding: dict[str, Any] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """What `asdict` gives without the finding, built directly: every field but `alerts` is
        text or None (nothing to copy), and no copy of the finding is made only to drop it."""
        body = {name: getattr(self, name) for name in _REPORTED}
        body["alerts"] = [asdict(alert) for alert in self.alerts]
        return body


_REPORTED = tuple(f.name for f in fields(Outcome) if f.name != "finding")
