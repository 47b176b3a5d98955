"""Typed models of the EventBridge envelope and the CloudTrail record it carries.

Tolerant of what real records hold: null `requestParameters` on denied calls, missing
`sessionContext` for long-term keys, root/federated/service principals, extra fields from
newer `eventVersion`s. Strict about everything a responder relies on, so that a record
CloudTrail could not have written fails here, as poison, and never halfway through a
response: identifiers have their AWS shapes (a blank or whitespace eventID is refused, it
would dedupe against every other), accounts and regions are what AWS names them, and the
request parameters and response elements the responders read have the JSON types CloudTrail
gives them. No validation message repeats the value it refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"

# EventBridge event IDs and CloudTrail eventIDs are UUIDs: any printable token up to 128
# characters is accepted (replays and tests mint their own), never blank or with whitespace.
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/+=@-]{1,128}$")]
AccountId = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")]
EventName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,127}$")]
EventSource = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{0,127}\.amazonaws\.com$")]

# JSON nesting a CloudTrail record of these APIs never approaches; deeper is garbage.
MAX_PARAMETER_DEPTH = 32
# The request parameters and response elements the responders read, with the JSON types
# CloudTrail records for them (None stands for absent). A "***" redaction is a string.
REQUEST_PARAMETER_TYPES: Mapping[str, tuple[type, ...]] = {
    "policyArn": (str,),
    "policyName": (str,),
    "policyDocument": (str, dict),
    "versionId": (str,),
    "setAsDefault": (bool,),
    "userName": (str,),
    "roleName": (str,),
    "groupName": (str,),
    "InstanceId": (str,),
    "UserId": (str,),
    "SecurityProfileId": (str,),
    "SecurityProfileIds": (list, str),
    "Permissions": (list, str),
    "resourceArn": (str,),
    "keyId": (str,),
    "policy": (str,),
}
RESPONSE_ELEMENT_TYPES: Mapping[str, tuple[type, ...]] = {
    "policyVersion": (dict,),
    "UserId": (str,),
    "SecurityProfileId": (str,),
}
_POLICY_ARN = r"^arn:[a-z-]+:iam::([0-9]{12}|aws):policy/."
_INSTANCE_ARN = r"^arn:[a-z-]+:connect:[a-z0-9-]+:[0-9]{12}:instance/[^/]+"


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
    event_source: EventSource = Field(alias="eventSource")
    event_name: EventName = Field(alias="eventName")
    aws_region: Region = Field(alias="awsRegion")
    source_ip_address: str | None = Field(None, alias="sourceIPAddress")
    user_agent: str | None = Field(None, alias="userAgent")
    request_parameters: dict[str, Any] | None = Field(None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(None, alias="responseElements")
    error_code: str | None = Field(None, alias="errorCode")
    error_message: str | None = Field(None, alias="errorMessage")
    request_id: str | None = Field(None, alias="requestID")
    event_id: EventId = Field(alias="eventID")
    read_only: bool | None = Field(None, alias="readOnly")
    event_type: str | None = Field(None, alias="eventType")
    recipient_account_id: AccountId | None = Field(None, alias="recipientAccountId")
    session_credential_from_console: bool | None = Field(None, alias="sessionCredentialFromConsole")
    # The resources the call named (KMS records carry the key ARN here); read defensively.
    resources: Any = Field(None, alias="resources")

    @field_validator("request_parameters")
    @classmethod
    def _request_parameter_types(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_shapes(value, REQUEST_PARAMETER_TYPES)
            policy_arn = value.get("policyArn")
            if isinstance(policy_arn, str) and not re.match(_POLICY_ARN, policy_arn):
                raise ValueError("policyArn is not an IAM policy ARN")
            instance = unquote(value["InstanceId"].strip()) if isinstance(value.get("InstanceId"), str) else ""
            if instance.startswith("arn:") and not re.match(_INSTANCE_ARN, instance):
                raise ValueError("InstanceId is neither an instance ID nor an Amazon Connect instance ARN")
        return value

    @field_validator("response_elements")
    @classmethod
    def _response_element_types(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_shapes(value, RESPONSE_ELEMENT_TYPES)
            version = value.get("policyVersion")
            if isinstance(version, dict) and not isinstance(version.get("versionId"), str | None):
                raise ValueError("policyVersion.versionId is not a string")
        return value

    @property
    def denied(self) -> bool:
        return self.error_code is not None

    def param(self, name: str) -> Any:
        """A request parameter, or None when the record carries none (denied calls)."""
        return (self.request_parameters or {}).get(name)


class CloudTrailEvent(_Model):
    """An EventBridge event whose detail is a CloudTrail record."""

    version: str | None = None
    id: EventId
    detail_type: str = Field(alias="detail-type")
    source: str = Field(max_length=256)
    account: AccountId
    time: datetime
    region: Region
    resources: list[str] = Field(default_factory=list)
    detail: CloudTrailRecord

    @field_validator("detail_type")
    @classmethod
    def _is_cloudtrail_api_call(cls, value: str) -> str:
        if value != CLOUDTRAIL_DETAIL_TYPE:
            raise ValueError(f"not a CloudTrail API call event (detail-type is not {CLOUDTRAIL_DETAIL_TYPE!r})")
        return value


def _check_shapes(values: dict[str, Any], types: Mapping[str, tuple[type, ...]]) -> None:
    """Refuse a known key whose value has another JSON type, and nesting no record has."""
    for key, allowed in types.items():
        value = values.get(key)
        if value is not None and not isinstance(value, allowed):
            expected = " or ".join(_JSON_NAMES[t] for t in allowed)
            raise ValueError(f"{key} must be {expected}, not {_JSON_NAMES.get(type(value), 'another type')}")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise ValueError(f"{key} must list strings only")
    pending: list[tuple[Any, int]] = [(values, 1)]
    while pending:  # iterative: a recursive walk is what deep nesting is meant to break
        node, depth = pending.pop()
        if depth > MAX_PARAMETER_DEPTH:
            raise ValueError(f"nested deeper than {MAX_PARAMETER_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


_JSON_NAMES: Mapping[type, str] = {
    str: "a string",
    dict: "an object",
    list: "a list",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}
