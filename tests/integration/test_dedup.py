"""The dedup claim (connect_guard.dedup): one conditional PutItem per event, and what it guarantees.

Concurrency is staged deterministically: the first delivery's responder, mid-action, lets the
second delivery (another container) run to its end, so the second always meets a claim in
progress. Kills are exceptions nothing in the code under test catches (tests.integration.delivery).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from connect_guard.clients import AwsClients
from connect_guard.dedup import Claimant, Dedup, dedup_key
from connect_guard.delivery import Delivery
from connect_guard.errors import DuplicateInProgressError, ErrorClass, classify
from connect_guard.events import CloudTrailEvent
from connect_guard.outcome import Outcome
from connect_guard.publisher import SnsPublisher
from connect_guard.responders import policy_alerts
from connect_guard.runtime import MAX_RECEIVE_COUNT, Pipeline, build_pipeline
from connect_guard_tools.local_aws import SECURITY_ACCOUNT, LocalAws
from tests.conftest import delivered_now, load_event, with_new_event_id
from tests.integration.delivery import QUEUE, Kill, Killed, TimeOut, deadline_passed

ADMIN_ATTACH = "iam/attach-user-policy-administratoraccess.json"
TITLE = "AdministratorAccess attached to user alice in 111122223333"


@dataclass
class DynamoCalls:
    """Every DynamoDB call the clients make, as (operation, table), answered or refused."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, str(params.get("TableName"))))

    def install(self, aws: LocalAws) -> DynamoCalls:
        aws.session.events.register("before-parameter-build.dynamodb", self)
        return self

    def take(self) -> list[tuple[str, str]]:
        taken, self.calls = self.calls, []
        return taken


def fresh() -> dict[str, Any]:
    return delivered_now(with_new_event_id(load_event(ADMIN_ATTACH)))


def pipeline(aws: LocalAws) -> Pipeline:
    """A new container's pipeline, its clients on the embedded AWS's session (and its hooks)."""
    return build_pipeline(policy_alerts.build, aws.settings(), AwsClients(aws.region, aws.session, SECURITY_ACCOUNT))


def message(event: dict[str, Any], message_id: str, receives: int = 1) -> tuple[str, Delivery]:
    body = json.dumps(event)
    return body, Delivery(message_id, body, QUEUE, receives, None)


def claims(aws: LocalAws, prefix: str = "policy_alerts#") -> list[dict[str, Any]]:
    items = aws.clients.dynamodb.scan(TableName=aws.table_name)["Items"]
    return [i for i in items if i["id"]["S"].startswith(prefix)]


def titles(aws: LocalAws) -> list[str]:
    return [json.loads(m["Message"])["title"] for m in aws.inbox()]


class During:
    """A responder that, mid-action, lets `meanwhile` run once: another container's delivery."""

    def __init__(self, inner: Any, meanwhile: Callable[[], None]) -> None:
        self.inner, self.meanwhile, self.name = inner, meanwhile, inner.name

    def handle(self, event: CloudTrailEvent) -> Outcome:
        self.meanwhile()
        return self.inner.handle(event)


def test_a_fresh_event_costs_one_dedup_write_the_conditional_claim(aws):
    calls = DynamoCalls().install(aws)
    event = fresh()
    result = pipeline(aws).process(*message(event, "m-1"))
    assert result["outcome"] == "alerted"
    assert calls.take() == [("PutItem", aws.table_name)]  # no completion, no read
    (claim,) = claims(aws)
    assert claim["id"]["S"] == dedup_key("policy_alerts", event["detail"]["eventID"])
    assert claim["message_id"] == {"S": "m-1"} and claim["receive_count"] == {"N": "1"}
    assert set(claim) == {"id", "message_id", "receive_count", "in_progress_expiration", "expiration"}
    assert int(claim["expiration"]["N"]) - time.time() > 19 * 86_400  # the TTL attribute, in seconds


def test_another_message_with_the_same_event_id_is_a_duplicate_for_one_refused_put(aws):
    event = fresh()
    pipeline(aws).process(*message(event, "m-1"))
    calls = DynamoCalls().install(aws)
    second = pipeline(aws).process(*message(event, "m-2"))
    assert second == {
        "responder": "policy_alerts",
        "event_id": event["detail"]["eventID"],
        "event_name": "AttachUserPolicy",
        "outcome": "duplicate",
        "severity": None,
        "reason": "eventID already processed",
        "alerts": [],
    }
    assert calls.take() == [("PutItem", aws.table_name)]  # refused: the claim that stands came with it
    deadline_passed(aws)  # long after: still a duplicate, the first message succeeded or is retried
    assert pipeline(aws).process(*message(event, "m-3"))["outcome"] == "duplicate"
    assert titles(aws) == [TITLE]
    assert [c["message_id"]["S"] for c in claims(aws)] == ["m-1"]


def test_a_copy_arriving_while_the_first_acts_is_skipped_and_the_event_alerted_once(aws):
    event = fresh()
    second: list[dict[str, Any]] = []
    first = pipeline(aws)
    first.responder = During(first.responder, lambda: second.append(pipeline(aws).process(*message(event, "m-2"))))
    assert first.process(*message(event, "m-1"))["outcome"] == "alerted"
    assert [r["outcome"] for r in second] == ["duplicate"]
    assert titles(aws) == [TITLE]


def test_the_same_message_received_twice_at_once_is_retried_then_settles(aws):
    event = fresh()
    raised: list[BaseException] = []

    def same_message_meanwhile() -> None:
        try:
            pipeline(aws).process(*message(event, "m-1", receives=2))
        except DuplicateInProgressError as error:
            raised.append(error)

    first = pipeline(aws)
    first.responder = During(first.responder, same_message_meanwhile)
    assert first.process(*message(event, "m-1"))["outcome"] == "alerted"
    (error,) = raised
    assert classify(error).kind is ErrorClass.TRANSIENT  # SQS delivers it again later
    assert titles(aws) == [TITLE]
    # Any other copy now, whenever it comes, is a duplicate.
    assert pipeline(aws).process(*message(event, "m-2"))["outcome"] == "duplicate"


def test_a_failed_attempt_releases_its_claim_so_any_copy_runs_next(aws, monkeypatch):
    event = fresh()

    def timeout(self: SnsPublisher, finding: Any) -> str:
        raise TimeoutError("SNS did not answer")

    with monkeypatch.context() as down:
        down.setattr(SnsPublisher, "publish", timeout)
        calls = DynamoCalls().install(aws)
        with pytest.raises(TimeoutError):
            pipeline(aws).process(*message(event, "m-1"))
        assert calls.take() == [("PutItem", aws.table_name), ("DeleteItem", aws.table_name)]
    assert claims(aws) == []
    # EventBridge's copy comes first: it runs; the failed message's retry is then the duplicate.
    assert pipeline(aws).process(*message(event, "m-2"))["outcome"] == "alerted"
    assert pipeline(aws).process(*message(event, "m-1", receives=2))["outcome"] == "duplicate"
    assert titles(aws) == [TITLE]


def test_a_release_frees_only_its_own_claim(aws):
    settings = aws.settings()
    dedup = Dedup(aws.clients.dynamodb, settings.dedup_table_name, settings.dedup_ttl_seconds, "policy_alerts")
    assert dedup.claim("e-1", Claimant("m-1", 1))
    dedup.release("e-1", Claimant("m-2", 1))  # another message's failure: not its claim
    dedup.release("e-1", Claimant("m-1", 2))  # another receive of the message (SQS's twin)
    assert [c["message_id"]["S"] for c in claims(aws)] == ["m-1"]
    dedup.release("e-1", Claimant("m-1", 1))
    assert claims(aws) == []


def test_a_claim_whose_answer_was_lost_is_released_so_a_copy_is_not_skipped(aws):
    """The put applied, its answer timed out: the claim stands for nothing. Left there, EventBridge's
    copy would be acknowledged as a duplicate of an attempt that never ran."""
    event = fresh()
    TimeOut("dynamodb:PutItem").install(aws)
    with pytest.raises(ReadTimeoutError):
        pipeline(aws).process(*message(event, "m-1"))
    assert claims(aws) == []
    assert pipeline(aws).process(*message(event, "m-2"))["outcome"] == "alerted"
    assert titles(aws) == [TITLE]


def killed(aws: LocalAws, after: int, body: str, delivery: Delivery) -> None:
    kill = Kill(after)
    aws.session.events.register("after-call", kill)
    try:
        with contextlib.suppress(Killed):
            pipeline(aws).process(body, delivery)
        assert kill.fired is not None
    finally:
        aws.session.events.unregister("after-call", kill)


@pytest.mark.parametrize("after", [1, 2], ids=["before the publish", "after the publish"])
def test_a_receive_killed_mid_event_is_rerun_by_its_own_redelivery_only(aws, after):
    event = fresh()
    killed(aws, after, *message(event, "m-1"))
    # EventBridge's copy: the killed message is still in its queue, and its retry answers for it.
    assert pipeline(aws).process(*message(event, "m-2"))["outcome"] == "duplicate"
    with pytest.raises(DuplicateInProgressError):  # its window still open: it may be running
        pipeline(aws).process(*message(event, "m-1", receives=2))
    deadline_passed(aws)  # the visibility timeout outlasts the window
    assert pipeline(aws).process(*message(event, "m-1", receives=2))["outcome"] == "alerted"
    assert titles(aws) == [TITLE] * after  # killed after the publish: the same finding again


def test_a_final_receive_killed_mid_event_is_run_by_its_redrive(aws):
    event = fresh()
    killed(aws, 1, *message(event, "m-1", receives=MAX_RECEIVE_COUNT))
    deadline_passed(aws)
    # SQS moved it to the DLQ; the redrive is a new message, received once.
    assert pipeline(aws).process(*message(event, "m-redriven"))["outcome"] == "alerted"
    assert [c["message_id"]["S"] for c in claims(aws)] == ["m-redriven"]
    assert pipeline(aws).process(*message(event, "m-late"))["outcome"] == "duplicate"
    assert titles(aws) == [TITLE]


def test_direct_invocations_dedup_and_take_over_a_dead_ones_claim(aws):
    """`sam local invoke` and the replay have no SQS message: each invocation is its own, and
    nothing redelivers it, so its claim is taken over once its window ends."""
    event = fresh()
    assert pipeline(aws).process(event)["outcome"] == "alerted"
    assert pipeline(aws).process(event)["outcome"] == "duplicate"
    other = fresh()
    kill = Kill(1)
    aws.session.events.register("after-call", kill)
    with contextlib.suppress(Killed):
        pipeline(aws).process(other)
    aws.session.events.unregister("after-call", kill)
    assert pipeline(aws).process(other)["outcome"] == "duplicate"  # it may still be running
    deadline_passed(aws)
    assert pipeline(aws).process(other)["outcome"] == "alerted"
    assert titles(aws) == [TITLE, TITLE]


def test_records_written_by_powertools_idempotency_still_count(aws):
    """The key is Powertools' (md5 of the eventID as JSON, under the same prefix): an event done
    before the upgrade stays done; one in progress is waited for, then taken over."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

    layer = DynamoDBPersistenceLayer(table_name=aws.table_name, boto3_client=aws.clients.dynamodb)
    layer.configure(IdempotencyConfig(event_key_jmespath="detail.eventID"), None, key_prefix="policy_alerts")
    db = aws.clients.dynamodb
    now = int(time.time())
    done, running, dead = fresh(), fresh(), fresh()
    for event, status, window_ms in (
        (done, "COMPLETED", (now - 60) * 1000),
        (running, "INPROGRESS", (now + 60) * 1000),
        (dead, "INPROGRESS", (now - 60) * 1000),
    ):
        key = layer._get_hashed_idempotency_key(event)
        assert key == dedup_key("policy_alerts", event["detail"]["eventID"])
        item = {"id": {"S": key}, "expiration": {"N": str(now + 3600)}, "status": {"S": status}}
        db.put_item(TableName=aws.table_name, Item={**item, "in_progress_expiration": {"N": str(window_ms)}})
    assert pipeline(aws).process(*message(done, "m-1"))["outcome"] == "duplicate"
    with pytest.raises(DuplicateInProgressError):
        pipeline(aws).process(*message(running, "m-2"))
    assert pipeline(aws).process(*message(dead, "m-3"))["outcome"] == "alerted"
    assert titles(aws) == [TITLE]


def test_an_expired_claim_is_a_new_event(aws):
    """DynamoDB deletes expired items within days, not at once: the claim checks the TTL itself."""
    event = fresh()
    pipeline(aws).process(*message(event, "m-1"))
    db = aws.clients.dynamodb
    (claim,) = claims(aws)
    db.put_item(TableName=aws.table_name, Item={**claim, "expiration": {"N": str(int(time.time()) - 1)}})
    assert pipeline(aws).process(*message(event, "m-2"))["outcome"] == "alerted"
    assert titles(aws) == [TITLE, TITLE]
