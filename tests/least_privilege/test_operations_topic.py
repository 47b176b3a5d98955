"""Who may publish to the operations topic and use its key, evaluated as SNS and KMS would: only
CloudWatch, for an alarm of this account named as the suite's (connect-guard-<env>-*). A look-alike
(another account's alarm of the same name, an alarm of another environment, another service) is
refused; so is CloudWatch for the SOC's alert topic, which takes no alarm at all."""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard_tools.local_aws import REGION, SECURITY_ACCOUNT
from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.least_privilege.iam_model import Call, Request, Statement, as_list, evaluate
from tests.template.cfn import Resolver, parameters

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": SECURITY_ACCOUNT}
OPERATIONS = load_template(PROJECT_ROOT / "stacks" / "operations.yaml")
SECURITY = load_template()
TOPIC = f"arn:aws:sns:{REGION}:{SECURITY_ACCOUNT}:connect-guard-dev-operations"
OWN_ALARM = f"arn:aws:cloudwatch:{REGION}:{SECURITY_ACCOUNT}:alarm:connect-guard-dev-policy-alerts-dlq"


def _service_statements(template: dict[str, Any], resource: str, document_key: str, physical: dict[str, str]):
    resolver = Resolver(template, parameters(template, Environment="dev"), PSEUDO, physical)
    document = resolver.resolve(template["Resources"][resource]["Properties"][document_key])
    return [
        Statement.parse(resource, "policy", s)
        for s in as_list(document["Statement"])
        if s["Effect"] == "Deny" or s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]


def _decide(statements: list[Statement], action: str, resource: str, context: dict[str, str]) -> str:
    call = Call("-", "-", action.split(":")[0], action.split(":")[1], {}, SECURITY_ACCOUNT, None, REGION)
    return evaluate(Request(call, action, resource, {"aws:SecureTransport": "true", **context}), statements)[0]


FORGED = [
    pytest.param(
        {"aws:SourceAccount": "999988887777", "aws:SourceArn": OWN_ALARM.replace(SECURITY_ACCOUNT, "999988887777")},
        id="another-accounts-alarm-of-the-same-name",
    ),
    pytest.param(
        {
            "aws:SourceAccount": SECURITY_ACCOUNT,
            "aws:SourceArn": OWN_ALARM.replace("connect-guard-dev-", "connect-guard-prod-"),
        },
        id="another-environments-alarm",
    ),
    pytest.param(
        {
            "aws:SourceAccount": SECURITY_ACCOUNT,
            "aws:SourceArn": OWN_ALARM.replace("connect-guard-dev-", "my-connect-guard-dev-"),
        },
        id="a-name-that-only-contains-the-prefix",
    ),
    pytest.param({"aws:SourceAccount": SECURITY_ACCOUNT}, id="no-source-arn"),
    pytest.param({}, id="no-source-at-all"),
]


def test_this_accounts_suite_alarms_may_publish_and_use_the_key() -> None:
    own = {"aws:SourceAccount": SECURITY_ACCOUNT, "aws:SourceArn": OWN_ALARM}
    topic = _service_statements(OPERATIONS, "OperationsTopicPolicy", "PolicyDocument", {"OperationsTopic": TOPIC})
    assert _decide(topic, "sns:Publish", TOPIC, own) == "allowed"
    key = _service_statements(SECURITY, "OperationsKey", "KeyPolicy", {})
    assert _decide(key, "kms:GenerateDataKey", "*", own) == "allowed"
    assert _decide(key, "kms:Decrypt", "*", own) == "allowed"
    assert _decide(key, "kms:Encrypt", "*", own) == "not granted"  # nothing it does not need
    assert _decide(topic, "sns:Publish", TOPIC, {**own, "aws:SecureTransport": "false"}) == "denied"


@pytest.mark.parametrize("context", FORGED)
def test_a_look_alike_alarm_may_neither_publish_nor_use_the_key(context: dict[str, str]) -> None:
    topic = _service_statements(OPERATIONS, "OperationsTopicPolicy", "PolicyDocument", {"OperationsTopic": TOPIC})
    assert _decide(topic, "sns:Publish", TOPIC, context) != "allowed"
    key = _service_statements(SECURITY, "OperationsKey", "KeyPolicy", {})
    assert _decide(key, "kms:GenerateDataKey", "*", context) != "allowed"


def test_the_alert_topic_and_the_suite_key_take_no_alarm() -> None:
    own = {"aws:SourceAccount": SECURITY_ACCOUNT, "aws:SourceArn": OWN_ALARM}
    alerts = f"arn:aws:sns:{REGION}:{SECURITY_ACCOUNT}:alerts"
    topic = _service_statements(SECURITY, "AlertTopicPolicy", "PolicyDocument", {"AlertTopic": alerts})
    assert _decide(topic, "sns:Publish", alerts, own) != "allowed"
    key = _service_statements(SECURITY, "SuiteKey", "KeyPolicy", {})
    assert _decide(key, "kms:GenerateDataKey", "*", own) != "allowed"
