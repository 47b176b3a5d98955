"""Stack parameters as a deployment would see them: template defaults, then samconfig.toml's
`parameter_overrides` for one config env, then explicit overrides."""

from __future__ import annotations

import difflib
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from connect_guard_tools.errors import ParameterError
from connect_guard_tools.template import PROJECT_ROOT, load_template

SAMCONFIG_PATH = PROJECT_ROOT / "samconfig.toml"

# Template parameter → Settings field (the template maps the same pairs onto env vars).
SETTINGS_FROM_PARAMETERS = {
    "Environment": "environment",
    "ResponseMode": "response_mode",
    "AllowlistedPrincipals": "allowlisted_principals",
    "BaselineApprovers": "baseline_approvers",
    "MemberAccountIds": "member_account_ids",
    "RunbookBaseUrl": "runbook_base_url",
    "PrivilegedPermissions": "privileged_permissions",
    "PrivilegedProfileNames": "privileged_profile_names",
    "FallbackSecurityProfileName": "fallback_security_profile_name",
    "OrganizationEmailDomains": "organization_email_domains",
    "ProtectedRoleNames": "protected_role_names",
    "ProtectedRoleTagKey": "protected_role_tag_key",
    "QuarantineOnTampering": "quarantine_on_tampering",
    "DeactivateAccessKeys": "deactivate_access_keys",
    "QuarantinePolicyName": "quarantine_policy_name",
    "OrganizationId": "organization_id",
    # Response modes: the replay runs every control in one process, so it resolves each one's
    # mode itself (Settings.mode_for), as the template's conditions do.
    "ProfileRollbackMode": "profile_rollback_mode",
    "BaselineSweepMode": "baseline_sweep_mode",
    "QuarantineMode": "quarantine_mode",
    "LoggingGuardMode": "logging_guard_mode",
    "DetectOnlyAccountIds": "detect_only_account_ids",
}


_SAM_PAIR = re.compile(r"ParameterKey=(?P<key>[^,]*),ParameterValue=(?P<value>.*)", re.DOTALL)


def parse_overrides(value: str | list[str]) -> dict[str, str]:
    """`KEY=VALUE` words (or sam's `ParameterKey=K,ParameterValue=V`). A word without `=` is an
    error: sam deploy would not pass it on, and dropping it silently deploys something else."""
    try:
        items = value if isinstance(value, list) else shlex.split(value)
    except ValueError as error:  # an unbalanced quote
        raise ParameterError(f"cannot split the overrides ({error})") from None
    pairs: dict[str, str] = {}
    for item in items:
        sam = _SAM_PAIR.fullmatch(item)
        if sam:
            key, val = sam["key"], sam["value"]
        elif "=" in item:
            key, val = item.split("=", 1)
        else:
            raise ParameterError(f"{item!r} is not KEY=VALUE")
        if not key:
            raise ParameterError(f"{item!r} has no parameter name before '='")
        pairs[key] = val.strip('"')
    return pairs


def _closest(name: str, known: list[str]) -> str | None:
    """The parameter a misspelt or mis-cased name most likely meant."""
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def _number(text: str) -> float | None:
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None  # no NaN, no infinity


def _format_number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def _check_value(name: str, spec: dict[str, Any], value: str) -> str | None:
    """Why CloudFormation would refuse `value` for the parameter, or None. Constraints as
    CloudFormation applies them: AllowedPattern matches the whole value (each item of a
    CommaDelimitedList), Min/MaxLength count characters of a String, Min/MaxValue bound a Number."""
    kind = str(spec.get("Type", "String"))
    allowed = [str(v) for v in spec.get("AllowedValues") or []]
    hint = f" ({spec['ConstraintDescription'].strip().rstrip('.')})" if spec.get("ConstraintDescription") else ""
    if kind in ("Number", "List<Number>"):
        items = value.split(",") if kind == "List<Number>" else [value]
        for item in items:
            number = _number(item)
            if number is None:
                return f"{name}: {item!r} is not a number"
            if allowed and not any(_number(a) == number for a in allowed):
                return f"{name}: {item!r} is not one of {', '.join(allowed)}"
            if "MinValue" in spec and number < float(spec["MinValue"]):
                return f"{name}: {item} is less than the minimum {_format_number(spec['MinValue'])}{hint}"
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                return f"{name}: {item} is more than the maximum {_format_number(spec['MaxValue'])}{hint}"
        return None
    items = value.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else [value]
    for item in items:
        if allowed and item not in allowed:
            return f"{name}: {item!r} is not one of {', '.join(allowed)}"
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(str(pattern), item):
            return f"{name}: {item!r} does not match {pattern}{hint}"
    if kind == "String":
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            return f"{name}: {value!r} is shorter than {spec['MinLength']} characters{hint}"
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            return f"{name}: {value[:40]!r}... is longer than {spec['MaxLength']} characters{hint}"
    return None  # AWS-specific types (AWS::EC2::..., SSM parameters) are resolved by CloudFormation


def validate_overrides(overrides: dict[str, str], specs: dict[str, Any] | None = None) -> None:
    """Raise ParameterError for the first override the template does not declare (with the name it
    most likely meant) or whose value its constraints refuse."""
    specs = specs if specs is not None else load_template().get("Parameters", {})
    for name, value in overrides.items():
        if name not in specs:
            guess = _closest(name, list(specs))
            raise ParameterError(f"unknown parameter {name!r}" + (f" (did you mean {guess!r}?)" if guess else ""))
        problem = _check_value(name, specs[name], value)
        if problem:
            raise ParameterError(problem)


def samconfig_overrides(config_env: str, samconfig: Path = SAMCONFIG_PATH) -> dict[str, str]:
    """The env's deploy `parameter_overrides`, checked like the command line's. An env the file
    does not have is an error: sam deploy --config-env refuses it too."""
    if not samconfig.exists():
        if config_env != "default":
            raise ParameterError(
                f"unknown config env {config_env!r}: there is no {samconfig.name}", "leave out --config-env"
            )
        return {}
    try:
        config: dict[str, Any] = tomllib.loads(samconfig.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ParameterError(f"{samconfig.name} is not valid TOML ({error})", f"fix {samconfig}") from None
    envs = [k for k, v in config.items() if isinstance(v, dict)]
    if config_env not in envs:
        raise ParameterError(
            f"unknown config env {config_env!r} ({samconfig.name} has {', '.join(envs) or 'none'})",
            "pass --config-env with one of them",
        )
    deploy = config[config_env].get("deploy", {}).get("parameters", {})
    if "parameter_overrides" not in deploy:
        return {}
    try:
        overrides = parse_overrides(deploy["parameter_overrides"])
        validate_overrides(overrides)
    except ParameterError as error:
        raise ParameterError(
            f"{samconfig.name} [{config_env}] parameter_overrides: {error}", f"fix that env in {samconfig}"
        ) from None
    return overrides


def stack_parameters(
    config_env: str = "default", overrides: dict[str, str] | None = None, samconfig: Path = SAMCONFIG_PATH
) -> dict[str, str]:
    parameters = {name: str(spec.get("Default", "")) for name, spec in load_template().get("Parameters", {}).items()}
    parameters.update(samconfig_overrides(config_env, samconfig))
    validate_overrides(overrides or {})
    parameters.update(overrides or {})
    return parameters


def settings_values(parameters: dict[str, str]) -> dict[str, str]:
    values = {field: parameters[name] for name, field in SETTINGS_FROM_PARAMETERS.items() if name in parameters}
    if not values.get("member_account_ids"):
        values.pop("member_account_ids", None)  # the replay enrols the accounts it seeds
    return values


# The stack requires RunbookBaseUrl (it ships no default link); the replay links this checkout's
# runbooks, which resolve on the machine running it.
LOCAL_RUNBOOK_BASE_URL = (PROJECT_ROOT / "docs" / "runbooks").as_uri() + "/"


def replay_parameters(config_env: str = "default", overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Parameters for the local replay: the embedded source accounts are enrolled (their member
    roles exist) unless the configuration names the accounts itself; the runbooks are this
    checkout's unless the configuration names a RunbookBaseUrl."""
    parameters = stack_parameters(config_env, overrides)
    if not parameters.get("RunbookBaseUrl"):
        parameters["RunbookBaseUrl"] = LOCAL_RUNBOOK_BASE_URL
    return parameters
