"""Typed models of the EventBridge envelope and the CloudTrail record it carries.

Tolerant of what real records hold: null `requestParameters` on denied calls, missing
`sessionContext` for long-term keys, root/federated/service principals, extra fields from
newer `eventVersion`s. Strict where a responder depends on it: `eventID` and `eventName` are
required, `detail` must be an object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class SessionIssuer(_Model):
    type: str | None = None
    principal_id: str | None = Field(None, alias="principalId")
    arn: str | None = None
    account_id: str | None = Field(None, alias="accountId")
    user_name: str | None = Field(None, alias="userName")


class SessionAttributes(_Model):
    creation_date: str | None = Field(None, alias="creationDate")
    mfa_authenticated: bool | None = Field(None, alias="mfaAuthenticated")


class SessionContext(_Model):
    session_issuer: SessionIssuer | None = Field(None, alias="sessionIssuer")
    attributes: SessionAttributes | None = None
    source_identity: str | None = Field(None, alias="sourceIdentity")


class UserIdentity(_Model):
    type: str | None = None
    principal_id: str | None = Field(None, alias="principalId")
    arn: str | None = None
    account_id: str | None = Field(None, alias="accountId")
    access_key_id: str | None = Field(None, alias="accessKeyId")
    user_name: str | None = Field(None, alias="userName")
    invoked_by: str | None = Field(None, alias="invokedBy")
    session_context: SessionContext | None = Field(None, alias="sessionContext")

    @property
    def session_issuer_arn(self) -> str | None:
        issuer = self.session_context.session_issuer if self.session_context else None
        return issuer.arn if issuer else None

    @property
    def session_issuer_principal_id(self) -> str | None:
        """The issuing role's unique ID (AROA...): it changes when a role is deleted and re-created."""
        issuer = self.session_context.session_issuer if self.session_context else None
        if issuer and issuer.principal_id:
            return issuer.principal_id
        if self.type == "AssumedRole" and self.principal_id and ":" in self.principal_id:
            return self.principal_id.split(":", 1)[0]
        return None

    @property
    def session_name(self) -> str | None:
        """The part after the role name in an assumed-role ARN (SSO: the user's name)."""
        if self.type == "AssumedRole" and self.arn and self.arn.count("/") >= 2:
            return self.arn.rsplit("/", 1)[1]
        return None

    @property
    def mfa_authenticated(self) -> bool | None:
        attributes = self.session_context.attributes if self.session_context else None
        return attributes.mfa_authenticated if attributes else None

    @property
    def source_identity(self) -> str | None:
        return self.session_context.source_identity if self.session_context else None


class CloudTrailRecord(_Model):
    event_version: str | None = Field(None, alias="eventVersion")
    user_identity: UserIdentity = Field(alias="userIdentity")
    event_time: datetime = Field(alias="eventTime")
    event_source: str = Field(alias="eventSource")
    event_name: str = Field(alias="eventName")
    aws_region: str = Field(alias="awsRegion")
    source_ip_address: str | None = Field(None, alias="sourceIPAddress")
    user_agent: str | None = Field(None, alias="userAgent")
    request_parameters: dict[str, Any] | None = Field(None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(None, alias="responseElements")
    error_code: str | None = Field(None, alias="errorCode")
    error_message: str | None = Field(None, alias="errorMessage")
    request_id: str | None = Field(None, alias="requestID")
    event_id: str = Field(alias="eventID", min_length=1)
    read_only: bool | None = Field(None, alias="readOnly")
    event_type: str | None = Field(None, alias="eventType")
    recipient_account_id: str | None = Field(None, alias="recipientAccountId")
    session_credential_from_console: bool | None = Field(None, alias="sessionCredentialFromConsole")

    @property
    def denied(self) -> bool:
        return self.error_code is not None

    def param(self, name: str) -> Any:
        """A request parameter, or None when the record carries none (denied calls)."""
        return (self.request_parameters or {}).get(name)


class CloudTrailEvent(_Model):
    """An EventBridge event whose detail is a CloudTrail record."""

    version: str | None = None
    id: str
    detail_type: str = Field(alias="detail-type")
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str] = Field(default_factory=list)
    detail: CloudTrailRecord

    @field_validator("detail_type")
    @classmethod
    def _is_cloudtrail_api_call(cls, value: str) -> str:
        if value != CLOUDTRAIL_DETAIL_TYPE:
            raise ValueError(f"not a CloudTrail API call event (detail-type {value!r})")
        return value
