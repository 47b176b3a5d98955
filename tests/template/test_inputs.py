"""Who may feed the suite, as template.yaml says it: only the suite's own rules send to its
queues, only the member stacks' forwarding role puts events on its bus, and each responder
knows the one queue it consumes.

The queues are derived from the rule → queue wiring (connect_guard_tools.template.rule_routes)
and the rules' dead-letter targets, so a responder added later is held to the same checks. The
queue policies are also evaluated the way IAM evaluates them (explicit deny first; a negated
operator on a missing key is true), for the senders that matter.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from connect_guard.settings import MEMBER_ROLE_PATH, member_role_name
from connect_guard_tools.operations import CONTROLS
from connect_guard_tools.template import PROJECT_ROOT, load_template, rule_routes
from tests.template.stack import as_list, target

T = load_template()
RESOURCES: dict[str, Any] = T["Resources"]
ROUTES = rule_routes(T)
EVENTS = {"Service": "events.amazonaws.com"}


def feeders() -> dict[str, set[str]]:
    """Queue → the rules whose targets (or dead-letter targets) it is, from the template's wiring."""
    senders: dict[str, set[str]] = {}
    for route in ROUTES:
        senders.setdefault(route.queue, set()).add(route.rule)
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::Events::Rule":
            for tgt in resource["Properties"].get("Targets", []):
                dlq = target(tgt.get("DeadLetterConfig", {}).get("Arn"))
                if dlq:
                    senders.setdefault(dlq, set()).add(name)
    return senders


FEEDERS = feeders()
RESPONDER_QUEUES = sorted({route.queue for route in ROUTES})
EVENT_QUEUES = sorted(FEEDERS)


def queue_statements(queue: str) -> list[dict[str, Any]]:
    statements = []
    for resource in RESOURCES.values():
        p = resource["Properties"]
        if resource["Type"] == "AWS::SQS::QueuePolicy" and queue in {target(q) for q in p["Queues"]}:
            statements += as_list(p["PolicyDocument"]["Statement"])
    return statements


def rule_arn(rule: str) -> dict[str, Any]:
    """A rule's ARN as the template writes it, standing in for the resolved value."""
    return {"Fn::GetAtt": [rule, "Arn"]}


# ---- a small IAM evaluator: enough for the operators these policies use -------------------------
def _matches(operator: str, actual: Any, expected: list[Any]) -> bool:
    if operator in ("ArnEquals", "StringEquals", "Bool"):
        return actual in expected
    if operator in ("ArnLike", "StringLike"):
        return isinstance(actual, str) and any(fnmatch.fnmatchcase(actual, e) for e in expected)
    raise AssertionError(f"operator {operator} not modelled")


def condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    """IAM: every operator must hold. A key missing from the request makes a positive operator
    false and a negated one (…Not…) true: that is what makes `ArnNotEquals` deny an IAM principal."""
    for operator, keys in condition.items():
        negated = "Not" in operator
        base = operator.replace("Not", "")
        for key, values in keys.items():
            # A missing key: only a negated operator holds.
            holds = _matches(base, context[key], as_list(values)) != negated if key in context else negated
            if not holds:
                return False
    return True


def principal_matches(principal: Any, context: dict[str, Any]) -> bool:
    return principal == "*" or principal == context["principal"]


def decision(statements: list[dict[str, Any]], context: dict[str, Any], action: str = "sqs:SendMessage") -> str:
    """'deny' (explicit), 'allow' (this policy grants), or 'implicit' (only the caller's own policies decide)."""
    applicable = [
        s
        for s in statements
        if action in as_list(s["Action"]) or "sqs:*" in as_list(s["Action"])
        if principal_matches(s["Principal"], context) and condition_holds(s.get("Condition", {}), context)
    ]
    if any(s["Effect"] == "Deny" for s in applicable):
        return "deny"
    return "allow" if applicable else "implicit"


def senders(queue: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(who, request context, expected decision) for one queue."""
    tls = {"aws:SecureTransport": "true"}
    for rule in sorted(FEEDERS[queue]):
        yield f"EventBridge for {rule}", {"principal": EVENTS, "aws:SourceArn": rule_arn(rule), **tls}, "allow"
    for rule in sorted(set().union(*FEEDERS.values()) - FEEDERS[queue]):
        yield (
            f"EventBridge for {rule} (another queue's rule)",
            {"principal": EVENTS, "aws:SourceArn": rule_arn(rule), **tls},
            "deny",
        )
    foreign_rule = "arn:aws:events:us-east-1:444455556666:rule/copycat"
    yield "EventBridge for another account's rule", {"principal": EVENTS, "aws:SourceArn": foreign_rule, **tls}, "deny"
    role = {"AWS": "arn:aws:iam::123456789012:role/admin"}
    yield "an IAM role of this account (no aws:SourceArn)", {"principal": role, **tls}, "deny"
    yield (
        "the alert topic",
        {"principal": {"Service": "sns.amazonaws.com"}, "aws:SourceArn": {"Ref": "AlertTopic"}, **tls},
        "deny",
    )


# ---- queue policies ------------------------------------------------------------------------------
def test_every_responder_queue_is_fed_by_a_rule() -> None:
    assert RESPONDER_QUEUES == [
        "LivenessQueue",
        "LoggingGuardQueue",
        "PolicyAlertsQueue",
        "ProfileRollbackQueue",
        "QuarantineQueue",
    ]
    assert "EventDeliveryDLQ" in EVENT_QUEUES


# The queues `connect-guard redrive` moves a DLQ back into (connect_guard_tools.operations).
REDRIVE_DESTINATIONS = {c.queue for c in CONTROLS if c.movable}


@pytest.mark.parametrize("queue", EVENT_QUEUES)
def test_the_queue_denies_sending_to_everyone_but_its_own_rules(queue: str) -> None:
    denies = [
        s
        for s in queue_statements(queue)
        if s["Effect"] == "Deny" and as_list(s["Action"]) == ["sqs:SendMessage"] and s["Principal"] == "*"
    ]
    assert len(denies) == 1, f"{queue}: one explicit deny of sqs:SendMessage to every principal"
    (deny,) = denies
    assert target(deny["Resource"]) == queue
    # One negated operator, nothing else: a second condition would be ANDed and narrow the deny.
    # The one exception, on a responder queue: the redrive role's sessions by the role's unique ID
    # (connect-guard redrive; tests/least_privilege/test_redrive_role.py evaluates it).
    condition = dict(deny["Condition"])
    if queue in REDRIVE_DESTINATIONS:
        assert condition.pop("StringNotLike") == {"aws:userid": {"Fn::Sub": "${RedriveRole.RoleId}:*"}}
    assert list(condition) == ["ArnNotEquals"]
    assert list(deny["Condition"]["ArnNotEquals"]) == ["aws:SourceArn"]
    sources = {target(arn) for arn in as_list(deny["Condition"]["ArnNotEquals"]["aws:SourceArn"])}
    assert sources == FEEDERS[queue]
    # The allow names exactly the rules the deny spares: the way in is the only way in.
    (allow,) = [s for s in queue_statements(queue) if s["Effect"] == "Allow"]
    assert allow["Principal"] == EVENTS
    assert {target(arn) for arn in as_list(allow["Condition"]["ArnEquals"]["aws:SourceArn"])} == sources


@pytest.mark.parametrize("queue", EVENT_QUEUES)
def test_iam_evaluation_admits_only_eventbridge_for_the_queues_rules(queue: str) -> None:
    statements = queue_statements(queue)
    for who, context, expected in senders(queue):
        assert decision(statements, context) == expected, f"{queue}: {who}"
    # TLS is still required of everyone, the rules included.
    (rule, *_) = sorted(FEEDERS[queue])
    plain = {"principal": EVENTS, "aws:SourceArn": rule_arn(rule), "aws:SecureTransport": "false"}
    assert decision(statements, plain) == "deny"


def test_the_evaluator_treats_a_missing_key_as_iam_does() -> None:
    deny = {"Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage"}
    negated = {**deny, "Condition": {"ArnNotEquals": {"aws:SourceArn": ["arn:rule"]}}}
    positive = {**deny, "Condition": {"ArnEquals": {"aws:SourceArn": ["arn:rule"]}}}
    caller = {"principal": {"AWS": "arn:aws:iam::123456789012:user/u"}}
    assert decision([negated], caller) == "deny"  # no aws:SourceArn: the negated condition holds
    assert decision([positive], caller) == "implicit"  # ...and a positive one does not
    assert decision([negated], {**caller, "aws:SourceArn": "arn:rule"}) == "implicit"


# ---- the bus -------------------------------------------------------------------------------------
def test_the_bus_admits_only_the_member_forward_role_within_the_organization() -> None:
    policy = RESOURCES["OrganizationBusPolicy"]
    assert policy["Condition"] == "HasOrganization"
    statement = policy["Properties"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Allow", "*", "events:PutEvents")
    pattern = "arn:${AWS::Partition}:iam::*:role/connect-guard/connect-guard-${Environment}-member-forward"
    assert statement["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}},
        "ArnLike": {"aws:PrincipalArn": {"Fn::Sub": pattern}},
    }
    # The pattern names the role member/template.yaml creates, as the core names it.
    member = cfn_yaml.load(str(PROJECT_ROOT / "member" / "template.yaml"))
    role = member["Resources"]["ForwardRole"]["Properties"]
    assert role["Path"] == MEMBER_ROLE_PATH
    assert str(role["RoleName"]["Fn::Sub"]) == member_role_name("${Environment}", "forward")
    assert pattern.endswith(f":role{role['Path']}{role['RoleName']['Fn::Sub']}")


@pytest.mark.parametrize(
    ("principal_arn", "org", "admitted"),
    [
        ("arn:aws:iam::111122223333:role/connect-guard/connect-guard-dev-member-forward", "o-guard", True),
        ("arn:aws:iam::111122223333:role/connect-guard/connect-guard-dev-member-forward", "o-other", False),
        ("arn:aws:iam::111122223333:role/Admin", "o-guard", False),
        ("arn:aws:iam::111122223333:role/connect-guard-dev-member-forward", "o-guard", False),  # path matters
        ("arn:aws:iam::111122223333:role/connect-guard/connect-guard-prod-member-forward", "o-guard", False),
        ("arn:aws:iam::111122223333:user/connect-guard/connect-guard-dev-member-forward", "o-guard", False),
        (None, "o-guard", False),
    ],
)
def test_iam_evaluation_of_the_bus_policy(principal_arn: str | None, org: str, admitted: bool) -> None:
    statement = RESOURCES["OrganizationBusPolicy"]["Properties"]["Statement"]
    resolved = {
        "StringEquals": {"aws:PrincipalOrgID": "o-guard"},
        "ArnLike": {
            "aws:PrincipalArn": statement["Condition"]["ArnLike"]["aws:PrincipalArn"]["Fn::Sub"]
            .replace("${AWS::Partition}", "aws")
            .replace("${Environment}", "dev")
        },
    }
    context: dict[str, Any] = {"principal": {"AWS": principal_arn}, "aws:PrincipalOrgID": org}
    if principal_arn:
        context["aws:PrincipalArn"] = principal_arn
    assert condition_holds(resolved, context) is admitted


# ---- each responder knows its queue --------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.function)
def test_each_responder_is_told_the_one_queue_it_consumes(route: Any) -> None:
    env = RESOURCES[route.function]["Properties"]["Environment"]["Variables"]
    assert env["SOURCE_QUEUE_ARN"] == {"Fn::GetAtt": [route.queue, "Arn"]}


def test_no_deployed_function_accepts_direct_invocations_or_lifts_the_age_limit() -> None:
    scopes = [T["Globals"]["Function"]] + [r["Properties"] for r in RESOURCES.values() if "Function" in r["Type"]]
    for scope in scopes:
        env = scope.get("Environment", {}).get("Variables", {})
        for variable in ("AWS_SAM_LOCAL", "CONNECT_GUARD_ALLOW_DIRECT_INVOCATION", "MAX_EVENT_AGE_HOURS"):
            assert variable not in env
