"""Boto3 clients, built lazily with explicit retry settings; tests and the replay swap them.

One botocore session is shared so service models load once per container. Clients for a
source account come from the member role, assumed on first use and cached until shortly
before its credentials expire.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

from connect_guard.errors import MemberAccessError

RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 5},
    connect_timeout=3,
    read_timeout=10,
)
MEMBER_SESSION_SECONDS = 900


class AwsClients:
    def __init__(self, region: str, session: boto3.session.Session | None = None, account_id: str = "") -> None:
        self.region = region
        self.account_id = account_id  # the security account (from settings): reached without a role
        self.session = session or boto3.session.Session(region_name=region)
        self._member: dict[tuple[str, str, str, str], tuple[float, Any]] = {}
        self._regional: dict[tuple[str, str, str], Any] = {}

    def client(self, service: str, region: str | None = None, **credentials: str) -> Any:
        return self.session.client(service, region_name=region or self.region, config=RETRY_CONFIG, **credentials)

    def for_account(self, service: str, account_id: str, region: str, role_name: str | None) -> Any:
        """A client acting in `account_id`: our own credentials there, else the member role."""
        key = (service, account_id, region)
        if account_id == self.account_id:
            if key not in self._regional:
                self._regional[key] = self.client(service, region)
            return self._regional[key]
        if not role_name:
            raise MemberAccessError(f"account {account_id} needs a member role (MemberRoleName) to be reached")
        return self.member_client(service, account_id, role_name, "connect-guard", region)

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

    def member_client(
        self, service: str, account_id: str, role_name: str, session_name: str, region: str | None = None
    ) -> Any:
        """A client acting in `account_id` through the suite's member role there."""
        region = region or self.region
        key = (service, account_id, role_name, region)
        cached = self._member.get(key)
        if cached and cached[0] > time.time():
            return cached[1]
        partition = "aws-cn" if self.region.startswith("cn-") else "aws"
        credentials = self.sts.assume_role(
            RoleArn=f"arn:{partition}:iam::{account_id}:role/{role_name}",
            RoleSessionName=session_name[:64],
            DurationSeconds=MEMBER_SESSION_SECONDS,
        )["Credentials"]
        client = self.client(
            service,
            region,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        self._member[key] = (time.time() + MEMBER_SESSION_SECONDS - 60, client)
        return client
