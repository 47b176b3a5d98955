"""Settings, validated once from the environment (template.yaml sets every variable)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connect_guard.errors import ConfigurationError


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    environment: str = "dev"
    response_mode: Literal["detect", "enforce"] = "detect"
    alert_topic_arn: str = Field(pattern=r"^arn:aws[\w-]*:sns:[\w-]+:\d{12}:[\w-]+$")
    dedup_table_name: str = Field(min_length=3)
    allowlisted_principals: tuple[str, ...] = ()
    member_role_name: str | None = None
    runbook_base_url: str = "https://github.com/connect-guard/connect-guard/blob/main/docs/runbooks"
    suite_role_path: str = "/connect-guard/"
    # EventBridge retries a target for up to 24 h: remember eventIDs for twice that.
    dedup_ttl_seconds: int = Field(default=172_800, ge=3_600)

    _split = field_validator("allowlisted_principals", mode="before")(_split_list)

    @field_validator("member_role_name", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None

    @property
    def own_account_id(self) -> str:
        """The security account: the alert topic lives there, so no STS call is needed."""
        return self.alert_topic_arn.split(":")[4]

    @property
    def region(self) -> str:
        return self.alert_topic_arn.split(":")[3]

    def runbook_url(self, responder: str) -> str:
        return f"{self.runbook_base_url.rstrip('/')}/{responder.replace('_', '-')}.md"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        names = {
            "environment": "ENVIRONMENT",
            "response_mode": "RESPONSE_MODE",
            "alert_topic_arn": "ALERT_TOPIC_ARN",
            "dedup_table_name": "DEDUP_TABLE_NAME",
            "allowlisted_principals": "ALLOWLISTED_PRINCIPALS",
            "member_role_name": "MEMBER_ROLE_NAME",
            "runbook_base_url": "RUNBOOK_BASE_URL",
            "suite_role_path": "SUITE_ROLE_PATH",
            "dedup_ttl_seconds": "DEDUP_TTL_SECONDS",
        }
        values = {field: env[var] for field, var in names.items() if var in env and env[var] != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in error.errors())
            raise ConfigurationError(f"invalid configuration: {problems}") from error
