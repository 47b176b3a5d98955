"""Cold init and warm CPU: each member in fresh interpreters (child.py), paired, interleaved.

The members share one interpreter (this virtualenv's python, run with `-S`) and one botocore:
- the floor: `import boto3; boto3.client('sns')`;
- each responder: functions/<name>/app.py and the core layer, copied and compiled to `.pyc` as
  `make build` ships them, on a path laid out like Lambda's (/var/task, /opt/python, the runtime's
  boto3); its handler invoked once on an SQS batch of its acting event: import → first response;
- Cloud Custodian's Lambda (peer_build.py), compiled alike, and also as it ships (no `.pyc`):
  its handler invoked once on the same event: import → first response.
AWS calls are answered in process with the embedded AWS's recorded answers (embedded.py).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connect_guard_tools.bench.calls import merge
from connect_guard_tools.bench.embedded import EmbeddedRuns
from connect_guard_tools.bench.scenarios import COLD, NOT_ACTING, sqs_batch
from connect_guard_tools.template import PROJECT_ROOT

HERE = Path(__file__).parent
CUSTODIAN_PYTHON = PROJECT_ROOT / ".tools" / "custodian" / "bin" / "python"
# What the python3.13 Lambda runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six.py")
RESPONDERS = tuple(COLD)
BATCH = 10  # the largest BatchSize in template.yaml: the per-event cost a busy queue sees
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "LAMBDA_TASK_ROOT": "/var/task",
}


class BenchSetupError(RuntimeError):
    """A member could not be prepared or did not answer as it must (the bench stops: no figure)."""


def _compile(root: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(root)], check=True
    )


@dataclass
class Member:
    name: str
    spec: dict[str, Any]
    env: dict[str, str]
    samples: list[float] = field(default_factory=list)  # ms, interpreter's first line → first response
    imports: list[float] = field(default_factory=list)  # ms, of which the handler module's import


class Workspace:
    """Compiled copies of the responders, Custodian's Lambda, and the runtime's packages."""

    def __init__(self, embedded: EmbeddedRuns) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="connect-guard-bench-"))
        self.embedded = embedded
        self._peer_answers: dict[str, Any] | None = None
        site = Path(sysconfig.get_paths()["purelib"])
        self.site = site
        self.runtime = self.root / "runtime"
        self.runtime.mkdir()
        for package in RUNTIME_PACKAGES:
            (self.runtime / package).symlink_to(site / package)
        layer = self.root / "opt" / "python"
        shutil.copytree(PROJECT_ROOT / "layers" / "core" / "connect_guard", layer / "connect_guard")
        self.layer = layer
        for responder in RESPONDERS:
            task = self.root / "task" / responder
            task.mkdir(parents=True)
            shutil.copy(PROJECT_ROOT / "functions" / responder / "app.py", task / "app.py")
        _compile(self.root / "task")
        _compile(layer)
        self.peer_pyc, self.peer_ship = self._custodian()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _custodian(self) -> tuple[Path, Path]:
        if not CUSTODIAN_PYTHON.exists():
            raise BenchSetupError(f"{CUSTODIAN_PYTHON} missing: `make custodian` builds it")
        archive = self.root / "custodian.zip"
        subprocess.run([str(CUSTODIAN_PYTHON), str(HERE / "peer_build.py"), str(archive)], check=True)
        ship, compiled = self.root / "custodian-ship", self.root / "custodian-pyc"
        for target in (ship, compiled):
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(target)
        _compile(compiled)
        return compiled, ship

    def peer_answers(self) -> dict[str, Any]:
        if self._peer_answers is None:
            self._peer_answers = self._record_peer()
        return self._peer_answers

    def _record_peer(self) -> dict[str, Any]:
        event_file = self.root / "peer-event.json"
        event_file.write_text(json.dumps(COLD["policy_alerts"].event(fresh=True)))
        out = self.root / "peer-answers.json"
        env = {**os.environ, **FAKE_AWS, "PYTHONPATH": str(PROJECT_ROOT / "tools")}
        done = subprocess.run(
            [sys.executable, str(HERE / "peer_record.py"), str(self.peer_ship), str(event_file), str(out)],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise BenchSetupError(f"recording Custodian's AWS answers failed:\n{done.stderr[-3000:]}")
        answers: dict[str, Any] = json.loads(out.read_text())
        return answers

    # ---- members ---------------------------------------------------------------------------
    def floor(self) -> Member:
        spec = {"member": "floor", "path": [str(self.runtime)]}
        return Member("floor", spec, dict(FAKE_AWS))

    def responder(self, responder: str, warm: int = 0) -> Member:
        scenario = COLD[responder]
        run = self.embedded.runs[scenario.name]
        answers = run.answers
        event = sqs_batch(scenario.event(fresh=True))
        spec: dict[str, Any] = {
            "member": "handler",
            "path": [str(self.root / "task" / responder), str(self.layer), str(self.site)],
            "cwd": str(self.root / "task" / responder),
            "module": "app",
            "handler": "lambda_handler",
            "event": event,
            "answers": answers,
        }
        if warm:
            spec["warm"] = {
                "acting": {"event": event, "count": warm},
                f"acting, batch of {BATCH}": {
                    "event": sqs_batch(scenario.event(fresh=True), BATCH),
                    "count": warm // BATCH,
                },
            }
            own = NOT_ACTING.get(responder)
            if own is not None:
                spec["answers"] = merge(answers, self.embedded.runs[own.name].answers)
                spec["warm"]["not acting"] = {"event": sqs_batch(own.event(fresh=True)), "count": warm}
        env = {
            **FAKE_AWS,
            **self.embedded.environment,
            "POWERTOOLS_SERVICE_NAME": responder.replace("_", "-"),
            "POWERTOOLS_METRICS_NAMESPACE": "ConnectGuard",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "AWS_LAMBDA_FUNCTION_NAME": f"connect-guard-dev-{responder.replace('_', '-')}",
        }
        return Member(responder, spec, env)

    def custodian(self, answers: dict[str, Any], compiled: bool = True, warm: int = 0) -> Member:
        task = self.peer_pyc if compiled else self.peer_ship
        event = COLD["policy_alerts"].event(fresh=True)
        spec: dict[str, Any] = {
            "member": "handler",
            "path": [str(task), str(self.runtime)],
            "cwd": str(task),
            "module": "custodian_policy",
            "handler": "run",
            "event": event,
            "answers": answers,
        }
        if warm:
            spec["warm"] = {"acting": {"event": event, "count": warm}}
        env = {**FAKE_AWS, "AWS_LAMBDA_FUNCTION_NAME": "custodian-connect-guard-peer-policy-alerts"}
        return Member("custodian" if compiled else "custodian (as shipped, no .pyc)", spec, env)

    def run(self, member: Member) -> dict[str, Any]:
        """One fresh interpreter; the member's result (raises when it failed or did not act)."""
        spec_file = self.root / "spec.json"
        result_file = self.root / "result.json"
        result_file.unlink(missing_ok=True)
        spec_file.write_text(json.dumps({**member.spec, "result": str(result_file)}))
        done = subprocess.run(
            [sys.executable, "-S", str(HERE / "child.py"), str(spec_file)],
            # Lambda's task and layer folders are read-only: nothing is compiled and kept.
            env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", **member.env},
            stdout=subprocess.DEVNULL,  # the handlers' logs and metrics: written, not kept
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode or not result_file.exists():
            raise BenchSetupError(f"{member.name}: the fresh process failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(result_file.read_text())
        _check_acted(member, result)
        return result


def _check_acted(member: Member, result: dict[str, Any]) -> None:
    """A figure of a start that did not act (refused, retried, nothing published) is not one."""
    if member.spec["member"] == "floor":
        return
    response = result.get("response")
    if isinstance(response, dict) and response.get("batchItemFailures"):
        raise BenchSetupError(f"{member.name}: the record failed: {response}")
    if not result.get("calls", {}).get("before-send.sns.Publish"):
        raise BenchSetupError(f"{member.name}: nothing was published (calls: {result.get('calls')})")


@dataclass
class Spread:
    median: float
    p10: float
    p90: float

    @classmethod
    def of(cls, samples: list[float]) -> Spread:
        if len(samples) < 2:
            return cls(samples[0], samples[0], samples[0])
        deciles = statistics.quantiles(samples, n=10, method="inclusive")
        return cls(statistics.median(samples), deciles[0], deciles[-1])

    def text(self, unit: str = "ms") -> str:
        return f"median {self.median:.1f} {unit}, p10-p90 {self.p10:.1f}-{self.p90:.1f}"


@dataclass
class ColdResults:
    rounds: int
    members: dict[str, Member]

    def spread(self, name: str) -> Spread:
        return Spread.of(self.members[name].samples)

    def ratios(self, name: str, against: str) -> list[float]:
        """Per round: the member's time over the other's in the same round (noise cancels out)."""
        mine, theirs = self.members[name].samples, self.members[against].samples
        return [a / b for a, b in zip(mine, theirs, strict=True)]


def cold_rounds(workspace: Workspace, rounds: int, progress: Any = None) -> ColdResults:
    answers = workspace.peer_answers()
    members = [
        workspace.floor(),
        *(workspace.responder(r) for r in RESPONDERS),
        workspace.custodian(answers),
        workspace.custodian(answers, compiled=False),
    ]
    for member in members:  # a first start of each, untimed: the page cache holds every file after it
        workspace.run(member)
    order = list(members)
    for number in range(rounds):
        random.shuffle(order)  # no member always first (or always after the same one)
        for member in order:
            result = workspace.run(member)
            member.samples.append(float(result["ms"]))
            if "import_ms" in result:
                member.imports.append(float(result["import_ms"]))
        if progress:
            progress(f"cold init round {number + 1}/{rounds}")
    return ColdResults(rounds, {m.name: m for m in members})


@dataclass
class WarmResult:
    name: str
    label: str
    total: Spread
    outside_botocore: Spread


def warm_cpu(workspace: Workspace, count: int) -> list[WarmResult]:
    """Per acting (and not-acting) event, after the container's first: process CPU per invocation
    (a one-record batch, the handler's whole path), and that minus botocore's API calls."""
    results: list[WarmResult] = []
    answers = workspace.peer_answers()
    members = [*(workspace.responder(r, warm=count) for r in RESPONDERS), workspace.custodian(answers, warm=count)]
    for member in members:
        result = workspace.run(member)
        for label, run in result["warm"].items():
            per = BATCH if label.endswith(f"batch of {BATCH}") else 1  # per event
            total = [ms / per for ms in run["total_ms"]]
            outside = [ms / per for ms in run["outside_botocore_ms"]]
            results.append(WarmResult(member.name, label, Spread.of(total), Spread.of(outside)))
    return results
