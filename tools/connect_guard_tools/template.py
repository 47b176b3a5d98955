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

from cfnlint.decode import cfn_yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain JSON-like data, intrinsic tags in their long form (`{"Ref": ...}`)."""
    decoded = cfn_yaml.load(str(path))
    # cfn-lint's nodes carry line marks; a JSON round trip leaves plain dicts and lists.
    return json.loads(json.dumps(decoded))


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
