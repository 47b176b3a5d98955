"""The CLI's error boundary: every failure a command can meet becomes one line on stderr,
`connect-guard <command>: <what went wrong>; <what to do>`, and an exit code.

Exit codes: 0 done; 1 the command ran and something it did failed (`--fail-on-error`, a release
or restore that did not take); 2 bad input or environment (arguments, parameters, region,
credentials, network, unknown stack, AWS refusing a call). An unexpected error is one line too,
naming its type; `--debug` shows its traceback.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# DescribeStacks says "Stack with id X does not exist"; other stack calls "Stack [X] does not exist".
_STACK_MISSING = re.compile(r"Stack (?:with id (?P<id>\S+)|\[(?P<name>[^\]]+)\]) does not exist")
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_BAD_KEYS = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidAccessKeyId"}
_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}


class UsageError(Exception):
    """Bad input the CLI found itself, before (or instead of) acting: the line's `<what went
    wrong>` (the message) and `<what to do>` (the hint)."""

    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint if hint is not None else self.default_hint


class ParameterError(UsageError):
    """Stack parameters CloudFormation would refuse (or sam deploy would drop)."""

    default_hint = "use the names and values template.yaml's Parameters declare"


def one_line(text: object, limit: int = 400) -> str:
    """Multi-line messages (botocore's parameter reports, pydantic's) folded into one line."""
    folded = " ".join(str(text).split())
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."


def describe(error: BaseException, region: str | None = None) -> str:
    """`<what went wrong>; <what to do>` for `error` (region: where the command ran, if known)."""
    where = f" in {region}" if region else ""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted; what ran before the interruption is in the audit table: check it before rerunning"
    if isinstance(error, UsageError):
        return f"{one_line(error)}; {error.hint}" if error.hint else one_line(error)
    if isinstance(error, ClientError):
        return _client_error(error, where)
    if isinstance(error, BotoCoreError):
        return _botocore_error(error)
    if _is_pydantic_validation(error):
        return f"invalid configuration ({_pydantic_problems(error)}); check the stack's parameters"
    if isinstance(error, OSError):
        name = error.filename if error.filename is not None else ""
        what = f"{name}: {error.strerror or error}" if name else one_line(error)
        return f"{what}; check the path and its permissions"
    if _is_suite_error(error):
        return f"{one_line(error)}; see the runbook for this control (docs/runbooks)"
    return f"unexpected {type(error).__name__}: {one_line(error)}; rerun with --debug to see the traceback"


def exit_code(error: BaseException) -> int:
    return EXIT_INTERRUPTED if isinstance(error, KeyboardInterrupt) else EXIT_BAD_INPUT


def _client_error(error: ClientError, where: str) -> str:
    details: dict[str, Any] = error.response.get("Error") or {}
    code, message = str(details.get("Code", "Unknown")), one_line(details.get("Message", ""), 300)
    operation = error.operation_name or "the call"
    missing = _STACK_MISSING.search(message)
    if missing or (operation == "DescribeStacks" and code == "ValidationError" and "does not exist" in message):
        stack = (missing["id"] or missing["name"]) if missing else "?"
        return f"unknown stack {stack}{where}; check --stack and --region (aws cloudformation list-stacks)"
    if code in _DENIED:
        return f"AWS denied {operation} ({code}: {message}); use credentials allowed to call it"
    if code in _EXPIRED:
        return f"the AWS credentials have expired ({code}); refresh them (e.g. aws sso login) and retry"
    if code in _BAD_KEYS:
        return f"AWS rejected the credentials ({code}: {message}); check the access key, or the profile in use"
    if code in _THROTTLED:
        return f"AWS throttled {operation} ({code}); retry in a minute"
    return f"{operation} failed ({code}: {message}); check the arguments"


def _botocore_error(error: BotoCoreError) -> str:
    if isinstance(error, NoRegionError):
        return "no AWS region configured; pass --region (e.g. --region us-east-1) or set AWS_DEFAULT_REGION"
    if isinstance(error, InvalidRegionError):
        return f"{error.kwargs.get('region_name')!r} is not a region name; pass --region like us-east-1"
    if isinstance(error, NoCredentialsError):
        return (
            "no AWS credentials found; configure them (aws configure, aws sso login, AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(error, PartialCredentialsError):
        return f"incomplete AWS credentials ({one_line(error)}); set the access key ID and the secret key together"
    if isinstance(error, CredentialRetrievalError | TokenRetrievalError | SSOError):
        return f"cannot get AWS credentials ({one_line(error)}); refresh them (e.g. aws sso login) and retry"
    if isinstance(error, ProfileNotFound):
        return f"AWS profile {error.kwargs.get('profile')!r} not found; check AWS_PROFILE and ~/.aws/config"
    if isinstance(error, ParamValidationError):
        report = one_line(error.kwargs.get("report", error))
        return f"invalid request ({report}); check the command's arguments"
    if isinstance(error, ConnectionError | HTTPClientError):
        endpoint = error.kwargs.get("endpoint_url")
        return (
            f"cannot reach {endpoint or 'AWS'} ({one_line(error, 200)}); check the network, --region and "
            "AWS_ENDPOINT_URL, then retry"
        )
    return f"AWS SDK error ({one_line(error)}); check the AWS configuration"


def _is_pydantic_validation(error: BaseException) -> bool:
    return type(error).__name__ == "ValidationError" and hasattr(error, "errors")


def _pydantic_problems(error: Any) -> str:
    return one_line("; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors()))


def _is_suite_error(error: BaseException) -> bool:
    from connect_guard.errors import ConnectGuardError

    return isinstance(error, ConnectGuardError)
