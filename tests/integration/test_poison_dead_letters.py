"""Poison is not a retry: an event that can never succeed goes to the function's own DLQ on its
first receive, with its reason, and no FAILED alert is sent for it. Driven through the deployed
handler as SQS drives it, against the embedded AWS."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard.responders import policy_alerts, role_quarantine
from connect_guard.runtime import MAX_RECEIVE_COUNT
from tests.conftest import delivered_now, load_event, with_new_event_id
from tests.integration.runtime_support import ClockedContext, captured_logs, queue_arn, wire

ADMIN_ATTACH = "iam/attach-user-policy-administratoraccess.json"
TAGGED_ROLE_ATTEMPT = "quarantine/delete-role-tagged-assumed-role.json"  # protection read from its tags
NO_FAILURES = {"batchItemFailures": []}


def fresh(relative: str) -> dict[str, Any]:
    return delivered_now(with_new_event_id(load_event(relative)))


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def poison_bodies() -> dict[str, str]:
    """Garbage of every kind the mutation runs found, each as SQS would carry it."""
    base = fresh(ADMIN_ATTACH)

    def changed(**detail: Any) -> str:
        event = copy.deepcopy(base)
        event["detail"].update(detail)
        return json.dumps(event)

    surrogate = json.dumps(base).replace('"alice"', '"al\\ud800ice"')
    deep = copy.deepcopy(base)
    deep["detail"]["requestParameters"]["extra"] = nested(300)
    return {
        "invalid JSON": '{"version": "0", "detail-type": "AWS API Call',
        "lone surrogate": surrogate,
        "deep nesting": json.dumps(deep),
        "blank eventID": changed(eventID="   "),
        "policyArn of the wrong type": changed(requestParameters={"userName": "alice", "policyArn": ["x"]}),
        "setAsDefault of the wrong type": changed(requestParameters={"userName": "alice", "setAsDefault": "yes"}),
        "region no AWS partition has": changed(awsRegion="mars-central-1x"),
    }


@pytest.fixture
def policy_alerts_handler(aws, monkeypatch):
    return wire(aws, monkeypatch, policy_alerts.build, "PolicyAlerts", mode="detect")


def test_every_poison_record_goes_to_the_dlq_on_its_first_receive_with_its_reason(aws, policy_alerts_handler):
    responder = policy_alerts_handler
    bodies = poison_bodies()
    good = json.dumps(fresh(ADMIN_ATTACH))
    records = [responder.record(good, "m-good")]
    records += [responder.record(body, f"m-{i}") for i, body in enumerate(bodies.values())]

    with captured_logs() as logs:
        response = responder.handler(responder.batch(*records), ClockedContext())

    assert response == NO_FAILURES  # nothing left to burn four more receives
    (alert,) = aws.inbox()  # the good event alerted; poison alerts nobody
    assert alert["Subject"].startswith("[CRITICAL] AdministratorAccess attached to user alice")
    letters = {letter["attributes"]["connect_guard.source_message_id"]: letter for letter in responder.dead_letters()}
    assert sorted(letters) == [f"m-{i}" for i in range(len(bodies))]
    for i, (kind, body) in enumerate(bodies.items()):
        letter = letters[f"m-{i}"]
        assert letter["body"] == body, kind  # unchanged: a redrive replays exactly what arrived
        attributes = letter["attributes"]
        assert attributes["connect_guard.error_class"] == "poison", kind
        assert attributes["connect_guard.source_queue"] == responder.queue_arn, kind
        assert attributes["connect_guard.receive_count"] == "1", kind
        assert attributes["connect_guard.responder"] == "policy_alerts", kind
    reasons = {kind: letters[f"m-{i}"]["attributes"]["connect_guard.reason"] for i, kind in enumerate(bodies)}
    assert reasons["invalid JSON"].startswith("invalid JSON: EOF while parsing a string")
    assert reasons["lone surrogate"].startswith("invalid JSON: ") and "hex escape" in reasons["lone surrogate"]
    assert "recursion limit exceeded" in reasons["deep nesting"]
    assert "detail.eventID: String should match pattern" in reasons["blank eventID"]
    assert "policyArn must be a string, not a list" in reasons["policyArn of the wrong type"]
    assert "setAsDefault must be a boolean, not a string" in reasons["setAsDefault of the wrong type"]
    assert "detail.awsRegion: String should match pattern" in reasons["region no AWS partition has"]
    rejected = logs.with_message("event rejected: it will end in the DLQ")
    assert [r["sqs_message_id"] for r in rejected] == [f"m-{i}" for i in range(len(bodies))]
    assert {r["dead_letter"] for r in rejected} == {"sent on its first receive"}


def test_whitespace_event_ids_are_poison_instead_of_deduplicating_against_each_other(aws, policy_alerts_handler):
    responder = policy_alerts_handler
    one, other = fresh(ADMIN_ATTACH), fresh("iam/put-user-policy-inline-notaction.json")
    one["detail"]["eventID"], other["detail"]["eventID"] = " ", " "
    batch = responder.batch(responder.record(json.dumps(one), "m-0"), responder.record(json.dumps(other), "m-1"))

    assert responder.handler(batch, ClockedContext()) == NO_FAILURES
    assert aws.inbox() == []  # neither the first alerted nor the second was taken for its duplicate
    assert len(responder.dead_letters()) == 2
    claims = [i["id"]["S"] for i in aws.clients.dynamodb.scan(TableName=aws.table_name)["Items"]]
    assert not [c for c in claims if c.startswith("policy_alerts#")]  # no dedup record claimed " "


def test_garbage_on_its_last_receive_is_dead_lettered_without_a_false_failed_alert(aws, monkeypatch):
    """botocore's own validation refuses a value taken from the event (here an empty role name,
    as a mutated record carries it to IAM): it fails the same way every time. Poison, and no
    "Quarantine FAILED ...: the principal is NOT quarantined" for a quarantine never due."""

    def empty_role_name(params: dict[str, Any], **_: Any) -> None:
        params["RoleName"] = ""  # IAM's model: at least 1 character

    aws.session.events.register("provide-client-params.iam.ListRoleTags", empty_role_name)
    responder = wire(aws, monkeypatch, role_quarantine.build, "Quarantine")
    body = json.dumps(fresh(TAGGED_ROLE_ATTEMPT))

    response = responder.handler(
        responder.batch(responder.record(body, "m-0", receives=MAX_RECEIVE_COUNT)), ClockedContext()
    )

    assert response == NO_FAILURES
    assert aws.inbox() == []
    (letter,) = responder.dead_letters()
    assert letter["body"] == body
    assert letter["attributes"]["connect_guard.error_type"] == "ParamValidationError"
    assert letter["attributes"]["connect_guard.reason"] == "AWS parameter validation refused a value (RoleName)"
    assert letter["attributes"]["connect_guard.receive_count"] == str(MAX_RECEIVE_COUNT)


def test_a_finding_sns_refuses_makes_its_event_poison(aws, policy_alerts_handler, monkeypatch):
    from connect_guard.publisher import SnsPublisher

    def refuse(self: SnsPublisher, finding: Any) -> str:
        error = {"Code": "InvalidParameter", "Message": "Invalid parameter: Message too long"}
        raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Publish")

    monkeypatch.setattr(SnsPublisher, "publish", refuse)
    responder = policy_alerts_handler
    body = json.dumps(fresh(ADMIN_ATTACH))

    assert responder.handler(responder.batch(responder.record(body, "m-0")), ClockedContext()) == NO_FAILURES
    (letter,) = responder.dead_letters()
    assert letter["attributes"]["connect_guard.reason"] == (
        "Publish answered InvalidParameter (HTTP 400): SNS refuses the finding this event produces"
    )


def test_when_the_dlq_refuses_the_poison_the_item_fails_and_sqs_keeps_it(aws, monkeypatch):
    responder = wire(aws, monkeypatch, policy_alerts.build, "PolicyAlerts", mode="detect")
    aws.session.client("sqs").delete_queue(QueueUrl=responder.dlq_url)  # SendMessage now fails

    with captured_logs() as logs:
        response = responder.handler(responder.batch(responder.record("not json", "m-0")), ClockedContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}  # retried: nothing lost
    (line,) = logs.with_message("event rejected: it will end in the DLQ")
    assert line["dead_letter"].startswith("after its retries (send failed: SendMessage answered")
    assert line["reason"].startswith("invalid JSON")


def test_without_a_configured_dlq_poison_is_left_to_sqs_redrive(aws, monkeypatch):
    responder = wire(aws, monkeypatch, policy_alerts.build, "PolicyAlerts", dead_letter_queue=False)
    response = responder.handler(responder.batch(responder.record("not json", "m-0")), ClockedContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert responder.dead_letters() == []


def test_a_record_from_a_foreign_queue_is_refused_and_never_put_in_this_functions_dlq(aws, policy_alerts_handler):
    responder = policy_alerts_handler
    foreign = responder.record("not json", "m-foreign", source=queue_arn("someone-elses-queue"))
    assert responder.handler(responder.batch(foreign), ClockedContext()) == {
        "batchItemFailures": [{"itemIdentifier": "m-foreign"}]
    }
    assert responder.dead_letters() == []
