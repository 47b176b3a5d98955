"""`connect-guard redrive` and `connect-guard status` against a stack in the embedded AWS: its
queues as template.yaml declares them (tests/integration/operations_stack.py), SQS's
message-move tasks as the embedded AWS runs them (connect_guard_tools.message_moves)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from connect_guard.responders import policy_alerts
from connect_guard_tools import cli
from connect_guard_tools.operations import CONTROLS, OperationError, aws_errors, redrive_command, status_command
from connect_guard_tools.template import load_template
from tests.conftest import delivered_now, load_event, with_new_event_id
from tests.integration.operations_stack import STACK, arn, deliver, deploy, queues
from tests.integration.runtime_support import ClockedContext, sqs_record, wire

ADMIN_ATTACH = "iam/attach-user-policy-administratoraccess.json"


def run(aws: Any, *argv: str, session: Any = None) -> tuple[int, str, str]:
    """The command as `connect-guard <argv>` runs it (no wait between polls)."""
    args = cli._parser().parse_args([*argv, "--poll-seconds", "0"] if argv[0] == "redrive" else list(argv))
    out, err = io.StringIO(), io.StringIO()
    command = redrive_command if args.command == "redrive" else status_command
    code = command(args, out, session=session or aws.session, err=err)
    return code, out.getvalue(), err.getvalue()


def send(aws: Any, url: str, *bodies: str, reason: str = "poison: not JSON") -> None:
    sqs = aws.session.client("sqs")
    for body in bodies:
        attributes = {"connect_guard.reason": {"DataType": "String", "StringValue": reason}}
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)


def drain(aws: Any, url: str) -> list[dict[str, Any]]:
    sqs, found = aws.session.client("sqs"), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages"
    ):
        for message in batch:
            found.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def depth(aws: Any, url: str) -> int:
    attributes = aws.session.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def started_tasks(aws: Any) -> list[Any]:
    """Every move task SQS took (whoever's credentials started it)."""
    return [task for tasks in aws.message_moves.tasks.values() for task in tasks]


@pytest.fixture
def stack(aws: Any) -> dict[str, str]:
    deploy(aws, ProfileRollbackMode="enforce", QuarantineMode="inherit", ResponseMode="detect")
    aws.recorder.clear()
    return queues(aws)


def test_a_redriven_dlq_arrives_in_its_queue_and_the_responder_processes_it(aws, stack, monkeypatch):
    events = [delivered_now(with_new_event_id(load_event(ADMIN_ATTACH))) for _ in range(2)]
    send(aws, stack["PolicyAlertsDLQ"], *(json.dumps(e) for e in events), reason="SNS did not answer")

    code, out, _ = run(aws, "redrive", "--stack", STACK)

    assert code == 0, out
    assert "PolicyAlertsDLQ -> PolicyAlertsQueue: COMPLETED: moved 2 of 2" in out
    assert out.rstrip().endswith("moved 2 message(s)")
    assert depth(aws, stack["PolicyAlertsDLQ"]) == 0
    # Body and message attributes as they were, in a new message of the responder's queue.
    arrived = drain(aws, stack["PolicyAlertsQueue"])
    assert sorted(json.loads(m["Body"])["id"] for m in arrived) == sorted(e["id"] for e in events)
    assert {m["MessageAttributes"]["connect_guard.reason"]["StringValue"] for m in arrived} == {"SNS did not answer"}

    queue = arn(stack["PolicyAlertsQueue"])
    responder = wire(aws, monkeypatch, policy_alerts.build, "PolicyAlerts", mode="detect", SOURCE_QUEUE_ARN=queue)
    records = [sqs_record(m["Body"], m["MessageId"], source=queue) for m in arrived]
    assert responder.handler(responder.batch(*records), ClockedContext()) == {"batchItemFailures": []}
    titles = [json.loads(m["Message"])["title"] for m in aws.inbox()]
    assert titles == ["AdministratorAccess attached to user alice in 111122223333"] * 2


def test_a_dry_run_moves_nothing_and_reports_the_counts(aws, stack):
    send(aws, stack["QuarantineDLQ"], "a", "b", "c")
    send(aws, stack["EventDeliveryDLQ"], "undelivered")

    code, out, _ = run(aws, "redrive", "--stack", STACK, "--dry-run")

    assert code == 0
    assert out.startswith(f"dry run: nothing moved in stack {STACK}\n")
    assert "QuarantineDLQ -> QuarantineQueue: 3 message(s) to move" in out
    assert "PolicyAlertsDLQ -> PolicyAlertsQueue: empty" in out
    assert "EventDeliveryDLQ: 1 message(s): inspect by hand (EventBridge's DLQ: not a move-task source" in out
    assert started_tasks(aws) == []
    assert depth(aws, stack["QuarantineDLQ"]) == 3 and depth(aws, stack["QuarantineQueue"]) == 0


def test_control_selects_the_dlqs_redriven(aws, stack):
    send(aws, stack["ProfileRollbackDLQ"], "p1", "p2")
    send(aws, stack["LoggingGuardDLQ"], "l1")
    send(aws, stack["LivenessDLQ"], "c1")

    code, out, _ = run(aws, "redrive", "--stack", STACK, "--control", "profile-rollback", "--control", "liveness")

    assert code == 0
    completed = [line.split()[0] for line in out.splitlines() if "COMPLETED" in line]
    assert completed[-2:] == ["profile-rollback", "liveness"]
    assert "logging-guard" not in out
    assert depth(aws, stack["ProfileRollbackQueue"]) == 2 and depth(aws, stack["LivenessQueue"]) == 1
    assert depth(aws, stack["LoggingGuardDLQ"]) == 1 and depth(aws, stack["LoggingGuardQueue"]) == 0


def test_a_second_redrive_while_one_runs_is_refused(aws, stack):
    send(aws, stack["PolicyAlertsDLQ"], *(f"m{i}" for i in range(5)))
    aws.message_moves.hold()  # the first task stays RUNNING, as a large one does
    code, out, _ = run(aws, "redrive", "--stack", STACK, "--control", "policy-alerts", "--timeout", "0")
    assert code == 1
    assert "still running after the timeout: it goes on in SQS" in out

    code, out, _ = run(aws, "redrive", "--stack", STACK, "--control", "policy-alerts")
    assert code == 1
    assert "5 message(s), not started: a move task is already RUNNING on PolicyAlertsDLQ (moved 0 of 5)" in out
    assert len(started_tasks(aws)) == 1
    status_code, status, _ = run(aws, "status", "--stack", STACK)
    assert status_code == 0 and "redrive RUNNING 0/5" in status

    # SQS itself refuses a second active task on the same DLQ.
    sqs = aws.session.client("sqs")
    with pytest.raises(sqs.exceptions.ClientError, match="already a task running"):
        sqs.start_message_move_task(SourceArn=arn(stack["PolicyAlertsDLQ"]))

    aws.message_moves.hold(False)
    code, out, _ = run(aws, "redrive", "--stack", STACK, "--control", "policy-alerts")
    assert code == 0 and "PolicyAlertsDLQ -> PolicyAlertsQueue: empty" in out  # the first task finished it
    assert depth(aws, stack["PolicyAlertsQueue"]) == 5


def test_a_redrive_that_fails_part_way_reports_what_moved(aws, stack):
    send(aws, stack["QuarantineDLQ"], *(f"q{i}" for i in range(12)))
    send(aws, stack["PolicyAlertsDLQ"], "p")
    aws.message_moves.fail_after(arn(stack["QuarantineDLQ"]), 7, "KMS.AccessDeniedException")

    code, out, _ = run(aws, "redrive", "--stack", STACK)

    assert code == 1
    assert "QuarantineDLQ -> QuarantineQueue: FAILED: moved 7 of 12 (KMS.AccessDeniedException)" in out
    assert "PolicyAlertsDLQ -> PolicyAlertsQueue: COMPLETED: moved 1 of 1" in out  # the others still ran
    assert out.rstrip().endswith("moved 8 message(s)")
    assert depth(aws, stack["QuarantineQueue"]) == 7 and depth(aws, stack["QuarantineDLQ"]) == 5


def test_json_is_one_object_with_the_counts(aws, stack):
    send(aws, stack["LivenessDLQ"], "c1", "c2")
    args = cli._parser().parse_args(["redrive", "--stack", STACK, "--format", "json", "--poll-seconds", "0"])
    out, err = io.StringIO(), io.StringIO()
    assert redrive_command(args, out, session=aws.session, err=err) == 0
    (line,) = out.getvalue().splitlines()
    report = json.loads(line)
    assert report["kind"] == "redrive" and report["moved"] == 2
    (liveness,) = [c for c in report["controls"] if c["control"] == "liveness"]
    assert (liveness["status"], liveness["moved"], liveness["to_move"]) == ("COMPLETED", 2, 2)
    assert "liveness" in err.getvalue()  # progress, off stdout


# ---- bad input: one line, exit 2, nothing started -----------------------------------------------
def test_an_unknown_stack_is_one_line_and_exit_2(aws):
    for command in ("redrive", "status"):
        code, out, err = run(aws, command, "--stack", "no-such-stack")
        assert (code, out) == (2, "")
        assert err == (
            f"connect-guard {command}: unknown stack no-such-stack in us-east-1; "
            "check --stack and --region (aws cloudformation list-stacks)\n"
        )


def test_a_control_not_deployed_starts_nothing(aws, stack):
    send(aws, stack["PolicyAlertsDLQ"], "p")
    code, out, err = run(aws, "redrive", "--stack", STACK, "--control", "policy-alerts", "--control", "slack-notifier")
    assert (code, out) == (2, "")
    assert err == f"connect-guard redrive: not deployed in stack {STACK}: slack-notifier\n"
    assert started_tasks(aws) == [] and depth(aws, stack["PolicyAlertsDLQ"]) == 1


def test_an_unknown_control_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli._parser().parse_args(["redrive", "--stack", STACK, "--control", "policy-alert"])
    assert exit_.value.code == 2
    assert "invalid choice: 'policy-alert'" in capsys.readouterr().err


def test_a_negative_timeout_is_refused(aws, stack):
    send(aws, stack["PolicyAlertsDLQ"], "p")
    code, out, err = run(aws, "redrive", "--stack", STACK, "--timeout", "-5")
    assert (code, out, err) == (2, "", "connect-guard redrive: --timeout must be 0 or more seconds\n")
    assert started_tasks(aws) == []


def test_a_stack_without_the_redrive_role_says_so(aws):
    deploy(aws, with_role=False)
    send(aws, queues(aws)["PolicyAlertsDLQ"], "p")
    code, _, err = run(aws, "redrive", "--stack", STACK)
    assert code == 2
    assert "has no RedriveRoleArn output (deployed before redrive existed?)" in err
    assert started_tasks(aws) == []
    # With the operator's own credentials, on request: the queue's policy refuses them.
    code, out, _ = run(aws, "redrive", "--stack", STACK, "--no-assume-role")
    assert code == 1 and "PolicyAlertsDLQ -> PolicyAlertsQueue: FAILED: moved 0 of 1 (AccessDenied)" in out
    assert depth(aws, queues(aws)["PolicyAlertsDLQ"]) == 1


def test_a_stack_that_is_not_connect_guard_is_refused(aws):
    body = {"Resources": {"Other": {"Type": "AWS::SQS::Queue"}}}
    aws.session.client("cloudformation").create_stack(StackName="other", TemplateBody=json.dumps(body))
    code, _, err = run(aws, "status", "--stack", "other")
    assert code == 2 and "has none of connect-guard's queues" in err


def test_no_region_or_credentials_is_one_line(aws, monkeypatch):
    for variable in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(variable, raising=False)
    code, _, err = run(aws, "status", "--stack", STACK, session=boto3.session.Session())
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("connect-guard status: no AWS region configured; ")
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = run(aws, "redrive", "--stack", STACK, session=boto3.session.Session(region_name="us-east-1"))
    assert code == 2 and err.startswith("connect-guard redrive: no AWS credentials") and len(err.splitlines()) == 1


def test_access_denied_is_one_line():
    from botocore.exceptions import ClientError

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "DescribeStacks")
    with pytest.raises(OperationError, match=r"^stack s: AccessDenied: not authorized$"), aws_errors("stack s"):
        raise denied


# ---- status -------------------------------------------------------------------------------------
def test_status_shows_depths_age_alarms_canaries_and_modes(aws, stack):
    deliver(stack["ProfileRollbackQueue"], "waiting", "waiting")
    send(aws, stack["ProfileRollbackDLQ"], "gave up")
    name = stack["ProfileRollbackQueue"].rsplit("/", 1)[-1]
    cloudwatch = aws.session.client("cloudwatch")
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": name}],
                "Timestamp": datetime.now(UTC) - timedelta(minutes=2),
                "Value": 540.0,
            }
        ],
    )
    for alarm in ("connect-guard-dev-profile-rollback-dlq", "someone-elses-alarm"):
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="1 message")

    code, out, _ = run(aws, "status", "--stack", STACK)

    assert code == 0
    lines = out.splitlines()
    (rollback,) = [line for line in lines if line.strip().startswith("profile-rollback ") and "DLQ" in line]
    assert rollback.split() == ["profile-rollback", "2", "/", "0,", "9", "min", "DLQ", "1"]
    (alerts,) = [line for line in lines if line.strip().startswith("policy-alerts ")]
    assert "0 / 0, no data" in alerts
    assert "alarms in ALARM: 1" in out and "connect-guard-dev-profile-rollback-dlq since" in out
    assert "someone-elses-alarm" not in out
    assert "111122223333 us-east-1      iam      2026-11-20T10:00:03Z" in out
    assert "111122223333 us-east-1      connect  2026-11-20T08:00:04Z  SILENT, alerted 2026-11-20T09:45:00Z" in out
    modes = out.split("mode in force\n")[1].split()
    assert modes[:3] == ["default", "(ResponseMode)", "detect"]
    assert dict(zip(modes[3::2], modes[4::2], strict=False))["profile-rollback"] == "enforce"
    assert "role-quarantine        detect (inherit)" in out


def test_status_json_is_one_object(aws, stack):
    send(aws, stack["LoggingGuardDLQ"], "x")
    code, out, _ = run(aws, "status", "--stack", STACK, "--format", "json")
    assert code == 0
    (line,) = out.splitlines()
    report = json.loads(line)
    assert report["kind"] == "status"
    (guard,) = [q for q in report["queues"] if q["control"] == "logging-guard"]
    assert (guard["dlq_visible"], guard["oldest_age_seconds"]) == (1, None)
    assert {(c["service"], c["heard_at"]) for c in report["canaries"]} == {
        ("iam", "2026-11-20T10:00:03Z"),
        ("connect", "2026-11-20T08:00:04Z"),
    }
    assert report["modes"]["role-quarantine"] == "detect (inherit)"


def test_status_of_a_stack_without_per_control_modes_shows_response_mode(aws):
    deploy(aws, ResponseMode="enforce")
    code, out, _ = run(aws, "status", "--stack", STACK)
    assert code == 0
    assert "profile-rollback       enforce\n" in out and "logging-guard          enforce\n" in out


# ---- the map of controls to queues --------------------------------------------------------------
def test_every_dlq_of_the_template_belongs_to_a_control():
    template = load_template()["Resources"]
    dlqs = {
        name
        for name, r in template.items()
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" not in r.get("Properties", {}) and name.endswith("DLQ")
    }
    assert dlqs == {c.dlq for c in CONTROLS}
    for control in CONTROLS:
        if control.movable:  # a move-task source: the DLQ of exactly that SQS queue
            policy = template[control.queue]["Properties"]["RedrivePolicy"]
            assert policy["deadLetterTargetArn"] == {"Fn::GetAtt": [control.dlq, "Arn"]}, control.name
        else:  # the DLQ of no SQS queue: EventBridge's, the scheduler's, SNS subscriptions'
            targets = [
                r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
                for r in template.values()
                if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r.get("Properties", {})
            ]
            assert {"Fn::GetAtt": [control.dlq, "Arn"]} not in targets, control.name


# ---- the embedded AWS's move tasks, as SQS documents them ---------------------------------------
def redrive_role_sqs(aws: Any, role: str = "connect-guard-dev-redrive") -> Any:
    """An SQS client as a session of the role (how the command's RedriveRole session signs)."""
    role_arn = f"arn:aws:iam::123456789012:role/connect-guard/{role}"
    keys = aws.session.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="connect-guard-redrive")
    credentials = keys["Credentials"]
    return aws.session.client(
        "sqs",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def test_the_queue_policy_admits_the_redrive_role_and_refuses_a_forged_one(aws, stack):
    operator = aws.session.client("sqs")
    with pytest.raises(operator.exceptions.ClientError, match=r"AccessDenied.*DenyEveryOtherSender"):
        operator.send_message(QueueUrl=stack["QuarantineQueue"], MessageBody="forged")
    redrive_role_sqs(aws).send_message(QueueUrl=stack["QuarantineQueue"], MessageBody="redriven")
    assert depth(aws, stack["QuarantineQueue"]) == 1

    # The role deleted and re-created under its name: a new unique ID, denied like anyone else,
    # by a direct send and by a move task it starts.
    iam = aws.clients.iam
    trust = iam.get_role(RoleName="connect-guard-dev-redrive")["Role"]["AssumeRolePolicyDocument"]
    iam.delete_role(RoleName="connect-guard-dev-redrive")
    iam.create_role(
        RoleName="connect-guard-dev-redrive", Path="/connect-guard/", AssumeRolePolicyDocument=json.dumps(trust)
    )
    forged = redrive_role_sqs(aws)
    with pytest.raises(forged.exceptions.ClientError, match="AccessDenied"):
        forged.send_message(QueueUrl=stack["QuarantineQueue"], MessageBody="forged")
    send(aws, stack["QuarantineDLQ"], "q1", "q2")
    code, out, _ = run(aws, "redrive", "--stack", STACK, "--control", "role-quarantine")
    assert code == 1 and "QuarantineDLQ -> QuarantineQueue: FAILED: moved 0 of 2 (AccessDenied)" in out
    assert depth(aws, stack["QuarantineQueue"]) == 1 and depth(aws, stack["QuarantineDLQ"]) == 2


def test_embedded_move_tasks_follow_sqs(aws, stack):
    sqs = redrive_role_sqs(aws)
    with pytest.raises(sqs.exceptions.ClientError, match="Dead Letter Queue"):
        sqs.start_message_move_task(SourceArn=arn(stack["PolicyAlertsQueue"]))  # not a DLQ
    with pytest.raises(sqs.exceptions.ClientError, match="Dead Letter Queue"):
        sqs.start_message_move_task(SourceArn=arn(stack["EventDeliveryDLQ"]))  # EventBridge's DLQ: no SQS source
    with pytest.raises(sqs.exceptions.ClientError, match="ResourceNotFoundException"):
        sqs.start_message_move_task(SourceArn="arn:aws:sqs:us-east-1:123456789012:gone")

    send(aws, stack["PolicyAlertsDLQ"], *(f"m{i}" for i in range(25)))
    dlq = arn(stack["PolicyAlertsDLQ"])
    handle = sqs.start_message_move_task(SourceArn=dlq)["TaskHandle"]  # no destination: back to its source
    send(aws, stack["PolicyAlertsDLQ"], "late")  # after the start: not counted
    (first,) = sqs.list_message_move_tasks(SourceArn=dlq)["Results"]
    assert (first["Status"], first["ApproximateNumberOfMessagesMoved"], first["ApproximateNumberOfMessagesToMove"]) == (
        "RUNNING",
        10,
        25,
    )
    assert first["TaskHandle"] == handle and "DestinationArn" not in first
    assert sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"] == 10
    (cancelled,) = sqs.list_message_move_tasks(SourceArn=dlq)["Results"]
    assert cancelled["Status"] == "CANCELLED" and "TaskHandle" not in cancelled
    assert depth(aws, stack["PolicyAlertsQueue"]) == 10 and depth(aws, stack["PolicyAlertsDLQ"]) == 16

    sqs.start_message_move_task(SourceArn=dlq, DestinationArn=arn(stack["PolicyAlertsQueue"]))
    while sqs.list_message_move_tasks(SourceArn=dlq)["Results"][0]["Status"] == "RUNNING":
        pass
    results = sqs.list_message_move_tasks(SourceArn=dlq, MaxResults=10)["Results"]
    assert [r["Status"] for r in results] == ["COMPLETED", "CANCELLED"]
    assert depth(aws, stack["PolicyAlertsQueue"]) == 26 and depth(aws, stack["PolicyAlertsDLQ"]) == 0


def test_tampering_with_the_redrive_role_is_critical(aws):
    """The one sender the responder queues admit besides their rules is guarded like the others."""
    from connect_guard.events import CloudTrailEvent
    from connect_guard_tools.local_aws import SECURITY_ACCOUNT
    from tests.integration.test_role_quarantine import ACCOUNT, iam_event, responder, user

    for name in ("UpdateAssumeRolePolicy", "DeleteRole"):
        event = iam_event(name, user("eve"), {"roleName": "connect-guard-dev-redrive"})
        raw = json.loads(event.model_dump_json(by_alias=True).replace(ACCOUNT, SECURITY_ACCOUNT))
        outcome = responder(aws, mode="detect").handle(CloudTrailEvent.model_validate(raw))
        assert outcome.severity == "CRITICAL", name
        assert any("one of connect-guard's own roles" in r for r in outcome.finding["reasons"]), name


def test_main_ends_an_unknown_stack_in_one_line(aws, capsys):
    for command in ("redrive", "status"):
        assert cli.main([command, "--stack", "no-such-stack", "--region", "us-east-1"]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "Traceback" not in captured.err
        assert captured.err.splitlines() == [
            f"connect-guard {command}: unknown stack no-such-stack in us-east-1; "
            "check --stack and --region (aws cloudformation list-stacks)"
        ]


def test_status_reports_an_unreadable_queue_and_shows_the_others(aws, stack):
    aws.session.client("sqs").delete_queue(QueueUrl=stack["LivenessQueue"])  # deleted outside the stack
    send(aws, stack["QuarantineDLQ"], "q")
    code, out, _ = run(aws, "status", "--stack", STACK)
    assert code == 0
    (liveness,) = [line for line in out.splitlines() if line.strip().startswith("liveness ")]
    assert "unreadable: AWS.SimpleQueueService.NonExistentQueue" in liveness
    (quarantine,) = [line for line in out.splitlines() if line.strip().startswith("role-quarantine ") and "DLQ" in line]
    assert quarantine.split()[-2:] == ["DLQ", "1"]
