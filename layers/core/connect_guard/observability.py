"""Powertools Logger and Metrics shared by every module (service name from the environment).

Every log line is bounded whatever a record carries: each field at most FIELD_MAX characters
(marked where cut), a line at most LINE_MAX bytes (long fields are cut further, then dropped,
keeping the ones that say what happened), and text that is not valid Unicode (a lone surrogate
from a JSON escape) is written escaped instead of breaking the log handler.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics

FIELD_MAX = 500  # characters
LINE_MAX = 2_048  # bytes
# Never cut further, never dropped: what a reader needs to find the line and the record.
_KEEP = (
    *("level", "location", "message", "timestamp", "service", "function_request_id"),
    *("sqs_message_id", "event_id", "event_name"),
)
_CUTS = (FIELD_MAX, 200, 80)


def _text(value: str, limit: int) -> str:
    if len(value) > limit:
        value = f"{value[:limit]}… [{len(value) - limit:,} characters cut]"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _field(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return _text(value, limit)
    if value is None or isinstance(value, bool | int | float):
        return value
    # A structure: bounded as its compact JSON, the way a reader sees it.
    return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str), limit)


def _dumps(log: Mapping[str, Any]) -> str:
    return json.dumps(log, ensure_ascii=False, separators=(",", ":"), default=str)


def _plain(log: Mapping[str, Any]) -> bool:
    """Every value one `_field` returns unchanged (when it encodes): a short text, a number, None."""
    for value in log.values():
        kind = type(value)
        if kind is str:
            if len(value) > FIELD_MAX:
                return False
        elif value is not None and kind not in _NUMBERS:
            return False
    return True


_NUMBERS = frozenset((bool, int, float))


def bounded_json(log: Mapping[str, Any]) -> str:
    """The Powertools formatter's serializer: `log` as one JSON line within the bounds."""
    # The usual line (short plain fields, valid Unicode, within LINE_MAX) is written as it is:
    # one dumps and one encode instead of a pass over every field.
    if _plain(log):
        line = _dumps(log)
        try:
            if len(line.encode()) <= LINE_MAX:
                return line
        except UnicodeEncodeError:
            pass  # a lone surrogate: escaped field by field below
    line = ""
    for limit in _CUTS:
        fields = {k: _field(v, FIELD_MAX if k in _KEEP else limit) for k, v in log.items()}
        line = _dumps(fields)
        if len(line.encode()) <= LINE_MAX:
            return line
    kept = {k: v for k, v in fields.items() if k in _KEEP}
    kept["log_cut"] = sorted(k for k in fields if k not in _KEEP)
    line = _dumps(kept)
    if len(line.encode()) <= LINE_MAX:
        return line
    return _dumps({k: _field(v, 80) for k, v in kept.items()})


def _json_message(message: Any) -> Any:
    """The formatter's message decoder: a message that is JSON is logged as its value (Powertools'
    default), any other is kept as text without the cost of a failed `json.loads` (~5 us a line)."""
    if not isinstance(message, str) or message[:1] not in _JSON_STARTS:
        return message
    return json.loads(message)


# What a text json.loads reads can start with: JSON whitespace, a value, NaN or Infinity.
_JSON_STARTS = frozenset(' \t\n\r{["-0123456789tfnNI')

logger = Logger(json_serializer=bounded_json, json_deserializer=_json_message)
metrics = Metrics(namespace="ConnectGuard")
