"""Response modes per control (README "Response modes"): with any mix of ResponseMode and the four
per-control modes, writes (and write roles) exist for exactly the controls that enforce, in both
the security stack and the member stack, and each function is told its own mode."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from connect_guard.settings import Settings
from connect_guard_tools.template import load_template
from tests.template import cfn
from tests.template.stack import (
    ENFORCES,
    MODE_ENV,
    MODE_PARAMETERS,
    ROLES,
    WRITE_VERBS,
    T,
    as_list,
    parameters,
    props,
    resolve,
)

ROOT = Path(__file__).resolve().parents[2]
MEMBER = load_template(ROOT / "member" / "template.yaml")
MEMBER_ACCOUNT = "111122223333"
TOPIC = "arn:aws:sns:us-east-1:123456789012:connect-guard-alerts"

# function → its role, and the template parameter that sets its mode.
CONTROLS = {
    "ProfileRollbackFunction": ("ProfileRollbackFunctionRole", "ProfileRollbackMode"),
    "BaselineSweepFunction": ("BaselineSweepFunctionRole", "BaselineSweepMode"),
    "QuarantineFunction": ("QuarantineFunctionRole", "QuarantineMode"),
    "LoggingGuardFunction": ("LoggingGuardFunctionRole", "LoggingGuardMode"),
}
# Writes a control makes through its own role, and the member roles it may assume to write.
CONTROL_WRITES = ("iam:", "connect:", "cloudtrail:", "kms:", "events:PutRule", "logs:", "s3:Put")
MEMBER_WRITE_ROLE = {
    "ProfileRollbackFunction": "rollback",
    "BaselineSweepFunction": "rollback",
    "QuarantineFunction": "quarantine",
    "LoggingGuardFunction": "rollback",
}


def combinations() -> list[dict[str, str]]:
    """ResponseMode either way, with each control inheriting, detecting or enforcing alone; plus
    every control set against ResponseMode at once."""
    out = []
    for response, (function, mode) in itertools.product(
        ("detect", "enforce"), itertools.product(CONTROLS, ("inherit", "detect", "enforce"))
    ):
        out.append({"ResponseMode": response, CONTROLS[function][1]: mode})
    out.append({"ResponseMode": "detect", **{p: "enforce" for _, p in CONTROLS.values()}})
    out.append({"ResponseMode": "enforce", **{p: "detect" for _, p in CONTROLS.values()}})
    return out


def enforces(function: str, overrides: dict[str, str]) -> bool:
    own = overrides.get(CONTROLS[function][1], "inherit")
    return (overrides["ResponseMode"] if own == "inherit" else own) == "enforce"


def _id(overrides: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in overrides.items())


def _statements(role: str, params: dict[str, str]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in resolve(props(role).get("Policies", []), params):
        statements += as_list(policy["PolicyDocument"]["Statement"])
    return [s for s in statements if s["Effect"] == "Allow"]


def _writes(role: str, params: dict[str, str]) -> set[str]:
    return {
        action
        for statement in _statements(role, params)
        for action in as_list(statement["Action"])
        if action.startswith(CONTROL_WRITES) and action.split(":")[1].startswith(WRITE_VERBS)
    }


def _assumable(role: str, params: dict[str, str]) -> set[str]:
    return {
        resource.rsplit("-", 1)[-1]
        for statement in _statements(role, params)
        if "sts:AssumeRole" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


def _grants(role: str, params: dict[str, str]) -> list[str]:
    """A role's allowed statements as deployed, comparable."""
    return sorted(json.dumps(s, sort_keys=True) for s in _statements(role, params))


ALL_DETECT = {"ResponseMode": "detect"}
ALL_ENFORCE = {"ResponseMode": "enforce"}
DEPLOYMENT = {"MemberAccountIds": MEMBER_ACCOUNT, "DeactivateAccessKeys": "true"}


@pytest.mark.parametrize("function", sorted(CONTROLS))
def test_enforce_adds_writes_and_a_write_role_to_each_control(function: str) -> None:
    role = CONTROLS[function][0]
    detect, enforce = parameters(**ALL_DETECT, **DEPLOYMENT), parameters(**ALL_ENFORCE, **DEPLOYMENT)
    added = {a for a in _writes(role, enforce) - _writes(role, detect) if a.startswith(("iam:", "connect:"))}
    assert added or function == "LoggingGuardFunction"  # its own writes: trails, keys, rules, logs
    assert set(_grants(role, detect)) < set(_grants(role, enforce))
    assert _assumable(role, detect) == {"read"}
    assert _assumable(role, enforce) == {"read", MEMBER_WRITE_ROLE[function]}


@pytest.mark.parametrize("overrides", combinations(), ids=_id)
def test_writes_and_write_roles_exist_for_exactly_the_controls_that_enforce(overrides: dict[str, str]) -> None:
    # Each control's role is exactly its detect role or exactly its enforce role, by its own mode.
    params = parameters(**overrides, **DEPLOYMENT)
    detect, enforce = parameters(**ALL_DETECT, **DEPLOYMENT), parameters(**ALL_ENFORCE, **DEPLOYMENT)
    for function, (role, _) in CONTROLS.items():
        on = enforces(function, overrides)
        assert _grants(role, params) == _grants(role, enforce if on else detect), function
        # The function is told the mode its role was granted for.
        env = resolve(props(function)["Environment"]["Variables"], params)
        assert env["RESPONSE_MODE"] == ("enforce" if on else "detect"), function
    # No other role changes with the modes.
    for role in set(ROLES) - {r for r, _ in CONTROLS.values()}:
        assert _grants(role, params) == _grants(role, detect), role


@pytest.mark.parametrize("overrides", combinations(), ids=_id)
def test_the_settings_a_function_reads_resolve_to_the_mode_its_role_was_granted_for(overrides: dict[str, str]) -> None:
    # What Settings.mode_for says inside the function (from its own environment) matches IAM.
    params = parameters(**overrides, DetectOnlyAccountIds="444455556666")
    shared = resolve(T["Globals"]["Function"]["Environment"]["Variables"], params)
    for function in CONTROLS:
        env = {**shared, **resolve(props(function)["Environment"]["Variables"], params)}
        mode_env = {k: str(v) for k, v in env.items() if k in MODE_ENV[function]}
        settings = Settings.from_env({**mode_env, "ALERT_TOPIC_ARN": TOPIC, "DEDUP_TABLE_NAME": "dedup"})
        control = {
            "ProfileRollbackFunction": "profile_rollback",
            "BaselineSweepFunction": "baseline_sweep",
            "QuarantineFunction": "quarantine",
            "LoggingGuardFunction": "logging_guard",
        }[function]
        decision = settings.mode_for(control, MEMBER_ACCOUNT)  # type: ignore[arg-type]
        assert decision.enforces == enforces(function, overrides), (function, decision)
        own = overrides.get(CONTROLS[function][1], "inherit")
        if own == "inherit":
            assert decision.reason == f"ResponseMode={overrides['ResponseMode']} ({CONTROLS[function][1]} inherits)"
        else:
            assert decision.reason == f"{CONTROLS[function][1]}={own}"
        pilot = settings.mode_for(control, "444455556666")  # type: ignore[arg-type]
        assert pilot.mode == "detect"


def test_each_control_has_a_mode_parameter_that_inherits_by_default() -> None:
    for function, (_, parameter) in CONTROLS.items():
        spec = T["Parameters"][parameter]
        assert spec["AllowedValues"] == ["inherit", "detect", "enforce"] and spec["Default"] == "inherit"
        assert MODE_PARAMETERS[function][1] == parameter
        condition = ENFORCES[function]
        assert T["Conditions"][condition] == {
            "Fn::Or": [
                {"Fn::Equals": [{"Ref": parameter}, "enforce"]},
                {"Fn::And": [{"Fn::Equals": [{"Ref": parameter}, "inherit"]}, {"Condition": "IsEnforce"}]},
            ]
        }
    spec = T["Parameters"]["DetectOnlyAccountIds"]
    assert spec["Default"] == "" and spec["AllowedPattern"] == T["Parameters"]["MemberAccountIds"]["AllowedPattern"]


def test_left_at_inherit_the_modes_change_nothing() -> None:
    # ResponseMode works exactly as before: every control follows it.
    for mode in ("detect", "enforce"):
        params = parameters(ResponseMode=mode)
        for function in CONTROLS:
            env = resolve(props(function)["Environment"]["Variables"], params)
            assert env["RESPONSE_MODE"] == mode


# ---- the member stack ----------------------------------------------------------------------------
MEMBER_CONTROLS = {
    "ProfileRollbackFunction": ("ProfileRollbackMode", "profile-rollback"),
    "BaselineSweepFunction": ("BaselineSweepMode", "baseline-sweep"),
    "QuarantineFunction": ("QuarantineMode", "role-quarantine"),
    "LoggingGuardFunction": ("LoggingGuardMode", "logging-guard"),
}
MEMBER_PSEUDO = {"AWS::AccountId": MEMBER_ACCOUNT, "AWS::Region": "us-east-1", "AWS::Partition": "aws"}
PROFILE_WRITES = {"connect:UpdateUserSecurityProfiles", "connect:UpdateSecurityProfile"}


def _member(overrides: dict[str, str], **extra: str) -> cfn.Resolver:
    params = cfn.parameters(MEMBER, SecurityAccountId="123456789012", Environment="dev", **overrides, **extra)
    return cfn.Resolver(MEMBER, params, MEMBER_PSEUDO)


def _role(resolver: cfn.Resolver, name: str) -> tuple[set[str], set[str]]:
    """A member role's trusted function roles (by slug) and its allowed actions."""
    role = resolver.resolve(MEMBER["Resources"][name]["Properties"])
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    trusted = {arn.rsplit("connect-guard-dev-", 1)[-1] for arn in trust["Condition"]["ArnEquals"]["aws:PrincipalArn"]}
    actions = {
        action
        for policy in role["Policies"]
        for statement in as_list(policy["PolicyDocument"]["Statement"])
        for action in as_list(statement["Action"])
    }
    return trusted, actions


@pytest.mark.parametrize("overrides", combinations(), ids=_id)
def test_member_write_roles_exist_and_trust_only_where_a_control_enforces(overrides: dict[str, str]) -> None:
    resolver = _member(overrides)
    on = {function for function in CONTROLS if enforces(function, overrides)}
    rollback_users = on & {"ProfileRollbackFunction", "BaselineSweepFunction", "LoggingGuardFunction"}
    assert resolver.deployed("ReadRole")
    assert resolver.deployed("RollbackRole") == bool(rollback_users)
    assert resolver.deployed("QuarantineRole") == ("QuarantineFunction" in on)
    if rollback_users:
        trusted, actions = _role(resolver, "RollbackRole")
        assert trusted == {MEMBER_CONTROLS[f][1] for f in rollback_users}
        # The profile updates only for the rollback or the sweep; the guard's restores only for it.
        assert (actions >= PROFILE_WRITES) == bool(rollback_users - {"LoggingGuardFunction"})
        assert not (PROFILE_WRITES & actions) or bool(rollback_users - {"LoggingGuardFunction"})
        guard_writes = {"cloudtrail:StartLogging", "connect:UpdateInstanceAttribute", "kms:EnableKey"}
        assert (guard_writes <= actions) == ("LoggingGuardFunction" in on), sorted(actions)
        assert not (guard_writes & actions) or "LoggingGuardFunction" in on
    if "QuarantineFunction" in on:
        trusted, _ = _role(resolver, "QuarantineRole")
        assert trusted == {"role-quarantine"}


def test_a_pilot_member_stack_in_detect_has_no_write_role_even_with_identity_center() -> None:
    resolver = _member({"ResponseMode": "detect"}, SsoDenyListPolicyId="p-abcdefgh12", IdentityStoreId="d-1234567890")
    assert not resolver.deployed("RollbackRole") and not resolver.deployed("QuarantineRole")
    assert not resolver.deployed("SsoRevocationRole")
    enforced = _member(
        {"ResponseMode": "detect", "QuarantineMode": "enforce"},
        SsoDenyListPolicyId="p-abcdefgh12",
        IdentityStoreId="d-1234567890",
    )
    assert enforced.deployed("SsoRevocationRole") and enforced.deployed("QuarantineRole")
    assert not enforced.deployed("RollbackRole")


def test_member_mode_parameters_match_the_security_stacks() -> None:
    for parameter in ("ResponseMode", *(p for p, _ in MEMBER_CONTROLS.values())):
        assert MEMBER["Parameters"][parameter]["AllowedValues"] == T["Parameters"][parameter]["AllowedValues"]
        assert MEMBER["Parameters"][parameter]["Default"] == T["Parameters"][parameter]["Default"]
