"""EventBridge pattern matching for the replay, compiled once from template.yaml.

Supports what rule patterns use: exact values, prefix, suffix, equals-ignore-case, wildcard,
anything-but, exists, numeric, nested objects, arrays in events and `$or`. Compiled to plain
closures and indexed by `source` so noise costs about a microsecond; tests check it against
moto's reference implementation of EventBridge matching.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import translate
from typing import Any

from connect_guard_tools.inputs import InputItem, record_source
from connect_guard_tools.template import RuleRoute, rule_routes

Matcher = Callable[[Any], bool]
_MISSING = object()
_NUMERIC_OPS = {"<": operator.lt, "<=": operator.le, "=": operator.eq, ">": operator.gt, ">=": operator.ge}


def _value_matcher(spec: Any) -> Matcher:
    if not isinstance(spec, dict):
        return lambda v: v == spec
    (kind, arg), *_ = spec.items()
    if kind == "prefix":
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if kind == "suffix":
        return lambda v: isinstance(v, str) and v.endswith(arg)
    if kind == "equals-ignore-case":
        folded = arg.casefold()
        return lambda v: isinstance(v, str) and v.casefold() == folded
    if kind == "wildcard":
        regex = re.compile(translate(arg), re.DOTALL)
        return lambda v: isinstance(v, str) and regex.match(v) is not None
    if kind == "anything-but":
        if isinstance(arg, dict):
            inner = _value_matcher(arg)
            return lambda v: not inner(v)
        excluded = set(arg) if isinstance(arg, list) else {arg}
        return lambda v: v not in excluded
    if kind == "numeric":
        checks = [(_NUMERIC_OPS[arg[i]], arg[i + 1]) for i in range(0, len(arg), 2)]
        return lambda v: isinstance(v, int | float) and all(op(v, n) for op, n in checks)
    raise ValueError(f"unsupported pattern operator {kind!r}")


def _field_matcher(specs: list[Any]) -> Callable[[Any], bool]:
    """Matcher for one leaf: the value (or any element of an array value) matches any spec."""
    exists = [s["exists"] for s in specs if isinstance(s, dict) and "exists" in s]
    values = [_value_matcher(s) for s in specs if not (isinstance(s, dict) and "exists" in s)]
    exact = {s for s in specs if isinstance(s, str)} if all(isinstance(s, str) for s in specs) else None

    def match(value: Any) -> bool:
        if value is _MISSING:
            return any(e is False for e in exists)
        if any(e is True for e in exists):
            return True
        candidates = value if isinstance(value, list) else (value,)
        if exact is not None:
            return any(c in exact for c in candidates if isinstance(c, str))
        return any(m(c) for m in values for c in candidates)

    return match


def compile_pattern(pattern: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    checks: list[tuple[str, Callable[[Any], bool]]] = []
    alternatives: list[Callable[[dict[str, Any]], bool]] = []
    for key, spec in pattern.items():
        if key == "$or":
            alternatives.extend(compile_pattern(p) for p in spec)
        elif isinstance(spec, dict):
            nested = compile_pattern(spec)
            checks.append((key, lambda v, nested=nested: isinstance(v, dict) and nested(v)))
        else:
            checks.append((key, _field_matcher(spec)))

    def match(event: dict[str, Any]) -> bool:
        for key, check in checks:
            if not check(event.get(key, _MISSING)):
                return False
        return not alternatives or any(alt(event) for alt in alternatives)

    return match


def _exact_values(pattern: dict[str, Any], path: tuple[str, ...]) -> frozenset[str] | None:
    """The only values the field at `path` can have in an event the pattern matches, when the
    pattern says (a list of exact strings, here or in every `$or` alternative); None: any value."""
    key, *rest = path
    if key in pattern:
        spec = pattern[key]
        if rest:
            found = _exact_values(spec, tuple(rest)) if isinstance(spec, dict) else None
        elif isinstance(spec, list) and spec and all(isinstance(v, str) for v in spec):
            found = frozenset(spec)
        else:
            found = None
        if found is not None:
            return found
    alternatives = pattern.get("$or")
    if isinstance(alternatives, list) and alternatives:
        each = [_exact_values(a, path) if isinstance(a, dict) else None for a in alternatives]
        if all(values is not None for values in each):
            return frozenset().union(*each)  # type: ignore[arg-type]
    return None


@dataclass(frozen=True)
class CompiledRoute:
    route: RuleRoute
    matches: Callable[[dict[str, Any]], bool]
    # What an event needs to be able to match: its source and detail.eventName among these (None: any).
    sources: frozenset[str] | None = None
    names: frozenset[str] | None = None

    def admits(self, source: str, name: str) -> bool:
        return (self.sources is None or source in self.sources) and (self.names is None or name in self.names)


_CACHED_KEYS = 4096  # (source, eventName) pairs whose candidate rules are kept: the API is not bigger


class Router:
    """Every rule of the template; `match(event)` returns the routes whose pattern matches.

    Rules are indexed by `source`, then narrowed by the exact `source` and `detail.eventName`
    values their patterns allow: an event that no rule names costs two dictionary look-ups.
    `match_item` routes a raw CloudTrail record on its own fields, so its envelope is built only
    when a rule may want it."""

    def __init__(self, routes: list[RuleRoute] | None = None) -> None:
        self.routes = routes if routes is not None else rule_routes()
        self._by_source: dict[str, list[CompiledRoute]] = {}
        self._any_source: list[CompiledRoute] = []
        self._candidates: dict[tuple[str, str], tuple[CompiledRoute, ...]] = {}
        self._by_record: dict[tuple[Any, Any], tuple[CompiledRoute, ...]] = {}  # by eventSource, eventName
        for route in self.routes:
            compiled = CompiledRoute(
                route,
                compile_pattern(route.pattern),
                _exact_values(route.pattern, ("source",)),
                _exact_values(route.pattern, ("detail", "eventName")),
            )
            sources = route.pattern.get("source")
            if isinstance(sources, list) and all(isinstance(s, str) for s in sources):
                for source in sources:
                    self._by_source.setdefault(source, []).append(compiled)
            else:
                self._any_source.append(compiled)

    def _narrowed(self, source: str, name: str) -> tuple[CompiledRoute, ...]:
        """The rules that may match an event of this source and eventName, in `match`'s order."""
        key = (source, name)
        found = self._candidates.get(key)
        if found is None:
            found = tuple(c for c in (*self._by_source.get(source, ()), *self._any_source) if c.admits(source, name))
            if len(self._candidates) < _CACHED_KEYS:
                self._candidates[key] = found
        return found

    def match(self, event: dict[str, Any]) -> list[RuleRoute]:
        source = event.get("source")
        detail = event.get("detail")
        name = detail.get("eventName") if isinstance(detail, dict) else None
        if isinstance(source, str) and isinstance(name, str):
            candidates: tuple[CompiledRoute, ...] = self._narrowed(source, name)
        else:
            candidates = (*(self._by_source.get(source, ()) if isinstance(source, str) else ()), *self._any_source)
        return [c.route for c in candidates if c.matches(event)]

    def _record_candidates(self, record: dict[str, Any], key: tuple[Any, Any]) -> tuple[CompiledRoute, ...] | None:
        """The rules a record of this eventSource and eventName may match; None: ask `match`."""
        event_source, name = key
        if not isinstance(name, str):
            return None
        candidates = self._narrowed(record_source(record), name)
        if isinstance(event_source, str) and event_source and len(self._by_record) < _CACHED_KEYS:
            self._by_record[key] = candidates  # an empty eventSource's source depends on more fields
        return candidates

    def match_item(self, item: InputItem) -> list[RuleRoute]:
        """The routes of an input item; a raw record's envelope is built only if a rule may match."""
        record = item.record
        if record is None:
            return self.match(item.event) if item.event is not None else []
        key = (record.get("eventSource"), record.get("eventName"))
        try:
            candidates = self._by_record[key]
        except (KeyError, TypeError):  # first seen, or a value that is not a string
            candidates = self._record_candidates(record, key)
        if candidates == ():
            return []
        return self.match(item.event)  # type: ignore[arg-type]  # a record always has one
