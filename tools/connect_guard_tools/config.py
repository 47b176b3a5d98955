"""Stack parameters as a deployment would see them: template defaults, then samconfig.toml's
`parameter_overrides` for one config env, then explicit overrides."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path
from typing import Any

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
    "ProtectedRoleNames": "protected_role_names",
    "ProtectedRoleTagKey": "protected_role_tag_key",
    "QuarantineOnTampering": "quarantine_on_tampering",
    "DeactivateAccessKeys": "deactivate_access_keys",
    "QuarantinePolicyName": "quarantine_policy_name",
    # Response modes: the replay runs every control in one process, so it resolves each one's
    # mode itself (Settings.mode_for), as the template's conditions do.
    "ProfileRollbackMode": "profile_rollback_mode",
    "BaselineSweepMode": "baseline_sweep_mode",
    "QuarantineMode": "quarantine_mode",
    "LoggingGuardMode": "logging_guard_mode",
    "DetectOnlyAccountIds": "detect_only_account_ids",
}


def parse_overrides(value: str | list[str]) -> dict[str, str]:
    items = value if isinstance(value, list) else shlex.split(value)
    pairs = dict(item.split("=", 1) for item in items if "=" in item)
    return {k: v.strip('"') for k, v in pairs.items()}


def stack_parameters(
    config_env: str = "default", overrides: dict[str, str] | None = None, samconfig: Path = SAMCONFIG_PATH
) -> dict[str, str]:
    parameters = {name: str(spec.get("Default", "")) for name, spec in load_template().get("Parameters", {}).items()}
    if samconfig.exists():
        config: dict[str, Any] = tomllib.loads(samconfig.read_text())
        deploy = config.get(config_env, {}).get("deploy", {}).get("parameters", {})
        if "parameter_overrides" in deploy:
            parameters.update(parse_overrides(deploy["parameter_overrides"]))
    parameters.update(overrides or {})
    return parameters


def settings_values(parameters: dict[str, str]) -> dict[str, str]:
    values = {field: parameters[name] for name, field in SETTINGS_FROM_PARAMETERS.items() if name in parameters}
    if not values.get("member_account_ids"):
        values.pop("member_account_ids", None)  # the replay enrols the accounts it seeds
    return values


def replay_parameters(config_env: str = "default", overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Parameters for the local replay: the embedded source accounts are enrolled (their member
    roles exist) unless the configuration names the accounts itself."""
    return stack_parameters(config_env, overrides)
