"""What a responder did with one event: the record the replay prints and the handler logs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
    outcome: str  # alerted | ignored | duplicate | rolled_back | quarantined
    severity: str | None = None
    reason: str | None = None
    alerts: list[Alert] = field(default_factory=list)
    finding: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
