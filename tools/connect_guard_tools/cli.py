"""`connect-guard`: local tooling. `replay` runs events through the responders with no AWS
account and no Docker."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from connect_guard_tools import arguments
from connect_guard_tools.template import PROJECT_ROOT

if TYPE_CHECKING:
    from connect_guard.settings import Settings
    from connect_guard_tools.local_aws import LocalAws
    from connect_guard_tools.replay import Replayer, ReplayResult

PROGRESS_THRESHOLD = 200  # items before a progress bar appears (on a terminal)
DEFAULT_SEED = PROJECT_ROOT / "events" / "demo-state.yaml"


def _emit(out: TextIO, kind: str, body: dict[str, Any]) -> None:
    """One JSON Lines object of `--format json`: every one names its `kind` (event, slack, sweep,
    drift, release, export, liveness, unmatched, summary), and nothing else reaches stdout in that mode."""
    out.write(json.dumps({"kind": kind, **body}, ensure_ascii=False) + "\n")


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Every command on a deployed stack names it (its outputs locate the tables) and its region."""
    parser.add_argument(
        "--stack",
        required=True,
        type=arguments.stack_name,
        help="connect-guard stack name (its outputs locate the tables)",
    )
    parser.add_argument("--region", type=arguments.region_name, help="the stack's region")


def _parser() -> argparse.ArgumentParser:
    parser = arguments.Parser(prog="connect-guard", description=__doc__)
    # --debug before or after the command; SUPPRESS keeps a command's default from hiding the global one.
    debug = arguments.Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser = functools.partial(commands.add_parser, parents=[debug])  # type: ignore[method-assign]
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
        help="IAM state to create in the embedded AWS (default: events/demo-state.yaml)",
    )
    replay.add_argument("--show-findings", action="store_true", help="print each alert as email renders it")
    replay.add_argument("--slack", action="store_true", help="print each alert as the Slack message (text view)")
    replay.add_argument(
        "--slack-webhook",
        metavar="URL",
        type=arguments.https_url,
        help="also post each alert to this Slack incoming webhook",
    )
    replay.add_argument("--fail-on-error", action="store_true", help="exit 1 if any event ends in error")
    replay.add_argument("--no-progress", action="store_true")
    replay.add_argument(
        "--sweep", action="store_true", help="after the events, run one baseline drift sweep of the demo instances"
    )
    replay.add_argument(
        "--drift",
        action="store_true",
        help="after the events, run logging-guard's scheduled drift check (trails, flow logs, storage, KMS keys)",
    )
    replay.add_argument(
        "--release", action="store_true", help="after the events, release every principal the replay quarantined"
    )
    replay.add_argument(
        "--liveness-check-at",
        metavar="TIME",
        type=_utc_time,
        help="after the events, run the canary silence check as if at TIME (ISO 8601, e.g. 2026-11-20T12:30:00Z)",
    )
    replay.add_argument(
        "--export",
        action="store_true",
        help="after the events, run one log-archive cycle and show what landed in the archive bucket",
    )

    approve = commands.add_parser(
        "approve-baseline",
        help="approve an instance's current Connect state as its known-good baseline (real AWS)",
        description="Snapshot a Connect instance (profiles, permissions, applications, user assignments) with "
        "your AWS credentials and store it as the approved baseline the rollback and drift sweep restore. "
        "Use after reviewing a legitimate change.",
    )
    approve.add_argument("--instance-arn", required=True, type=arguments.connect_instance_arn)
    _stack_arguments(approve)
    approve.add_argument("--approved-by", required=True, help="who approves (recorded, audited and alerted)")
    approve.add_argument("--reason", default="reviewed", help="why (recorded)")

    trail = commands.add_parser(
        "approve-trail",
        help="approve a CloudTrail trail's current configuration as the snapshot logging_guard restores (real AWS)",
        description="Read a trail (logging, bucket, prefix, KMS key, scope, event and Insights selectors) with "
        "your AWS credentials and store it as the approved snapshot; audited. The logging-guard function can "
        "only read snapshots: approving one is an operator's act.",
    )
    trail.add_argument("--trail-arn", required=True, type=arguments.trail_arn)
    _stack_arguments(trail)
    trail.add_argument("--approved-by", required=True, help="who approves (recorded and audited)")
    trail.add_argument("--reason", default="reviewed", help="why (recorded)")
    trail.add_argument(
        "--assume-role-arn",
        type=arguments.role_arn,
        help="a member account's trail: your role in that account that may read it (default: these credentials)",
    )

    storage = commands.add_parser(
        "approve-storage",
        help="approve a Connect instance's current storage configs as the snapshot logging_guard restores (real AWS)",
        description="Read every storage config of an instance (recordings, transcripts, reports, media "
        "streams, contact trace records, agent events, ...: bucket, prefix, KMS key, streams) with your AWS "
        "credentials and store them as the approved snapshot; audited. A resource type with no association "
        "is approved as none: an association added later is restored away. The logging-guard function can "
        "only read snapshots: approving one is an operator's act.",
    )
    storage.add_argument("--instance-arn", required=True, type=arguments.connect_instance_arn)
    _stack_arguments(storage)
    storage.add_argument("--approved-by", required=True, help="who approves (recorded and audited)")
    storage.add_argument("--reason", default="reviewed", help="why (recorded)")

    key = commands.add_parser(
        "approve-key",
        help="approve a KMS key's current state as the snapshot logging_guard restores (real AWS)",
        description="Read a key (state, automatic rotation, key policy) with your AWS credentials and store it "
        "as the approved snapshot; audited. The key guard and the drift check then restore it to enabled (and "
        "rotating, if it rotates now) and alert any change of its policy against this one. The logging-guard "
        "function can only read snapshots: approving one is an operator's act.",
    )
    key.add_argument("--key-arn", required=True, type=arguments.kms_key_arn)
    _stack_arguments(key)
    key.add_argument("--approved-by", required=True, help="who approves (recorded and audited)")
    key.add_argument("--reason", default="reviewed", help="why (recorded)")
    key.add_argument(
        "--assume-role-arn",
        type=arguments.role_arn,
        help="a member account's key: your role in that account that may read it (default: these credentials)",
    )

    release = commands.add_parser(
        "release",
        help="lift a quarantine (real AWS): detach the quarantine policy from a user or role",
        description="Release a quarantined IAM user or role, record who released it and why (audit table), "
        "and publish a CRITICAL finding.",
    )
    _stack_arguments(release)
    release.add_argument(
        "--account", type=arguments.account_id, help="account of the quarantined user or role (not for --sso-user)"
    )
    who = release.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=arguments.iam_name, help="IAM user name")
    who.add_argument("--role", type=arguments.iam_name, help="IAM role name")
    who.add_argument("--sso-user", help="IAM Identity Center user name: taken off the deny-list SCP")
    release.add_argument("--by", required=True, help="who releases (recorded)")
    release.add_argument("--reason", required=True, help="why (recorded)")

    restore = commands.add_parser(
        "restore-role",
        help="recreate a deleted protected role from its last snapshot (real AWS)",
        description="Recreate a role (trust policy, path, managed and inline policies, tags) from the snapshot "
        "the scheduled role snapshot took before it was deleted. It prints what it will create first, and "
        "refuses a trust policy admitting principals outside this deployment's accounts and organization.",
    )
    _stack_arguments(restore)
    restore.add_argument("--account", required=True, type=arguments.account_id)
    restore.add_argument("--role", required=True, type=arguments.iam_name)
    restore.add_argument("--by", default=os.environ.get("USER", "unknown"), help="who restores (recorded)")
    restore.add_argument(
        "--allow-external-trust",
        action="store_true",
        help="restore even though the snapshot's trust policy admits principals outside the security account, "
        "the enrolled accounts and the organization (or `*`)",
    )
    restore.add_argument(
        "--assume-role-arn",
        type=arguments.role_arn,
        help="your role in that account that may create roles (default: these credentials)",
    )
    _operations_parsers(commands)
    _verify_parser(commands)
    return parser


def _verify_parser(commands: Any) -> None:
    """`verify-archive` (connect_guard_tools.verify_archive)."""
    verify = commands.add_parser(
        "verify-archive",
        help="check the evidence archive against its signed daily manifests (real AWS, read only)",
        description="Check each sealed day's manifest (KMS signature, chain to the previous day) and every "
        "object it lists (same version, size and SHA-256), and report objects it does not list and days "
        "without a manifest. Exit 0 only when everything checks.",
    )
    _stack_arguments(verify)
    verify.add_argument("--from", dest="first", type=arguments.utc_day, help="first day to check (YYYY-MM-DD)")
    verify.add_argument("--to", dest="last", type=arguments.utc_day, help="last day to check (YYYY-MM-DD)")
    verify.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _operations_parsers(commands: Any) -> None:
    """`redrive` and `status` (connect_guard_tools.operations)."""
    from connect_guard_tools.operations import CONTROL_NAMES

    redrive = commands.add_parser(
        "redrive",
        help="move DLQ messages back to their responder queues with SQS message-move tasks (real AWS)",
        description="Start an SQS message-move task from each responder DLQ (or those --control names) back to "
        "its queue, as the stack's RedriveRole, and follow it to the end. The other DLQs (EventBridge's, the "
        "scheduler's, SNS subscriptions') are not move-task sources: their messages are counted, left for a "
        "person, and the runbook says what to do.",
    )
    _stack_arguments(redrive)
    redrive.add_argument(
        "--control", action="append", choices=CONTROL_NAMES, help="only this control's DLQ (repeatable; default: all)"
    )
    redrive.add_argument("--dry-run", action="store_true", help="count what would move; start nothing")
    redrive.add_argument(
        "--no-assume-role", action="store_true", help="use these credentials rather than the stack's RedriveRole"
    )
    redrive.add_argument("--format", choices=("text", "json"), default="text")
    redrive.add_argument("--poll-seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    redrive.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to follow the tasks (they go on in SQS after it)"
    )

    status = commands.add_parser(
        "status",
        help="queue depths and ages, DLQs, alarms in ALARM, last canaries and modes of a stack (real AWS)",
        description="Per control the queue's depth and oldest message age, its DLQ's depth and any redrive "
        "running; the stack's alarms in ALARM; the last canary heard per account and region; the response "
        "mode in force per control. Read only, with these credentials.",
    )
    _stack_arguments(status)
    status.add_argument("--format", choices=("text", "json"), default="text")


def _text_line(result: ReplayResult, out: TextIO) -> None:
    mark = {"alerted": "!", "error": "x", "duplicate": "=", "ignored": "-", "rejected": "!", "skipped": "~"}.get(
        result.outcome, "*"
    )
    route = ", ".join(f"{rule} -> {responder}" for rule, responder in zip(result.rules, result.matched, strict=True))
    severity = f" {result.severity}" if result.severity else ""
    out.write(f"[{mark}] {result.source}\n")
    out.write(f"      {result.event_name or '?'}  {route or 'no rule'}  => {result.outcome}{severity}\n")
    for alert in result.alerts:
        out.write(f"      alert: {alert['subject']}\n")
    if result.actions:
        out.write("      calls: " + ", ".join(f"{a['service']}:{a['operation']}" for a in result.actions) + "\n")
    for action in (result.finding or {}).get("actions") or []:
        if action["service"] == "iam":
            who = action["parameters"].get("UserName") or action["parameters"].get("RoleName")
            out.write(f"      {action['status']}: iam:{action['operation']} on {who}\n")
    change = (result.finding or {}).get("change")
    if change:
        verb = "restored" if result.outcome in ("rolled_back", "restored") else "would restore"
        out.write(f"      before: {', '.join(change['before']) or '(none)'}\n")
        out.write(f"      {verb}: {', '.join(change['after']) or '(none)'}  (baseline: {change['baseline']})\n")
    # Why an event that matched a rule produced no alert (noise needs no explanation).
    if result.reason and (result.rules or result.outcome in ("error", "skipped")):
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
    import yaml
    from pydantic import ValidationError

    from connect_guard_tools.config import parse_overrides, replay_parameters, settings_values
    from connect_guard_tools.errors import ParameterError, UsageError
    from connect_guard_tools.inputs import iter_inputs
    from connect_guard_tools.local_aws import LocalAws
    from connect_guard_tools.replay import Replayer

    # Every argument is checked before the embedded AWS starts: bad input replays nothing.
    paths = args.paths or [PROJECT_ROOT / "events"]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise UsageError(f"no such file or directory: {', '.join(missing)}", "check the input paths")
    seed = args.seed or DEFAULT_SEED
    if args.seed and not args.seed.is_file():
        raise UsageError(f"--seed {args.seed}: no such file", "name a state file like events/demo-state.yaml")
    try:
        overrides = parse_overrides(args.parameter_overrides)
        parameters = replay_parameters(args.config_env, overrides)
    except ParameterError as error:
        origin = "" if str(error).startswith(("samconfig", "unknown config env")) else "--parameter-overrides: "
        raise ParameterError(origin + str(error), error.hint) from None
    json_mode = args.format == "json"
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    skipped: Counter[str] = Counter()  # records that are not API calls, by kind
    unmatched = Unmatched()
    # In memory, each part made when a call first needs it: a refusal below leaves nothing behind.
    with LocalAws.for_replay() as aws:
        if seed.exists():
            try:
                aws.seed(seed)
            except yaml.YAMLError as error:
                raise UsageError(f"--seed {seed}: not YAML ({' '.join(str(error).split())})", "fix the file") from None
        try:
            settings = aws.settings(**settings_values(parameters))
        except ValidationError as error:  # the deployed functions refuse the same configuration
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
            raise UsageError(
                f"invalid configuration: {problems}", "fix --parameter-overrides or samconfig.toml"
            ) from None
        replayer = Replayer(aws, settings, on_first_event=True)
        show_progress = not args.no_progress and sys.stderr.isatty()
        for item in _progress(iter_inputs(paths, root=Path.cwd()), show_progress):
            if replayer.is_noise(item):  # counted by event name, not listed: most of a trail is noise
                detail = item.detail
                unmatched.add(detail.get("eventSource"), detail.get("eventName") or item.detail_type)
                continue
            result = replayer.replay(item)
            counts[result.outcome] += 1
            counts["matched"] += bool(result.rules)
            if result.outcome == "skipped":
                skipped[item.skipped or "other"] += 1
            if result.alerts:
                severities.update(a["severity"] for a in result.alerts)
            if json_mode:
                _emit(out, "event", result.to_dict(with_finding=args.show_findings))
            else:
                _text_line(result, out)
                for email in result.emails if args.show_findings else ():
                    out.write("\n" + "\n".join("      | " + line for line in email.splitlines()) + "\n\n")
            if result.finding and (args.slack or args.slack_webhook):
                _slack(result.finding, args, out, source=result.source if json_mode else None)
        if args.sweep:
            _sweep(aws, replayer, out, json_mode)
        if args.drift:
            _drift(aws, replayer, out, json_mode)
        if args.release:
            _release_all(aws, replayer, out, json_mode)
        if args.export:
            _export(aws, replayer, out, json_mode)
        if args.liveness_check_at:
            _liveness_check(aws, replayer, args.liveness_check_at, out, json_mode)
        delivered = len(aws.inbox())
    elapsed = time.perf_counter() - started
    if unmatched.events:
        counts["ignored"] += unmatched.events  # in the totals, as every other event
        if json_mode:
            _emit(out, "unmatched", unmatched.to_dict())
        else:
            unmatched.write(out)
    total = sum(
        counts[k]
        for k in (
            "alerted",
            "ignored",
            "duplicate",
            "error",
            "rolled_back",
            "quarantined",
            "restored",
            "rejected",
            "recorded",
            "skipped",
        )
    )
    if json_mode:
        summary = {
            "events": total,
            "matched": counts["matched"],
            "outcomes": {k: v for k, v in sorted(counts.items()) if k != "matched"},
            "alerts": {s: severities[s] for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO") if severities[s]},
            "skipped": dict(sorted(skipped.items())),
            "delivered": delivered,
            "mode": parameters.get("ResponseMode"),
            "config_env": args.config_env,
            "seconds": round(elapsed, 3),
        }
        _emit(out, "summary", summary)
    else:
        by_severity = ", ".join(
            f"{s} {severities[s]}" for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO") if severities[s]
        )
        acted = "".join(
            f", {counts[k]} {k.replace('_', ' ')}"
            for k in ("rolled_back", "quarantined", "restored", "rejected", "recorded")
            if counts[k]
        )
        out.write(
            f"\n{total} events, {counts['matched']} matched a rule: {counts['alerted']} alerted{acted}"
            f"{f' (alerts: {by_severity})' if by_severity else ''}, {counts['ignored']} ignored, "
            f"{counts['duplicate']} duplicate, {counts['error']} error{_skipped_summary(skipped)}\n"
            f"SOC inbox (SQS subscribed to the alert topic) received {delivered} message(s); "
            f"mode {parameters.get('ResponseMode')}, config env {args.config_env}; {elapsed:.2f}s\n"
        )
    return 1 if args.fail_on_error and counts["error"] else 0


class Unmatched:
    """The events that matched no rule, counted by eventSource and eventName: a trail's noise is
    most of it, and one report line per record would bury the events that matter."""

    TOP = 10  # event names shown; the rest are one count
    KINDS = 10_000  # distinct (eventSource, eventName) pairs counted apart; past that, "other"

    def __init__(self) -> None:
        self.by_name: dict[Any, int] = {}  # (eventSource, eventName) as read -> events

    @property
    def events(self) -> int:
        return sum(self.by_name.values())

    def add(self, event_source: Any, event_name: Any) -> None:
        key = (event_source, event_name)
        count = self.by_name.get(key) if isinstance(event_source, str) and isinstance(event_name, str) else None
        if count is not None:  # the common case, once per record: one look-up
            self.by_name[key] = count + 1
            return
        key = (str(event_source or "?"), str(event_name or "?"))
        if key not in self.by_name and len(self.by_name) >= self.KINDS:
            key = ("other", "other")
        self.by_name[key] = self.by_name.get(key, 0) + 1

    def _split(self) -> tuple[list[tuple[tuple[str, str], int]], int, int]:
        ranked = sorted(self.by_name.items(), key=lambda kv: (-kv[1], kv[0]))
        rest = ranked[self.TOP :]
        return ranked[: self.TOP], len(rest), sum(n for _, n in rest)

    def to_dict(self) -> dict[str, Any]:
        top, names, events = self._split()
        return {
            "events": self.events,
            "top": [{"event_source": s, "event_name": n, "events": count} for (s, n), count in top],
            "others": {"event_names": names, "events": events},
        }

    def write(self, out: TextIO) -> None:
        top, names, events = self._split()
        out.write(f"[-] {self.events} event(s) matched no rule (counted, not listed), by event name:\n")
        width = len(str(max(top[0][1], events)))  # the counts right-aligned
        for (source, name), count in top:
            out.write(f"      {count:>{width}}  {name} ({source})\n")
        if names:
            out.write(f"      {events:>{width}}  ({names} more event name(s))\n")


def _skipped_summary(skipped: Counter[str]) -> str:
    if not skipped:
        return ""
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))
    return f", {skipped.total()} skipped (not API calls: {kinds})"


_utc_time = arguments.utc_time


def _liveness_check(aws: LocalAws, replayer: Replayer, now: datetime, out: TextIO, json_mode: bool = False) -> None:
    from connect_guard import liveness

    silent = liveness.build(replayer.settings, aws.clients).check(now)
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    if json_mode:
        found = [{"severity": str(f.severity), "title": f.title, "reason": f.reasons[0]} for f in silent]
        _emit(out, "liveness", {"at": stamp, "silent": found})
        return
    out.write(f"\n[liveness] check at {stamp}: {len(silent)} silent canary(ies)\n")
    for finding in silent:
        out.write(f"      {finding.severity!s:<8} {finding.title}\n      {'':<8} {finding.reasons[0]}\n")


def _sweep(aws: LocalAws, replayer: Replayer, out: TextIO, json_mode: bool = False) -> None:
    from connect_guard.connect import InstanceRef
    from connect_guard.sweep import build

    sweep = build(replayer.settings, aws.clients)
    for result in sweep.run():
        names = sweep.gateway(InstanceRef.parse(result.instance_arn, "", "")).profile_names()
        if json_mode:
            plans = [
                {"status": status, "operation": plan.operation, "name": item.name, "gained": list(plan.gained)}
                for item, plan, status in result.plans
            ]
            drift = [sweep.describe(item, names) for item in result.drift]
            _emit(out, "sweep", {"instance_arn": result.instance_arn, "drift": drift, "plans": plans})
            continue
        out.write(f"\n[sweep] {result.instance_arn}: {len(result.drift)} drift item(s)\n")
        for item in result.drift:
            out.write(f"      {sweep.describe(item, names)}\n")
        for item, plan, status in result.plans:
            out.write(f"      {status}: {plan.operation} {item.name} (gained {', '.join(plan.gained)})\n")


def _drift(aws: LocalAws, replayer: Replayer, out: TextIO, json_mode: bool = False) -> None:
    from connect_guard.responders import logging_drift

    findings = logging_drift.run(replayer.settings, aws.clients)
    if json_mode:
        found = [
            {
                "severity": str(f.severity),
                "title": f.title,
                "actions": [{"status": a.status, "service": a.service, "operation": a.operation} for a in f.actions],
            }
            for f in findings
        ]
        _emit(out, "drift", {"findings": found})
        return
    out.write(f"\n[drift] logging drift check: {len(findings)} finding(s)\n")
    for finding in findings:
        out.write(f"      {finding.severity!s:<8} {finding.title}\n")
        for action in finding.actions:
            out.write(f"      {'':<8} {action.status}: {action.service} {action.operation}\n")


def _slack(finding: dict[str, Any], args: argparse.Namespace, out: TextIO, source: str | None = None) -> None:
    """The finding as Slack shows it; with `source` (JSON mode) one {"kind": "slack"} object."""
    from connect_guard.slack import SlackNotifier, render, render_text

    text = render_text(render(finding)) if args.slack else None
    if args.slack_webhook:
        SlackNotifier(args.slack_webhook).deliver(finding)
    if source is not None:
        body = {"source": source, "finding_id": finding.get("finding_id"), "text": text}
        _emit(out, "slack", {**body, "posted": bool(args.slack_webhook)})
        return
    if text is not None:
        out.write("\n" + "\n".join("      # " + line for line in text.splitlines()) + "\n\n")
    if args.slack_webhook:
        out.write("      slack: posted to the webhook\n")


def export_shift_hours(settings: Settings) -> int:
    """How far `--export` moves the clock: past ExportLagHours, and past the end of today."""
    return settings.export_lag_hours + 26


def _export(aws: LocalAws, replayer: Replayer, out: TextIO, json_mode: bool = False) -> None:
    """One archive cycle. The demo's log groups are minutes old and exports wait ExportLagHours,
    so the cycle runs on a clock moved past the lag and the end of today (said in the output):
    today's objects are then complete, and its manifest is sealed and signed. The security
    account's own groups go by export task; a member account's Connect flow logs are pulled
    through its member-logs role, and land next to them under `logs/<account>/<region>/`."""
    from connect_guard.archive import archive_cycle
    from connect_guard_tools.local_aws import SECURITY_ACCOUNT

    settings = replayer.settings
    now_ms = int(time.time() * 1000)
    own = [f"/connect-guard/{settings.environment}/{name}" for name in ("policy-alerts", "profile-rollback")]
    placed = [(SECURITY_ACCOUNT, aws.region, group, "demo log line") for group in own]
    for instance in aws.instances:
        group = f"/aws/connect/{instance.alias}"
        placed.append((instance.account_id, instance.region, group, "demo contact flow log line"))
        if (instance.account_id, instance.region) == (SECURITY_ACCOUNT, aws.region):
            own.append(group)  # the security stack's own instance (ConnectInstanceAlias): exported by task
    for account, region, group, line in placed:
        logs = aws.account_session(account).client("logs", region_name=region)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):  # the plumbing's, seeded
            logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="demo")
        logs.put_log_events(
            logGroupName=group,
            logStreamName="demo",
            logEvents=[{"timestamp": now_ms, "message": json.dumps({"message": line})}],
        )
    shift_hours = export_shift_hours(settings)
    signing = aws.session.client("kms").create_key(
        KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="connect-guard archive signing key"
    )
    settings = settings.model_copy(
        update={"export_log_groups": tuple(own), "archive_signing_key_arn": signing["KeyMetadata"]["Arn"]}
    )
    report = archive_cycle(settings, aws.clients, clock=lambda: time.time() + shift_hours * 3600)
    keys = [o["Key"] for o in aws.session.client("s3").list_objects_v2(Bucket=aws.archive_bucket).get("Contents", [])]
    sealed = {"manifests/" + "/".join(m.split("/")[1:3]) for m in report.manifests}  # listed below
    landed = sorted({_landed_prefix(k) for k in keys if "/" in k} - sealed)
    if json_mode:
        body = {
            "clock_shift_hours": shift_hours,
            "completed": [{"group": g, "start": _hour(a), "end": _hour(b)} for g, a, b in report.completed],
            "failed": [{"group": g, "reason": reason} for g, reason in report.failed],
            "landed": [
                {"prefix": f"s3://{aws.archive_bucket}/{p}/", "objects": sum(k.startswith(p + "/") for k in keys)}
                for p in landed
            ],
            "manifests": [f"s3://{aws.archive_bucket}/{m}" for m in report.manifests],
        }
        _emit(out, "export", body)
        return
    out.write(f"\n[export] clock moved {shift_hours} h ahead (exports wait ExportLagHours; today is then over)\n")
    for group, start, end in report.completed:
        how = "pulled" if group[:12].isdigit() else "exported"  # `<account>/<region>/<group>`: a member's
        out.write(f"      {how} {group}: {_hour(start)} .. {_hour(end)} (checkpoint advanced)\n")
    for group, reason in report.failed:
        out.write(f"      failed {group}: {reason}\n")
    for prefix in landed:
        out.write(
            f"      s3://{aws.archive_bucket}/{prefix}/ ({sum(k.startswith(prefix + '/') for k in keys)} objects)\n"
        )
    for manifest in report.manifests:
        out.write(f"      s3://{aws.archive_bucket}/{manifest} (day sealed: signed digest manifest)\n")


_DAY_PREFIX = re.compile(r"^(?:logs/.+?|findings|audit)/\d{4}/\d{2}(?:/\d{2})?")


def _landed_prefix(key: str) -> str:
    """The day prefix an archived object is under (`logs/<account>/<region>/<group>/<yyyy>/<mm>/<dd>`, ...)."""
    match = _DAY_PREFIX.match(key)
    return match.group(0) if match else key.rsplit("/", 1)[0]


def _hour(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def _release_all(aws: LocalAws, replayer: Replayer, out: TextIO, json_mode: bool = False) -> None:
    from connect_guard.responders import role_quarantine

    responder = role_quarantine.build(replayer.settings, aws.clients)
    for account in sorted({i.account_id for i in aws.instances} | {"111122223333"}):
        iam = aws.account_session(account).client("iam")
        policy = responder.iam_for(account).policy_arn
        users = [u["UserName"] for u in iam.list_users()["Users"] if _has_policy(iam, "user", u["UserName"], policy)]
        roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if _has_policy(iam, "role", r["RoleName"], policy)]
        for kind, name in [("user", n) for n in users] + [("role", n) for n in roles]:
            user, role = (name, None) if kind == "user" else (None, name)
            done = role_quarantine.release(responder, account, user=user, role=role, by="replay", reason="demo release")
            if json_mode:
                actions = [{"status": a.status, "operation": a.operation} for a in done]
                _emit(out, "release", {"account": account, "principal": kind, "name": name, "actions": actions})
            else:
                out.write(f"[release] {kind} {name} in {account}: quarantine policy detached, tags removed\n")


def _has_policy(iam: Any, kind: str, name: str, policy_arn: str) -> bool:
    if kind == "user":
        attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
    else:
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    return any(p["PolicyArn"] == policy_arn for p in attached)


def _stack_parameter(session: Any, stack: str, name: str) -> str:
    described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return next((p.get("ParameterValue", "") for p in described.get("Parameters", []) if p["ParameterKey"] == name), "")


def _stack_settings(session: Any, stack: str) -> Settings:
    """Settings of a deployed stack, from its outputs and parameters."""
    from connect_guard.settings import Settings
    from connect_guard_tools.errors import UsageError

    described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}
    absent = [k for k in ("AlertTopicArn", "DedupTableName", "BaselineTableName", "AuditTableName") if k not in outputs]
    if absent:
        status = described.get("StackStatus", "")
        raise UsageError(
            f"stack {stack} ({status}) has no output {', '.join(absent)}",
            "name a connect-guard stack that finished deploying",
        )
    return Settings(
        alert_topic_arn=outputs["AlertTopicArn"],
        dedup_table_name=outputs["DedupTableName"],
        baseline_table_name=outputs["BaselineTableName"],
        audit_table_name=outputs["AuditTableName"],
        member_account_ids=parameters.get("MemberAccountIds", ""),
        connect_instance_arns=parameters.get("ConnectInstanceArns", ""),
        quarantine_policy_name=parameters.get("QuarantinePolicyName") or "connect-guard-quarantine",
        environment=parameters.get("Environment", "dev"),
        response_mode=parameters.get("ResponseMode", "detect"),
        identity_center_account_id=parameters.get("IdentityCenterAccountId") or None,
        identity_center_region=parameters.get("IdentityCenterRegion") or None,
        identity_store_id=parameters.get("IdentityStoreId") or None,
        sso_deny_list_policy_id=parameters.get("SsoDenyListPolicyId") or None,
    )


def release_command(args: argparse.Namespace, out: TextIO, session: Any = None) -> int:
    import boto3

    from connect_guard.clients import AwsClients
    from connect_guard.errors import MemberAccessError
    from connect_guard.identity_center import RevocationError
    from connect_guard.responders import role_quarantine
    from connect_guard_tools.errors import UsageError

    if not args.sso_user and not args.account:
        raise UsageError("--account is required with --user or --role", "pass the quarantined principal's account")
    session = session or boto3.session.Session(region_name=args.region)
    settings = _stack_settings(session, args.stack)
    clients = AwsClients(settings.region, session, settings.own_account_id)
    try:
        done = role_quarantine.release(
            role_quarantine.build(settings, clients),
            args.account or settings.identity_center_account_id or "",
            user=args.user,
            role=args.role,
            sso_user=args.sso_user,
            by=args.by,
            reason=args.reason,
        )
    except (RevocationError, MemberAccessError) as error:
        out.write(f"connect-guard release: nothing released: {error}\n")
        return 1
    for action in done:
        out.write(f"{action.status}: {action.operation} {action.parameters}\n")
    return 0 if all(a.status == "taken" for a in done) else 1


def _operator_finding(
    settings: Settings,
    clients: Any,
    *,
    responder: str,
    kind: str,
    severity: Any,
    title: str,
    by: str,
    reasons: list[str],
    account: str,
    target: Any,
    actions: list[Any],
    audit: list[dict[str, Any]],
) -> str:
    """An operator's act, as the suite records its own: audit records (carrying the finding's ID),
    then the finding on the alert topic. Returns the finding ID."""
    from connect_guard.audit import AuditLog
    from connect_guard.findings import Attempt, EventRef, Finding, finding_id_of
    from connect_guard.principals import Actor
    from connect_guard.publisher import SnsPublisher

    assert settings.audit_table_name
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    event_id = f"{kind}:{account}:{target.name}:{now}"
    finding_id = finding_id_of(responder, event_id)
    log = AuditLog(clients.dynamodb, settings.audit_table_name)
    for entry in audit:
        log.record(responder=responder, actor=by, event_id=None, finding_id=finding_id, mode="operator", **entry)
    finding = Finding(
        responder=responder,
        kind=kind,
        severity=severity,
        title=title,
        summary=reasons[0],
        event=EventRef(event_id, kind.rsplit(".", 1)[-1], "connect-guard", now, account, settings.region, ""),
        actor=Actor.system(f"connect-guard operator {by}"),
        attempt=Attempt("succeeded"),
        allowlisted=False,
        reasons=tuple(reasons),
        runbook_url=settings.runbook_url(responder),
        environment=settings.environment,
        mode=settings.response_mode,
        target=target,
        actions=tuple(actions),
    )
    SnsPublisher(clients.sns, settings.alert_topic_arn).publish(finding)
    return finding.finding_id


def restore_command(args: argparse.Namespace, out: TextIO, session: Any = None) -> int:
    import boto3
    from botocore.exceptions import ClientError

    from connect_guard.clients import AwsClients
    from connect_guard.findings import Action, Target
    from connect_guard.policy import Severity
    from connect_guard.quarantine import RoleSnapshots, external_trust, restore_plan, restore_role

    session = session or boto3.session.Session(region_name=args.region)
    settings = _stack_settings(session, args.stack)
    assert settings.baseline_table_name
    clients = AwsClients(settings.region, session, settings.own_account_id)
    snapshot = RoleSnapshots(clients.dynamodb, settings.baseline_table_name).get(args.account, args.role)
    if snapshot is None:
        out.write(f"no snapshot of {args.role} in {args.account}\n")
        return 1
    out.write("will create:\n" + "\n".join(restore_plan(snapshot)) + "\n")
    # A snapshot is data in a table: a trust policy opened to outsiders must not come back unseen.
    trusted = {settings.own_account_id, *settings.member_account_ids, args.account}
    organization = _stack_parameter(session, args.stack, "OrganizationId") or None
    outside = external_trust(snapshot.trust_policy, trusted, organization)
    if outside and not args.allow_external_trust:
        out.write(
            "refused: the trust policy admits principals outside the security account, the enrolled accounts "
            f"and the organization: {', '.join(outside)}. Check the snapshot; --allow-external-trust restores it.\n"
        )
        return 3
    # Re-creating a role is a grant no suite role holds: it runs with the operator's own
    # credentials in that account (the session's, or a role of theirs there).
    if args.assume_role_arn:
        iam = clients.member_client("iam", args.assume_role_arn)
    else:
        caller = session.client("sts").get_caller_identity()["Account"]
        if caller != args.account:
            out.write(
                f"these credentials are for account {caller}: pass --assume-role-arn with a role of yours in "
                f"{args.account} that may create roles\n"
            )
            return 2
        iam = clients.iam
    try:
        steps, status = restore_role(iam, snapshot), "taken"
    except ClientError as error:
        steps, status = [f"failed: {error}"], "failed"
    for step in steps:
        out.write(step + "\n")
    severity = Severity.CRITICAL if outside or status == "failed" else Severity.HIGH
    reasons = [
        f"{args.by} restored role {snapshot.role_name} in {args.account} from its snapshot of {snapshot.taken_at}"
    ]
    reasons += steps
    if outside:
        reasons.append(
            f"its trust admits principals outside the deployment (--allow-external-trust): {', '.join(outside)}"
        )
    parameters = {"RoleName": snapshot.role_name, "Path": snapshot.path, "TrustPolicy": snapshot.trust_policy}
    finding_id = _operator_finding(
        settings,
        clients,
        responder="role_quarantine",
        kind="iam.role_restored",
        severity=severity,
        title=f"Role {'restore FAILED' if status == 'failed' else 'restored'}: {snapshot.role_name} in {args.account} "
        f"by {args.by}",
        by=args.by,
        reasons=reasons,
        account=args.account,
        target=Target("role", snapshot.role_name, snapshot.arn),
        actions=[Action("iam", "CreateRole", parameters, status)],
        audit=[
            {
                "action": "RestoreRole",
                "status": status,
                "target": f"role/{snapshot.role_name}",
                "reason": "; ".join(steps)[:1000],
                "before": None,
                "after": snapshot.to_dict(),
            }
        ],
    )
    out.write(f"finding {finding_id} published, audit record written\n")
    return 0 if status == "taken" else 1


def approve_baseline(args: argparse.Namespace, out: TextIO, session: Any = None) -> int:
    import boto3

    from connect_guard.clients import AwsClients
    from connect_guard.connect import ConnectGateway, InstanceRef
    from connect_guard.sweep import build

    session = session or boto3.session.Session(region_name=args.region)
    settings = _stack_settings(session, args.stack)
    instance = InstanceRef.parse(args.instance_arn, "", "")
    # The operator's own credentials read the instance; the approval is audited and alerted.
    gateway = ConnectGateway(session.client("connect", region_name=instance.region), instance)
    sweep = build(settings, AwsClients(settings.region, session, settings.own_account_id))
    if not sweep.configured(instance):  # a baseline nothing acts on would only mislead
        out.write(f"{instance.arn} is not in the stack's ConnectInstanceArns: nothing approved\n")
        return 2
    result = sweep.approve(gateway, args.approved_by, args.reason)
    approved = sweep.baselines.instance(instance.arn)
    out.write(
        f"approved {len(approved.profiles)} security profiles and {len(approved.users)} users of "
        f"{instance.arn} as the baseline (by {args.approved_by}; {len(result.drift)} change(s) approved)\n"
    )
    return 0


def approve_trail(args: argparse.Namespace, out: TextIO, session: Any = None) -> int:
    import boto3

    from connect_guard.trails import TrailGateway, TrailSnapshots, TrailState

    session = session or boto3.session.Session(region_name=args.region)
    settings = _stack_settings(session, args.stack)
    region, account = args.trail_arn.split(":")[3], args.trail_arn.split(":")[4]
    if not settings.enrolled(account):  # a snapshot nothing acts on would only mislead
        out.write(f"account {account} is not enrolled in the stack (MemberAccountIds): nothing approved\n")
        return 2
    reader = _operator_client(session, "cloudtrail", args.assume_role_arn, region, "connect-guard-approve-trail")
    state = TrailGateway(reader).state(args.trail_arn)
    if state is None:
        out.write(f"{args.trail_arn} does not exist: nothing approved\n")
        return 2
    if not state.records_management_writes:  # a snapshot the guard would restore to blindness
        out.write(f"{args.trail_arn} does not log write management events: not approved\n")
        return 2
    approved = TrailState.from_dict({**state.to_dict(), "taken_at": datetime.now(UTC).isoformat(timespec="seconds")})
    _approve_snapshot(session, settings, TrailSnapshots, state.arn, approved, "ApproveTrailSnapshot", args)
    out.write(f"approved {state.arn} as the trail's snapshot (by {args.approved_by})\n")
    return 0


def _approve_snapshot(
    session: Any, settings: Settings, store: Any, target: str, approved: Any, action: str, args: argparse.Namespace
) -> None:
    """Store `approved` as `target`'s snapshot that logging_guard restores (`store`: its snapshot
    class), and audit the approval with what it replaced."""
    from connect_guard.audit import AuditLog

    assert settings.baseline_table_name and settings.audit_table_name
    dynamodb = session.client("dynamodb", region_name=settings.region)
    snapshots = store(dynamodb, settings.baseline_table_name)
    before = snapshots.get(target)
    snapshots.put(approved)
    AuditLog(dynamodb, settings.audit_table_name).record(
        responder="logging_guard",
        action=action,
        status="taken",
        actor=args.approved_by,
        target=target,
        reason=args.reason,
        before=before.to_dict() if before else None,
        after=approved.to_dict(),
        event_id=None,
        finding_id=None,
        mode=settings.response_mode,
    )


def approve_storage(args: argparse.Namespace, out: TextIO, session: Any = None) -> int:
    import boto3
    from botocore.exceptions import ClientError

    from connect_guard.connect import ConnectGateway, InstanceRef
    from connect_guard.connect_storage import CONTENT_TYPES, RESOURCE_TYPES, StorageSnapshots, StorageState

    session = session or boto3.session.Session(region_name=args.region)
    settings = _stack_settings(session, args.stack)
    instance = InstanceRef.parse(args.instance_arn, "", "")
    gateway = ConnectGateway(session.client("connect", region_name=instance.region), instance)
    configs = []
    for kind in RESOURCE_TYPES:
        try:
            configs.extend(gateway.storage_configs(kind))
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("InvalidRequestException", "InvalidParameterException"):
                raise
            out.write(f"{kind}: not available on this instance ({error.response['Error']['Code']}), approved as none\n")
    for config in configs:
        if config.resource_type in CONTENT_TYPES and config.storage_type == "S3" and not config.kms_key_id:
            out.write(f"warning: {config.resource_type} is stored without a KMS key ({config.describe()})\n")
    taken_at = datetime.now(UTC).isoformat(timespec="seconds")
    approved = StorageState(instance.arn, tuple(configs), taken_at, args.approved_by)
    _approve_snapshot(session, settings, StorageSnapshots, instance.arn, approved, "ApproveStorageSnapshot", args)
    out.write(f"approved {len(configs)} storage config(s) of {instance.arn} as its snapshot (by {args.approved_by})\n")
    return 0


def approve_key(args: argparse.Namespace, out: TextIO, session: Any = None) -> int:
    import re

    import boto3

    from connect_guard.kms_keys import KeyGateway, KeySnapshots, KeyState, account_of, region_of

    if not re.fullmatch(r"arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:key/[\w-]+", args.key_arn):  # before any call
        out.write(f"{args.key_arn} is not a key ARN (an alias is not: name the key it points to): nothing approved\n")
        return 2
    session = session or boto3.session.Session(region_name=args.region)
    settings = _stack_settings(session, args.stack)
    region, account = region_of(args.key_arn), account_of(args.key_arn)
    if not settings.enrolled(account):  # a snapshot nothing acts on would only mislead
        out.write(f"account {account} is not enrolled in the stack (MemberAccountIds): nothing approved\n")
        return 2
    reader = _operator_client(session, "kms", args.assume_role_arn, region, "connect-guard-approve-key")
    state = KeyGateway(reader).state(args.key_arn)
    if state is None:
        out.write(f"{args.key_arn} does not exist: nothing approved\n")
        return 2
    if state.key_manager != "CUSTOMER":
        out.write(f"{args.key_arn} is an AWS managed key (only AWS changes it): nothing approved\n")
        return 2
    if state.key_state != "Enabled":  # a snapshot the guard would keep unusable
        out.write(f"{args.key_arn} is {state.describe_state()}, not Enabled: not approved\n")
        return 2
    if state.rotatable and not state.rotation:
        out.write("warning: automatic rotation is off; it is approved as off\n")
    approved = KeyState.from_dict({**state.to_dict(), "taken_at": datetime.now(UTC).isoformat(timespec="seconds")})
    _approve_snapshot(session, settings, KeySnapshots, state.arn, approved, "ApproveKeySnapshot", args)
    out.write(f"approved {state.arn} as the key's snapshot (by {args.approved_by})\n")
    return 0


def _operator_client(session: Any, service: str, role_arn: str | None, region: str, session_name: str) -> Any:
    """A client with the operator's own credentials or their role in the resource's account (the
    suite's member roles trust only the suite's functions)."""
    if not role_arn:
        return session.client(service, region_name=region)
    credentials = session.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)
    keys = credentials["Credentials"]
    return session.client(
        service,
        region_name=region,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if argv is None:  # the console script: the process ends on return
        # Skip the collector's passes over every object at interpreter exit (botocore's models,
        # moto's backends: ~0.4 s of a one-event replay's wall time) that free nothing the exit doesn't.
        gc.freeze()
    return code


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # a bad argument (one line already on stderr), or --help
        return stop.code if isinstance(stop.code, int) else 2
    try:
        if args.command == "replay":
            return replay(args, sys.stdout)
        if args.command == "approve-baseline":
            return approve_baseline(args, sys.stdout)
        if args.command == "approve-trail":
            return approve_trail(args, sys.stdout)
        if args.command == "approve-storage":
            return approve_storage(args, sys.stdout)
        if args.command == "approve-key":
            return approve_key(args, sys.stdout)
        if args.command == "release":
            return release_command(args, sys.stdout)
        if args.command == "restore-role":
            return restore_command(args, sys.stdout)
        if args.command == "redrive":
            from connect_guard_tools.operations import redrive_command

            return redrive_command(args, sys.stdout)
        if args.command == "status":
            from connect_guard_tools.operations import status_command

            return status_command(args, sys.stdout)
        if args.command == "verify-archive":
            from connect_guard_tools.verify_archive import verify_command

            return verify_command(args, sys.stdout)
    except BrokenPipeError:  # `connect-guard replay | head`: the reader has all it wants
        sys.stderr.close()
        return 0
    except (Exception, KeyboardInterrupt) as error:  # the one error boundary: one line, never a traceback
        return _report_error(args, error)
    return 2


def _report_error(args: argparse.Namespace, error: BaseException) -> int:
    from connect_guard_tools.errors import describe, exit_code

    if getattr(args, "debug", False):
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    sys.stderr.write(f"connect-guard {args.command}: {describe(error, _region_of(args))}\n")
    return exit_code(error)


def _region_of(args: argparse.Namespace) -> str | None:
    """The region a command ran in, as boto3 resolves it (for messages only)."""
    if getattr(args, "region", None):
        return str(args.region)
    try:
        import boto3

        return boto3.session.Session().region_name
    except Exception:  # an unusable profile: the message says so already
        return None


if __name__ == "__main__":
    sys.exit(main())
