"""Bad input for logging_guard, through the deployed handler as SQS drives it: malformed trail and
instance-attribute events each end in a finding at its severity, an ignore with its reason, or
the DLQ with its reason; the batch never fails, and nothing is read or changed on a trail or an
instance the event does not really name."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from connect_guard.responders import logging_guard
from connect_guard.trails import TrailGateway
from tests.conftest import delivered_now, load_event, with_new_event_id
from tests.integration.runtime_support import ClockedContext, captured_logs, wire

ACCOUNT = "111122223333"
DEMO_INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"
ORG_TRAIL = "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail"
STOP = "logging/stop-logging-by-name.json"  # the security account stops org-trail
FLOW_LOGS_OFF = "logging/update-instance-attribute-flow-logs-off.json"  # a member's instance
SELECTORS = "logging/put-event-selectors-management-off.json"


def edited(sample: str, parameters: Any) -> dict[str, Any]:
    event = delivered_now(with_new_event_id(load_event(sample)))
    event["detail"]["requestParameters"] = copy.deepcopy(parameters)
    return event


FLOW = {"InstanceId": DEMO_INSTANCE, "AttributeType": "CONTACTFLOW_LOGS", "Value": "false"}
FOREIGN_INSTANCE = f"arn:aws:connect:us-east-1:999988887777:instance/{DEMO_INSTANCE}"
# name → (event, what becomes of it: ("finding", severity, title prefix, reason part) |
# ("ignored", reason part) | ("dlq", reason part)). In this order, in one batch.
CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "trail name as a list": (
        edited(STOP, {"name": ["org-trail"]}),
        ("finding", "CRITICAL", "Unidentified trail change", "does not say which trail"),
    ),
    "trail name as an object": (
        edited(STOP, {"name": {"arn": ORG_TRAIL}}),
        ("finding", "CRITICAL", "Unidentified trail change", "does not say which trail"),
    ),
    "trail name as a number": (
        edited(STOP, {"name": 42}),
        ("finding", "CRITICAL", "Unidentified trail change", "does not say which trail"),
    ),
    "trail name masked": (
        edited(STOP, {"name": "***"}),
        ("finding", "CRITICAL", "Unidentified trail change", "does not say which trail"),
    ),
    "no requestParameters on a call that succeeded": (
        edited(STOP, None),
        ("finding", "CRITICAL", "Unidentified trail change", "does not say which trail"),
    ),
    "a trail ARN of another account": (
        edited(STOP, {"name": "arn:aws:cloudtrail:us-east-1:999988887777:trail/org-trail"}),
        ("finding", "CRITICAL", "Trail change not assessed", "names a trail of account 999988887777"),
    ),
    "a trail ARN in another partition": (
        edited(STOP, {"name": "arn:aws-cn:cloudtrail:cn-north-1:123456789012:trail/org-trail"}),
        ("finding", "CRITICAL", "Trail change not assessed", "a trail in partition aws-cn, not aws"),
    ),
    "an ARN that is no trail's": (
        edited(STOP, {"name": "arn:aws:s3:::cg-demo-org-trail-logs"}),
        ("finding", "CRITICAL", "Trail change not assessed", "is not a CloudTrail trail ARN"),
    ),
    "a name no trail can have": (
        edited(STOP, {"name": "org trail; --"}),
        ("finding", "CRITICAL", "Trail change not assessed", "is not a trail name"),
    ),
    # CloudTrail would refuse it (InvalidTrailNameException) on every retry: never read.
    "a name with adjacent dashes": (
        edited(STOP, {"name": "org--trail"}),
        ("finding", "CRITICAL", "Trail change not assessed", "is not a trail name"),
    ),
    # The event's selectors are the attacker's claim: the trail is re-read and restored.
    "selectors of the wrong type": (
        edited(SELECTORS, {"trailName": "security-trail", "eventSelectors": "all"}),
        ("finding", "CRITICAL", "Trail restored", "management events"),
    ),
    "requestParameters not an object": (
        edited(STOP, "org-trail"),
        ("dlq", "requestParameters: Input should be a valid dictionary"),
    ),
    "no instance named": (
        edited(FLOW_LOGS_OFF, {"AttributeType": "CONTACTFLOW_LOGS", "Value": "false"}),
        ("finding", "HIGH", "Unidentified instance", "does not say which instance"),
    ),
    "an instance of another account": (
        edited(FLOW_LOGS_OFF, {**FLOW, "InstanceId": FOREIGN_INSTANCE}),
        ("finding", "HIGH", "Flow logs change not assessed", "names an instance of account 999988887777"),
    ),
    "an instance in another region": (
        edited(FLOW_LOGS_OFF, {**FLOW, "InstanceId": f"arn:aws:connect:eu-west-2:{ACCOUNT}:instance/{DEMO_INSTANCE}"}),
        ("finding", "HIGH", "Flow logs change not assessed", f"an instance of account {ACCOUNT} in eu-west-2"),
    ),
    "instance ID as a number": (
        edited(FLOW_LOGS_OFF, {**FLOW, "InstanceId": 7}),
        ("dlq", "InstanceId must be a string, not a number"),
    ),
    "instance ARN cut short": (
        edited(FLOW_LOGS_OFF, {**FLOW, "InstanceId": "arn:aws:connect:us-east-1"}),
        ("dlq", "InstanceId is neither an instance ID nor an Amazon Connect instance ARN"),
    ),
    # No attribute named: it may have been the flow logs, which are off: re-read, restored.
    "no attribute named": (
        edited(FLOW_LOGS_OFF, {"InstanceId": DEMO_INSTANCE, "Value": "false"}),
        ("finding", "HIGH", "Contact flow logs restored", "contact flow logs are off"),
    ),
    # ... and once they are on, an unnamed attribute needs nothing.
    "attribute as a list": (
        edited(FLOW_LOGS_OFF, {**FLOW, "AttributeType": ["CONTACTFLOW_LOGS"]}),
        ("ignored", "does not say which attribute it changed; contact flow logs are on"),
    ),
    "another attribute": (
        edited(FLOW_LOGS_OFF, {**FLOW, "AttributeType": "EARLY_MEDIA"}),
        ("ignored", "instance attribute EARLY_MEDIA is not a logging setting"),
    ),
}


@pytest.fixture
def handler(aws, monkeypatch):
    return wire(aws, monkeypatch, logging_guard.build, "LoggingGuard", mode="enforce", MAX_EVENT_AGE_HOURS="")


def test_each_malformed_logging_event_ends_in_a_finding_an_ignore_or_the_dlq_with_its_reason(aws, handler):
    assert not TrailGateway(aws.session.client("cloudtrail")).state(ORG_TRAIL).is_logging
    records = [handler.record(json.dumps(event), f"m-{i}") for i, (event, _) in enumerate(CASES.values())]
    with captured_logs() as logs:
        response = handler.handler(handler.batch(*records), ClockedContext())
    assert response == {"batchItemFailures": []}  # nothing crashed the batch, nothing retried

    findings = {}
    for message in aws.inbox():
        finding = json.loads(message["Message"])
        findings.setdefault(finding["event"]["event_id"], []).append(finding)
    letters = {letter["attributes"]["connect_guard.source_message_id"]: letter for letter in handler.dead_letters()}
    processed = logs.with_message("event processed")
    ignored = [r.get("reason") for r in processed if r.get("outcome") == "ignored"]
    for i, (name, (event, expected)) in enumerate(CASES.items()):
        got = findings.get(event["detail"]["eventID"], [])
        if expected[0] == "finding":
            _, severity, title, reason = expected
            assert len(got) == 1, f"{name}: {got}"
            (finding,) = got
            assert finding["severity"] == severity, name
            assert finding["title"].startswith(title), (name, finding["title"])
            assert any(reason in r for r in finding["reasons"]), (name, finding["reasons"])
            assert f"m-{i}" not in letters, name
        elif expected[0] == "ignored":
            assert got == [] and f"m-{i}" not in letters, name
            assert any(expected[1] in (r or "") for r in ignored), (name, ignored)
        else:
            assert got == [], name
            letter = letters[f"m-{i}"]
            assert letter["attributes"]["connect_guard.error_class"] == "poison", name
            assert expected[1] in letter["attributes"]["connect_guard.reason"], (name, letter["attributes"])
    # None of them named org-trail as the trail it is: it was neither read into a restore nor restored.
    assert not TrailGateway(aws.session.client("cloudtrail")).state(ORG_TRAIL).is_logging
