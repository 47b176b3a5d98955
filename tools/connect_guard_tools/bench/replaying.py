"""The replay's rows: one event end to end, acting cost over many events, a large noise file."""

from __future__ import annotations

import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from connect_guard_tools.bench.scenarios import COLD, EVENTS
from connect_guard_tools.noise import write_noise_file
from connect_guard_tools.template import PROJECT_ROOT

CONNECT_GUARD = Path(sys.executable).parent / "connect-guard"
ONE_EVENT = EVENTS / COLD["policy_alerts"].event_file
WINDOW = 500  # events in the first and the last window of the acting run


def _replay_command(*paths: Path) -> list[str]:
    return [str(CONNECT_GUARD), "replay", *(str(p) for p in paths), "--no-progress"]


def _replay_env() -> dict[str, str]:
    """The environment of a user's shell: Python caches bytecode. A sandbox that sets
    PYTHONDONTWRITEBYTECODE would make every replay compile the project from source (~0.1 s)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _walls(path: Path, rounds: int) -> list[float]:
    """Seconds, fresh process each: `connect-guard replay <path>`, after one untimed run (the
    first run of a checkout writes its bytecode cache)."""
    walls = []
    for number in range(rounds + 1):
        start = time.perf_counter()
        command = _replay_command(path)
        subprocess.run(command, cwd=PROJECT_ROOT, env=_replay_env(), stdout=subprocess.DEVNULL, check=True)
        if number:
            walls.append(time.perf_counter() - start)
    return walls


def one_event_wall(rounds: int) -> list[float]:
    """Seconds, fresh process: `connect-guard replay <one event>`, start-up included."""
    return _walls(ONE_EVENT, rounds)


def empty_trail_wall(rounds: int) -> list[float]:
    """Seconds, fresh process: the replay of a CloudTrail log file holding no record, the noise
    run's start-up. Not the one-event replay: that one also makes the alert topic and queues,
    which a noise run never does, so subtracting it would flatter the noise rate."""
    with tempfile.TemporaryDirectory(prefix="connect-guard-bench-empty-") as folder:
        log = Path(folder) / "111122223333_CloudTrail_us-east-1_bench_empty.json.gz"
        write_noise_file(log, 0)
        return _walls(log, rounds)


@dataclass
class ActingRun:
    requested: int
    replayed: int
    first_ms: float  # mean per event, first WINDOW events
    last_ms: float  # mean per event, last WINDOW events
    capped: bool  # stopped by the time cap before `requested`

    @property
    def growth(self) -> float:
        return self.last_ms / self.first_ms


def acting_cost(count: int, time_cap_s: float, progress: object = None) -> ActingRun:
    """Alerts through one embedded AWS and Replayer, as `connect-guard replay` runs them: the
    mean cost per event of the first 500 and of the last 500 (growth is what this measures)."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    from connect_guard_tools.inputs import InputItem
    from connect_guard_tools.local_aws import LocalAws
    from connect_guard_tools.replay import Replayer

    base = COLD["policy_alerts"].event()
    costs: list[float] = []
    capped = False
    with LocalAws.for_replay() as aws:  # as the replay command builds it: parts on demand, deliveries held
        replayer = Replayer(aws, aws.settings(member_account_ids=("111122223333",)), on_first_event=True)
        deadline = time.perf_counter() + time_cap_s
        for number in range(count):
            event = copy.deepcopy(base)
            event["detail"]["eventID"] = str(uuid.UUID(int=number + 1))
            item = InputItem(f"bench#{number}", event)
            start = time.perf_counter()
            outcome = replayer.replay(item).outcome
            costs.append(time.perf_counter() - start)
            if outcome != "alerted":
                raise RuntimeError(f"bench: acting event {number} was {outcome}, not alerted")
            if callable(progress) and number and number % 5000 == 0:
                progress(f"acting replay: {number:,} events")
            if time.perf_counter() > deadline and number + 1 >= 2 * WINDOW:
                capped = number + 1 < count
                break
    window = min(WINDOW, len(costs) // 2)
    first = statistics.fmean(costs[:window]) * 1000
    last = statistics.fmean(costs[-window:]) * 1000
    return ActingRun(count, len(costs), first, last, capped)


def write_noise_log(path: Path, count: int) -> None:
    """A CloudTrail S3 log file (gzip, `{"Records": [...]}`) of API calls no rule matches, in the
    mix a busy account's trail holds (connect_guard_tools.noise)."""
    write_noise_file(path, count)


@dataclass
class NoiseRun:
    records: int
    wall_s: float
    peak_rss_mib: float
    startup_s: float

    @property
    def rate(self) -> float:
        """Events/s once started: the one-event replay's wall (its start-up) taken off."""
        return self.records / max(self.wall_s - self.startup_s, 1e-9)


def noise_replay(count: int, startup_s: float) -> NoiseRun:
    """`connect-guard replay <noise.json.gz>` in a fresh process: wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="connect-guard-bench-noise-") as folder:
        log = Path(folder) / f"111122223333_CloudTrail_us-east-1_bench_{count}.json.gz"
        write_noise_log(log, count)
        start = time.perf_counter()
        child = subprocess.Popen(_replay_command(log), cwd=PROJECT_ROOT, env=_replay_env(), stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not every child's
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise RuntimeError(f"bench: the noise replay exited {child.returncode}")
    return NoiseRun(count, wall, usage.ru_maxrss / 1024, startup_s)
