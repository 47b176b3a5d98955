"""The replay and the template tests read the templates with PyYAML and a tag constructor, not
cfn-lint's decoder (a second of start-up): both readings must be the same data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from connect_guard_tools.template import PROJECT_ROOT, load_template

TEMPLATES = ("template.yaml", "member/template.yaml", "stacks/operations.yaml", "stacks/archive-query.yaml")


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_template_reads_as_cfn_lint_reads_it(template: str) -> None:
    path = PROJECT_ROOT / template
    assert load_template(path) == json.loads(json.dumps(cfn_yaml.load(str(path))))


def test_short_form_tags_read_in_their_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n"
        "  A:\n"
        "    Properties:\n"
        "      Ref: !Ref B\n"
        "      Att: !GetAtt B.Outputs.Name\n"
        "      List: !GetAtt [B, Arn]\n"
        "      Sub: !Sub '${AWS::Region}-x'\n"
        "      If: !If [C, !Condition D, !Ref AWS::NoValue]\n"
        "      Join: !Join ['', [a, !Select [0, !Split [',', !Ref L]]]]\n"
        "      Version: '2012-10-17'\n"
    )
    properties = load_template(path)["Resources"]["A"]["Properties"]
    assert properties == {
        "Ref": {"Ref": "B"},
        "Att": {"Fn::GetAtt": ["B", "Outputs.Name"]},
        "List": {"Fn::GetAtt": ["B", "Arn"]},
        "Sub": {"Fn::Sub": "${AWS::Region}-x"},
        "If": {"Fn::If": ["C", {"Condition": "D"}, {"Ref": "AWS::NoValue"}]},
        "Join": {"Fn::Join": ["", ["a", {"Fn::Select": [0, {"Fn::Split": [",", {"Ref": "L"}]}]}]]},
        "Version": "2012-10-17",
    }
