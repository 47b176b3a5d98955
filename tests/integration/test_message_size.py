"""No alert is lost to SNS's 256 KB limit: the embedded SNS enforces it, the publisher fits in it."""

from __future__ import annotations

import copy
import json

import pytest

from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Finding, render_text
from connect_guard.publisher import SnsPublisher, message_attributes
from connect_guard.responders import policy_alerts
from connect_guard_tools.local_aws import LocalAws, SnsPublishLimit
from tests.conftest import load_event


def attach(policy_arn: str) -> CloudTrailEvent:
    event = copy.deepcopy(load_event("iam/attach-user-policy-administratoraccess.json"))
    event["detail"]["requestParameters"]["policyArn"] = policy_arn
    return CloudTrailEvent.model_validate(event)


def test_the_embedded_sns_rejects_a_publish_over_256_kb_as_sns_does(aws):
    sns = aws.clients.sns
    attributes = {"pad": {"DataType": "String", "StringValue": "x" * 1_000}}
    with pytest.raises(sns.exceptions.InvalidParameterException, match="Message too long"):
        sns.publish(TopicArn=aws.topic_arn, Message="x" * (262_144 - 1_000), MessageAttributes=attributes)
    assert aws.recorder.findings == [] and aws.inbox() == []
    sns.publish(TopicArn=aws.topic_arn, Message="x" * (262_144 - 1_010), MessageAttributes=attributes)
    assert len(aws.inbox()) == 1


def test_attaching_read_only_access_alerts_in_full(monkeypatch):
    # AWS's managed policies, as in a real account: ReadOnlyAccess lists thousands of actions.
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    with LocalAws() as aws:
        published = record_published(monkeypatch)
        policy_alerts.build(aws.settings(), aws.clients).handle(attach("arn:aws:iam::aws:policy/ReadOnlyAccess"))
        (finding,) = published
        machine, text = finding.to_json(), render_text(finding)
        # The old envelope copied the JSON for sqs, lambda and https too: SNS refused it.
        old = json.dumps({"default": machine, "email": text, "sqs": machine, "lambda": machine, "https": machine})
        assert SnsPublishLimit.size({"Message": old, "MessageAttributes": message_attributes(finding)}) > 262_144
        (delivered,) = aws.inbox()
    received = json.loads(delivered["Message"])
    assert received["truncated"] == [] and received["policy"]["grants"][0].startswith("Allow a4b:Get*, ")


def test_a_policy_too_large_for_sns_alerts_with_its_grants_summarised(aws):
    services = ("ec2", "s3", "iam", "connect", "lambda", *(f"svc{i:03}" for i in range(295)))
    actions = [f"{services[i % len(services)]}:Describe{i:05}" for i in range(15_000)]
    actions += ["iam:PassRole", "connect:UpdateUserSecurityProfiles", "s3:*", "ec2:RunInstances"]
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam = aws.account_session("111122223333").client("iam")
    arn = iam.create_policy(PolicyName="everything-readable", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    outcome = policy_alerts.build(aws.settings(), aws.clients).handle(attach(arn))
    assert outcome.outcome == "alerted"
    (delivered,) = aws.inbox()
    finding = json.loads(delivered["Message"])
    assert finding["schema_version"] == "1.1" and finding["truncated"] == ["policy.grants"]
    assert finding["policy"]["grants_total"] == 1
    assert outcome.finding == finding  # the outcome reports the finding as published
    (grant,) = finding["policy"]["grants"]
    assert grant.startswith(
        "Allow 15,004 actions in 300 services on *: iam:PassRole, connect:UpdateUserSecurityProfiles, s3:*, "
        "ec2:RunInstances, "
    )
    assert f"… and 14,992 more (full document: aws iam get-policy-version --policy-arn {arn} --version-id v1)" in grant

    assert "; per service: connect 51, ec2 51, iam 51, s3 51, lambda 50, " in grant
    (email,) = aws.recorder.emails
    assert "1 statements, summarised to fit SNS's 256 KB limit" in email and grant in email


def record_published(monkeypatch) -> list[Finding]:
    """Every finding handed to the publisher, before it is fitted."""
    published: list[Finding] = []
    publish = SnsPublisher.publish
    monkeypatch.setattr(SnsPublisher, "publish", lambda self, f: published.append(f) or publish(self, f))
    return published
