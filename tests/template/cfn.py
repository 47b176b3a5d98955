"""A template's values as CloudFormation resolves them for one deployment.

Parameters (defaults, then overrides), conditions, and the intrinsics the suite's templates use:
Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::Split, Fn::If, Fn::Select, Condition and AWS::NoValue. Stack
resources resolve to the physical values the caller supplies (`"Name"` for Ref,
`"Name.Attribute"` for GetAtt), else to placeholders (`<Name>`, `<Name.Attribute>`) that match
nothing real.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NO_VALUE = object()  # what `!Ref AWS::NoValue` resolves to; dropped from lists
_SUB = re.compile(r"\$\{([!\w:.]+)\}")


def parameters(template: Mapping[str, Any], **overrides: Any) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    return values | {name: str(value) for name, value in overrides.items()}


@dataclass(frozen=True)
class Resolver:
    template: Mapping[str, Any]
    params: Mapping[str, str]
    pseudo: Mapping[str, str]
    physical: Mapping[str, str] = field(default_factory=dict)

    def ref(self, name: str) -> str:
        if name in self.physical:
            return self.physical[name]
        base, _, attribute = name.partition(".")
        if attribute:
            return f"<{base}.{attribute}>"
        if name in self.params:
            return self.params[name]
        return self.pseudo.get(name) or f"<{name}>"

    def condition(self, name: str) -> bool:
        def holds(node: Any) -> bool:
            (fn, args), *_ = node.items()
            if fn == "Fn::Not":
                return not holds(args[0])
            if fn == "Fn::Equals":
                return str(self.resolve(args[0])) == str(self.resolve(args[1]))
            if fn == "Fn::And":
                return all(holds(a) for a in args)
            if fn == "Fn::Or":
                return any(holds(a) for a in args)
            if fn == "Condition":
                return self.condition(args)
            raise AssertionError(f"unexpected condition function {fn}")

        return holds(self.template["Conditions"][name])

    def deployed(self, logical_id: str) -> bool:
        """Whether a resource (conditional ones included) exists with these parameters."""
        resource_condition = self.template["Resources"][logical_id].get("Condition")
        return resource_condition is None or self.condition(resource_condition)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if node == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        if "Ref" in node:
            return self.ref(node["Ref"])
        if "Fn::Sub" in node:
            text, local = node["Fn::Sub"], {}
            if isinstance(text, list):
                text, local = text[0], {k: self.resolve(v) for k, v in text[1].items()}

            def sub(match: re.Match[str]) -> str:
                name = match[1]
                if name.startswith("!"):  # ${!Literal} stays ${Literal}
                    return "${" + name[1:] + "}"
                return str(local[name]) if name in local else self.ref(name)

            return _SUB.sub(sub, text)
        if "Fn::Join" in node:
            separator, items = node["Fn::Join"]
            return separator.join(str(v) for v in self.resolve(items))
        if "Fn::Split" in node:
            separator, text = node["Fn::Split"]
            return str(self.resolve(text)).split(separator)
        if "Fn::Select" in node:
            index, items = node["Fn::Select"]
            return self.resolve(items)[int(self.resolve(index))]
        if "Fn::If" in node:
            name, yes, no = node["Fn::If"]
            return self.resolve(yes if self.condition(name) else no)
        if "Fn::GetAtt" in node:
            att = node["Fn::GetAtt"]
            return self.ref(".".join(att) if isinstance(att, list) else att)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}


# ---- nested stacks -------------------------------------------------------------------------------
def _passed_ref(value: Any, condition: str | None) -> Any:
    """What a nested parameter stands for in the parent: its value there, the true branch of
    `Fn::If` when the nested resource carries that same condition (else the value is "")."""
    if isinstance(value, dict) and "Fn::If" in value and value["Fn::If"][0] == condition:
        return value["Fn::If"][1]
    return value


def _sub_name(value: Any) -> str | None:
    """`${...}` name for a parent value inside Fn::Sub: `X` for `Ref X`, `R.A` for `GetAtt [R, A]`."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        att = value["Fn::GetAtt"]
        return ".".join(att) if isinstance(att, list) else str(att)
    return None


def inline_nested(passed: Mapping[str, Any], nested: Mapping[str, Any]) -> dict[str, Any]:
    """The nested template's resources with each of its parameters replaced by what the parent
    passes (`Ref P` → the parent's expression, `${P}` in Fn::Sub → `${X}` / `${R.Attr}`), so that
    they read as if they were written in the parent. Parameters the parent does not pass, or
    passes as an expression Sub cannot name, stay as they are."""
    declared = set(nested.get("Parameters", {}))

    def inline(node: Any, condition: str | None) -> Any:
        if isinstance(node, list):
            return [inline(item, condition) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and node["Ref"] in declared and node["Ref"] in passed:
            return _passed_ref(passed[node["Ref"]], condition)
        if set(node) == {"Fn::Sub"}:
            text, local = (node["Fn::Sub"], None) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]

            def sub(match: re.Match[str]) -> str:
                name = match[1]
                if (local and name in local) or name not in declared or name not in passed:
                    return match[0]
                named = _sub_name(_passed_ref(passed[name], condition))
                return "${" + named + "}" if named else match[0]

            text = _SUB.sub(sub, text)
            return {"Fn::Sub": text if local is None else [text, inline(local, condition)]}
        return {key: inline(value, condition) for key, value in node.items()}

    return {name: inline(resource, resource.get("Condition")) for name, resource in nested["Resources"].items()}
