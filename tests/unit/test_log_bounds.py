"""Every log line stays small and writable whatever it is given: fields cut (and marked) at 500
characters, lines at 2 KB, text that is not valid Unicode escaped instead of breaking the handler."""

from __future__ import annotations

import json

from connect_guard.observability import FIELD_MAX, LINE_MAX, bounded_json, logger
from tests.integration.runtime_support import captured_logs


def test_a_long_field_is_cut_at_500_characters_and_says_how_much_was_cut():
    with captured_logs() as logs:
        logger.warning("event failed; SQS will retry it", extra={"reason": "x" * 10_000})
    (line,) = logs.raw
    record = json.loads(line)
    assert record["reason"] == "x" * FIELD_MAX + "… [9,500 characters cut]"
    assert len(line.encode()) <= LINE_MAX


def test_a_line_with_many_long_fields_cuts_them_further_then_drops_them_by_name():
    with captured_logs() as logs:
        logger.info("event processed", extra={f"field_{i}": "y" * 400 for i in range(5)})
        logger.info("event processed", extra={f"field_{i}": "z" * 400 for i in range(40)})
    shortened, dropped = logs.records
    assert {k: v for k, v in shortened.items() if k.startswith("field_")} == {
        f"field_{i}": "y" * 200 + "… [200 characters cut]" for i in range(5)
    }
    assert dropped["message"] == "event processed" and not any(k.startswith("field_") for k in dropped)
    assert {f"field_{i}" for i in range(40)} <= set(dropped["log_cut"])
    assert all(len(line.encode()) <= LINE_MAX for line in logs.raw)


def test_structures_are_bounded_as_their_json_and_lone_surrogates_are_escaped():
    line = bounded_json({"message": "m", "nested": {"a": ["b" * 2_000]}, "text": "al\ud800ice"})
    record = json.loads(line)
    assert record["nested"].startswith('{"a":["bbb') and record["nested"].endswith("characters cut]")
    assert record["text"] == "al\\ud800ice"  # what it was, readable, and encodable as UTF-8
    line.encode("utf-8")  # the stream handler's encoder would have raised on the surrogate
