"""Logs tell the truth and stay small. Records fuzzed the ways a mutation run breaks them (deep
nesting, lone surrogates, huge strings, values of the wrong type, blank identifiers) go through
the three deployed handlers; the lines they write are read back as CloudWatch gets them."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from connect_guard import liveness
from connect_guard.observability import FIELD_MAX, LINE_MAX
from connect_guard.responders import logging_guard, policy_alerts, profile_rollback, role_quarantine
from connect_guard_tools.inputs import iter_inputs
from connect_guard_tools.routing import Router
from tests.conftest import EVENTS, delivered_now, load_event, with_new_event_id
from tests.integration.runtime_support import ClockedContext, captured_logs, wire

CANARY = "CANARY-7f3a"  # placed only where no finding shows it: it must never reach a log line
# Where a canary goes: envelope and record fields that no finding, reason or log key repeats.
CANARY_PATHS = (
    ("source",),
    ("version",),
    ("resources",),
    ("detail-type",),
    ("detail", "requestID"),
    ("detail", "eventType"),
    ("detail", "additionalEventData"),
    ("detail", "requestParameters", "canary"),
    ("detail", "userIdentity", "webIdFederationData"),
)
WRONG_TYPES = (0, 1.5, True, None, [], {}, "", "   ", ["a"], {"a": 1}, 10**30)
# Crashes the event model exists to turn into poison before any responder runs.
GARBAGE_CRASHES = {"AttributeError", "TypeError", "IndexError", "KeyError", "ValueError", "RecursionError"}
GARBAGE_CRASHES |= {"UnicodeEncodeError", "UnicodeDecodeError"}
FACTORIES = {
    "policy_alerts": (policy_alerts.build, "PolicyAlerts"),
    "profile_rollback": (profile_rollback.build, "ProfileRollback"),
    "role_quarantine": (role_quarantine.build, "Quarantine"),
    "logging_guard": (logging_guard.build, "LoggingGuard"),
    "liveness": (liveness.build, "Liveness"),
}


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*path, key)
        yield from _leaves(child, (*path, key))


def _set(event: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        event = event[key]
    event[path[-1]] = value


def mutated(event: dict[str, Any], rng: random.Random) -> str:
    """One fuzzed delivery of `event`, as the JSON text SQS would carry."""
    event = copy.deepcopy(event)
    kind = rng.choice(("type", "type", "nesting", "surrogate", "huge", "canary", "blank id"))
    path = rng.choice(list(_leaves(event)))
    if kind == "type":
        _set(event, path, copy.deepcopy(rng.choice(WRONG_TYPES)))
    elif kind == "nesting":
        value: Any = CANARY
        for _ in range(rng.choice((20, 40, 400))):
            value = [value]
        _set(event, path, value)
    elif kind == "huge":
        _set(event, path, "h" * rng.choice((5_000, 60_000)))
    elif kind == "canary":
        target = rng.choice(CANARY_PATHS)
        holder = event
        for key in target[:-1]:
            holder = holder.setdefault(key, {}) if isinstance(holder, dict) else {}
        if isinstance(holder, dict):
            holder[target[-1]] = f"{CANARY} " * rng.choice((1, 300))
    elif kind == "blank id":
        event["detail"]["eventID"] = rng.choice(("", " ", "\t", "a b"))
    text = json.dumps(event)
    if kind == "surrogate":  # a JSON escape Python's json accepts and no AWS service writes
        text = text.replace('"' + str(event["detail"].get("eventName", "")) + '"', '"\\ud800x"', 1)
    return text


def samples_by_responder() -> dict[str, list[dict[str, Any]]]:
    router = Router()
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in FACTORIES}
    for item in iter_inputs([EVENTS], root=EVENTS):
        if isinstance(item.event, dict) and "malformed" not in item.source:
            for route in router.match(item.event):
                found[route.responder].append(item.event)
    return found


@pytest.mark.parametrize("responder_name", sorted(FACTORIES))
def test_fuzzed_records_keep_every_line_small_bounded_and_free_of_event_content(aws, monkeypatch, responder_name):
    factory, name = FACTORIES[responder_name]
    # The corpus is history: a horizon of ten years lets the fuzzed events reach the responders.
    responder = wire(aws, monkeypatch, factory, name, MAX_EVENT_AGE_HOURS=str(24 * 365 * 10))
    rng = random.Random(f"log-lines-{responder_name}")
    samples = samples_by_responder()[responder_name]
    bodies = [mutated(with_new_event_id(rng.choice(samples)), rng) for _ in range(120)]

    with captured_logs() as logs:
        for start in range(0, len(bodies), 10):
            records = [
                responder.record(body, f"m-{start + i}", receives=rng.randint(1, 5))
                for i, body in enumerate(bodies[start : start + 10])
            ]
            responder.handler(responder.batch(*records), ClockedContext(timeout_ms=60_000))

    assert len(logs.raw) >= len(bodies)  # every record said something (an event handled: one line)
    for line in logs.raw:
        assert len(line.encode()) <= LINE_MAX, line[:300]
        assert CANARY not in line, line[:300]
        record = json.loads(line)
        for key, value in record.items():
            if isinstance(value, str):
                assert len(value) <= FIELD_MAX + len("… [999,999 characters cut]"), key
    crashes = [
        r for r in logs.with_message("event failed; SQS will retry it") if r.get("error_type") in GARBAGE_CRASHES
    ]
    assert crashes == []  # garbage is refused as poison, it never crashes a responder
    assert logs.with_message("event rejected: it will end in the DLQ")
    assert logs.with_message("event processed")  # the fuzz left some events valid, and they were handled


def test_a_record_that_fails_before_parsing_is_logged_with_its_sqs_message_id_only(aws, monkeypatch):
    responder = wire(aws, monkeypatch, policy_alerts.build, "PolicyAlerts", mode="detect")
    good = json.dumps(delivered_now(with_new_event_id(load_event("iam/attach-user-policy-administratoraccess.json"))))
    batch = responder.batch(responder.record(good, "m-0"), responder.record("{not json", "m-1"))

    with captured_logs() as logs:
        responder.handler(batch, ClockedContext())

    by_record = {r["sqs_message_id"]: r for r in logs.records if "sqs_message_id" in r}
    assert by_record["m-0"]["event_name"] == "AttachUserPolicy"
    (rejected,) = [r for r in logs.records if r.get("sqs_message_id") == "m-1"]
    assert rejected["message"] == "event rejected: it will end in the DLQ"
    # Not the previous record's identity: this one never had any.
    assert not {"event_id", "event_name", "correlation_id"} & set(rejected)
