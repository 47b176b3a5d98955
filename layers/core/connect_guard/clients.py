"""Boto3 clients, built lazily with explicit retry settings; tests and the replay swap them.

One botocore session is shared so service models load once per container. Clients for a
source account come from the member stack's role for the purpose (read, rollback,
quarantine), assumed on first use and cached until shortly
before its credentials expire.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from connect_guard.errors import MemberAccessError
from connect_guard.settings import MemberPurpose, Settings

RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 5},
    connect_timeout=3,
    read_timeout=10,
)
MEMBER_SESSION_SECONDS = 900
_STS_REFUSALS = {"AccessDenied", "AccessDeniedException", "RegionDisabledException", "ExpiredTokenException"}


class AwsClients:
    def __init__(self, region: str, session: boto3.session.Session | None = None, account_id: str = "") -> None:
        self.region = region
        self.account_id = account_id  # the security account (from settings): reached without a role
        self.session = session or boto3.session.Session(region_name=region)
        self._member: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._regional: dict[tuple[str, str, str], Any] = {}

    def client(self, service: str, region: str | None = None, **credentials: str) -> Any:
        return self.session.client(service, region_name=region or self.region, config=RETRY_CONFIG, **credentials)

    def for_account(
        self, service: str, account_id: str, region: str, settings: Settings, purpose: MemberPurpose
    ) -> Any:
        """A client acting in `account_id`: our own role there, else the member role for `purpose`.

        Only enrolled accounts are reached: an event naming any other account gets no action.
        """
        key = (service, account_id, region)
        if account_id == self.account_id:
            if key not in self._regional:
                self._regional[key] = self.client(service, region)
            return self._regional[key]
        if not settings.enrolled(account_id):
            raise MemberAccessError(f"account {account_id} is not enrolled (MemberAccountIds)")
        return self.member_client(service, settings.member_role_arn(account_id, purpose), region)

    @cached_property
    def sns(self) -> Any:
        return self.client("sns")

    @cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @cached_property
    def iam(self) -> Any:
        return self.client("iam")

    @cached_property
    def sts(self) -> Any:
        return self.client("sts")

    def member_client(self, service: str, role_arn: str, region: str | None = None) -> Any:
        """A client acting through a member-stack role (credentials cached per role)."""
        region = region or self.region
        key = (service, role_arn, region)
        cached = self._member.get(key)
        if cached and cached[0] > time.time():
            return cached[1]
        try:
            credentials = self.sts.assume_role(
                RoleArn=role_arn, RoleSessionName="connect-guard", DurationSeconds=MEMBER_SESSION_SECONDS
            )["Credentials"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in _STS_REFUSALS:  # the role is missing or does not trust us: retrying won't help
                raise MemberAccessError(f"cannot assume {role_arn}: {code}") from error
            raise
        client = self.client(
            service,
            region,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        self._member[key] = (time.time() + MEMBER_SESSION_SECONDS - 60, client)
        return client
