"""RedriveRole, least privilege both ways, and the only sender besides the rules.

`connect-guard redrive` runs against a stack in the embedded AWS (every responder DLQ holding
messages, a dry run, then the moves); every call signed by the RedriveRole, and what each move
task does with its caller's permissions (read and delete on the DLQ, send to the queue, the
suite key behind both), is checked against the role's statements in template.yaml, and every
granted action must be requested. Then each responder queue's DenyEveryOtherSender is evaluated
for the role's sessions and for those who would pass for it.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from connect_guard_tools import cli
from connect_guard_tools.local_aws import REGION, SECURITY_ACCOUNT
from connect_guard_tools.operations import CONTROLS, redrive_command
from connect_guard_tools.template import load_template
from tests.integration.operations_stack import STACK, arn, deploy, queues
from tests.least_privilege.iam_model import (
    Call,
    CallLog,
    Request,
    Role,
    Statement,
    action_matches,
    as_list,
    encryption_keys,
    evaluate,
    implied_requests,
    requests_of,
    template_role,
    trusts,
)
from tests.template.cfn import Resolver, parameters

SECURITY = load_template()
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": SECURITY_ACCOUNT}
SUITE_KEY = f"arn:aws:kms:{REGION}:{SECURITY_ACCOUNT}:key/suite"
REDRIVE_ROLE_ID = "AROAREDRIVE0000000001"
RESPONDER_QUEUES = [c.queue for c in CONTROLS if c.movable]


def resolver(physical: dict[str, str], **params: str) -> Resolver:
    physical = {
        "SuiteKey": "suite",
        "SuiteKey.Arn": SUITE_KEY,
        "RedriveRole.Arn": f"arn:aws:iam::{SECURITY_ACCOUNT}:role/connect-guard/connect-guard-dev-redrive",
        "RedriveRole.RoleId": REDRIVE_ROLE_ID,
        **physical,
    }
    return Resolver(SECURITY, parameters(SECURITY, **params), {**PSEUDO, "AWS::StackName": STACK}, physical)


def embedded_physical(urls: dict[str, str]) -> dict[str, str]:
    """The template's queues as the embedded stack made them (Ref: URL, GetAtt Arn)."""
    return {k: v for logical, url in urls.items() for k, v in ((logical, url), (f"{logical}.Arn", arn(url)))}


def iam_arn(account: str, kind: str, name: str) -> str:
    return f"arn:aws:iam::{account}:{kind}/{name}"


def redrive(aws: Any, *argv: str) -> str:
    args = cli._parser().parse_args(["redrive", "--stack", STACK, "--poll-seconds", "0", *argv])
    out = io.StringIO()
    assert redrive_command(args, out, session=aws.session, err=io.StringIO()) == 0, out.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("mode", ["detect", "enforce"])
def test_every_call_of_a_redrive_is_granted_and_every_grant_used(aws, mode):
    deploy(aws, ResponseMode=mode)
    urls = queues(aws)
    sqs = aws.session.client("sqs")
    for control in CONTROLS:
        if control.movable:
            sqs.send_message(QueueUrl=urls[control.dlq], MessageBody=f"gave up: {control.name}")
    security = resolver(embedded_physical(urls), ResponseMode=mode)
    role = template_role(security, "RedriveRole", "RedriveRole")

    log = CallLog(SECURITY_ACCOUNT)
    log.install(aws.session.events)  # the operator's own calls (AssumeRole: whose credentials are whose)
    with log.every_new_session(), log.running("Operator", "connect-guard redrive"):
        redrive(aws, "--dry-run")
        out = redrive(aws)
    assert out.count("COMPLETED: moved 1 of 1") == len(RESPONDER_QUEUES)

    calls = [c for c in log.calls if c.role == role.arn]
    assert {c.operation for c in calls} == {"GetQueueAttributes", "ListMessageMoveTasks", "StartMessageMoveTask"}
    assert {c.operation for c in log.calls if c.role is None} >= {"AssumeRole", "DescribeStacks"}
    requests = [r for call in calls for r in requests_of(call, iam_arn)]
    requests += [k for r in requests for k in implied_requests(r, encryption_keys(security))]

    refused = [(r.action, r.resource, evaluate(r, role.statements)[0]) for r in requests]
    assert [r for r in refused if r[2] != "allowed"] == []
    used = {(s.source, a) for r in requests for s in role.statements if s.applies(r) for a in s.actions}
    unused = [(s.source, a) for s in role.statements for a in s.actions if (s.source, a) not in used]
    assert unused == []
    # Each move went from a responder DLQ to its own queue, and nowhere else.
    sends = {(r.call.params["SourceArn"], r.resource) for r in requests if r.action == "sqs:SendMessage"}
    assert sends == {(arn(urls[c.dlq]), arn(urls[str(c.queue)])) for c in CONTROLS if c.movable}


def test_the_role_may_do_nothing_else(aws):
    deploy(aws)
    security = resolver(embedded_physical(queues(aws)))
    role = template_role(security, "RedriveRole", "RedriveRole")
    urls = queues(aws)

    def decision(operation: str, **params: Any) -> str:
        call = Call("Operator", "-", "sqs", operation, params, SECURITY_ACCOUNT, role.arn, REGION)
        (request,) = requests_of(call, iam_arn)
        return evaluate(request, role.statements)[0]

    # No move into a DLQ, out of a queue, or to the archive queue; no purge, no policy edit.
    assert decision("SendMessage", QueueUrl=urls["PolicyAlertsDLQ"]) == "not granted"
    assert decision("SendMessage", QueueUrl=urls["FindingsArchiveQueue"]) == "not granted"
    assert decision("ReceiveMessage", QueueUrl=urls["PolicyAlertsQueue"]) == "not granted"
    assert decision("StartMessageMoveTask", SourceArn=arn(urls["EventDeliveryDLQ"])) == "not granted"
    assert decision("PurgeQueue", QueueUrl=urls["PolicyAlertsDLQ"]) == "not granted"
    assert decision("SetQueueAttributes", QueueUrl=urls["PolicyAlertsQueue"]) == "not granted"
    assert decision("CancelMessageMoveTask", TaskHandle="h") == "not granted"
    # The key only through SQS.
    key = Request(
        Call("Operator", "-", "kms", "Decrypt", {}, SECURITY_ACCOUNT, role.arn, REGION), "kms:Decrypt", SUITE_KEY, {}
    )
    assert evaluate(key, role.statements)[0] == "not granted"


def test_who_may_assume_the_role():
    operator = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/SecurityOperator"
    other = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/Developer"
    outsider = "arn:aws:iam::999988887777:role/SecurityOperator"
    named = template_role(resolver({}, RedriveOperatorArn=operator), "RedriveRole", "RedriveRole")
    assert trusts(named, operator) and not trusts(named, other) and not trusts(named, outsider)
    # Unset: this account's principals whose own policies allow it; no other account.
    account = template_role(resolver({}), "RedriveRole", "RedriveRole")
    assert trusts(account, operator) and trusts(account, other) and not trusts(account, outsider)


# ---- DenyEveryOtherSender: the rule, the role by unique ID, nobody else -------------------------
def deny_statements(security: Resolver, queue: str) -> list[Statement]:
    resources = security.template["Resources"]
    (policy,) = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and r["Properties"]["Queues"] == [{"Ref": queue}]
    ]
    document = security.resolve(policy["Properties"]["PolicyDocument"])
    statements = [Statement.parse(queue, "policy", s) for s in as_list(document["Statement"])]
    return [s for s in statements if s.source.endswith("#DenyEveryOtherSender")]


def rule_arns(queue: str) -> list[str]:
    resources = SECURITY["Resources"]
    return [
        f"arn:aws:events:{REGION}:{SECURITY_ACCOUNT}:rule/<{name}>"
        for name, r in resources.items()
        if r["Type"] == "AWS::Events::Rule"
        and any(t["Arn"] == {"Fn::GetAtt": [queue, "Arn"]} for t in r["Properties"].get("Targets", []))
    ]


def send_denied(security: Resolver, queue: str, context: dict[str, str]) -> bool:
    call = Call("-", "-", "sqs", "SendMessage", {}, SECURITY_ACCOUNT, None, REGION)
    request = Request(call, "sqs:SendMessage", security.ref(f"{queue}.Arn"), context)
    return evaluate(request, deny_statements(security, queue))[0] == "denied"


@pytest.mark.parametrize("queue", RESPONDER_QUEUES)
def test_only_the_rules_and_the_redrive_role_may_send(queue):
    physical = {
        f"{name}.Arn": f"arn:aws:events:{REGION}:{SECURITY_ACCOUNT}:rule/<{name}>"
        for name, r in SECURITY["Resources"].items()
        if r["Type"] == "AWS::Events::Rule"
    }
    security = resolver(physical)
    role_arn = security.ref("RedriveRole.Arn")
    (rule, *_) = rule_arns(queue)
    session = {"aws:PrincipalArn": role_arn, "aws:userid": f"{REDRIVE_ROLE_ID}:connect-guard-redrive"}

    assert not send_denied(security, queue, {"aws:SourceArn": rule})  # its rule
    assert not send_denied(security, queue, session)  # a redrive session (any session name)
    assert not send_denied(security, queue, {**session, "aws:userid": f"{REDRIVE_ROLE_ID}:someone"})
    # Forged: the role deleted and re-created under its name (a new unique ID), a role whose ID
    # merely begins with the role's, the operator's own role, an IAM user, another rule.
    assert send_denied(security, queue, {**session, "aws:userid": "AROANEWROLE000000001:connect-guard-redrive"})
    assert send_denied(security, queue, {**session, "aws:userid": f"{REDRIVE_ROLE_ID}9:connect-guard-redrive"})
    operator = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/SecurityOperator"
    assert send_denied(security, queue, {"aws:PrincipalArn": operator, "aws:userid": "AROAOPERATOR00000001:me"})
    assert send_denied(security, queue, {"aws:userid": "AIDAUSER000000000001"})
    assert send_denied(security, queue, {})
    other = "arn:aws:events:us-east-1:123456789012:rule/someone-elses"
    assert send_denied(security, queue, {"aws:SourceArn": other})


def test_the_exemption_names_the_role_by_its_unique_id_in_the_same_deny():
    for queue in RESPONDER_QUEUES:
        (deny,) = deny_statements(resolver({}), queue)
        assert deny.condition["StringNotLike"] == {"aws:userid": f"{REDRIVE_ROLE_ID}:*"}, queue
        assert set(deny.condition) == {"ArnNotEquals", "StringNotLike"}, queue


def test_the_role_is_what_the_stack_outputs():
    outputs = SECURITY["Outputs"]
    assert outputs["RedriveRoleArn"]["Value"] == {"Fn::GetAtt": ["RedriveRole", "Arn"]}
    role = SECURITY["Resources"]["RedriveRole"]
    assert "Condition" not in role  # detect deployments redrive too: it changes no account's state
    assert isinstance(template_role(resolver({}), "RedriveRole", "RedriveRole"), Role)
    assert all(
        action_matches("sqs:*", a) or action_matches("kms:*", a)
        for s in template_role(resolver({}), "RedriveRole", "R").statements
        for a in s.actions
    )
