"""SNS publisher: one message, readable text for email, the JSON finding for machines."""

from __future__ import annotations

import json
from typing import Any

from connect_guard.findings import Finding, render_text

# SNS's limit is 256 KiB for the whole message; keep headroom for attributes and envelope.
MAX_MESSAGE_BYTES = 250_000


def message_attributes(finding: Finding) -> dict[str, dict[str, str]]:
    """Filterable attributes (SNS filter policies take up to 5 keys)."""
    values = {
        "severity": str(finding.severity),
        "event_name": finding.event.event_name,
        "account": finding.event.account_id,
        "responder": finding.responder,
        "kind": finding.kind,
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def sns_message(finding: Finding) -> str:
    """Per-protocol message: email gets text, everything else the JSON finding."""
    machine = finding.to_json()
    text = render_text(finding)
    body = {"default": machine, "email": text, "sqs": machine, "lambda": machine, "https": machine}
    message = json.dumps(body, ensure_ascii=False)
    if len(message.encode()) > MAX_MESSAGE_BYTES:  # pathological grants lists: trim the text copy
        body["email"] = text[:20_000] + "\n[truncated: see the JSON finding]\n"
        message = json.dumps(body, ensure_ascii=False)
    return message


class SnsPublisher:
    def __init__(self, sns_client: Any, topic_arn: str) -> None:
        self._sns = sns_client
        self._topic_arn = topic_arn

    def publish(self, finding: Finding) -> str:
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=finding.subject,
            Message=sns_message(finding),
            MessageStructure="json",
            MessageAttributes=message_attributes(finding),
        )
        return str(response["MessageId"])
