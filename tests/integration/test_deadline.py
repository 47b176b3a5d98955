"""No invocation dies on its timeout: one hung AWS call can't outlast the function, no attempt
starts that could not finish in time, and the batch handler stops taking records before the
deadline, failing them unprocessed (SQS retries them) and still sending the FAILED alert of a
record on its last receive. A hung call costs time on the Lambda context's clock, not wall time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from connect_guard.clients import ATTEMPT_MS, DEADLINE, HUNG_CALL_MS, MAX_ATTEMPTS, RETRY_CONFIG, AwsClients
from connect_guard.errors import DeadlineExceededError
from connect_guard.responders import role_quarantine
from connect_guard.runtime import MAX_RECEIVE_COUNT, RECORD_BUDGET_MS
from tests.conftest import delivered_now, load_event, with_new_event_id
from tests.integration.runtime_support import ClockedContext, captured_logs, wire
from tests.template.stack import FUNCTIONS, SOURCE_QUEUES, T

TAGGED_ROLE_ATTEMPT = "quarantine/delete-role-tagged-assumed-role.json"  # protection read with ListRoleTags


class Hang:
    """Every attempt of one operation waits out its connect and read timeouts, then times out."""

    def __init__(self, context: ClockedContext, operation: str) -> None:
        self.context, self.operation, self.attempts = context, operation, 0

    def __call__(self, request: Any, event_name: str, **_: Any) -> None:
        if not event_name.endswith(f".{self.operation}"):
            return
        self.attempts += 1
        self.context.elapsed_ms += (RETRY_CONFIG.connect_timeout + RETRY_CONFIG.read_timeout) * 1000
        raise ReadTimeoutError(endpoint_url=request.url)


def shortest_sqs_responder_timeout() -> int:
    default = T["Globals"]["Function"]["Timeout"]
    return min(int(FUNCTIONS[f]["Properties"].get("Timeout", default)) for f in SOURCE_QUEUES)


def test_one_hung_call_fits_in_the_shortest_responder_timeout_with_a_record_around_it(aws):
    context = ClockedContext()
    hang = Hang(context, "ListRoleTags")
    # Registered on the session, so after the deadline check each client registers first.
    aws.session.events.register("before-send", hang)
    iam = AwsClients(aws.region, aws.session, aws.clients.account_id).iam

    with pytest.raises(ReadTimeoutError):
        iam.list_role_tags(RoleName="ContactLensExporter")

    assert hang.attempts == MAX_ATTEMPTS == 3
    assert context.elapsed_ms == 3 * ATTEMPT_MS <= HUNG_CALL_MS
    # With the time to start it and to send the batch's FAILED alerts after it:
    assert shortest_sqs_responder_timeout() * 1000 > RECORD_BUDGET_MS


def test_no_attempt_starts_that_could_not_finish_before_the_deadline(aws):
    context = ClockedContext(timeout_ms=30_000)
    hang = Hang(context, "ListRoleTags")
    aws.session.events.register("before-send", hang)
    iam = AwsClients(aws.region, aws.session, aws.clients.account_id).iam

    context.elapsed_ms = 30_000 - 12_000  # room for two attempts, not for the third
    with DEADLINE.of(context.get_remaining_time_in_millis), pytest.raises(DeadlineExceededError) as refused:
        iam.list_role_tags(RoleName="ContactLensExporter")

    assert hang.attempts == 2
    assert context.get_remaining_time_in_millis() == 2_000  # stopped, not killed at 0
    assert "AWS call not attempted: 2,000 ms usable before the function's timeout" in str(refused.value)
    # Outside an invocation (the replay, the CLI) nothing is refused: every attempt is made.
    with pytest.raises(ReadTimeoutError):
        iam.list_role_tags(RoleName="ContactLensExporter")
    assert hang.attempts == 2 + MAX_ATTEMPTS


def test_a_hung_dependency_ends_the_batch_before_the_timeout_and_every_last_receive_alerts(aws, monkeypatch):
    """Five quarantine events on a 60 s function, IAM hung on every one of them: records are
    failed cleanly, the guard leaves the last ones unstarted, and the two on their last receive
    get their "Quarantine UNCONFIRMED" alert; the others are only retried."""
    responder = wire(aws, monkeypatch, role_quarantine.build, "Quarantine", MAX_EVENT_AGE_HOURS="48")
    context = ClockedContext(timeout_ms=60_000)
    hang = Hang(context, "ListRoleTags")
    aws.session.events.register("before-send", hang)
    events = [delivered_now(with_new_event_id(load_event(TAGGED_ROLE_ATTEMPT))) for _ in range(5)]
    final = {1, 3}
    records = [
        responder.record(json.dumps(e), f"m-{i}", receives=MAX_RECEIVE_COUNT if i in final else 2)
        for i, e in enumerate(events)
    ]

    with captured_logs() as logs:
        response = responder.handler(responder.batch(*records), context)

    assert response == {"batchItemFailures": [{"itemIdentifier": f"m-{i}"} for i in range(5)]}
    assert context.get_remaining_time_in_millis() > 0  # the invocation returned: nothing was killed
    failed = [json.loads(m["Message"]) for m in aws.inbox()]
    assert sorted(f["event"]["event_id"] for f in failed) == sorted(events[i]["detail"]["eventID"] for i in final)
    # IAM hangs for the re-read too: whether each is quarantined is unknown, and said so.
    assert all(f["kind"] == "iam.quarantine_unconfirmed" and f["severity"] == "CRITICAL" for f in failed)
    # Records 0 and 1 were attempted (each hung call ended by its timeouts); record 1's last
    # receive then re-read IAM for its FAILED alert (hung too, stopped short of the time its
    # publish needs), so 2-4 were never started: too little time was left for a record.
    started = {r["sqs_message_id"] for r in logs.with_message("event failed; SQS will retry it")}
    not_started = {
        r["sqs_message_id"]
        for r in logs.with_message(
            "record not started: too little time left before the function's timeout; SQS will retry it"
        )
    }
    assert (started, not_started) == ({"m-0", "m-1"}, {"m-2", "m-3", "m-4"})
    assert all(
        r["remaining_ms"] < RECORD_BUDGET_MS
        for r in logs.with_message(
            "record not started: too little time left before the function's timeout; SQS will retry it"
        )
    )
    assert responder.dead_letters() == []  # transient, not poison: SQS keeps them for the retry
