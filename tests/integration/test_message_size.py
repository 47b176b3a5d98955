"""No alert is lost to SNS's 256 KB limit: the embedded SNS enforces it, the publisher fits in it."""

from __future__ import annotations

import copy
import json

import pytest

from connect_guard.events import CloudTrailEvent
from connect_guard.findings import Action, Finding, render_text
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
    assert finding["schema_version"] == "1.2" and finding["truncated"] == ["policy.grants"]
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


# ---- every finding SNS could carry alone is published with all its renderings ----------------------
def _large(**overrides: object) -> Finding:
    from tests.unit.test_fit import finding

    return finding(**overrides)


LARGE = {
    # About 60 KB of finding, each shape weighing differently once the JSON rendering is escaped
    # inside the message's own JSON: quotes and backslashes twice, control characters six times.
    "60 KB of non-ASCII reasons": {"reasons": tuple("é" * 500 for _ in range(60))},
    "60 KB of emoji": {"summary": "😀" * 15_000},
    "60 KB of quotes": {"summary": '"' * 60_000},
    "60 KB of backslashes": {"summary": "\\" * 60_000},
    "60 KB of control characters": {"summary": "\x01" * 60_000},
    "a connect action listing 1,000 permissions": {
        "actions": (
            Action("connect", "UpdateSecurityProfile", {"Permissions": [f'"P{i}"\\é' for i in range(1_000)]}, "taken"),
        )
    },
    "a snapshot nested eight levels deep": {
        "snapshot": {"role_name": "r", "trust_policy": [[[[[[[["q" * 100] * 6] * 6] * 6] * 6] * 6] * 6]]}
    },
    "600 tags": {"snapshot": {"role_name": "r", "tags": {f"k{i}": '"' * 100 for i in range(600)}}},
}


@pytest.mark.parametrize("shape", sorted(LARGE))
def test_a_large_finding_is_published_with_both_renderings_within_the_limit(aws, shape):
    finding = _large(**LARGE[shape])
    # The embedded SNS refuses a Publish over 256 KB, message and attributes together, as SNS does.
    assert SnsPublisher(aws.clients.sns, aws.topic_arn).publish(finding)
    (delivered,) = aws.inbox()
    published = json.loads(delivered["Message"])  # the JSON rendering, as SQS/Lambda/HTTPS get it
    (email,) = aws.recorder.emails  # the text rendering, as email gets it
    assert published["finding_id"] == finding.finding_id and published["title"] == finding.title
    assert email.startswith(f"{finding.severity} | {finding.title}")
    if published["truncated"]:  # shortened only when both did not fit, and then visibly in each
        assert "characters cut" in delivered["Message"] or " more" in delivered["Message"]
        assert "  Shortened " in email


def test_a_60_kb_finding_that_fits_is_published_whole(aws):
    from connect_guard.publisher import fit

    finding = _large(**LARGE["60 KB of non-ASCII reasons"])
    assert len(finding.to_json().encode()) > 60_000
    assert fit(finding) is finding  # nothing shortened: JSON and text together fit in 256 KB
    SnsPublisher(aws.clients.sns, aws.topic_arn).publish(finding)
    (delivered,) = aws.inbox()
    assert json.loads(delivered["Message"])["reasons"] == list(finding.reasons)
