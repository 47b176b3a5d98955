"""AWS calls per event, counted: what a responder asks of AWS while it handles one event.

`CallCounter` hooks the embedded AWS's session and the clients made already (`before-call`,
registered first, and `before-call.connect`, so that calls the Connect fake answers count
too) and records `service:Operation` for every call made inside `counting()`. The dedup write
happens in the runtime, outside a responder's `handle`, so a count taken around `handle` is
the count beyond it. Role assumptions (sts:AssumeRole) are cached per container: `per_event`
leaves them out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from connect_guard_tools.local_aws import LocalAws

_COUNTED = "call_counts_counted"
# The Connect fake answers in before-call.connect, which botocore runs before before-call.
_EVENTS = ("before-call.connect", "before-call")
PER_CONTAINER = {"sts:AssumeRole"}  # cached by AwsClients until shortly before the credentials expire


class CallCounter:
    def __init__(self, aws: LocalAws) -> None:
        self._aws = aws
        self.calls: list[str] = []
        self._on = False

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._on and not context.get(_COUNTED):
            context[_COUNTED] = True  # hooked twice for Connect: once per call
            self.calls.append(f"{model.service_model.signing_name}:{model.name}")

    def _emitters(self) -> list[Any]:
        """The session's (clients made from now on copy it) and those of the clients made already."""
        clients = self._aws.clients
        made = [c for c in vars(clients).values() if hasattr(c, "meta")]
        made += [entry[1] for entry in clients._member.values()] + list(clients._regional.values())
        return [self._aws.session.events, *(c.meta.events for c in made)]

    def __enter__(self) -> CallCounter:
        for emitter in self._emitters():
            for event in _EVENTS:
                emitter.register_first(event, self._before, unique_id=f"call-counts-{event}-{id(self)}")
        return self

    def __exit__(self, *_: object) -> None:
        for emitter in self._emitters():
            for event in _EVENTS:
                emitter.unregister(event, unique_id=f"call-counts-{event}-{id(self)}")

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        """Record the calls made inside the block (a fresh list each time, returned as it fills)."""
        self.calls = []
        self._on = True
        try:
            yield self.calls
        finally:
            self._on = False

    @property
    def per_event(self) -> list[str]:
        """The calls of the last block, the per-container role assumptions left out."""
        return [c for c in self.calls if c not in PER_CONTAINER]

    @property
    def by_operation(self) -> Counter[str]:
        return Counter(self.per_event)
