"""The optional notifiers (Slack, Security Hub import, chat): deployed only when enabled,
failures kept in a DLQ with alarms, and exactly the actions each needs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.template.stack import (
    ALARMS,
    COMMON_ENV,
    OWN_ENV,
    RESOURCES,
    ROLES,
    ROOT,
    SLACK_ENV,
    SLACK_SECRET_ARN,
    T,
    as_list,
    dead_letter_queues,
    deployed,
    function_role,
    grants,
    notifies_topic,
    of_type,
    parameters,
    props,
    queue_policy_statements,
    references_suite_key,
    resolve,
    resources_of,
    role_statements,
    target,
    walk,
)

# ---- Slack notifier (optional: HasSlack) ---------------------------------------------------------
SLACK_RESOURCES = {
    "SlackNotifierDLQ": "AWS::SQS::Queue",
    "SlackNotifierDLQPolicy": "AWS::SQS::QueuePolicy",
    "SlackNotifierLogGroup": "AWS::Logs::LogGroup",
    "SlackNotifierFunctionRole": "AWS::IAM::Role",
    "SlackNotifierFunction": "AWS::Serverless::Function",
    "SlackNotifierPermission": "AWS::Lambda::Permission",
    "SlackNotifierSubscription": "AWS::SNS::Subscription",
}


def _references(node: Any) -> set[str]:
    """Logical IDs a node points at (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    found = set()
    for key, value in walk(node):
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(value[0] if isinstance(value, list) else value.split(".")[0])
        elif key == "Fn::Sub":
            text = value if isinstance(value, str) else value[0]
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([\w:.]+)\}", text)}
    return found


def test_slack_resources_exist_only_with_a_webhook_secret() -> None:
    assert T["Conditions"]["HasSlack"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SlackWebhookSecretArn"}, ""]}]}
    for name, resource_type in SLACK_RESOURCES.items():
        assert RESOURCES[name]["Type"] == resource_type, name
        assert RESOURCES[name]["Condition"] == "HasSlack", name
    # Whatever points at a Slack resource is itself conditional, or points at it only under
    # `Fn::If [HasSlack]` (the operations stack's parameters): else the stack fails without Slack.
    for name, resource in RESOURCES.items():
        if resource.get("Condition") != "HasSlack":
            assert not _unguarded_references(resource, "HasSlack") & set(SLACK_RESOURCES), name
    assert not deployed("SlackNotifierFunction", parameters())
    assert deployed("SlackNotifierFunction", parameters(SlackWebhookSecretArn=SLACK_SECRET_ARN))


def test_slack_webhook_secret_arn_must_be_a_complete_secret_arn() -> None:
    # IAM matches the complete ARN: a partial one (no random suffix) would be granted nothing.
    pattern = re.compile(T["Parameters"]["SlackWebhookSecretArn"]["AllowedPattern"])
    for ok in ("", SLACK_SECRET_ARN, "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:slack-x1Y2z3"):
        assert pattern.fullmatch(ok), ok
    for bad in (
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:connect-guard/slack",
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:*",
        "arn:aws:ssm:us-east-1:111122223333:parameter/slack",
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "*",
    ):
        assert not pattern.fullmatch(bad), bad


@pytest.mark.parametrize("minimum", T["Parameters"]["SlackMinimumSeverity"]["AllowedValues"])
def test_slack_filter_policy_admits_the_severities_at_or_above_the_minimum(minimum: str) -> None:
    from connect_guard.policy import Severity

    subscription = props("SlackNotifierSubscription")
    assert subscription["FilterPolicyScope"] == "MessageAttributes"
    params = parameters(SlackWebhookSecretArn=SLACK_SECRET_ARN, SlackMinimumSeverity=minimum)
    policy = resolve(subscription["FilterPolicy"], params)
    expected = {s.name for s in Severity if s >= Severity[minimum]}
    assert set(policy) == {"severity"}  # the attribute connect_guard.publisher sets
    assert set(policy["severity"]) == expected
    assert len(policy["severity"]) == len(expected)


def test_slack_notifier_function_contract() -> None:
    p = props("SlackNotifierFunction")
    assert p["CodeUri"] == "functions/slack_notifier"
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 30
    assert p["ReservedConcurrentExecutions"] == 2
    assert p["Role"] == {"Fn::GetAtt": ["SlackNotifierFunctionRole", "Arn"]}
    assert "Events" not in p  # invoked by the alert topic's subscription only
    assert props("SlackNotifierLogGroup")["LogGroupName"] == {"Fn::Sub": "/connect-guard/${Environment}/slack-notifier"}
    assert p["Environment"]["Variables"] == {**COMMON_ENV, **SLACK_ENV, "POWERTOOLS_SERVICE_NAME": "slack-notifier"}
    permission = props("SlackNotifierPermission")
    assert permission == {
        "FunctionName": {"Fn::GetAtt": ["SlackNotifierFunction", "Arn"]},
        "Action": "lambda:InvokeFunction",
        "Principal": "sns.amazonaws.com",
        "SourceArn": {"Ref": "AlertTopic"},
    }


def test_slack_notifier_failures_end_in_its_dlq_with_an_alarm() -> None:
    # Lambda's async retries, then its on-failure destination: a failed post is kept, not lost.
    assert props("SlackNotifierFunction")["EventInvokeConfig"] == {
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 21600,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["SlackNotifierDLQ", "Arn"]}}},
    }
    # SNS's own delivery failures (it could not invoke the function) go to the same queue.
    subscription = RESOURCES["SlackNotifierSubscription"]
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlertTopic"}
    assert subscription["Properties"]["Protocol"] == "lambda"
    assert subscription["Properties"]["Endpoint"] == {"Fn::GetAtt": ["SlackNotifierFunction", "Arn"]}
    assert subscription["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["SlackNotifierDLQ", "Arn"]}
    }
    assert set(as_list(subscription["DependsOn"])) == {"SlackNotifierPermission", "SlackNotifierDLQPolicy"}
    assert "SlackNotifierDLQ" in dead_letter_queues()
    dlq = props("SlackNotifierDLQ")
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600 and references_suite_key(dlq["KmsMasterKeyId"])
    # The destination sends with the function's role; the queue policy admits SNS from the topic only.
    granted = grants(props("SlackNotifierFunctionRole"))
    assert [target(r) for r in granted["sqs:SendMessage"]] == ["SlackNotifierDLQ"]
    assert {target(r) for r in granted["kms:GenerateDataKey"]} == {"SuiteKey"}
    (sns,) = [s for s in queue_policy_statements("SlackNotifierDLQ") if s["Effect"] == "Allow"]
    assert sns["Principal"] == {"Service": "sns.amazonaws.com"}
    assert sns["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "AlertTopic"}}}
    alarm = ALARMS["SlackNotifierDLQAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["SlackNotifierDLQ", "QueueName"]}}]
    assert alarm["AlarmName"] == {"Fn::Sub": "connect-guard-${Environment}-slack-notifier-dlq"}
    assert ALARMS["SlackNotifierErrorsAlarm"]["Properties"]["AlarmName"] == {
        "Fn::Sub": "connect-guard-${Environment}-slack-notifier-errors"
    }


SLACK_NOTIFIER_ACTIONS = {
    "logs:CreateLogStream": {"SlackNotifierLogGroup"},
    "logs:PutLogEvents": {"SlackNotifierLogGroup"},
    "secretsmanager:GetSecretValue": {"SlackWebhookSecretArn"},  # the parameter: that one secret
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "sqs:SendMessage": {"SlackNotifierDLQ"},
    "dynamodb:UpdateItem": {"DedupTable"},  # digest counters (pk id): one atomic ADD
}


def test_slack_notifier_has_exactly_the_contract_actions() -> None:
    _, role_props = function_role("SlackNotifierFunction")
    granted = grants(role_props)
    assert set(granted) == set(SLACK_NOTIFIER_ACTIONS)
    for action, expected in SLACK_NOTIFIER_ACTIONS.items():
        assert {target(r) for r in granted[action]} == expected, action
    # The secret permission is the parameter itself, nothing wider, and no condition to widen it.
    (secret,) = [s for s in role_statements(role_props) if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert secret["Action"] == "secretsmanager:GetSecretValue"
    assert secret["Resource"] == {"Ref": "SlackWebhookSecretArn"} and "Condition" not in secret
    # No other role of the stack reads secrets.
    for name, role in ROLES.items():
        if name != "SlackNotifierFunctionRole":
            assert not any(a.startswith("secretsmanager:") for a in grants(role["Properties"])), name


# ---- Security Hub import and chat notifier (optional: HasSecurityHub, HasChat) -------------------
SECURITYHUB_RESOURCES = {
    "SecurityHubImportDLQ": "AWS::SQS::Queue",
    "SecurityHubImportDLQPolicy": "AWS::SQS::QueuePolicy",
    "SecurityHubImportLogGroup": "AWS::Logs::LogGroup",
    "SecurityHubImportFunctionRole": "AWS::IAM::Role",
    "SecurityHubImportFunction": "AWS::Serverless::Function",
    "SecurityHubImportPermission": "AWS::Lambda::Permission",
    "SecurityHubImportSubscription": "AWS::SNS::Subscription",
}
CHAT_RESOURCES = {
    "ChatTopic": "AWS::SNS::Topic",
    "ChatTopicPolicy": "AWS::SNS::TopicPolicy",
    "ChatNotifierDLQ": "AWS::SQS::Queue",
    "ChatNotifierDLQPolicy": "AWS::SQS::QueuePolicy",
    "ChatNotifierLogGroup": "AWS::Logs::LogGroup",
    "ChatNotifierFunctionRole": "AWS::IAM::Role",
    "ChatNotifierFunction": "AWS::Serverless::Function",
    "ChatNotifierPermission": "AWS::Lambda::Permission",
    "ChatNotifierSubscription": "AWS::SNS::Subscription",
}
# Integration → (condition, its parameter, its resources, the log group's last path segment).
INTEGRATIONS = {
    "SecurityHubImport": ("HasSecurityHub", "EnableSecurityHub", SECURITYHUB_RESOURCES, "securityhub-import"),
    "ChatNotifier": ("HasChat", "EnableChat", CHAT_RESOURCES, "chat-notifier"),
}


def _unguarded_references(node: Any, guard: str) -> set[str]:
    """_references, minus what sits in the true branch of `Fn::If [guard, ...]` (safe when guard fails)."""
    if isinstance(node, dict):
        if "Fn::If" in node and node["Fn::If"][0] == guard:
            return _unguarded_references(node["Fn::If"][2], guard)
        if set(node) & {"Ref", "Fn::GetAtt", "Fn::Sub"}:
            return _references(node)
        return set().union(*(_unguarded_references(v, guard) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_unguarded_references(v, guard) for v in node))
    return set()


@pytest.mark.parametrize("integration", sorted(INTEGRATIONS))
def test_integration_resources_exist_only_when_enabled(integration: str) -> None:
    guard, parameter, resources, _ = INTEGRATIONS[integration]
    assert T["Conditions"][guard] == {"Fn::Equals": [{"Ref": parameter}, "true"]}
    for name, resource_type in resources.items():
        assert RESOURCES[name]["Type"] == resource_type, name
        assert RESOURCES[name]["Condition"] == guard, name
    # Whatever points at one of them is conditional too, or points at it only under `Fn::If [guard]`
    # (CHAT_TOPIC_ARN in every function): else the stack fails with the integration off.
    for name, resource in RESOURCES.items():
        if resource.get("Condition") != guard:
            assert not _unguarded_references(resource, guard) & set(resources), name
    for name, output in T["Outputs"].items():
        if output.get("Condition") != guard:
            assert not _unguarded_references(output, guard) & set(resources), name
    function = f"{integration}Function"
    assert not deployed(function, parameters())
    assert deployed(function, parameters(**{parameter: "true"}))


def test_integration_parameters_say_chat_shares_the_slack_severity() -> None:
    params = T["Parameters"]
    for name in ("SlackMinimumSeverity", "EnableChat"):
        assert "minimum severity for Slack and chat" in params[name]["Description"], name


@pytest.mark.parametrize("chat", ["false", "true"])
def test_the_chat_notifier_gets_the_chat_topic_only_when_deployed(chat: str) -> None:
    from connect_guard.settings import Settings

    params = parameters(EnableChat=chat)
    for name in ["ChatNotifierFunction"]:
        env = {k: str(resolve(v, params)) for k, v in props(name)["Environment"]["Variables"].items()}
        expected = "<ChatTopic>" if chat == "true" else None
        assert Settings.from_env(env).chat_topic_arn == expected, name


@pytest.mark.parametrize(
    ("function", "code", "role", "log_group", "service"),
    [
        (
            "SecurityHubImportFunction",
            "functions/securityhub_import",
            "SecurityHubImportFunctionRole",
            "SecurityHubImportLogGroup",
            "securityhub-import",
        ),
        (
            "ChatNotifierFunction",
            "functions/chat_notifier",
            "ChatNotifierFunctionRole",
            "ChatNotifierLogGroup",
            "chat-notifier",
        ),
    ],
)
def test_integration_function_contract(function: str, code: str, role: str, log_group: str, service: str) -> None:
    p = props(function)
    assert p["CodeUri"] == code and (ROOT / code / "app.py").is_file()
    assert p["Handler"] == "app.lambda_handler"
    assert p["Timeout"] == 30
    assert p["ReservedConcurrentExecutions"] == 2
    assert p["Role"] == {"Fn::GetAtt": [role, "Arn"]}
    assert "Events" not in p  # invoked by the alert topic's subscription only
    assert p["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}
    assert props(log_group)["LogGroupName"] == {"Fn::Sub": f"/connect-guard/${{Environment}}/{service}"}
    assert p["Environment"]["Variables"] == {
        **COMMON_ENV,
        **OWN_ENV.get(function, {}),
        "POWERTOOLS_SERVICE_NAME": service,
    }
    permission = function.removesuffix("Function") + "Permission"
    assert props(permission) == {
        "FunctionName": {"Fn::GetAtt": [function, "Arn"]},
        "Action": "lambda:InvokeFunction",
        "Principal": "sns.amazonaws.com",
        "SourceArn": {"Ref": "AlertTopic"},
    }


def test_securityhub_subscription_gets_every_finding() -> None:
    # ASFF updates by finding Id: a redelivery updates the imported finding, no filter needed.
    p = props("SecurityHubImportSubscription")
    assert "FilterPolicy" not in p and "FilterPolicyScope" not in p


@pytest.mark.parametrize("minimum", T["Parameters"]["SlackMinimumSeverity"]["AllowedValues"])
def test_chat_subscription_uses_the_slack_filter(minimum: str) -> None:
    chat, slack = props("ChatNotifierSubscription"), props("SlackNotifierSubscription")
    assert chat["FilterPolicyScope"] == slack["FilterPolicyScope"] == "MessageAttributes"
    assert chat["FilterPolicy"] == slack["FilterPolicy"]  # the same expression, not a copy that may drift
    params = parameters(SlackWebhookSecretArn=SLACK_SECRET_ARN, EnableChat="true", SlackMinimumSeverity=minimum)
    assert resolve(chat["FilterPolicy"], params) == resolve(slack["FilterPolicy"], params)


@pytest.mark.parametrize("integration", sorted(INTEGRATIONS))
def test_integration_failures_end_in_its_dlq_with_alarms(integration: str) -> None:
    _, _, _, slug = INTEGRATIONS[integration]
    function, dlq = f"{integration}Function", f"{integration}DLQ"
    # Lambda's async retries, then its on-failure destination.
    assert props(function)["EventInvokeConfig"] == {
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 21600,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [dlq, "Arn"]}}},
    }
    # SNS's own delivery failures go to the same queue.
    subscription = RESOURCES[f"{integration}Subscription"]
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlertTopic"}
    assert subscription["Properties"]["Protocol"] == "lambda"
    assert subscription["Properties"]["Endpoint"] == {"Fn::GetAtt": [function, "Arn"]}
    assert subscription["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}}
    assert set(as_list(subscription["DependsOn"])) == {f"{integration}Permission", f"{integration}DLQPolicy"}
    assert dlq in dead_letter_queues()
    queue = RESOURCES[dlq]
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert references_suite_key(queue["Properties"]["KmsMasterKeyId"])
    assert queue["DeletionPolicy"] == queue["UpdateReplacePolicy"] == "Delete"
    granted = grants(props(f"{function}Role"))
    assert [target(r) for r in granted["sqs:SendMessage"]] == [dlq]
    (sns,) = [s for s in queue_policy_statements(dlq) if s["Effect"] == "Allow"]
    assert sns["Principal"] == {"Service": "sns.amazonaws.com"}
    assert sns["Action"] == "sqs:SendMessage"
    assert sns["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "AlertTopic"}}}
    dlq_alarm = ALARMS[f"{integration}DLQAlarm"]["Properties"]
    assert dlq_alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
    assert dlq_alarm["AlarmName"] == {"Fn::Sub": f"connect-guard-${{Environment}}-{slug}-dlq"}
    errors = ALARMS[f"{integration}ErrorsAlarm"]["Properties"]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    assert errors["AlarmName"] == {"Fn::Sub": f"connect-guard-${{Environment}}-{slug}-errors"}
    assert notifies_topic(ALARMS[f"{integration}DLQAlarm"]) and notifies_topic(ALARMS[f"{integration}ErrorsAlarm"])


DEFAULT_PRODUCT_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:securityhub:${AWS::Region}:${AWS::AccountId}:product/${AWS::AccountId}/default"
}
SECURITYHUB_IMPORT_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"SecurityHubImportLogGroup"},
    "logs:PutLogEvents": {"SecurityHubImportLogGroup"},
    "securityhub:BatchImportFindings": [DEFAULT_PRODUCT_ARN],
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "sqs:SendMessage": {"SecurityHubImportDLQ"},
}
CHAT_NOTIFIER_ACTIONS: dict[str, Any] = {
    "logs:CreateLogStream": {"ChatNotifierLogGroup"},
    "logs:PutLogEvents": {"ChatNotifierLogGroup"},
    "sns:Publish": {"ChatTopic"},
    "kms:Decrypt": {"SuiteKey"},
    "kms:GenerateDataKey": {"SuiteKey"},
    "sqs:SendMessage": {"ChatNotifierDLQ"},
}


@pytest.mark.parametrize(
    ("function", "contract"),
    [("SecurityHubImportFunction", SECURITYHUB_IMPORT_ACTIONS), ("ChatNotifierFunction", CHAT_NOTIFIER_ACTIONS)],
)
def test_integration_roles_have_exactly_the_contract_actions(function: str, contract: dict[str, Any]) -> None:
    _, role_props = function_role(function)
    assert all("Fn::If" not in policy for policy in role_props["Policies"])  # nothing conditional added
    granted = grants(role_props)
    assert set(granted) == set(contract)
    for action, expected in contract.items():
        if isinstance(expected, set):
            assert {target(r) for r in granted[action]} == expected, action
        else:
            assert granted[action] == expected, action
    for statement in role_statements(role_props):
        assert "Condition" not in statement and "NotResource" not in statement, statement["Sid"]


def test_only_the_import_reaches_security_hub_and_only_the_chat_notifier_publishes_to_chat() -> None:
    for name, role in ROLES.items():
        for statement in role_statements(role["Properties"]):
            actions = as_list(statement["Action"])
            if any(a.startswith("securityhub:") for a in actions):
                assert name == "SecurityHubImportFunctionRole", name
                assert actions == ["securityhub:BatchImportFindings"]
                assert as_list(statement["Resource"]) == [DEFAULT_PRODUCT_ARN]
            if "ChatTopic" in {target(r) for r in resources_of(statement)}:
                assert name == "ChatNotifierFunctionRole", name
    # The chat notifier never publishes to the alert topic (which invokes it: a loop).
    assert "AlertTopic" not in {target(r) for r in grants(props("ChatNotifierFunctionRole"))["sns:Publish"]}


def test_chat_topic_is_encrypted_named_and_refuses_publishing_without_tls() -> None:
    p = props("ChatTopic")
    assert references_suite_key(p["KmsMasterKeyId"])
    assert p["TopicName"] == {"Fn::Sub": "connect-guard-${Environment}-chat"}
    policy = props("ChatTopicPolicy")
    assert policy["Topics"] == [{"Ref": "ChatTopic"}]
    (statement,) = as_list(policy["PolicyDocument"]["Statement"])  # nothing granted to anyone
    assert statement == {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sns:Publish",
        "Resource": {"Ref": "ChatTopic"},
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    # Nothing subscribes to it here: the chat channel configuration does, outside the stack.
    for subscription in of_type("AWS::SNS::Subscription").values():
        assert target(subscription["Properties"]["TopicArn"]) != "ChatTopic"
