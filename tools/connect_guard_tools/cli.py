"""`connect-guard`: local tooling. `replay` runs events through the responders with no AWS
account and no Docker."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from connect_guard_tools.template import PROJECT_ROOT

if TYPE_CHECKING:
    from connect_guard_tools.local_aws import LocalAws
    from connect_guard_tools.replay import Replayer, ReplayResult

PROGRESS_THRESHOLD = 200  # items before a progress bar appears (on a terminal)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connect-guard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser(
        "replay",
        help="replay sample or historical CloudTrail events locally",
        description="Route events with template.yaml's rules and run the responders against an "
        "embedded in-memory AWS. Accepts EventBridge events, CloudTrail records, CloudTrail S3 "
        "log files (.json/.json.gz), JSON Lines and directories.",
    )
    replay.add_argument("paths", nargs="*", type=Path, help="files or directories (default: events/)")
    replay.add_argument("--format", choices=("text", "json"), default="text")
    replay.add_argument("--config-env", default="default", help="samconfig.toml environment (default: default)")
    replay.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="stack parameters, as for sam deploy (e.g. ResponseMode=enforce)",
    )
    replay.add_argument(
        "--seed",
        type=Path,
        default=PROJECT_ROOT / "events" / "demo-state.yaml",
        help="IAM state to create in the embedded AWS (default: events/demo-state.yaml)",
    )
    replay.add_argument("--show-findings", action="store_true", help="print each alert as email renders it")
    replay.add_argument("--fail-on-error", action="store_true", help="exit 1 if any event ends in error")
    replay.add_argument("--no-progress", action="store_true")
    replay.add_argument(
        "--sweep", action="store_true", help="after the events, run one baseline drift sweep of the demo instances"
    )

    approve = commands.add_parser(
        "approve-baseline",
        help="approve an instance's current Connect state as its known-good baseline (real AWS)",
        description="Snapshot a Connect instance (profiles, permissions, applications, user assignments) with "
        "your AWS credentials and store it as the approved baseline the rollback and drift sweep restore. "
        "Use after reviewing a legitimate change.",
    )
    approve.add_argument("--instance-arn", required=True)
    approve.add_argument("--table", required=True, help="BaselineTableName output of the stack")
    approve.add_argument("--approved-by", default=os.environ.get("USER", "unknown"), help="recorded with the baseline")
    approve.add_argument("--region", help="region of the stack's table (default: from the AWS config)")
    return parser


def _text_line(result: ReplayResult, out: TextIO) -> None:
    mark = {"alerted": "!", "error": "x", "duplicate": "=", "ignored": "-"}.get(result.outcome, "*")
    route = ", ".join(f"{rule} -> {responder}" for rule, responder in zip(result.rules, result.matched, strict=True))
    severity = f" {result.severity}" if result.severity else ""
    out.write(f"[{mark}] {result.source}\n")
    out.write(f"      {result.event_name or '?'}  {route or 'no rule'}  => {result.outcome}{severity}\n")
    for alert in result.alerts:
        out.write(f"      alert: {alert['subject']}\n")
    if result.actions:
        out.write("      calls: " + ", ".join(f"{a['service']}:{a['operation']}" for a in result.actions) + "\n")
    change = (result.finding or {}).get("change")
    if change:
        verb = "restored" if result.outcome == "rolled_back" else "would restore"
        out.write(f"      before: {', '.join(change['before']) or '(none)'}\n")
        out.write(f"      {verb}: {', '.join(change['after']) or '(none)'}  (baseline: {change['baseline']})\n")
    # Why an event that matched a rule produced no alert (noise needs no explanation).
    if result.reason and (result.rules or result.outcome == "error"):
        out.write(f"      reason: {result.reason}\n")


def _progress(items: Iterator, enabled: bool) -> Iterator:  # type: ignore[type-arg]
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    bar = None
    for count, item in enumerate(items, start=1):
        if bar is None and count > PROGRESS_THRESHOLD:
            bar = tqdm(initial=count - 1, unit=" events", file=sys.stderr, leave=False)
        if bar is not None:
            bar.update()
        yield item
    if bar is not None:
        bar.close()


def replay(args: argparse.Namespace, out: TextIO) -> int:
    # Quiet the responders' structured logs: the replay prints its own report.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    # Idempotency warns that it has no Lambda context to bound in-progress records: expected here.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    from connect_guard_tools.config import parse_overrides, replay_parameters, settings_values
    from connect_guard_tools.inputs import iter_inputs
    from connect_guard_tools.local_aws import LocalAws
    from connect_guard_tools.replay import Replayer

    paths = args.paths or [PROJECT_ROOT / "events"]
    overrides = parse_overrides(args.parameter_overrides)
    parameters = replay_parameters(args.config_env, overrides)
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    with LocalAws() as aws:
        if args.seed and args.seed.exists():
            aws.seed(args.seed)
        replayer = Replayer(aws, aws.settings(**settings_values(parameters)))
        show_progress = not args.no_progress and sys.stderr.isatty()
        for item in _progress(iter_inputs(paths, root=Path.cwd()), show_progress):
            result = replayer.replay(item)
            counts[result.outcome] += 1
            counts["matched"] += bool(result.rules)
            if result.alerts:
                severities.update(a["severity"] for a in result.alerts)
            if args.format == "json":
                out.write(json.dumps(result.to_dict(with_finding=args.show_findings), ensure_ascii=False) + "\n")
                continue
            _text_line(result, out)
            for email in result.emails if args.show_findings else ():
                out.write("\n" + "\n".join("      | " + line for line in email.splitlines()) + "\n\n")
        if args.sweep:
            _sweep(aws, replayer, out)
        delivered = len(aws.inbox())
    elapsed = time.perf_counter() - started
    total = sum(counts[k] for k in ("alerted", "ignored", "duplicate", "error", "rolled_back", "quarantined"))
    if args.format == "text":
        by_severity = ", ".join(
            f"{s} {severities[s]}" for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO") if severities[s]
        )
        out.write(
            f"\n{total} events, {counts['matched']} matched a rule: {counts['alerted']} alerted"
            f"{f' ({by_severity})' if by_severity else ''}, {counts['ignored']} ignored, "
            f"{counts['duplicate']} duplicate, {counts['error']} error\n"
            f"SOC inbox (SQS subscribed to the alert topic) received {delivered} message(s); "
            f"mode {parameters.get('ResponseMode')}, config env {args.config_env}; {elapsed:.2f}s\n"
        )
    return 1 if args.fail_on_error and counts["error"] else 0


def _sweep(aws: LocalAws, replayer: Replayer, out: TextIO) -> None:
    from connect_guard.connect import InstanceRef
    from connect_guard.sweep import build

    sweep = build(replayer.settings, aws.clients)
    for result in sweep.run():
        names = sweep.gateway(InstanceRef.parse(result.instance_arn, "", "")).profile_names()
        out.write(f"\n[sweep] {result.instance_arn}: {len(result.drift)} drift item(s)\n")
        for item in result.drift:
            out.write(f"      {sweep.describe(item, names)}\n")
        for item, plan, status in result.plans:
            out.write(f"      {status}: {plan.operation} {item.name} (gained {', '.join(plan.gained)})\n")


def approve_baseline(args: argparse.Namespace, out: TextIO, session: Any = None) -> int:
    import boto3

    from connect_guard.baseline import BaselineStore
    from connect_guard.connect import ConnectGateway, InstanceRef
    from connect_guard.sweep import snapshot

    session = session or boto3.session.Session(region_name=args.region)
    instance = InstanceRef.parse(args.instance_arn, "", "")
    gateway = ConnectGateway(session.client("connect", region_name=instance.region), instance)
    current = snapshot(gateway)
    BaselineStore(session.client("dynamodb"), args.table).approve_instance(current, args.approved_by)
    out.write(
        f"approved {len(current.profiles)} security profiles and {len(current.users)} users of "
        f"{instance.arn} as the baseline (by {args.approved_by})\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "replay":
            return replay(args, sys.stdout)
        if args.command == "approve-baseline":
            return approve_baseline(args, sys.stdout)
    except BrokenPipeError:  # `connect-guard replay | head`: the reader has all it wants
        sys.stderr.close()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
