"""AWS calls per event, counted as they leave botocore, and their answers recorded for replaying.

`CallCounter` and `AnswerRecorder` hook every botocore session made after `install()` (through
botocore's built-in handler list, as moto's own stub does): the embedded AWS's session, and the
member-account sessions the responders open with assumed credentials.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# What changes state; everything else (Get, List, Describe, Query, AssumeRole...) is a read.
_WRITE_PREFIXES = ("Put", "Update", "Delete", "TransactWrite", "BatchWrite", "Publish", "Send", "Attach", "Tag")


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    table: str | None = None

    @property
    def write(self) -> bool:
        return self.operation.startswith(_WRITE_PREFIXES)

    def label(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclass
class CallCounter:
    """Every API call while `active`: `before-parameter-build` sees each call once, with its
    parameters, before any stub answers it."""

    dedup_table: str
    active: bool = False
    calls: list[Call] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.active:
            return
        table = params.get("TableName") if isinstance(params, dict) else None
        self.calls.append(Call(model.service_model.endpoint_prefix, model.name, table))

    def take(self) -> list[Call]:
        calls, self.calls = self.calls, []
        return calls

    def dedup_writes(self, calls: list[Call]) -> list[Call]:
        return [c for c in calls if c.table == self.dedup_table and c.write]

    def beyond_dedup(self, calls: list[Call]) -> list[Call]:
        """Every call but the dedup table's writes (its reads count: they are not the one write)."""
        return [c for c in calls if not (c.table == self.dedup_table and c.write)]


def summary(calls: list[Call]) -> str:
    counted = Counter(c.label() for c in calls)
    return ", ".join(f"{label} x{n}" if n > 1 else label for label, n in counted.items()) or "none"


def _timestamps(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"not JSON: {type(value).__name__}")


@dataclass
class AnswerRecorder:
    """The raw HTTP answer of every call while `active`, by botocore's `before-send` event name,
    in call order. A call a stub answered before botocore sent it (the Connect fake) has no raw
    answer: its parsed response is written back as the JSON body a JSON protocol parses to it."""

    active: bool = False
    answers: dict[str, list[list[Any]]] = field(default_factory=dict)
    _raw: list[Any] | None = None

    def before_parse(self, response_dict: dict[str, Any], **_: Any) -> None:
        if self.active:
            body = response_dict.get("body") or b""
            self._raw = [response_dict.get("status_code", 200), dict(response_dict.get("headers") or {}), body]

    def after_call(self, model: Any, parsed: dict[str, Any], event_name: str, **_: Any) -> None:
        if not self.active:
            return
        name = "before-send." + event_name.split(".", 1)[1]
        raw, self._raw = self._raw, None
        if raw is None:
            if model.service_model.protocol not in ("json", "rest-json"):
                raise RuntimeError(f"bench: {name} was answered by a stub, and its protocol is not JSON")
            body = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
            raw = [200, {"content-type": "application/json"}, json.dumps(body, default=_timestamps).encode()]
        status, headers, content = raw
        self.answers.setdefault(name, []).append([status, headers, base64.b64encode(content).decode()])

    def take(self) -> dict[str, list[list[Any]]]:
        answers, self.answers = self.answers, {}
        return answers


def install(counter: CallCounter | None = None, recorder: AnswerRecorder | None = None) -> None:
    """Into every botocore session created from now on (a process-wide list: the bench's own)."""
    from botocore import handlers

    if counter is not None:
        handlers.BUILTIN_HANDLERS.append(("before-parameter-build", counter))
    if recorder is not None:
        handlers.BUILTIN_HANDLERS.append(("before-parse", recorder.before_parse))
        handlers.BUILTIN_HANDLERS.append(("after-call", recorder.after_call))


def merge(*answers: dict[str, list[list[Any]]]) -> dict[str, list[list[Any]]]:
    merged: dict[str, list[list[Any]]] = {}
    for recorded in answers:
        for name, replies in recorded.items():
            merged.setdefault(name, []).extend(replies)
    return merged
