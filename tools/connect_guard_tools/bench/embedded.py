"""The acting scenarios through the embedded AWS (LocalAws + Replayer, demo state, enforce mode):
the AWS calls each event makes, and the answers the fresh-process runs replay."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from connect_guard_tools.bench.calls import AnswerRecorder, Call, CallCounter, install
from connect_guard_tools.bench.scenarios import ACTING, EVENTS, NOISE_EVENT, NOT_ACTING, Scenario, lambda_environment


@dataclass
class ScenarioRun:
    scenario: Scenario
    outcome: str
    reason: str | None
    calls: list[Call]
    answers: dict[str, list[list[Any]]]


@dataclass
class EmbeddedRuns:
    runs: dict[str, ScenarioRun]
    noise_calls: list[Call]
    counter: CallCounter
    environment: dict[str, str]  # the Lambda environment that reproduces the replay's settings


def run_scenarios() -> EmbeddedRuns:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    from connect_guard_tools.bench.scenarios import replay_settings_values
    from connect_guard_tools.inputs import InputItem
    from connect_guard_tools.local_aws import LocalAws
    from connect_guard_tools.replay import Replayer

    counter = CallCounter(dedup_table="")
    recorder = AnswerRecorder()
    install(counter, recorder)
    runs: dict[str, ScenarioRun] = {}
    with LocalAws() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        settings = aws.settings(**replay_settings_values())
        counter.dedup_table = settings.dedup_table_name
        replayer = Replayer(aws, settings)
        for scenario in (*ACTING, *NOT_ACTING.values()):
            counter.active = recorder.active = True
            try:
                result = replayer.replay(InputItem(f"bench:{scenario.event_file}", scenario.event(fresh=True)))
            finally:
                counter.active = recorder.active = False
            runs[scenario.name] = ScenarioRun(scenario, result.outcome, result.reason, counter.take(), recorder.take())
        counter.active = True
        replayer.replay(InputItem(f"bench:{NOISE_EVENT}", Scenario("noise", "", NOISE_EVENT, "", "").event()))
        counter.active = False
        noise = counter.take()
        environment = lambda_environment(settings)
    return EmbeddedRuns(runs, noise, counter, environment)
