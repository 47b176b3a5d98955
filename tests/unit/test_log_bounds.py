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


def test_a_line_of_short_plain_fields_is_written_as_it_is():
    log = {"message": "event processed", "outcome": "ignored", "cold_start": False, "memory": 512, "x": 1.5, "n": None}
    assert bounded_json(log) == json.dumps(log, ensure_ascii=False, separators=(",", ":"))
    # A field of exactly FIELD_MAX characters is not cut; one over it is, on the same line.
    assert json.loads(bounded_json({"message": "m", "reason": "r" * FIELD_MAX}))["reason"] == "r" * FIELD_MAX
    assert json.loads(bounded_json({"message": "m", "reason": "r" * 501}))["reason"].endswith("[1 characters cut]")


def test_a_short_line_with_a_lone_surrogate_is_escaped_like_any_other():
    record = json.loads(bounded_json({"message": "m", "text": "al\ud800ice"}))
    assert record["text"] == "al\\ud800ice"


def test_a_message_that_is_json_is_decoded_as_powertools_does_and_text_stays_text():
    with captured_logs() as logs:
        logger.info('{"change": "attached"}')
        logger.info(" [1, 2]")
        logger.info("event processed")
        logger.info("null and void")  # starts like JSON, is not: kept as text
    # Decoded, then bounded as any structure: its compact JSON.
    messages = [r["message"] for r in logs.records]
    assert messages == ['{"change":"attached"}', "[1,2]", "event processed", "null and void"]
