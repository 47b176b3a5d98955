"""Patches of moto's backends that make the embedded AWS refuse what AWS refuses, started and
stopped as one: made at start (each wraps the backend as it is then), undone in reverse."""

from __future__ import annotations

from typing import Any


class BackendPatches:
    """Started before the mock, stopped after it; a subclass says what it patches."""

    _active: tuple[Any, ...] = ()

    def patches(self) -> list[Any]:
        """Made at start: each wraps the backend as it is then (earlier behaviours included)."""
        raise NotImplementedError

    def start(self) -> None:
        self._active = tuple(self.patches())
        for patch in self._active:
            patch.start()

    def stop(self) -> None:
        for patch in reversed(self._active):
            patch.stop()
        self._active = ()
