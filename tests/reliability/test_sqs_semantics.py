"""The SQS side of the harness: what Lambda and SQS do with what the real handlers return."""

from __future__ import annotations

import json

from tests.reliability.harness import Fault, Sent, check, corpus_item, fault_free, is_failed_alert, origin, run, summary
from tests.reliability.test_fault_matrix import ITEMS

ROLLBACK = ITEMS["profile_rollback"]
PROFILE = "connect/update-security-profile-add-recordings.json"


def sent(result, source: str) -> Sent:
    (match,) = [s for s in result.sent if s.source == source]
    return match


def test_a_failed_record_comes_back_alone_with_a_growing_receive_count() -> None:
    """Partial batch failure: only the record that failed is redelivered, until it succeeds."""
    expected = fault_free("profile_rollback", ROLLBACK)
    fault = Fault("connect", "throttling", frozenset({"UpdateSecurityProfile"}), rounds=2)
    result = run("profile_rollback", list(ROLLBACK), (fault,), expected=expected)

    profile = sent(result, PROFILE)
    assert result.delivery.receives[profile.message_id] == 3, summary(result)
    assert [result.delivery.receives[s.message_id] for s in result.sent if s is not profile] == [1, 1, 1]
    assert result.delivery.processed == {s.message_id for s in result.sent} and not result.delivery.dlq
    (alert,) = result.findings_for(profile.event_id or "")
    assert alert["title"].startswith("Rolled back: Connect security profile CallCenterManager")
    assert not any(is_failed_alert(f) for f in result.findings)  # an early failure is only retried
    assert check(result, expected) == []


def test_after_its_fifth_receive_a_message_is_in_the_dlq_and_only_the_last_attempt_alerted() -> None:
    expected = fault_free("profile_rollback", ROLLBACK)
    fault = Fault("connect", "5xx", frozenset({"UpdateSecurityProfile"}), rounds=99)
    result = run("profile_rollback", list(ROLLBACK), (fault,), expected=expected)

    profile = sent(result, PROFILE)
    assert result.delivery.receives[profile.message_id] == 5, summary(result)
    assert result.delivery.dlq == {profile.message_id: 1}
    assert result.delivery.processed == {s.message_id for s in result.sent} - {profile.message_id}
    failed = [c for c in result.calls if c.operation == "Publish" and is_failed_alert(c.finding() or {})]
    assert [c.round for c in failed] == [5], "the FAILED alert goes out on the last receive, once"
    (alert,) = result.findings_for(profile.event_id or "")
    assert alert["title"].startswith("Rollback FAILED for UpdateSecurityProfile")
    (claim,) = [c for c in result.in_place if c.subject[0] == "security_profile"]
    assert not result.in_place[claim], "the escalation is still in place, as the FAILED alert says"
    assert check(result, expected) == []


def test_a_read_timeout_after_the_call_still_applied_it() -> None:
    """The fault kind itself: the service applied the write, the client saw a timeout."""
    fault = Fault("connect", "timeout_after_apply", frozenset({"UpdateSecurityProfile"}), rounds=1)
    result = run("profile_rollback", list(ROLLBACK), (fault,), expected=fault_free("profile_rollback", ROLLBACK))
    (write,) = [c for c in result.calls if c.operation == "UpdateSecurityProfile" and c.fault]
    assert write.applied and write.round == 1
    (claim,) = [c for c in result.in_place if c.subject[0] == "security_profile"]
    assert result.in_place[claim], "the profile is rolled back though the invocation failed"


def test_poison_goes_to_the_dlq_on_its_first_receive_and_costs_its_batch_mates_nothing() -> None:
    """Issue 11 point 1 (part A): a record that can never succeed is not retried. Fails while
    the runtime has poison received five times before SQS moves it."""
    items = [
        *ITEMS["policy_alerts"],
        corpus_item("malformed/truncated.json"),
        corpus_item("malformed/detail-not-an-object.json"),
    ]
    result = run("policy_alerts", items)
    poison = [s for s in result.sent if s.event_id is None]
    assert len(poison) == 2
    for message in poison:
        assert result.delivery.dlq[message.message_id] == 1, summary(result)
        assert result.delivery.receives[message.message_id] == 1, summary(result)
    events = [s for s in result.sent if s.event_id is not None]
    assert all(result.delivery.receives[s.message_id] == 1 for s in events)
    assert all(len(result.findings_for(s.event_id or "")) == 1 for s in events)
    assert check(result, result) == []


def test_a_function_error_returns_the_whole_batch_and_loses_nothing() -> None:
    """An invocation that raises (here: no SOURCE_QUEUE_ARN, so no record can be attributed)
    fails every record of its batch: all of them end in the DLQ, none is lost."""
    items = list(ITEMS["policy_alerts"])
    result = run("policy_alerts", items, environment={"SOURCE_QUEUE_ARN": None})
    assert result.delivery.errors and all("SOURCE_QUEUE_ARN" in e for e in result.delivery.errors)
    assert set(result.delivery.receives.values()) == {5}
    assert result.delivery.dlq == {s.message_id: 1 for s in result.sent} and not result.delivery.processed
    assert result.findings == []
    assert check(result, fault_free("policy_alerts", ITEMS["policy_alerts"])) == []


def test_a_dlq_message_is_traced_to_the_message_it_stands_for() -> None:
    """Moved by the redrive, or sent there by the function itself in any of the usual shapes."""
    sent = [Sent("m-1", '{"a": 1}', None, "one"), Sent("m-2", "not json", None, "two")]
    by_id = {s.message_id: s for s in sent}

    def dlq(body: str, message_id: str = "new", **attributes: str) -> dict[str, object]:
        values = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        return {"MessageId": message_id, "Body": body, "MessageAttributes": values}

    assert origin(dlq("changed", "m-1"), sent, by_id) == "m-1"  # the redrive keeps the message ID
    assert origin(dlq('{"a": 1}'), sent, by_id) == "m-1"  # the body sent again as it came
    assert origin(dlq(json.dumps({"body": "not json", "reason": "invalid JSON"})), sent, by_id) == "m-2"
    assert origin(dlq("{}", source_message_id="m-2"), sent, by_id) == "m-2"
    assert origin(dlq(json.dumps({"record": {"messageId": "m-1"}})), sent, by_id) == "m-1"
    assert origin(dlq("something else"), sent, by_id) is None
