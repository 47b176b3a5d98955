"""The SQS partial batch response (runtime.partial_batch_response), record by record."""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard.errors import DirectInvocationError, PoisonEventError
from connect_guard.runtime import partial_batch_response


def records(*ids: str) -> list[dict[str, Any]]:
    return [{"messageId": i, "body": f"body of {i}"} for i in ids]


def handler(failing: set[str], seen: list[str]):
    def handle(record: dict[str, Any]) -> str:
        seen.append(record["messageId"])
        if record["messageId"] in failing:
            raise PoisonEventError(f"{record['messageId']} failed") if len(seen) % 2 else TimeoutError("slow")
        return "ok"

    return handle


def test_a_batch_that_succeeds_reports_no_failures():
    seen: list[str] = []
    assert partial_batch_response(records("a", "b"), handler(set(), seen)) == {"batchItemFailures": []}
    assert seen == ["a", "b"]


def test_a_failed_record_is_reported_by_its_message_id_and_the_next_ones_still_run():
    seen: list[str] = []
    response = partial_batch_response(records("a", "b", "c", "d"), handler({"b", "c"}, seen))
    assert response == {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}
    assert seen == ["a", "b", "c", "d"]


def test_a_batch_where_every_record_failed_is_reported_item_by_item_not_raised():
    seen: list[str] = []
    response = partial_batch_response(records("a", "b"), handler({"a", "b"}, seen))
    assert response == {"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}


def test_what_a_record_raises_beyond_exception_is_not_swallowed():
    def interrupted(record: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        partial_batch_response(records("a"), interrupted)


@pytest.mark.parametrize("batch", [[], None, {"messageId": "a"}, "a"])
def test_records_that_are_not_a_non_empty_list_are_refused(batch):
    with pytest.raises(DirectInvocationError, match="not an SQS batch"):
        partial_batch_response(batch, lambda record: None)


def test_a_failed_record_without_a_message_id_fails_the_invocation_so_sqs_retries_the_batch():
    def failing(record: dict[str, Any]) -> None:
        raise ValueError("no")

    with pytest.raises(KeyError):
        partial_batch_response([{"body": "x"}], failing)
