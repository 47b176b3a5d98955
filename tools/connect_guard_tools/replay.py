"""Replay CloudTrail events through the real responders against an embedded AWS.

Each event is routed with the EventBridge patterns of template.yaml, then run in-process
through the same `Pipeline` the Lambda handlers use (parse → dedup → respond), with every
mutating AWS call recorded as it leaves botocore.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Any

from connect_guard.errors import PoisonEventError
from connect_guard.runtime import Pipeline, ResponderFactory, build_pipeline
from connect_guard.settings import Settings
from connect_guard_tools.inputs import InputItem
from connect_guard_tools.local_aws import LocalAws
from connect_guard_tools.routing import Router

# Each responder's module (its `build` makes the responder): imported when its pipeline is built.
RESPONDERS: dict[str, str] = {
    "policy_alerts": "connect_guard.responders.policy_alerts",
    "profile_rollback": "connect_guard.responders.profile_rollback",
    "role_quarantine": "connect_guard.responders.role_quarantine",
    "logging_guard": "connect_guard.responders.logging_guard",
    "liveness": "connect_guard.liveness",
}


def responder_factory(responder: str) -> ResponderFactory:
    factory: ResponderFactory = importlib.import_module(RESPONDERS[responder]).build
    return factory


@dataclass
class ReplayResult:
    source: str
    event_id: str | None
    event_name: str | None
    rules: list[str] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    outcome: str = "ignored"
    severity: str | None = None
    reason: str | None = None
    alerts: list[dict[str, str]] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)
    finding: dict[str, Any] | None = None
    emails: list[str] = field(default_factory=list)

    def to_dict(self, with_finding: bool = False) -> dict[str, Any]:
        body = asdict(self)
        if not with_finding:
            body.pop("finding")
            body.pop("emails")
        return body


class Replayer:
    """`on_first_event=True` (the replay command) builds a responder's pipeline, importing its
    modules, when an event first routes to it; by default all are built here, as containers start."""

    def __init__(
        self, aws: LocalAws, settings: Settings, router: Router | None = None, on_first_event: bool = False
    ) -> None:
        self.router = router or Router()
        self.settings = settings
        self.aws = aws
        self.pipelines: dict[str, Pipeline] = {}
        for route in self.router.routes:
            if route.responder not in RESPONDERS:
                raise ValueError(f"template routes {route.rule} to unknown responder {route.responder!r}")
            if not on_first_event:
                self._pipeline(route.responder)
        self.recorder = aws.recorder

    def _pipeline(self, responder: str) -> Pipeline:
        if responder not in self.pipelines:
            self.pipelines[responder] = build_pipeline(responder_factory(responder), self.settings, self.aws.clients)
        return self.pipelines[responder]

    def is_noise(self, item: InputItem) -> bool:
        """An API call no rule matches: `replay` would say ignored, "matched no rule", and do nothing."""
        return item.readable and not item.skipped and not self.router.match_item(item)

    def replay(self, item: InputItem) -> ReplayResult:
        detail = item.detail  # a raw record stays one unless a rule matches it
        result = ReplayResult(item.source, detail.get("eventID"), detail.get("eventName") or item.detail_type)
        if not item.readable and item.skipped:
            result.outcome, result.reason = "skipped", f"not an API call: {item.skipped}"
            return result
        if not item.readable:
            result.outcome, result.reason = "error", item.error
            return result
        routes = self.router.match_item(item)
        if item.skipped and not routes:  # a rule that matched it would get it: the skip is a label
            result.outcome, result.reason = "skipped", f"not an API call: {item.skipped}"
            return result
        if not routes:
            result.reason = "matched no rule"
            return result
        result.rules = [r.rule for r in routes]
        result.matched = [r.responder for r in routes]
        event = item.event
        assert event is not None  # routed, so readable
        for index, route in enumerate(routes):
            self.recorder.clear()
            try:
                outcome = self._pipeline(route.responder).process(event)
            except PoisonEventError as error:
                outcome = {"outcome": "error", "reason": str(error), "alerts": []}
            except Exception as error:  # a replay reports, it never stops on one event
                outcome = {"outcome": "error", "reason": f"{type(error).__name__}: {error}", "alerts": []}
            result.alerts += [{"subject": a["subject"], "severity": a["severity"]} for a in outcome["alerts"]]
            result.actions += self.recorder.calls
            result.emails += self.recorder.emails
            # Two rules for one event (an UpdateAssumeRolePolicy is a trust change and, on a protected
            # role, tampering): the result is the later route's, unless it did less than an earlier one.
            if index and _RANK.get(outcome["outcome"], 1) < _RANK.get(result.outcome, 1):
                continue
            result.outcome = outcome["outcome"]
            result.severity = outcome.get("severity")
            result.reason = outcome.get("reason")
            if self.recorder.findings:
                result.finding = self.recorder.findings[-1]
        return result


# Outcomes that say something happened outrank one that says nothing did (any other: in between).
_RANK = {"ignored": 0, "duplicate": 0}
