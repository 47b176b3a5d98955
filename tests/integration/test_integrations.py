"""Security Hub (ASFF, updated by Id on redelivery) and chat (custom notifications) delivery."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any

from connect_guard.events import CloudTrailEvent
from connect_guard.integrations import to_asff, to_chat_notification
from connect_guard.responders import policy_alerts
from tests.conftest import ROOT, load_event


def function(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_app", ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sns_event(finding: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(finding)}}]}


def a_finding(aws) -> dict[str, Any]:
    event = CloudTrailEvent.model_validate(load_event("iam/attach-user-policy-administratoraccess.json"))
    outcome = policy_alerts.build(aws.settings(), aws.clients).handle(event)
    assert outcome.finding
    return outcome.finding


def test_asff_mapping_carries_severity_type_resource_and_evidence(aws):
    asff = to_asff(a_finding(aws), "123456789012", "us-east-1")
    assert asff["ProductArn"] == "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default"
    assert asff["Severity"] == {"Label": "CRITICAL"} and asff["Types"] == ["TTPs/Privilege Escalation"]
    assert asff["Resources"][0]["Type"] == "AwsIamUser"
    assert asff["ProductFields"]["connect-guard/SourceAccount"] == "111122223333"
    assert len(asff["Description"]) <= 1024 and asff["Id"].startswith("cg-")


def test_security_hub_import_updates_rather_than_duplicates_on_redelivery(aws, monkeypatch, lambda_context):
    monkeypatch.setenv("ALERT_TOPIC_ARN", aws.topic_arn)
    monkeypatch.setenv("DEDUP_TABLE_NAME", aws.table_name)
    handler = function("securityhub_import").lambda_handler
    finding = a_finding(aws)
    assert handler(sns_event(finding), lambda_context) == {"imported": 1}
    assert handler(sns_event(finding), lambda_context) == {"imported": 1}
    findings = aws.session.client("securityhub").get_findings()["Findings"]
    assert [f["Id"] for f in findings] == [finding["finding_id"]]


def test_chat_notifications_use_the_custom_notification_format(aws, monkeypatch, lambda_context):
    sns, sqs = aws.session.client("sns"), aws.session.client("sqs")
    chat_topic = sns.create_topic(Name="connect-guard-dev-chat")["TopicArn"]
    queue = sqs.create_queue(QueueName="chat-channel")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=chat_topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    monkeypatch.setenv("ALERT_TOPIC_ARN", aws.topic_arn)
    monkeypatch.setenv("DEDUP_TABLE_NAME", aws.table_name)
    monkeypatch.setenv("CHAT_TOPIC_ARN", chat_topic)
    finding = a_finding(aws)
    function("chat_notifier").lambda_handler(sns_event(finding), lambda_context)
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    notification = json.loads(message["Body"])
    assert notification == to_chat_notification(finding)
    assert notification["version"] == "1.0" and notification["source"] == "custom"
    assert notification["content"]["textType"] == "client-markdown"
    assert notification["content"]["title"].startswith("[CRITICAL] AdministratorAccess attached to user alice")


def test_alarm_notifications_on_the_topic_are_not_imported(aws, monkeypatch, lambda_context):
    monkeypatch.setenv("ALERT_TOPIC_ARN", aws.topic_arn)
    monkeypatch.setenv("DEDUP_TABLE_NAME", aws.table_name)
    alarm = {"AlarmName": "connect-guard-dev-policy-alerts-dlq", "NewStateValue": "ALARM"}
    assert function("securityhub_import").lambda_handler(sns_event(alarm), lambda_context) == {"imported": 0}
    assert aws.session.client("securityhub").get_findings()["Findings"] == []


def test_chat_notifications_neutralise_mentions_links_and_markdown_from_the_event(aws):
    evil = "<!channel> <https://evil.example|AWS console> [AWS console](https://evil.example)\n# <@U0123ABCD>"
    finding = a_finding(aws)
    finding["title"] = f"AdministratorAccess attached to user {evil}"
    finding["actor"]["display"] = evil
    finding["reasons"] = [evil]
    finding["actions"] = [{"status": "taken", "service": evil, "operation": "Op", "parameters": {}}]
    content = to_chat_notification(finding)["content"]
    shown = (
        "\u2039!channel\u203a \u2039https://evil.example|AWS console\u203a "
        "[AWS console]\u200b(https://evil.example) # \u2039@U0123ABCD\u203a"
    )
    assert content["title"] == f"[CRITICAL] AdministratorAccess attached to user {shown}"
    assert content["description"].splitlines() == [
        f"*Who* {shown}",
        "*Where* account 111122223333, us-east-1 at 2026-11-20T10:15:30Z",
        f"• {shown}",
    ]
    assert content["nextSteps"][0] == f"taken: {shown}:Op"
    text = json.dumps(content, ensure_ascii=False)
    assert "<" not in text and "](" not in text
    # The suite's own links stay plain URLs.
    assert content["nextSteps"][1].startswith("Runbook: https://") and "/docs/runbooks/policy-alerts.md" in text
    assert content["nextSteps"][2].startswith("CloudTrail: https://us-east-1.console.aws.amazon.com/cloudtrailv2/")


def test_chat_notifications_stay_small_whatever_the_finding_holds(aws):
    finding = a_finding(aws)
    finding["actions"] = [{"status": "taken", "service": "s" * 100_000, "operation": "Op", "parameters": {}}] * 5
    finding["event"]["account_id"] = "1" * 100_000
    finding["title"] = finding["summary"] = "t" * 100_000
    finding["reasons"] = ["r" * 100_000] * 10
    assert len(json.dumps(to_chat_notification(finding)).encode()) < 10_000
