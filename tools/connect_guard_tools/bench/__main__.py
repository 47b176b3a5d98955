"""`make bench`: every row of the performance budget (docs/performance.md), measured and judged.

Prints each figure next to its budget with ✓ or ✗, and exits 1 when one is missed (or was not
measured). Timings are noisy on a shared machine: cold starts are paired in interleaved rounds
and judged on per-round ratios. See docs/performance.md for how each row is measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

from connect_guard_tools.bench.budgets import BUDGET_DOC, Figure, exit_code, judge, load_budgets
from connect_guard_tools.bench.calls import Call, summary

SECTIONS = ("calls", "cold", "warm", "replay")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m connect_guard_tools.bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=15, help="cold-init rounds (default 15; --quick: 5)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and events (a few minutes)")
    parser.add_argument("--acting-events", type=int, help="acting replay length (default 50,000; --quick: 5,000)")
    parser.add_argument("--noise-records", type=int, default=200_000, help="noise file size (default 200,000)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections (repeatable)")
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def _calls(figures: list[Figure], info: list[str]) -> object:
    from connect_guard_tools.bench.embedded import run_scenarios

    embedded = run_scenarios()
    counter = embedded.counter
    dedup_by_scenario: dict[str, list[Call]] = {}
    for run in embedded.runs.values():
        scenario = run.scenario
        if run.outcome != scenario.expected:
            raise RuntimeError(f"bench: {scenario.name} was {run.outcome} ({run.reason}), not {scenario.expected}")
        dedup = counter.dedup_writes(run.calls)
        # Member-account credentials are cached per container (connect_guard.clients): an
        # AssumeRole is not a per-event call, and is shown apart.
        beyond = [c for c in counter.beyond_dedup(run.calls) if c.operation != "AssumeRole"]
        assumed = [c for c in run.calls if c.operation == "AssumeRole"]
        dedup_by_scenario[scenario.name] = dedup
        if scenario.kind and scenario.expected != "ignored":
            note = summary(beyond) + (f"; and {len(assumed)} sts:AssumeRole, cached per container" if assumed else "")
            figures.append(Figure(f"calls.{scenario.kind}", len(beyond), note, scenario.name))
    # One line for the dedup writes: the most any scenario made, and what they were.
    shapes: dict[str, list[str]] = {}
    for name, dedup in dedup_by_scenario.items():
        shapes.setdefault(summary(dedup), []).append(name)
    every = len(dedup_by_scenario)
    detail = "; ".join(
        f"{shape} in {f'all {every} scenarios' if len(names) == every else ', '.join(names)}"
        for shape, names in shapes.items()
    )
    most = max(len(d) for d in dedup_by_scenario.values())
    figures.append(Figure("calls.dedup_writes", most, detail, "the most of any scenario"))
    figures.append(Figure("calls.noise", len(embedded.noise_calls), summary(embedded.noise_calls), "GetUserPolicy"))
    return embedded


def _cold(figures: list[Figure], info: list[str], embedded: object, rounds: int, warm: int) -> None:
    from connect_guard_tools.bench.cold import RESPONDERS, Spread, Workspace, cold_rounds, warm_cpu
    from connect_guard_tools.bench.embedded import EmbeddedRuns

    assert isinstance(embedded, EmbeddedRuns)
    workspace = Workspace(embedded)
    try:
        if rounds:
            results = cold_rounds(workspace, rounds, _log)
            for name, member in results.members.items():
                imports = f"; of which import {Spread.of(member.imports).text()}" if member.imports else ""
                info.append(f"cold init {name}: {results.spread(name).text()}{imports}")
            shipped = "custodian (as shipped, no .pyc)"
            for responder in RESPONDERS:
                floor = results.ratios(responder, "floor")
                peer = results.ratios(responder, "custodian")
                as_shipped = results.ratios(responder, shipped)
                figures.append(Figure("cold.floor_ratio", statistics.median(floor), _ratio_spread(floor), responder))
                figures.append(Figure("cold.custodian_ratio", statistics.median(peer), _ratio_spread(peer), responder))
                info.append(
                    f"cold init {responder} / Custodian as it ships (no .pyc): "
                    f"{statistics.median(as_shipped):.2f}x ({_ratio_spread(as_shipped)})"
                )
        if warm:
            for result in warm_cpu(workspace, warm):
                line = (
                    f"warm CPU {result.name}, {result.label}: {result.total.text()} in all, "
                    f"{result.outside_botocore.text()} outside botocore"
                )
                if result.name == "custodian" or "batch of" in result.label:
                    info.append(line)
                    continue
                key = "warm.acting_ms" if result.label == "acting" else "warm.not_acting_ms"
                detail = (
                    f"p10-p90 {result.outside_botocore.p10:.3f}-{result.outside_botocore.p90:.3f} ms; "
                    f"{result.total.median:.2f} ms with botocore"
                )
                figures.append(Figure(key, result.outside_botocore.median, detail, result.name))
    finally:
        workspace.close()


def _ratio_spread(ratios: list[float]) -> str:
    deciles = statistics.quantiles(ratios, n=10, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 9
    return f"per-round ratios p10-p90 {deciles[0]:.2f}-{deciles[-1]:.2f}, {len(ratios)} rounds"


def _replay(figures: list[Figure], info: list[str], quick: bool, acting_events: int, noise_records: int) -> None:
    from connect_guard_tools.bench import replaying

    walls = replaying.one_event_wall(3 if quick else 7)
    one = statistics.median(walls)
    figures.append(
        Figure("replay.one_event_s", one, f"fresh process, {len(walls)} runs, {min(walls):.2f}-{max(walls):.2f} s")
    )
    _log("noise replay")
    empty = statistics.median(replaying.empty_trail_wall(3 if quick else 7))
    noise = replaying.noise_replay(noise_records, empty)
    detail = f"{noise.records:,} records in {noise.wall_s:.2f} s wall"
    detail += f", less {noise.startup_s:.2f} s start-up (an empty trail file's replay)"
    figures.append(Figure("replay.noise_rate", noise.rate, detail))
    figures.append(Figure("replay.noise_rss_mib", noise.peak_rss_mib, "peak RSS of the replay process"))
    _log(f"acting replay of {acting_events:,} events")
    cap = 60.0 if quick else 480.0
    acting = replaying.acting_cost(acting_events, cap, _log)
    ran = f"{acting.replayed:,} events" + (f" of {acting.requested:,} (time cap {cap:.0f} s)" if acting.capped else "")
    detail = f"{ran}; first {replaying.WINDOW}: {acting.first_ms:.2f} ms/event, last: {acting.last_ms:.2f} ms/event"
    figures.append(Figure("replay.acting_growth", acting.growth, detail))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    budgets = load_budgets()  # first: a broken table fails before minutes of measuring
    sections = set(args.only or SECTIONS)
    rounds = 5 if args.quick and args.rounds == 15 else args.rounds
    acting_events = args.acting_events or (5_000 if args.quick else 50_000)
    started = time.perf_counter()
    print(
        f"connect-guard bench: python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; {'quick' if args.quick else 'full'} run; budgets from "
        f"{BUDGET_DOC.relative_to(BUDGET_DOC.parent.parent)}",
        flush=True,
    )
    figures: list[Figure] = []
    info: list[str] = []
    steps: list[tuple[str, Callable[[], object]]] = []
    embedded: list[object] = []
    if sections & {"calls", "cold", "warm"}:
        steps.append(("AWS calls through the embedded AWS", lambda: embedded.append(_calls(figures, info))))
    if sections & {"cold", "warm"}:
        warm = (300 if not args.quick else 100) if "warm" in sections else 0
        cold = rounds if "cold" in sections else 0
        steps.append(("cold init and warm CPU", lambda: _cold(figures, info, embedded[0], cold, warm)))
    if "replay" in sections:
        steps.append(("replay", lambda: _replay(figures, info, args.quick, acting_events, args.noise_records)))
    for title, step in steps:
        _log(title)
        step()
    if "calls" not in sections:  # measured on the way to the cold starts; shown only if asked
        figures = [f for f in figures if not f.key.startswith("calls.")]
    verdicts = judge(figures, budgets)
    print()
    for verdict in verdicts:
        print(verdict.line())
    if info:
        print("\nfor information:")
        for line in info:
            print(f"  {line}")
    expected = set(budgets) if sections == set(SECTIONS) else None
    missing = sorted(set(budgets) - {v.figure.key for v in verdicts}) if expected else []
    for key in missing:
        print(f"✗ {budgets[key].measure}: not measured")
    met = sum(v.met for v in verdicts)
    code = exit_code(verdicts, expected)
    print(
        f"\n{met} of {len(verdicts)} figures within budget{'' if code == 0 else ': budget missed'}"
        f" ({time.perf_counter() - started:.0f} s)"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
