"""Boto3 clients, built lazily with explicit retry settings; tests and the replay swap them.

One botocore session is shared so service models load once per container. Clients for a
source account come from the member stack's role for the purpose (read, rollback,
quarantine), assumed on first use and cached until shortly
before its credentials expire.

Every client answers to the invocation's `DEADLINE`: no call attempt starts that could not
finish before the function's timeout, so a hung dependency fails a record cleanly (SQS retries
it, the last receive still alerts) instead of the invocation being killed with its batch.
The budget, per call (README, "Deadlines"):

    one attempt   = connect 2 s + read 3 s                         =  5 s
    one hung call = 3 attempts x 5 s + backoff (<= 0.15 s after
                    timeouts: rand x 50 ms x 2^i)                   < 16 s
which is under the shortest responder timeout (30 s) with room for the rest of the record.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader
from pydantic_core import from_json

from connect_guard.errors import DeadlineExceededError, ErrorClass, MemberAccessError, classify
from connect_guard.settings import WRITE_PURPOSES, MemberPurpose, Settings

CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 3
MAX_ATTEMPTS = 3  # the first attempt and two retries
ATTEMPT_MS = (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) * 1_000
HUNG_CALL_MS = MAX_ATTEMPTS * ATTEMPT_MS + 1_000
# Time an attempt may still need once the deadline let it start: adaptive mode's rate limiter
# holds a throttled client up to 2 s (0.5 requests/s) before sending.
DEADLINE_MARGIN_MS = 2_000
RETRY_CONFIG = Config(
    # total_max_attempts counts the first attempt; botocore's "max_attempts" here means retries.
    retries={"mode": "adaptive", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
)
# The scheduled runs (sweep, role snapshot, log export: 300-900 s, no SQS batch to protect) keep
# more patience for Connect's ~2 requests/s quota: 6 attempts, a hung call under 80 s.
SCHEDULED_RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "total_max_attempts": 6},
    connect_timeout=3,
    read_timeout=10,
)


class Deadline:
    """The running invocation's end, as Lambda reports it (`get_remaining_time_in_millis`).

    Outside an invocation (the replay, the CLI, tests that don't set one) nothing is checked.
    `keeping(ms)` holds time back for what must still happen afterwards (the FAILED alerts of a
    batch's last receives): calls inside it stop that much earlier.
    """

    def __init__(self) -> None:
        self._remaining: Callable[[], int] | None = None
        self._reserve_ms = 0

    @contextmanager
    def of(self, remaining_ms: Callable[[], int]) -> Iterator[None]:
        previous, self._remaining = self._remaining, remaining_ms
        try:
            yield
        finally:
            self._remaining = previous

    @contextmanager
    def keeping(self, reserve_ms: int) -> Iterator[None]:
        previous, self._reserve_ms = self._reserve_ms, reserve_ms
        try:
            yield
        finally:
            self._reserve_ms = previous

    def remaining_ms(self) -> int | None:
        return None if self._remaining is None else self._remaining()

    def check(self, **_: Any) -> None:
        """botocore hook (before-call, before-send): refuse an attempt that can't finish in time."""
        if self._remaining is None:
            return
        left = self._remaining() - self._reserve_ms
        if left < ATTEMPT_MS + DEADLINE_MARGIN_MS:
            raise DeadlineExceededError(
                f"AWS call not attempted: {max(left, 0):,} ms usable before the function's timeout, "
                f"an attempt may take {ATTEMPT_MS + DEADLINE_MARGIN_MS:,} ms"
            )


DEADLINE = Deadline()
# A last attempt's re-read of the state stops this much before the deadline: whatever it finds,
# the alert it decides on (made, or FAILED) still has time for its publish.
REREAD_RESERVE_MS = ATTEMPT_MS + DEADLINE_MARGIN_MS
T = TypeVar("T")


def reread(read: Callable[[], T]) -> T:
    """The last attempt's re-read of the state: once more after a transient failure, and always
    short of the time its alert's publish needs."""
    with DEADLINE.keeping(REREAD_RESERVE_MS):
        try:
            return read()
        except Exception as error:
            if classify(error).kind is not ErrorClass.TRANSIENT or isinstance(error, DeadlineExceededError):
                raise
            return read()


class PlainJSONFileLoader(JSONFileLoader):  # type: ignore[misc]
    """botocore's model files read into plain dicts, not OrderedDicts (both keep the file's order).

    A first client's cost is mostly its service model's JSON: decoding it with botocore's
    `object_pairs_hook=OrderedDict` takes 2-3x as long as into dicts (Connect's 1.9 MB model:
    ~26 ms against ~9 ms, ~6 ms with pydantic-core's parser). botocore reads models only as
    mappings.
    """

    def _load_file(self, full_path: str, open_method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # A private hook of botocore's: the Lambda runtime ships its own botocore, so anything this
        # override doesn't expect (more arguments, a file it can't read) goes to botocore's own.
        if args or kwargs or not os.path.isfile(full_path):
            return super()._load_file(full_path, open_method, *args, **kwargs)
        try:
            with open_method(full_path, "rb") as file:
                return from_json(file.read())  # pydantic-core's parser (already loaded): ~1.5x json's speed
        except Exception:
            return super()._load_file(full_path, open_method)


class _KnownServices(Sequence[str]):
    """The services with a `type_name` model, as botocore's loader lists them, built only when read.

    Asking whether one service is known looks in that service's folders only: botocore's listing
    stats every service's folder (~450 of them, ~25 ms for each model type), and a first client
    asks it for two types (service-2, endpoint-rule-set-1).
    """

    def __init__(self, loader: ContainerLoader, type_name: str) -> None:
        self._loader, self._type_name = loader, type_name

    def __contains__(self, service: object) -> bool:
        try:
            return isinstance(service, str) and bool(self._loader.list_api_versions(service, self._type_name))
        except DataNotFoundError:
            return False

    @cached_property
    def _names(self) -> list[str]:
        names: list[str] = Loader.list_available_services(self._loader, self._type_name)
        return names

    def __getitem__(self, index: Any) -> Any:
        return self._names[index]

    def __len__(self) -> int:
        return len(self._names)


class ContainerLoader(Loader):  # type: ignore[misc]
    """botocore's data loader, minus two costs of a container's first client (see above)."""

    FILE_LOADER_CLASS = PlainJSONFileLoader

    def list_available_services(self, type_name: str) -> Sequence[str]:
        return _KnownServices(self, type_name)


def default_session(region: str) -> boto3.session.Session:
    """The container's session: one botocore session and loader for every client it makes."""
    core = botocore.session.get_session()
    data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore's create_loader reads it
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
    core.register_component("data_loader", ContainerLoader(extra_search_paths=paths))
    return boto3.session.Session(region_name=region, botocore_session=core)


MEMBER_SESSION_SECONDS = 900
_STS_REFUSALS = {"AccessDenied", "AccessDeniedException", "RegionDisabledException", "ExpiredTokenException"}


class AwsClients:
    def __init__(
        self,
        region: str,
        session: boto3.session.Session | None = None,
        account_id: str = "",
        config: Config = RETRY_CONFIG,
    ) -> None:
        self.region = region
        self.account_id = account_id  # the security account (from settings): reached without a role
        self.session = session or default_session(region)
        self.config = config
        self._member: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._regional: dict[tuple[str, str, str], Any] = {}

    def client(self, service: str, region: str | None = None, **credentials: str) -> Any:
        client = self.session.client(service, region_name=region or self.region, config=self.config, **credentials)
        # First: before any handler that answers or waits (a stub, the adaptive rate limiter).
        for event in ("before-call", "before-send"):
            client.meta.events.register_first(event, DEADLINE.check)
        return client

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
        if purpose in WRITE_PURPOSES and account_id in settings.detect_only_account_ids:
            # Fail closed below the responders' own mode checks: a pilot account's member stack
            # may have write roles, but nothing the suite runs assumes them.
            raise MemberAccessError(f"account {account_id} is in DetectOnlyAccountIds: its {purpose} role is not used")
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

    @cached_property
    def sqs(self) -> Any:
        return self.client("sqs")

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
