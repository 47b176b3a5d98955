"""`connect-guard redrive` and `connect-guard status` on a deployed stack.

The stack's queues are found by their logical IDs in template.yaml (CloudFormation's stack
resources), so a control name means the same queue pair in every deployment.

- redrive: a responder's DLQ goes back to its queue with an SQS message-move task, as the
  stack's RedriveRole (output RedriveRoleArn), the one principal besides the EventBridge rule
  that the queue's policy lets send. The other DLQs are not move-task sources (SQS moves only
  the DLQ of an SQS queue): their messages are counted and left for an operator (`hand`).
- status: per control the queue's depth and oldest message age, the DLQ's depth and any move
  task running; the stack's alarms in ALARM; the last canary heard per account and region;
  the response mode in force per control.

Every AWS error (no region, no credentials, no network, an unknown stack, AccessDenied) ends
in an OperationError with one line; nothing starts before the whole plan is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard_tools.errors import UsageError, describe

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
AGE_WINDOW = timedelta(minutes=15)  # ApproximateAgeOfOldestMessage: SQS sends it each minute


class OperationError(UsageError):
    """One clear line for the operator; the command exits 2. No region, no credentials or no
    network are not caught here: the CLI's error boundary words them like every command's."""


@dataclass(frozen=True)
class Control:
    """A control's queues by logical ID: `queue` feeds it, `dlq` keeps what it gave up on.
    `hand` says why the DLQ is not a move-task source and what to do instead."""

    name: str
    dlq: str
    queue: str | None = None
    hand: str | None = None

    @property
    def movable(self) -> bool:
        return self.hand is None and self.queue is not None


_SNS_DLQ = (
    "SNS's subscription DLQ (and Lambda's on-failure destination): not a move-task source. Each "
    "message is the finding SNS could not deliver; fix the cause, then re-publish or purge it by hand"
)
CONTROLS: tuple[Control, ...] = (
    Control("policy-alerts", "PolicyAlertsDLQ", "PolicyAlertsQueue"),
    Control("profile-rollback", "ProfileRollbackDLQ", "ProfileRollbackQueue"),
    Control("role-quarantine", "QuarantineDLQ", "QuarantineQueue"),
    Control("logging-guard", "LoggingGuardDLQ", "LoggingGuardQueue"),
    Control("liveness", "LivenessDLQ", "LivenessQueue"),
    Control(
        "findings-archive",
        "FindingsArchiveDLQ",
        "FindingsArchiveQueue",
        hand="SNS's subscription DLQ: not a move-task source. Fix the suite key or queue policy; the "
        "findings also reached every other subscriber, archive them by hand if the evidence is needed",
    ),
    Control("slack-notifier", "SlackNotifierDLQ", hand=_SNS_DLQ),
    Control("security-hub", "SecurityHubImportDLQ", hand=_SNS_DLQ),
    Control("chat-notifier", "ChatNotifierDLQ", hand=_SNS_DLQ),
    Control(
        "event-delivery",
        "EventDeliveryDLQ",
        hand="EventBridge's DLQ: not a move-task source. Each message carries the rule (RULE_ARN "
        "attribute) and why delivery failed (ERROR_CODE); fix the queue policy or key, then look the "
        "events up in CloudTrail: the drift sweep re-checks what they changed",
    ),
    Control(
        "schedules",
        "SweepDLQ",
        hand="EventBridge Scheduler's DLQ: not a move-task source. A missed sweep, snapshot, export or "
        "check runs again at its next schedule; purge the messages once it has",
    ),
)
CONTROL_NAMES = tuple(c.name for c in CONTROLS)
# Per-control mode parameters (inherit | detect | enforce; inherit follows ResponseMode).
MODE_PARAMETERS = {
    "profile-rollback": "ProfileRollbackMode",
    "baseline-sweep": "BaselineSweepMode",
    "role-quarantine": "QuarantineMode",
    "logging-guard": "LoggingGuardMode",
}


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """AWS's refusals as one line naming what was being done."""
    try:
        yield
    except ClientError as error:
        info = error.response.get("Error", {})
        raise OperationError(
            f"{doing}: {info.get('Code', 'error')}: {info.get('Message', error)}",
            "check the stack's name and region and that your credentials may read it",
        ) from None


# ---- the stack ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stack:
    name: str
    partition: str
    queues: dict[str, str]  # logical ID → queue URL
    parameters: dict[str, str]
    outputs: dict[str, str]

    def arn(self, logical_id: str) -> str:
        host, account, name = self.queues[logical_id].split("/")[-3:]
        return f"arn:{self.partition}:sqs:{host.split('.')[1]}:{account}:{name}"

    def deployed(self, control: Control) -> bool:
        return control.dlq in self.queues


def resolve_stack(session: Any, name: str) -> Stack:
    """The stack's queues (by logical ID), parameters and outputs."""
    cloudformation = session.client("cloudformation")
    # A missing stack, no region, no credentials: worded by the CLI's error boundary, as for
    # every command ("unknown stack X in <region>; check --stack and --region").
    described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    with aws_errors(f"stack {name}"):
        queues: dict[str, str] = {}
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
            for resource in page["StackResourceSummaries"]:
                if resource["ResourceType"] == "AWS::SQS::Queue" and resource.get("PhysicalResourceId"):
                    queues[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    if not any(c.dlq in queues for c in CONTROLS):
        raise OperationError(f"stack {name} has none of connect-guard's queues: is it a connect-guard stack?")
    return Stack(
        name=name,
        partition=str(described["StackId"]).split(":")[1],
        queues=queues,
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])},
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
    )


def select(stack: Stack, names: Sequence[str] | None) -> list[Control]:
    """The named controls (all deployed ones by default); a named one not deployed is an error."""
    if not names:
        return [c for c in CONTROLS if stack.deployed(c)]
    chosen = [c for c in CONTROLS if c.name in names]
    missing = [c.name for c in chosen if not stack.deployed(c)]
    if missing:
        raise OperationError(f"not deployed in stack {stack.name}: {', '.join(missing)}")
    return chosen


def redrive_session(session: Any, stack: Stack) -> Any:
    """A session as the stack's RedriveRole (the responder queues admit no other sender)."""
    import boto3

    role = stack.outputs.get("RedriveRoleArn")
    if not role:
        raise OperationError(
            f"stack {stack.name} has no RedriveRoleArn output (deployed before redrive existed?): "
            "update the stack (its responder queues admit only their rules and that role)"
        )
    with aws_errors(f"assume {role}"):
        credentials = session.client("sts").assume_role(RoleArn=role, RoleSessionName="connect-guard-redrive")
    keys = credentials["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
        region_name=session.region_name,
    )


# ---- redrive --------------------------------------------------------------------------------
@dataclass
class Move:
    """One control's redrive: what its DLQ held, and what the task did."""

    control: str
    dlq: str
    queue: str | None
    messages: int | None  # the DLQ's visible messages when planned (None: unreadable)
    in_flight: int = 0  # received and not yet deleted (not moved until visible again)
    status: str = "planned"  # planned | empty | refused | hand | RUNNING | COMPLETED | FAILED | CANCELLED | error
    moved: int = 0
    to_move: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("planned", "empty", "hand", "COMPLETED")

    def line(self) -> str:
        where = f"{self.dlq} -> {self.queue}" if self.queue and self.status != "hand" else self.dlq
        count = "?" if self.messages is None else str(self.messages)
        text = {
            "planned": f"{count} message(s) to move",
            "empty": "empty",
            "hand": f"{count} message(s): inspect by hand ({self.reason})",
            "refused": f"{count} message(s), not started: {self.reason}",
            "error": f"not started: {self.reason}",
        }.get(self.status)
        if text is None:
            text = f"{self.status}: moved {self.moved} of {self.to_move if self.to_move is not None else count}"
            if self.reason:
                text += f" ({self.reason})"
        return f"{self.control:<17} {where}: {text}"


def _depth(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes.get(names[0], 0)), int(attributes.get(names[1], 0))


def _latest_task(sqs: Any, source_arn: str) -> dict[str, Any] | None:
    results = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1).get("Results") or []
    return results[0] if results else None


def plan(stack: Stack, controls: list[Control], sqs: Any, operator_sqs: Any) -> list[Move]:
    """Read every DLQ and its latest task; no write. The hand-only DLQs are read with the
    operator's own credentials (the redrive role may read only the responder DLQs)."""
    moves = []
    for control in controls:
        url = stack.queues[control.dlq]
        if not control.movable:
            move = Move(control.name, control.dlq, control.queue, None, status="hand", reason=control.hand)
            try:
                move.messages, move.in_flight = _depth(operator_sqs, url)
            except ClientError as error:
                move.reason = f"depth unreadable: {error.response.get('Error', {}).get('Code')}; {control.hand}"
            if move.messages == 0 and move.in_flight == 0:
                move.status, move.reason = "empty", None
            moves.append(move)
            continue
        with aws_errors(f"{control.name}: read {control.dlq}"):
            task = _latest_task(sqs, stack.arn(control.dlq))  # first: a task ending meanwhile empties the DLQ
            visible, in_flight = _depth(sqs, url)
        move = Move(control.name, control.dlq, control.queue, visible, in_flight)
        if task and task.get("Status") in ("RUNNING", "CANCELLING"):
            move.status = "refused"
            move.reason = (
                f"a move task is already {task['Status']} on {control.dlq} (moved "
                f"{task.get('ApproximateNumberOfMessagesMoved', 0)} of "
                f"{task.get('ApproximateNumberOfMessagesToMove', '?')}); wait for it (connect-guard status)"
            )
        elif visible == 0:
            move.status = "empty"
            if in_flight:
                move.reason = f"{in_flight} in flight (being received): run again when visible"
        moves.append(move)
    return moves


def start(stack: Stack, moves: list[Move], sqs: Any) -> None:
    """Start a task for each planned move; one that SQS refuses is reported, the others run."""
    for move in moves:
        if move.status != "planned" or move.queue is None:
            continue
        try:
            sqs.start_message_move_task(SourceArn=stack.arn(move.dlq), DestinationArn=stack.arn(move.queue))
            move.status = "RUNNING"
        except ClientError as error:
            info = error.response.get("Error", {})
            move.status, move.reason = "error", f"{info.get('Code')}: {info.get('Message')}"


def follow(
    stack: Stack,
    moves: list[Move],
    sqs: Any,
    progress: Callable[[Move], None],
    poll_seconds: float,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll each running task until it ends (or the timeout: it goes on in SQS, and `status`
    shows it); `progress` hears every change of the count moved."""
    deadline = time.monotonic() + timeout_seconds
    running = [m for m in moves if m.status == "RUNNING"]
    while running:
        for move in running:
            try:
                task = _latest_task(sqs, stack.arn(move.dlq)) or {}
            except ClientError as error:  # the task goes on; this run can no longer say how
                move.status, move.reason = "unknown", f"progress unreadable: {error.response['Error'].get('Code')}"
                continue
            moved, status = int(task.get("ApproximateNumberOfMessagesMoved", 0)), str(task.get("Status", "RUNNING"))
            changed = moved != move.moved or status != move.status
            move.moved, move.status = moved, status
            move.to_move = task.get("ApproximateNumberOfMessagesToMove", move.to_move)
            move.reason = task.get("FailureReason") or move.reason
            if changed:
                progress(move)
        running = [m for m in running if m.status == "RUNNING"]
        if running and time.monotonic() >= deadline:
            for move in running:
                move.reason = "still running after the timeout: it goes on in SQS (connect-guard status)"
            return
        if running:
            sleep(poll_seconds)


def redrive(
    session: Any,
    stack_name: str,
    control_names: Sequence[str] | None,
    out: TextIO,
    *,
    dry_run: bool = False,
    assume_role: bool = True,
    as_json: bool = False,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 900.0,
    err: TextIO | None = None,
) -> int:
    """0: everything movable moved (or, dry run, planned); 1: a move refused, failed or still
    running; OperationError before anything started."""
    import json

    stack = resolve_stack(session, stack_name)
    controls = select(stack, control_names)
    mover = redrive_session(session, stack) if assume_role else session
    with aws_errors("sqs"):
        sqs, operator_sqs = mover.client("sqs"), session.client("sqs")
    moves = plan(stack, controls, sqs, operator_sqs)
    notes = err if as_json and err is not None else out
    if not dry_run:
        start(stack, moves, sqs)
        for move in moves:
            if move.status == "RUNNING":
                notes.write(f"{move.control:<17} started: {move.dlq} -> {move.queue} ({move.messages} message(s))\n")

        def progress(move: Move) -> None:
            to_move = "?" if move.to_move is None else move.to_move
            notes.write(f"{move.control:<17} ... {move.moved} of {to_move} moved ({move.status.lower()})\n")

        follow(stack, moves, sqs, progress, poll_seconds, timeout_seconds)
    moved = sum(m.moved for m in moves)
    if as_json:
        report = {"kind": "redrive", "stack": stack.name, "dry_run": dry_run, "moved": moved}
        report["controls"] = [asdict(m) for m in moves]
        out.write(json.dumps(report) + "\n")
    else:
        if dry_run:
            out.write(f"dry run: nothing moved in stack {stack.name}\n")
        for move in moves:
            out.write(move.line() + "\n")
        if not dry_run:
            out.write(f"moved {moved} message(s)\n")
    return 0 if all(m.ok for m in moves) else 1


# ---- status ---------------------------------------------------------------------------------
@dataclass
class QueueStatus:
    control: str
    queue: str | None
    visible: int | None = None
    in_flight: int | None = None
    oldest_age_seconds: float | None = None  # None: no data
    dlq: str | None = None
    dlq_visible: int | None = None
    move_task: str | None = None
    error: str | None = None


@dataclass
class Status:
    stack: str
    queues: list[QueueStatus] = field(default_factory=list)
    alarms: list[dict[str, str]] = field(default_factory=list)
    canaries: list[dict[str, str | None]] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    detect_only_accounts: list[str] = field(default_factory=list)


def modes(parameters: dict[str, str]) -> dict[str, str]:
    """The mode in force per control: its own parameter (when the stack has it), else ResponseMode."""
    response = parameters.get("ResponseMode", "detect")
    found = {"default (ResponseMode)": response}
    for control, parameter in MODE_PARAMETERS.items():
        value = parameters.get(parameter)
        if value is None:
            found[control] = response
        elif value == "inherit":
            found[control] = f"{response} (inherit)"
        else:
            found[control] = value
    return found


def _oldest_age(cloudwatch: Any, queue_name: str, now: datetime) -> float | None:
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "age",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateAgeOfOldestMessage",
                        "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=now - AGE_WINDOW,
        EndTime=now,
        ScanBy="TimestampDescending",
    )
    values = (answer.get("MetricDataResults") or [{}])[0].get("Values") or []
    return float(values[0]) if values else None


def _canaries(dynamodb: Any, table: str) -> list[dict[str, str | None]]:
    """The liveness function's records (connect_guard.liveness: pk canary#<account>#<region>)."""
    found = []
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(pk, :canary)",
        ExpressionAttributeValues={":canary": {"S": "canary#"}},
    ):
        for item in page.get("Items", []):
            _, account, region = item["pk"]["S"].split("#", 2)
            found.append(
                {
                    "account": account,
                    "region": region,
                    "service": item["sk"]["S"],
                    "heard_at": item.get("heard_at", {}).get("S"),
                    "expected_since": item.get("expected_since", {}).get("S"),
                    "silent_alerted_at": item.get("silent_alerted_at", {}).get("S"),
                }
            )
    return sorted(found, key=lambda c: (str(c["account"]), str(c["region"]), str(c["service"])))


def _alarms(cloudwatch: Any, prefix: str) -> list[dict[str, str]]:
    alarms = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix, StateValue="ALARM"):
        for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
            alarms.append(
                {
                    "name": alarm["AlarmName"],
                    "since": alarm["StateUpdatedTimestamp"].isoformat(timespec="seconds"),
                    "reason": alarm.get("StateReason", ""),
                }
            )
    return alarms


def _queue_status(stack: Stack, control: Control, sqs: Any, cloudwatch: Any, now: datetime) -> QueueStatus:
    status = QueueStatus(control.name, control.queue, dlq=control.dlq)
    try:
        if control.queue and control.queue in stack.queues:
            status.visible, status.in_flight = _depth(sqs, stack.queues[control.queue])
            status.oldest_age_seconds = _oldest_age(cloudwatch, stack.queues[control.queue].rsplit("/", 1)[-1], now)
        status.dlq_visible, _ = _depth(sqs, stack.queues[control.dlq])
    except ClientError as error:  # one unreadable queue does not hide the others
        info = error.response.get("Error", {})
        status.error = f"{info.get('Code')}: {info.get('Message')}"
        return status
    try:
        task = _latest_task(sqs, stack.arn(control.dlq)) if control.movable else None
        if task and task.get("Status") in ("RUNNING", "CANCELLING"):
            status.move_task = (
                f"{task['Status']} {task.get('ApproximateNumberOfMessagesMoved', 0)}/"
                f"{task.get('ApproximateNumberOfMessagesToMove', '?')}"
            )
    except ClientError as error:  # e.g. these credentials may read queues, not move tasks
        status.move_task = f"unreadable ({error.response.get('Error', {}).get('Code')})"
    return status


def status(session: Any, stack_name: str, now: datetime | None = None) -> Status:
    now = now or datetime.now(UTC)
    stack = resolve_stack(session, stack_name)
    environment = stack.parameters.get("Environment", "dev")
    report = Status(stack.name, modes=modes(stack.parameters))
    report.detect_only_accounts = [a for a in stack.parameters.get("DetectOnlyAccountIds", "").split(",") if a]
    with aws_errors(f"status of {stack.name}"):
        sqs, cloudwatch = session.client("sqs"), session.client("cloudwatch")
        report.queues = [_queue_status(stack, c, sqs, cloudwatch, now) for c in CONTROLS if stack.deployed(c)]
        report.alarms = _alarms(cloudwatch, f"connect-guard-{environment}-")
        table = stack.outputs.get("BaselineTableName")
        if table:
            report.canaries = _canaries(session.client("dynamodb"), table)
    return report


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "no data"
    return f"{int(seconds)} s" if seconds < 120 else f"{int(seconds // 60)} min"


def write_status(report: Status, out: TextIO, as_json: bool = False) -> None:
    import json

    if as_json:
        out.write(json.dumps({"kind": "status", **asdict(report)}) + "\n")
        return
    out.write(f"stack {report.stack}\n\nqueues (visible / in flight, oldest message age; DLQ depth)\n")
    for q in report.queues:
        if q.error:
            out.write(f"  {q.control:<17} unreadable: {q.error}\n")
            continue
        queue = f"{q.visible} / {q.in_flight}, {_age(q.oldest_age_seconds)}" if q.queue else "-"
        task = f"  redrive {q.move_task}" if q.move_task else ""
        out.write(f"  {q.control:<17} {queue:<22} DLQ {q.dlq_visible}{task}\n")
    out.write(f"\nalarms in ALARM: {len(report.alarms) or 'none'}\n")
    for alarm in report.alarms:
        out.write(f"  {alarm['name']} since {alarm['since']}\n")
    out.write("\nlast canary heard (account, region, service)\n")
    if not report.canaries:
        out.write("  none recorded\n")
    for c in report.canaries:
        heard = c["heard_at"] or f"never (expected since {c['expected_since']})"
        silent = f"  SILENT, alerted {c['silent_alerted_at']}" if c["silent_alerted_at"] else ""
        out.write(f"  {c['account']} {c['region']:<14} {c['service']:<8} {heard}{silent}\n")
    out.write("\nmode in force\n")
    for control, mode in report.modes.items():
        out.write(f"  {control:<22} {mode}\n")
    if report.detect_only_accounts:
        out.write(f"  detect only in: {', '.join(report.detect_only_accounts)}\n")


# ---- the commands ---------------------------------------------------------------------------
def _session(args: Any, session: Any) -> Any:
    import boto3

    if session is not None:
        return session
    with aws_errors("connect-guard"):
        return boto3.session.Session(region_name=args.region)


def redrive_command(args: Any, out: TextIO, session: Any = None, err: TextIO | None = None) -> int:
    import sys

    err = err or sys.stderr
    if args.timeout < 0 or args.poll_seconds < 0:
        err.write("connect-guard redrive: --timeout must be 0 or more seconds\n")
        return 2
    try:
        return redrive(
            _session(args, session),
            args.stack,
            args.control,
            out,
            dry_run=args.dry_run,
            assume_role=not args.no_assume_role,
            as_json=args.format == "json",
            poll_seconds=args.poll_seconds,
            timeout_seconds=args.timeout,
            err=err,
        )
    except (OperationError, ClientError, BotoCoreError) as error:
        err.write(f"connect-guard redrive: {describe(error, _region(args, session))}\n")
        return 2


def status_command(args: Any, out: TextIO, session: Any = None, err: TextIO | None = None) -> int:
    import sys

    err = err or sys.stderr
    try:
        report = status(_session(args, session), args.stack)
    except (OperationError, ClientError, BotoCoreError) as error:
        err.write(f"connect-guard status: {describe(error, _region(args, session))}\n")
        return 2
    write_status(report, out, as_json=args.format == "json")
    return 0


def _region(args: Any, session: Any) -> str | None:
    """Where the command ran, for the error line (None when no region is configured)."""
    return getattr(args, "region", None) or getattr(session, "region_name", None)
