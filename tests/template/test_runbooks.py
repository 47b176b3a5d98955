"""Runbooks that resolve: every responder (functions/*), every control of the README's table and
every name the code links a finding's runbook by has a file under docs/runbooks/; every runbook
link in the README and the runbooks points to an existing file and heading. (Alarms: each links a
section of operations.md, tests/template/test_operations.py.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from connect_guard.settings import Settings
from tests.template.stack import ROOT
from tests.template.test_operations import github_anchors

RUNBOOKS = ROOT / "docs" / "runbooks"
SOURCES = [*(ROOT / "layers" / "core" / "connect_guard").rglob("*.py"), *(ROOT / "tools").rglob("*.py")]


def runbook_file(responder: str) -> Path:
    """The file a finding of `responder` links (Settings.runbook_url), under this checkout."""
    settings = Settings(
        alert_topic_arn="arn:aws:sns:us-east-1:111122223333:alerts",
        dedup_table_name="dedup",
        runbook_base_url=RUNBOOKS.as_uri(),
    )
    url = settings.runbook_url(responder)
    return Path(url.removeprefix("file://"))


def _constants(tree: ast.Module) -> dict[str, str]:
    return {
        a.targets[0].id: a.value.value
        for a in tree.body
        if isinstance(a, ast.Assign)
        and isinstance(a.targets[0], ast.Name)
        and isinstance(a.value, ast.Constant)
        and isinstance(a.value.value, str)
    }


def linked_responders() -> set[str]:
    """Every responder name the code may pass to runbook_url: literal or module-constant arguments,
    and the values behind the dynamic ones (`responder=` keywords, scheduled Jobs' responder)."""
    names: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        constants = _constants(tree)

        def value(node: ast.expr, constants: dict[str, str] = constants) -> str | None:
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return node.value
            if isinstance(node, ast.Name):
                return constants.get(node.id)
            return None

        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = getattr(node.func, "attr", getattr(node.func, "id", None))
            arguments: list[ast.expr] = []
            if func == "runbook_url":
                arguments = node.args[:1]
            elif func == "Job":
                arguments = node.args[1:2]
            arguments += [k.value for k in node.keywords if k.arg == "responder"]
            names |= {v for v in map(value, arguments) if v}
    return names


def test_every_linked_responder_is_found() -> None:
    # The scan sees the literal, the constants and the scheduled jobs (a regression guard on it).
    assert {"log_export", "policy_alerts", "event_scope", "liveness", "baseline_sweep", "role_quarantine"} <= (
        linked_responders()
    )
    assert "logging_guard" in linked_responders()


@pytest.mark.parametrize("responder", sorted(linked_responders()))
def test_every_runbook_a_finding_links_exists(responder: str) -> None:
    assert runbook_file(responder).is_file(), responder


@pytest.mark.parametrize("function", sorted(p.name for p in (ROOT / "functions").iterdir() if p.is_dir()))
def test_every_responder_function_has_a_runbook(function: str) -> None:
    path = runbook_file(function)
    assert path.is_file(), f"docs/runbooks/{path.name} for functions/{function}"
    assert path.read_text().startswith("# Runbook: ")


def _controls() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| Control | Responder | Trigger | Status |", 1)[1].split("\n\n", 1)[0]
    return sorted({m for m in re.findall(r"^\| [^|]+ \| `(\w+)`", table, flags=re.M)})


def test_the_control_table_is_read() -> None:
    assert {"policy_alerts", "profile_rollback", "logging_guard", "role_snapshot", "liveness"} <= set(_controls())


@pytest.mark.parametrize("control", _controls())
def test_every_control_has_a_runbook(control: str) -> None:
    assert runbook_file(control).is_file(), control


DOCS = [ROOT / "README.md", *sorted(RUNBOOKS.glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_runbook_link_in_the_docs_resolves(doc: Path) -> None:
    text = doc.read_text()
    base = doc.parent
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        path, _, anchor = link.partition("#")
        if re.match(r"\w+:", link) or (not path and doc.name == "README.md"):
            continue  # other sites; the README's own anchors are another part's concern
        resolved = (base / path).resolve() if path else doc
        if RUNBOOKS not in (resolved, *resolved.parents) and resolved != doc:
            continue
        assert resolved.is_file() or (resolved == RUNBOOKS and not anchor), f"{doc.name}: {link}"
        if anchor:
            assert anchor in github_anchors(resolved.read_text()), f"{doc.name}: {link}"
