"""Performance budget checks (`make bench`): cold init, warm handler CPU, replay throughput.

Numbers are measured on this machine; they are reported, not asserted, because a timed test
is a flaky test. DESIGN.md holds the budget they are compared with.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from typing import Any

from connect_guard_tools.template import PROJECT_ROOT

EVENTS = PROJECT_ROOT / "events"
COLD_RUNS = 15

_COLD_SCRIPT = """
import time, sys
t0 = time.perf_counter()
sys.path.insert(0, "functions/RESPONDER")
import app
from connect_guard.clients import AwsClients
from connect_guard.responders import RESPONDER
from connect_guard.runtime import build_pipeline
from connect_guard.settings import Settings
settings = Settings.from_env()
clients = AwsClients(settings.region, account_id=settings.own_account_id)
build_pipeline(RESPONDER.build, settings, clients)  # clients: sns, dynamodb
print((time.perf_counter() - t0) * 1000)
"""


def cold_init(responder: str = "policy_alerts") -> list[float]:
    env = {
        **os.environ,
        "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
        "DEDUP_TABLE_NAME": "dedup",
        "BASELINE_TABLE_NAME": "baseline",
        "AUDIT_TABLE_NAME": "audit",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": responder.replace("_", "-"),
    }
    script = _COLD_SCRIPT.replace("RESPONDER", responder)
    runs = []
    for _ in range(COLD_RUNS):
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return runs


class _FakePublisher:
    def publish(self, finding: Any) -> str:
        finding.to_json()  # the serialisation is part of the handler's CPU
        return "m-1"


def warm_handler() -> dict[str, float]:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    from connect_guard.iam import PolicyReader
    from connect_guard.responders.policy_alerts import PolicyAlertResponder
    from connect_guard.runtime import Pipeline
    from connect_guard.settings import Settings

    # The sample is history: no age limit, so the scope checks pass and the responder runs.
    own_role = "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-role-quarantine"
    settings = Settings(
        alert_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
        dedup_table_name="dedup",
        member_account_ids=("111122223333",),
        suite_role_arns=(own_role,),
        max_event_age_hours=None,
    )
    publisher = _FakePublisher()
    responder = PolicyAlertResponder(settings, publisher, PolicyReader(None, settings))  # type: ignore[arg-type]
    # Dedup is an AWS call: excluded. The scope checks are part of the measured CPU.
    pipeline = Pipeline(responder, persistence=None, ttl=3600, settings=settings, publisher=publisher)  # type: ignore[arg-type]
    acting = (EVENTS / "iam" / "attach-user-policy-administratoraccess.json").read_text()
    # Not acting: the suite's own quarantine-policy attachment, by its exact role.
    own = json.loads(acting)
    own["detail"]["userIdentity"] = {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::123456789012:assumed-role/connect-guard-dev-role-quarantine/x",
        "sessionContext": {"sessionIssuer": {"arn": own_role}},
    }
    own["detail"]["requestParameters"]["policyArn"] = settings.quarantine_policy_arn("111122223333")
    not_acting = json.dumps(own)
    results = {}
    for label, body in (("acting", acting), ("not acting (suite's own change)", not_acting)):
        for _ in range(200):
            pipeline.process(body)
        samples = []
        for _ in range(2000):
            start = time.process_time_ns()
            pipeline.process(body)
            samples.append((time.process_time_ns() - start) / 1e6)
        results[label] = statistics.median(samples)
    return results


def _noise(count: int) -> list[str]:
    base = json.loads((EVENTS / "negatives" / "get-user-policy.json").read_text())
    lines = []
    for i in range(count):
        event = copy.deepcopy(base)
        event["detail"]["eventID"] = str(uuid.UUID(int=i))
        lines.append(json.dumps(event))
    return lines


def replay_noise(count: int = 100_000) -> dict[str, float]:
    from connect_guard_tools.routing import Router

    router = Router()
    lines = _noise(count)
    events = [json.loads(line) for line in lines]
    start = time.perf_counter()
    for event in events:
        router.match(event)
    routing = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for line in lines:
        router.match(json.loads(line))
    with_parse = count / (time.perf_counter() - start)
    return {"routing only": routing, "parse + routing": with_parse}


def replay_acting(count: int = 300) -> float:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    from connect_guard_tools.inputs import InputItem
    from connect_guard_tools.local_aws import LocalAws
    from connect_guard_tools.replay import Replayer

    base = json.loads((EVENTS / "iam" / "attach-user-policy-administratoraccess.json").read_text())
    items = []
    for i in range(count):
        event = copy.deepcopy(base)
        event["detail"]["eventID"] = str(uuid.UUID(int=i + 1))
        items.append(InputItem(f"bench#{i}", event))
    with LocalAws() as aws:
        replayer = Replayer(aws, aws.settings(member_account_ids=("111122223333",)))
        start = time.perf_counter()
        outcomes = [replayer.replay(item).outcome for item in items]
        rate = count / (time.perf_counter() - start)
    assert outcomes.count("alerted") == count, outcomes[:3]
    return rate


def main() -> int:
    print(f"python {sys.version.split()[0]} on {os.uname().machine}; budget from DESIGN.md in brackets\n")
    for responder in ("policy_alerts", "profile_rollback", "role_quarantine"):
        runs = cold_init(responder)
        print(
            f"cold init {responder} (imports + sns/dynamodb clients), {COLD_RUNS} runs: "
            f"p50 {statistics.median(runs):.0f} ms, min {min(runs):.0f} ms, max {max(runs):.0f} ms  [p50 <= 300 ms]"
        )
    for label, ms in warm_handler().items():
        budget = "1 ms" if label == "acting" else "0.1 ms"
        print(f"warm handler CPU, {label}: p50 {ms:.3f} ms  [<= {budget}]")
    for label, rate in replay_noise().items():
        print(f"replay noise, {label}: {rate:,.0f} events/s  [>= 50,000]")
    print(f"replay acting through moto (alert + dedup): {replay_acting():,.0f} events/s  [>= 1,000]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
