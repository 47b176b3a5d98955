"""Event delivery: every rule retries into a DLQ; every queue is encrypted, TLS-only, redriven and
open only to its senders; every DLQ, rule and function alarms; each rule pattern reaches its
responder."""

from __future__ import annotations

from typing import Any

from connect_guard_tools.template import rule_routes
from tests.template.stack import (
    ALARMS,
    FUNCTIONS,
    OPERATIONS_RESOURCES,
    QUEUES,
    RESOURCES,
    ROOT,
    RULES,
    SOURCE_QUEUES,
    T,
    as_list,
    dead_letter_queues,
    function_role,
    grants,
    notifies_topic,
    of_type,
    props,
    queue_policy_statements,
    references_suite_key,
    target,
    walk,
)


# ---- event delivery ------------------------------------------------------------------------------
def test_every_rule_target_has_retry_policy_and_dlq() -> None:
    assert RULES
    for name, rule in RULES.items():
        targets = rule["Properties"]["Targets"]
        assert targets, name
        for tgt in targets:
            retry = tgt["RetryPolicy"]
            assert retry == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}, name
            dlq = target(tgt["DeadLetterConfig"]["Arn"])
            assert dlq in QUEUES, f"{name}: DLQ must be a queue of this stack"
            # Resource-policy targets must not carry a RoleArn: it breaks delivery to KMS queues.
            assert "RoleArn" not in tgt, name


def test_rules_are_enabled_on_the_default_bus() -> None:
    for name, rule in RULES.items():
        assert rule["Properties"]["State"] == "ENABLED", name
        assert rule["Properties"].get("EventBusName", "default") == "default", name


def test_every_queue_is_encrypted_with_the_suite_key() -> None:
    assert QUEUES
    for name, queue in QUEUES.items():
        assert references_suite_key(queue["Properties"].get("KmsMasterKeyId")), name


# Queues nothing processes, only copies into the archive: a DLQ would have to outlive SQS's
# 14-day maximum retention. An age alarm watches them instead (test_findings_archive_queue...).
ARCHIVE_BUFFERS = {"FindingsArchiveQueue"}


def test_every_non_dlq_queue_has_a_redrive_policy() -> None:
    dlqs = dead_letter_queues()
    assert {"PolicyAlertsDLQ", "EventDeliveryDLQ", "ProfileRollbackDLQ", "SweepDLQ", "QuarantineDLQ"} <= dlqs
    for name, queue in QUEUES.items():
        if name in dlqs or name in ARCHIVE_BUFFERS:
            assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600, name
            continue
        redrive = queue["Properties"]["RedrivePolicy"]
        dlq = target(redrive["deadLetterTargetArn"])
        assert dlq in QUEUES and dlq != name, name
        assert 1 < redrive["maxReceiveCount"] <= 10, name
        # A message keeps its enqueue time in the DLQ: the DLQ must outlive the source queue.
        source_retention = queue["Properties"].get("MessageRetentionPeriod", 4 * 24 * 3600)
        assert QUEUES[dlq]["Properties"]["MessageRetentionPeriod"] > source_retention, name


def test_max_receive_count_matches_the_runtimes_final_attempt() -> None:
    # The handler alerts on the receive that SQS will not retry: the two counts must agree.
    from connect_guard.runtime import MAX_RECEIVE_COUNT

    for name, queue in QUEUES.items():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            assert redrive["maxReceiveCount"] == MAX_RECEIVE_COUNT, name


def test_queue_visibility_timeout_is_six_times_the_consumer_timeout() -> None:
    timeout = T["Globals"]["Function"]["Timeout"]
    for fn_name, fn in FUNCTIONS.items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = target(event["Properties"]["Queue"])
                fn_timeout = fn["Properties"].get("Timeout", timeout)
                assert QUEUES[queue]["Properties"]["VisibilityTimeout"] >= 6 * fn_timeout, fn_name


def test_every_queue_denies_access_without_tls() -> None:
    for name in QUEUES:
        denies = [
            s
            for s in queue_policy_statements(name)
            if s["Effect"] == "Deny"
            and s["Principal"] == "*"
            and s["Action"] in ("sqs:*", ["sqs:*"])
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, f"{name} has no deny-without-TLS statement"


def test_eventbridge_may_send_only_on_behalf_of_the_rules_that_use_the_queue() -> None:
    users: dict[str, set[str]] = {}
    for rule_name, rule in RULES.items():
        for tgt in rule["Properties"]["Targets"]:
            users.setdefault(target(tgt["Arn"]) or "", set()).add(rule_name)
            users.setdefault(target(tgt["DeadLetterConfig"]["Arn"]) or "", set()).add(rule_name)
    topics: dict[str, set[str]] = {}  # queue -> the topics subscribed to it
    for subscription in of_type("AWS::SNS::Subscription").values():
        p = subscription["Properties"]
        if p["Protocol"] == "sqs":
            topics.setdefault(target(p["Endpoint"]) or "", set()).add(target(p["TopicArn"]) or "")
        if "RedrivePolicy" in p:  # SNS sends what it can't deliver to the subscription's DLQ
            dlq = target(p["RedrivePolicy"]["deadLetterTargetArn"]) or ""
            topics.setdefault(dlq, set()).add(target(p["TopicArn"]) or "")
    for queue in QUEUES:
        allows = [s for s in queue_policy_statements(queue) if s["Effect"] == "Allow"]
        senders = {"Service": "events.amazonaws.com"}, {"Service": "sns.amazonaws.com"}
        for statement in allows:
            assert statement["Principal"] in senders, queue
            assert statement["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"]), queue
            sources = {target(a) for a in as_list(statement["Condition"]["ArnEquals"]["aws:SourceArn"])}
            expected = users if statement["Principal"] == senders[0] else topics
            assert sources == expected.get(queue, set()), queue
        events = [s for s in allows if s["Principal"] == senders[0]]
        sns = [s for s in allows if s["Principal"] == senders[1]]
        assert bool(events) == (queue in users), f"{queue}: EventBridge access iff a rule uses it"
        assert bool(sns) == (queue in topics), f"{queue}: SNS access iff a topic delivers to it"


def test_organization_bus_policy_is_conditional_and_org_scoped() -> None:
    policy = RESOURCES["OrganizationBusPolicy"]
    assert policy["Condition"] == "HasOrganization"
    statement = policy["Properties"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    # Only the member stacks' forwarding role (tests/template/test_inputs.py checks the name).
    assert statement["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}


# ---- alarms --------------------------------------------------------------------------------------
def test_every_dlq_has_an_alarm_that_notifies_the_topic() -> None:
    for dlq in dead_letter_queues():
        alarms = [
            a
            for a in ALARMS.values()
            if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and a["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
        ]
        assert len(alarms) == 1, f"{dlq} needs exactly one depth alarm"
        p = alarms[0]["Properties"]
        assert p["Namespace"] == "AWS/SQS"
        assert (p["ComparisonOperator"], p["Threshold"]) == ("GreaterThanThreshold", 0)
        assert (p["Period"], p["EvaluationPeriods"]) == (60, 1)
        assert p["TreatMissingData"] == "notBreaching"
        assert notifies_topic(alarms[0])
    assert {
        "PolicyAlertsDLQAlarm",
        "EventDeliveryDLQAlarm",
        "ProfileRollbackDLQAlarm",
        "SweepDLQAlarm",
        "QuarantineDLQAlarm",
        "SlackNotifierDLQAlarm",
        "SecurityHubImportDLQAlarm",
        "ChatNotifierDLQAlarm",
    } <= set(ALARMS)


def _alarms_on(namespace: str, metric: str, dimension: str, resource: str) -> list[dict[str, Any]]:
    return [
        a
        for a in ALARMS.values()
        if a["Properties"]["Namespace"] == namespace
        and a["Properties"]["MetricName"] == metric
        and a["Properties"]["Dimensions"] == [{"Name": dimension, "Value": {"Ref": resource}}]
    ]


def test_every_rule_has_a_delivery_failure_alarm() -> None:
    # Delivery that fails even to the DLQ (e.g. a broken key policy) shows up only here.
    for name in RULES:
        alarms = _alarms_on("AWS/Events", "FailedInvocations", "RuleName", name)
        assert len(alarms) == 1 and notifies_topic(alarms[0]), name


def test_every_function_has_an_errors_alarm() -> None:
    for name in FUNCTIONS:
        alarms = _alarms_on("AWS/Lambda", "Errors", "FunctionName", name)
        assert len(alarms) == 1 and notifies_topic(alarms[0]), name


def test_every_alarm_notifies_the_topic_and_matches_the_topic_policy() -> None:
    topic_policy = OPERATIONS_RESOURCES["OperationsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (cloudwatch,) = [s for s in topic_policy if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    allowed_prefix = cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"].split(":alarm:")[1]
    assert allowed_prefix.endswith("*")
    # The alert topic takes no alarm: a look-alike alarm could not publish into the SOC's findings.
    alert_policy = props("AlertTopicPolicy")["PolicyDocument"]["Statement"]
    assert all(s["Effect"] == "Deny" for s in alert_policy)
    for name, alarm in ALARMS.items():
        assert notifies_topic(alarm), name
        alarm_name = alarm["Properties"]["AlarmName"]["Fn::Sub"]
        assert alarm_name.startswith(allowed_prefix[:-1]), f"{name}: topic policy would refuse it"


# ---- rule patterns and routing -------------------------------------------------------------------
POLICY_EVENTS = [
    "AttachUserPolicy",
    "AttachRolePolicy",
    "AttachGroupPolicy",
    "PutUserPolicy",
    "PutRolePolicy",
    "PutGroupPolicy",
    "CreatePolicyVersion",
    "SetDefaultPolicyVersion",
]
# Escalation without an attachment (responders/iam_escalation.py; routing in tests/template/test_policy_alerts.py).
ESCALATION_EVENTS = [
    "AddUserToGroup",
    "CreateAccessKey",
    "CreateLoginProfile",
    "UpdateLoginProfile",
    "DeleteUserPermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "PutUserPermissionsBoundary",
    "PutRolePermissionsBoundary",
    "UpdateAssumeRolePolicy",
]


def test_policy_attachment_rule_pattern() -> None:
    assert props("PolicyAttachmentRule")["EventPattern"] == {
        "source": ["aws.iam"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": POLICY_EVENTS + ESCALATION_EVENTS},
    }


CONNECT_PROFILE_EVENTS = [
    "UpdateSecurityProfile",
    "CreateSecurityProfile",
    "UpdateUserSecurityProfiles",
    "CreateUser",
    "DeleteSecurityProfile",  # alerted with the approved snapshot
]
CONNECT_USER_EVENTS = ["UpdateUserIdentityInfo", "UpdateUserHierarchy", "TagResource", "UntagResource"]
USER_TAGS_ONLY = [
    {"eventName": [{"anything-but": ["TagResource", "UntagResource"]}]},
    {"requestParameters": {"resourceArn": [{"wildcard": w} for w in ("*/agent/*", "*%2Fagent%2F*", "*%2fagent%2f*")]}},
    {"errorCode": [{"exists": True}]},
]


def test_profile_rollback_rule_pattern() -> None:
    assert props("ProfileRollbackRule")["EventPattern"] == {
        "source": ["aws.connect"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["connect.amazonaws.com"],
            "eventName": CONNECT_PROFILE_EVENTS + CONNECT_USER_EVENTS,
            "$or": USER_TAGS_ONLY,
        },
    }


ROLE_PROTECTION_EVENTS = [
    "DeleteRole",
    "DeleteServiceLinkedRole",
    "DetachRolePolicy",
    "DeleteRolePolicy",
    "UpdateAssumeRolePolicy",
    "PutRolePermissionsBoundary",
]


def test_role_protection_rule_pattern() -> None:
    assert props("RoleProtectionRule")["EventPattern"] == {
        "source": ["aws.iam"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": ROLE_PROTECTION_EVENTS},
    }


def test_instance_deletion_rule_pattern() -> None:
    assert props("InstanceDeletionRule")["EventPattern"] == {
        "source": ["aws.connect"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["connect.amazonaws.com"], "eventName": ["DeleteInstance"]},
    }


def _cloudtrail_event(service: str, event_name: str) -> dict[str, Any]:
    return {
        "source": f"aws.{service}",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": f"{service}.amazonaws.com", "eventName": event_name},
    }


def test_connect_create_user_and_iam_create_user_reach_different_rules() -> None:
    from connect_guard_tools.routing import compile_pattern

    connect_rule = compile_pattern(props("ProfileRollbackRule")["EventPattern"])
    iam_rule = compile_pattern(props("PolicyAttachmentRule")["EventPattern"])
    connect_create_user = _cloudtrail_event("connect", "CreateUser")
    iam_create_user = _cloudtrail_event("iam", "CreateUser")
    assert connect_rule(connect_create_user)
    assert not connect_rule(iam_create_user)
    assert not iam_rule(connect_create_user)
    # A forged mix (Connect source, IAM eventSource) matches neither.
    mixed = {**connect_create_user, "detail": {"eventSource": "iam.amazonaws.com", "eventName": "CreateUser"}}
    assert not connect_rule(mixed)
    for event_name in CONNECT_PROFILE_EVENTS:
        assert connect_rule(_cloudtrail_event("connect", event_name)), event_name
        assert not iam_rule(_cloudtrail_event("connect", event_name)), event_name
    for event_name in POLICY_EVENTS:
        assert not connect_rule(_cloudtrail_event("iam", event_name)), event_name


def test_quarantine_events_reach_exactly_one_rule_succeeded_or_denied() -> None:
    from connect_guard_tools.routing import compile_pattern

    matchers = {n: compile_pattern(r["Properties"]["EventPattern"]) for n, r in RULES.items()}

    def matching(event: dict[str, Any]) -> set[str]:
        return {n for n, m in matchers.items() if m(event)}

    cases = [("iam", name, "RoleProtectionRule") for name in ROLE_PROTECTION_EVENTS]
    cases.append(("connect", "DeleteInstance", "InstanceDeletionRule"))
    for service, event_name, rule in cases:
        event = _cloudtrail_event(service, event_name)
        # A trust or boundary change is also an escalation to assess (policy alerts), on any role.
        rules = {rule} | ({"PolicyAttachmentRule"} if event_name in ESCALATION_EVENTS else set())
        assert matching(event) == rules, event_name
        # A denied attempt carries errorCode and often no requestParameters: still delivered.
        denied = {**event, "detail": {**event["detail"], "errorCode": "AccessDenied", "requestParameters": None}}
        assert matching(denied) == rules, event_name
    # Neighbouring calls are noise for the quarantine, and a Connect source never matches the IAM rule.
    for service, event_name in [("iam", "CreateRole"), ("iam", "DeleteUser"), ("connect", "CreateInstance")]:
        assert not matching(_cloudtrail_event(service, event_name)) & {"RoleProtectionRule", "InstanceDeletionRule"}
    assert not matching(_cloudtrail_event("connect", "DeleteRole"))
    assert not matching(_cloudtrail_event("iam", "DeleteInstance"))


def test_rule_patterns_are_literal_and_do_not_filter_on_error_code() -> None:
    for name, rule in RULES.items():
        pattern = rule["Properties"].get("EventPattern")
        if pattern is None:
            continue
        assert isinstance(pattern, dict), f"{name}: write the pattern as a YAML mapping"
        keys = [key for key, _ in walk(pattern)]
        assert not any(k == "Ref" or k.startswith("Fn::") for k in keys), f"{name}: intrinsic in pattern"
        # Denied calls carry detail.errorCode: filtering on it would hide the attempts. Admitting
        # them is the one use allowed: `errorCode: [{exists: true}]` as a branch of an `$or`.
        admitted = [b for k, v in walk(pattern) if k == "$or" for b in v if b == {"errorCode": [{"exists": True}]}]
        assert keys.count("errorCode") == len(admitted), name


def test_rule_routes_reach_their_responders() -> None:
    routes = {r.rule: r for r in rule_routes(T)}
    route = routes["PolicyAttachmentRule"]
    assert (route.queue, route.function, route.responder) == (
        "PolicyAlertsQueue",
        "PolicyAlertsFunction",
        "policy_alerts",
    )
    # Every rule with a pattern ends in a responder, and every responder has code.
    route = routes["ProfileRollbackRule"]
    assert (route.queue, route.function, route.responder) == (
        "ProfileRollbackQueue",
        "ProfileRollbackFunction",
        "profile_rollback",
    )
    for rule in ("RoleProtectionRule", "InstanceDeletionRule"):
        route = routes[rule]
        assert (route.queue, route.function, route.responder) == (
            "QuarantineQueue",
            "QuarantineFunction",
            "role_quarantine",
        )
    patterned = {n for n, r in RULES.items() if "EventPattern" in r["Properties"]}
    assert set(routes) == patterned
    for r in routes.values():
        assert (ROOT / "functions" / r.responder).is_dir(), r.responder


# ---- what the runtime's guarantees rest on -------------------------------------------------------
def test_dedup_records_are_kept_as_long_as_a_message_can_come_back() -> None:
    """EventBridge retries for MaximumEventAgeInSeconds; the DLQ keeps a message its retention from
    the first enqueue; a redrive makes a new message the source queue keeps its retention again."""
    from connect_guard.settings import Settings

    ttl = Settings.model_fields["dedup_ttl_seconds"].default
    retry = max(
        tgt["RetryPolicy"]["MaximumEventAgeInSeconds"] for r in RULES.values() for tgt in r["Properties"]["Targets"]
    )
    for fn, queue in SOURCE_QUEUES.items():
        retention = QUEUES[queue]["Properties"]["MessageRetentionPeriod"]
        dlq = target(QUEUES[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) or ""
        dlq_retention = QUEUES[dlq]["Properties"]["MessageRetentionPeriod"]
        assert ttl >= retry + dlq_retention + retention, fn


def test_each_responder_sends_poison_to_its_own_queues_dlq_and_nowhere_else() -> None:
    for fn, queue in SOURCE_QUEUES.items():
        dlq = target(QUEUES[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        env = FUNCTIONS[fn]["Properties"]["Environment"]["Variables"]
        assert env["DEAD_LETTER_QUEUE_URL"] == {"Ref": dlq}, fn
        _, role = function_role(fn)
        sends = grants(role).get("sqs:SendMessage", [])
        assert [target(r) for r in sends] == [dlq], fn


def test_every_responder_timeout_holds_a_record_with_one_hung_call_and_the_final_alerts() -> None:
    from connect_guard.clients import HUNG_CALL_MS
    from connect_guard.runtime import RECORD_BUDGET_MS

    default = T["Globals"]["Function"]["Timeout"]
    for fn in SOURCE_QUEUES:
        timeout_ms = int(FUNCTIONS[fn]["Properties"].get("Timeout", default)) * 1000
        assert HUNG_CALL_MS < RECORD_BUDGET_MS < timeout_ms, fn
