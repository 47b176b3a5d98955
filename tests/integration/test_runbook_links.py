"""Every finding the demo corpus publishes links a runbook that exists: the replay's links (this
checkout's docs/runbooks/, the stack requires its own RunbookBaseUrl) resolve to a file."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from connect_guard_tools.config import LOCAL_RUNBOOK_BASE_URL, replay_parameters, settings_values
from connect_guard_tools.inputs import iter_inputs
from connect_guard_tools.local_aws import LocalAws
from connect_guard_tools.replay import Replayer
from tests.conftest import EVENTS

ROOT = Path(__file__).resolve().parents[2]


def test_the_replay_links_this_checkouts_runbooks_unless_configured() -> None:
    assert (ROOT / "docs" / "runbooks").as_uri() + "/" == LOCAL_RUNBOOK_BASE_URL
    assert replay_parameters("default")["RunbookBaseUrl"] == LOCAL_RUNBOOK_BASE_URL
    configured = "https://wiki.example.com/soc/connect-guard/"
    assert replay_parameters("default", {"RunbookBaseUrl": configured})["RunbookBaseUrl"] == configured


def test_every_finding_of_the_corpus_links_an_existing_runbook() -> None:
    with LocalAws() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        parameters = replay_parameters("default")
        replayer = Replayer(aws, aws.settings(**settings_values(parameters)))
        for item in iter_inputs([EVENTS], root=EVENTS):
            replayer.replay(item)
        inbox = aws.inbox()
    assert len(inbox) > 50  # the corpus alerts (README: the demo's totals)
    linked = set()
    for envelope in inbox:
        message = json.loads(envelope["Message"])
        finding = json.loads(message["sqs"]) if "sqs" in message else message
        url = finding["runbook_url"]
        assert url.startswith(LOCAL_RUNBOOK_BASE_URL), url
        path = Path(urlparse(url).path)
        assert path.is_file() and path.parent == ROOT / "docs" / "runbooks", url
        linked.add(path.name)
    assert {"policy-alerts.md", "profile-rollback.md", "role-quarantine.md", "logging-guard.md"} <= linked
