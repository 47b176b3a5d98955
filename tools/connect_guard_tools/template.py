"""Read template.yaml the way CloudFormation does, and follow its wiring.

The replay and the template tests route events with the EventBridge patterns written in
template.yaml, so a wrong pattern shows up as a missed event rather than a silent drift
between the stack and its tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


# libyaml's parser where the wheel has it (several times faster on a 4,000-line template).
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TemplateLoader(_SafeLoader):  # type: ignore[misc]
    """YAML with CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...), read into their
    long form. PyYAML alone, not cfn-lint's decoder: importing cfn-lint costs the replay most of a
    second, and `make test` lints the templates anyway (a test keeps the two readings equal)."""


def _intrinsic(loader: Any, tag: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag in ("Ref", "Condition"):
        return {tag: value}
    if tag == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)  # `!GetAtt Name.Attribute`: the attribute may hold dots
    return {f"Fn::{tag}": value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain JSON-like data, intrinsic tags in their long form (`{"Ref": ...}`)."""
    with path.open(encoding="utf-8") as handle:
        decoded: dict[str, Any] = yaml.load(handle, Loader=_TemplateLoader)  # noqa: S506  # a safe loader plus the tags
    return decoded


@dataclass(frozen=True)
class RuleRoute:
    """One EventBridge rule and the responder its target eventually invokes."""

    rule: str
    pattern: dict[str, Any]
    queue: str
    function: str
    responder: str


def _logical_id(value: Any) -> str | None:
    """The logical ID an ARN-valued property points at (`!GetAtt X.Arn`, `!Ref X`)."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
        if "Ref" in value:
            return str(value["Ref"])
    return None


def rule_routes(template: dict[str, Any] | None = None) -> list[RuleRoute]:
    """Every rule → queue → function chain declared in the template.

    The responder name is the function's code directory (`functions/<responder>`), which is
    also the key of the responder registry used by the replay.
    """
    template = template if template is not None else load_template()
    resources: dict[str, Any] = template["Resources"]
    queue_to_function: dict[str, str] = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = _logical_id(event["Properties"]["Queue"])
                if queue:
                    queue_to_function[queue] = name
    routes: list[RuleRoute] = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        pattern = resource["Properties"].get("EventPattern")
        if pattern is None:
            continue  # scheduled rules carry no pattern
        if isinstance(pattern, str):
            pattern = json.loads(pattern)
        for target in resource["Properties"].get("Targets", []):
            queue = _logical_id(target["Arn"])
            function = queue_to_function.get(queue or "")
            if queue and function:
                code_uri = resources[function]["Properties"]["CodeUri"]
                routes.append(RuleRoute(name, pattern, queue, function, Path(code_uri).name))
    return routes
