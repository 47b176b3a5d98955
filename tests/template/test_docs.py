"""The README's configuration tables document every parameter of both templates, with its default.

Only table rows count: a name mentioned in prose, or in a table outside the configuration
section, is not documentation a person deploying can find. The section is the README's
`### Configuration (template parameters)` up to the next `##`/`###` heading; a table whose
header starts `| parameter | default |` documents template.yaml, one starting
`| member parameter | default |` documents member/template.yaml. A row's first cell is one
parameter name in backticks; its default cell is the template's Default in backticks, `empty`
for an empty string, or `required` when the template has no Default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connect_guard_tools.template import PROJECT_ROOT, load_template

README = PROJECT_ROOT / "README.md"
SECTION = "### Configuration (template parameters)"
SECURITY_HEADER = ("parameter", "default")
MEMBER_HEADER = ("member parameter", "default")


_NAME = re.compile(r"^`([A-Za-z][A-Za-z0-9]*)`$")
_CODE = re.compile(r"^`([^`]*)`$")


@dataclass(frozen=True)
class Row:
    name: str
    default: str | None  # None: documented as required (no Default)
    line: int


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _default(cell: str, line: int) -> str | None:
    if cell == "empty":
        return ""
    if cell == "required":
        return None
    match = _CODE.match(cell)
    if not match:
        raise AssertionError(f"README line {line}: default {cell!r} is not `value`, empty or required")
    return match.group(1)


def configuration_rows(text: str) -> dict[str, list[Row]]:
    """The rows of the configuration section's tables, by template ("security" / "member")."""
    rows: dict[str, list[Row]] = {"security": [], "member": []}
    lines = text.splitlines()
    try:
        start = lines.index(SECTION)
    except ValueError:
        raise AssertionError(f"README has no {SECTION!r} section") from None
    table: str | None = None
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if re.match(r"^#{2,3} ", line):
            break
        if not line.startswith("|"):
            table = None
            continue
        cells = _cells(line)
        header = tuple(cell.lower() for cell in cells[:2])
        if header == SECURITY_HEADER:
            table = "security"
            continue
        if header == MEMBER_HEADER:
            table = "member"
            continue
        if table is None or set(line.replace("|", "").strip()) <= {"-", ":", " "}:
            continue
        name = _NAME.match(cells[0])
        if not name or len(cells) < 3:
            raise AssertionError(f"README line {number}: a row must name one parameter in backticks: {line!r}")
        rows[table].append(Row(name.group(1), _default(cells[1], number), number))
    return rows


def _template_defaults(template: dict[str, Any]) -> dict[str, str | None]:
    return {
        name: (None if "Default" not in spec else str(spec["Default"])) for name, spec in template["Parameters"].items()
    }


def _problems(rows: list[Row], defaults: dict[str, str | None]) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for row in rows:
        if row.name in seen:
            problems.append(f"{row.name}: documented twice (lines {seen[row.name]} and {row.line})")
        seen[row.name] = row.line
        if row.name not in defaults:
            problems.append(f"{row.name} (line {row.line}): no such parameter in the template")
            continue
        if row.default != defaults[row.name]:
            wanted = "required" if defaults[row.name] is None else repr(defaults[row.name])
            documented = "required" if row.default is None else repr(row.default)
            problems.append(f"{row.name} (line {row.line}): default documented {documented}, template {wanted}")
    problems += [f"{name}: not in the README's configuration tables" for name in defaults if name not in seen]
    return problems


@pytest.fixture(scope="module")
def documented() -> dict[str, list[Row]]:
    return configuration_rows(README.read_text())


def test_every_security_stack_parameter_is_documented_with_its_default(documented: dict[str, list[Row]]) -> None:
    defaults = _template_defaults(load_template())
    assert _problems(documented["security"], defaults) == []


def test_every_member_stack_parameter_is_documented_with_its_default(documented: dict[str, list[Row]]) -> None:
    defaults = _template_defaults(load_template(PROJECT_ROOT / "member" / "template.yaml"))
    assert _problems(documented["member"], defaults) == []


def test_the_docs_the_readme_links_exist() -> None:
    text = README.read_text()
    for target in ("docs/configuration.md", "docs/rollout.md", "docs/upgrade-uninstall.md"):
        assert f"]({target}" in text, target
        assert (PROJECT_ROOT / target).is_file(), target


# ---- the checker itself: what does not count as documentation -------------------------------

SAMPLE = f"""# x

| parameter | default | effect |
| --- | --- | --- |
| `Outside` | empty | a table before the section |

{SECTION}

`Prose` is only mentioned here, and so is `AlsoProse`.

#### Core

| parameter | default | effect |
| --- | --- | --- |
| `Environment` | `dev` | stage |
| `Gone` | empty | removed from the template |

| member parameter | default | effect |
| --- | --- | --- |
| `SecurityAccountId` | required | the security account |

### Next section

| parameter | default | effect |
| --- | --- | --- |
| `After` | empty | a table after the section |
"""


def test_only_rows_of_the_section_count() -> None:
    rows = configuration_rows(SAMPLE)
    assert [row.name for row in rows["security"]] == ["Environment", "Gone"]
    assert [(row.name, row.default) for row in rows["member"]] == [("SecurityAccountId", None)]


def test_the_checker_reports_missing_stale_and_wrong_defaults() -> None:
    rows = configuration_rows(SAMPLE)["security"]
    defaults = {"Environment": "prod", "Prose": "", "Outside": "", "After": ""}
    problems = _problems(rows, defaults)
    assert "Environment (line 15): default documented 'dev', template 'prod'" in problems
    assert "Gone (line 16): no such parameter in the template" in problems
    assert {p.split(":")[0] for p in problems if "not in the README" in p} == {"Prose", "Outside", "After"}
    assert _problems(rows, {"Environment": "dev", "Gone": ""}) == []


def test_a_required_parameter_must_be_documented_as_required() -> None:
    rows = configuration_rows(SAMPLE)["member"]
    assert _problems(rows, {"SecurityAccountId": None}) == []
    assert _problems(rows, {"SecurityAccountId": "123456789012"}) == [
        "SecurityAccountId (line 20): default documented required, template '123456789012'"
    ]


def test_a_row_that_names_no_parameter_is_refused() -> None:
    broken = SAMPLE.replace("| `Environment` | `dev` |", "| Environment, Stage | `dev` |")
    with pytest.raises(AssertionError, match="must name one parameter"):
        configuration_rows(broken)
    bad_default = SAMPLE.replace("| `Environment` | `dev` |", "| `Environment` | dev |")
    with pytest.raises(AssertionError, match="is not `value`, empty or required"):
        configuration_rows(bad_default)


# ---- the README's and the deployment guides' links resolve ---------------------------------------------------

GUIDES = (
    "README.md",
    "docs/configuration.md",
    "docs/rollout.md",
    "docs/upgrade-uninstall.md",
    "docs/reliability.md",
)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


@pytest.mark.parametrize("guide", GUIDES)
def test_the_guides_links_resolve(guide: str) -> None:
    source = PROJECT_ROOT / guide
    broken = []
    for target in _LINK.findall(source.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        file, _, anchor = target.partition("#")
        path = (source.parent / file).resolve() if file else source
        if not path.exists() or (anchor and (not path.is_file() or anchor not in _anchors(path))):
            broken.append(target)
    assert broken == []


def test_the_anchor_rule_matches_github() -> None:
    sample = PROJECT_ROOT / "README.md"
    assert {"configuration-template-parameters", "liveness-the-canary", "deploy"} <= _anchors(sample)
