"""The performance budget, read from docs/performance.md (its one copy), and the verdicts on it.

The doc's budget table has one row per measure: `| key | measure | budget |`, the budget as
`≤ 1.15` and a multiplication sign, `≥ 100,000 events/s`, `≤ 300 MiB` (`<=`/`>=` are accepted too). The bench judges
each figure it measures against the row of the same key, and exits 1 when one is missed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from connect_guard_tools.template import PROJECT_ROOT

BUDGET_DOC = PROJECT_ROOT / "docs" / "performance.md"
# Between these two lines of the doc: the table the bench reads.
TABLE_START = "<!-- budget-table -->"
TABLE_END = "<!-- /budget-table -->"

# The keys the bench measures (the numbers are the doc's alone): a row it does not measure, or a
# figure with no row, is a mistake a unit test catches before a bench run does.
MEASURED_KEYS = frozenset(
    {
        "cold.floor_ratio",
        "cold.custodian_ratio",
        "warm.acting_ms",
        "warm.not_acting_ms",
        "calls.dedup_writes",
        "calls.alert",
        "calls.quarantine",
        "calls.rollback",
        "calls.noise",
        "replay.one_event_s",
        "replay.acting_growth",
        "replay.noise_rate",
        "replay.noise_rss_mib",
    }
)

_BUDGET = re.compile(r"^(?P<op>≤|≥|<=|>=)\s*(?P<limit>[0-9][0-9,]*(?:\.[0-9]+)?)\s*(?P<unit>.*)$")
_KEY = re.compile(r"^`?(?P<key>[a-z][a-z0-9_.]*)`?$")


TIMES = "\u00d7"  # the unit of a ratio (multiplication sign), printed without a space


class BudgetError(ValueError):
    """The doc's budget table is missing or a row can't be read."""


@dataclass(frozen=True)
class Budget:
    key: str
    measure: str
    at_most: bool  # ≤ (a ceiling) or ≥ (a floor)
    limit: float
    unit: str

    def met_by(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit

    def text(self) -> str:
        limit = _number(self.limit)
        return f"{'≤' if self.at_most else '≥'} {limit}{'' if self.unit in (TIMES, '') else ' '}{self.unit}"


def parse_budgets(text: str) -> dict[str, Budget]:
    """The budget table of docs/performance.md, by key."""
    if TABLE_START not in text or TABLE_END not in text:
        raise BudgetError(f"no budget table between {TABLE_START} and {TABLE_END}")
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    budgets: dict[str, Budget] = {}
    for line in table.splitlines():
        line = line.strip()
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) < 3:
            raise BudgetError(f"budget row needs key, measure and budget: {line}")
        key_match = _KEY.match(cells[0])
        if key_match is None:
            if cells[0].lower() == "key":  # the header
                continue
            raise BudgetError(f"budget key {cells[0]!r} is not a key like cold.floor_ratio")
        budget_match = _BUDGET.match(cells[2])
        if budget_match is None:
            raise BudgetError(f"budget {cells[2]!r} of {cells[0]} is not like '≤ 1.15x' or '≥ 100,000 events/s'")
        key = key_match["key"]
        if key in budgets:
            raise BudgetError(f"budget {key} appears twice")
        budgets[key] = Budget(
            key=key,
            measure=cells[1],
            at_most=budget_match["op"] in ("≤", "<="),
            limit=float(budget_match["limit"].replace(",", "")),
            unit=budget_match["unit"].strip(),
        )
    if not budgets:
        raise BudgetError("the budget table has no rows")
    return budgets


def load_budgets(path: Path = BUDGET_DOC) -> dict[str, Budget]:
    return parse_budgets(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Figure:
    """One measured value for a budget row, with what it is made of (spread, rounds, notes)."""

    key: str
    value: float
    detail: str = ""
    subject: str = ""  # which responder or scenario, when the budget row covers several


@dataclass(frozen=True)
class Verdict:
    figure: Figure
    budget: Budget

    @property
    def met(self) -> bool:
        return self.budget.met_by(self.figure.value)

    def line(self) -> str:
        shown = _number(self.figure.value)
        unit = self.budget.unit
        shown += unit if unit in (TIMES, "") else f" {unit}"
        mark = "✓" if self.met else "✗"
        detail = f"  ({self.figure.detail})" if self.figure.detail else ""
        subject = f" — {self.figure.subject}" if self.figure.subject else ""
        return f"{mark} {self.budget.measure}{subject}: {shown}  [budget {self.budget.text()}]{detail}"


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1000:
        return str(int(value))  # counts: 2 writes, not 2.00
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def judge(figures: list[Figure], budgets: dict[str, Budget]) -> list[Verdict]:
    """Each figure against its budget; a figure with no budget row is an error, not a pass."""
    unknown = sorted({f.key for f in figures} - budgets.keys())
    if unknown:
        raise BudgetError(f"no budget for {', '.join(unknown)} in {BUDGET_DOC.name}")
    return [Verdict(figure, budgets[figure.key]) for figure in figures]


def exit_code(verdicts: list[Verdict], expected: set[str] | None = None) -> int:
    """0 when every figure met its budget (and, if given, every expected key was measured), else 1."""
    if not verdicts:
        return 1
    if expected is not None and not expected <= {v.figure.key for v in verdicts}:
        return 1
    return 0 if all(v.met for v in verdicts) else 1
