"""Every sample in events/ through the replay: routed by template.yaml's patterns, processed by
the real responder against the embedded AWS, and checked against events/expectations.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from connect_guard_tools.config import replay_parameters, settings_values
from connect_guard_tools.inputs import iter_inputs
from connect_guard_tools.local_aws import LocalAws
from connect_guard_tools.replay import Replayer, ReplayResult
from tests.conftest import EVENTS

EXPECTATIONS: dict[str, Any] = yaml.safe_load((EVENTS / "expectations.yaml").read_text())


def _expected_items() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, expected in EXPECTATIONS.items():
        if "records" in expected:
            for index, record in enumerate(expected["records"]):
                yield f"{path}#{index}", record
        else:
            yield path, expected


def dig(body: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        body = body[part]
    return body


@pytest.fixture(scope="module")
def results() -> dict[str, ReplayResult]:
    """Replay the whole corpus once, with the dev configuration from samconfig.toml."""
    with LocalAws() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        parameters = replay_parameters("default")
        replayer = Replayer(aws, aws.settings(**settings_values(parameters)))
        replayed = {}
        for item in iter_inputs([EVENTS], root=EVENTS):
            source = item.source.replace(".jsonl:", ".jsonl#")
            if source.endswith(".jsonl") or ".jsonl#" in source:  # JSON Lines count from line 1
                head, _, line = source.rpartition("#")
                source = f"{head}#{int(line) - 1}"
            replayed[source] = replayer.replay(item)
        replayed["__inbox__"] = aws.inbox()  # type: ignore[assignment]
        return replayed


def test_every_sample_has_an_expectation(results):
    replayed = {k for k in results if k != "__inbox__"}
    assert replayed == {key for key, _ in _expected_items()}


@pytest.mark.parametrize(("source", "expected"), list(_expected_items()), ids=lambda v: v if isinstance(v, str) else "")
def test_sample_produces_the_expected_outcome(results, source, expected):
    result = results[source]
    assert result.rules == expected.get("rules", []), "matched by the wrong rules"
    assert result.outcome == expected["outcome"], result.reason
    if expected["outcome"] == "error":
        assert expected["error_contains"] in (result.reason or "").lower()
        return
    if expected["outcome"] != "alerted":
        assert result.alerts == [] and result.finding is None
        assert not [a for a in result.actions if a["service"] == "sns"]
        return
    assert result.severity == expected["severity"]
    assert [a["severity"] for a in result.alerts] == [expected["severity"]]
    for dotted, value in (expected.get("finding") or {}).items():
        assert dig(result.finding, dotted) == value, dotted
    # AWS calls per alert: one publish, dedup claim + completion, nothing else mutating.
    assert sorted(f"{a['service']}:{a['operation']}" for a in result.actions) == [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "sns:Publish",
    ]


def test_every_alert_reached_the_soc_inbox_with_filterable_attributes(results):
    alerted = [r for k, r in results.items() if k != "__inbox__" and r.outcome == "alerted"]
    inbox = results["__inbox__"]
    assert len(inbox) == len(alerted)
    for message in inbox:
        attributes = message["MessageAttributes"]
        assert set(attributes) == {"severity", "event_name", "account", "responder", "kind"}
        assert attributes["responder"]["Value"] == "policy_alerts"
        subject = message["Subject"]
        assert subject.isascii() and len(subject) < 100 and "\n" not in subject
