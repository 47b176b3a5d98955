"""--parameter-overrides and samconfig.toml checked as CloudFormation checks a deployment's
parameters: a name the template does not declare, or a value its constraints refuse, is an error
that names the parameter (and the name it most likely meant) instead of a silent default."""

from __future__ import annotations

import pytest

from connect_guard_tools.config import (
    ParameterError,
    parse_overrides,
    samconfig_overrides,
    stack_parameters,
    validate_overrides,
)
from connect_guard_tools.template import load_template

SPECS = {
    "Mode": {"Type": "String", "AllowedValues": ["detect", "enforce"]},
    "Code": {"Type": "String", "AllowedPattern": "[A-Z]{3}", "ConstraintDescription": "three capitals."},
    "Name": {"Type": "String", "MinLength": 2, "MaxLength": 5},
    "Count": {"Type": "Number", "MinValue": 2, "MaxValue": 10},
    "Days": {"Type": "Number", "AllowedValues": [1, 7, 30]},
    "Codes": {"Type": "CommaDelimitedList", "AllowedPattern": "[A-Z]{3}"},
    "Ports": {"Type": "List<Number>"},
    "Subnet": {"Type": "AWS::EC2::Subnet::Id"},
}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mode": "detect"}, "unknown parameter 'mode' (did you mean 'Mode'?)"),
        ({"Cuont": "3"}, "unknown parameter 'Cuont' (did you mean 'Count'?)"),
        ({"Zebra": "3"}, "unknown parameter 'Zebra'"),
        ({"Mode": "enforced"}, "Mode: 'enforced' is not one of detect, enforce"),
        ({"Mode": ""}, "Mode: '' is not one of detect, enforce"),
        ({"Code": "ABCD"}, "Code: 'ABCD' does not match [A-Z]{3} (three capitals)"),  # the whole value
        ({"Name": "x"}, "Name: 'x' is shorter than 2 characters"),
        ({"Name": "abcdef"}, "Name: 'abcdef'... is longer than 5 characters"),
        ({"Count": "many"}, "Count: 'many' is not a number"),
        ({"Count": "1"}, "Count: 1 is less than the minimum 2"),
        ({"Count": "11"}, "Count: 11 is more than the maximum 10"),
        ({"Count": "nan"}, "Count: 'nan' is not a number"),
        ({"Days": "2"}, "Days: '2' is not one of 1, 7, 30"),
        ({"Codes": "ABC,abc"}, "Codes: 'abc' does not match [A-Z]{3}"),  # each item of the list
        ({"Ports": "80,http"}, "Ports: 'http' is not a number"),
    ],
)
def test_what_cloudformation_would_refuse_is_refused_with_its_reason(overrides, message):
    with pytest.raises(ParameterError) as refused:
        validate_overrides(overrides, SPECS)
    assert str(refused.value) == message


def test_what_cloudformation_accepts_passes():
    good = {"Mode": "enforce", "Code": "ABC", "Name": "ab", "Count": "10", "Days": "7", "Codes": "ABC,DEF"}
    validate_overrides({**good, "Ports": "80,443", "Subnet": "subnet-0abc"}, SPECS)


def test_every_default_of_the_template_is_a_valid_value():
    specs = load_template()["Parameters"]
    defaults = {name: str(spec["Default"]) for name, spec in specs.items() if "Default" in spec}
    assert len(defaults) >= len(specs) - 1  # RunbookBaseUrl alone is required (no default link ships dead)
    validate_overrides(defaults, specs)


def test_the_template_constraints_are_the_ones_checked():
    with pytest.raises(ParameterError, match=r"^ResponseMode: 'enforced' is not one of detect, enforce$"):
        stack_parameters("default", {"ResponseMode": "enforced"})
    with pytest.raises(ParameterError, match=r"^unknown parameter 'responsemode' \(did you mean 'ResponseMode'\?\)$"):
        stack_parameters("default", {"responsemode": "enforce"})
    with pytest.raises(ParameterError, match="PolicyAlertsConcurrency: 1 is less than the minimum 2"):
        stack_parameters("default", {"PolicyAlertsConcurrency": "1"})
    with pytest.raises(ParameterError, match=r"MemberAccountIds: '1111' does not match .*12-digit account IDs"):
        stack_parameters("default", {"MemberAccountIds": "1111"})
    assert stack_parameters("default", {"ResponseMode": "enforce"})["ResponseMode"] == "enforce"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["ResponseMode", "enforce"], "'ResponseMode' is not KEY=VALUE"),
        (["ResponseMode:enforce"], "'ResponseMode:enforce' is not KEY=VALUE"),
        (["=enforce"], "'=enforce' has no parameter name before '='"),
        ('ResponseMode="enforce', "cannot split the overrides (No closing quotation)"),
    ],
)
def test_a_word_that_is_not_a_pair_is_an_error_not_dropped(words, message):
    with pytest.raises(ParameterError) as refused:
        parse_overrides(words)
    assert str(refused.value) == message


def test_pairs_as_sam_writes_them():
    assert parse_overrides(
        'Environment=dev AllowlistedPrincipals="a,b" ParameterKey=ResponseMode,ParameterValue=x'
    ) == {
        "Environment": "dev",
        "AllowlistedPrincipals": "a,b",
        "ResponseMode": "x",
    }
    assert parse_overrides(["Url=https://x/?a=b"]) == {"Url": "https://x/?a=b"}  # only the first '=' splits


def test_an_env_samconfig_does_not_have_is_an_error(tmp_path):
    with pytest.raises(ParameterError) as refused:
        stack_parameters("staging")
    assert str(refused.value) == "unknown config env 'staging' (samconfig.toml has default, prod)"
    with pytest.raises(ParameterError, match=r"unknown config env .prod.: there is no samconfig\.toml"):
        samconfig_overrides("prod", tmp_path / "samconfig.toml")
    assert samconfig_overrides("default", tmp_path / "samconfig.toml") == {}  # no file: the template's defaults


def test_a_bad_samconfig_value_names_the_env(tmp_path):
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text('version = 0.1\n[prod.deploy.parameters]\nparameter_overrides = "ResponseMode=enforced"\n')
    with pytest.raises(ParameterError) as refused:
        samconfig_overrides("prod", samconfig)
    assert str(refused.value) == (
        "samconfig.toml [prod] parameter_overrides: ResponseMode: 'enforced' is not one of detect, enforce"
    )
    assert refused.value.hint == f"fix that env in {samconfig}"
    samconfig.write_text('[prod.deploy.parameters]\nparameter_overrides = "Environment=prod ResponseMod=enforce"\n')
    with pytest.raises(ParameterError, match=r"\[prod\] parameter_overrides: unknown parameter 'ResponseMod' \(did"):
        samconfig_overrides("prod", samconfig)
    samconfig.write_text("[prod\n")
    with pytest.raises(ParameterError, match=r"samconfig\.toml is not valid TOML"):
        samconfig_overrides("prod", samconfig)


def test_the_shipped_samconfig_envs_are_valid():
    assert samconfig_overrides("default")["ResponseMode"] == "detect"
    assert samconfig_overrides("prod")["ResponseMode"] == "enforce"
