"""Domain errors, and the classification every failure gets before SQS hears of it.

Adapters turn botocore's ClientError into domain errors where a responder can act on them.
Whatever still escapes a record is classified by `classify` (documented in the README,
"Error classification and delivery guarantees"):

- poison: the event can never succeed, however often it is retried. It goes to the function's
  DLQ on its first receive, with its reason, and no "FAILED" alert is sent for it.
- transient: throttling, 5xx, timeouts, connection errors, a deadline reached. SQS retries it;
  the last receive tells the SOC what did not happen.
- unclassified: anything else. Retried like a transient error, but logged as "unclassified"
  with its type and counted (metric UnclassifiedErrors): each one is a gap in this list or a bug.

A reason never quotes the event: it names types, codes, parameters and positions, never values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from pydantic import ValidationError


class ConnectGuardError(Exception):
    """Base of every error raised on purpose by connect-guard."""


class PoisonEventError(ConnectGuardError):
    """The event itself is unusable: retrying it can never succeed."""


class ConfigurationError(ConnectGuardError):
    """Settings are missing or invalid: responders fail closed (alert, don't act)."""


class DocumentUnavailableError(ConnectGuardError):
    """A policy document could not be read (denied, deleted, an account that is not enrolled)."""


class MemberAccessError(ConnectGuardError):
    """Another account cannot be reached: not enrolled, or its member role cannot be assumed."""


class ConnectResourceNotFoundError(ConnectGuardError):
    """The Connect user, profile or instance named by an event no longer exists."""


class DirectInvocationError(ConnectGuardError):
    """A responder was invoked directly, outside a local run: it takes only its queue's batches."""


class DuplicateInProgressError(ConnectGuardError):
    """Another receive of the same message holds the event's dedup claim and may still be running
    (connect_guard.dedup): SQS retries it, and the retry finds the claim settled."""


class DeadlineExceededError(ConnectGuardError):
    """Too little of the invocation is left for the work (an AWS call attempt, a record): it is not
    started, so the function ends on its own terms instead of being killed at its timeout."""


class ErrorClass(StrEnum):
    POISON = "poison"
    TRANSIENT = "transient"
    UNCLASSIFIED = "unclassified"


@dataclass(frozen=True)
class Verdict:
    kind: ErrorClass
    error_type: str
    reason: str  # bounded, and free of event content

    @property
    def poison(self) -> bool:
        return self.kind is ErrorClass.POISON


# SNS refuses a Publish whose content it can't take (too long, a subject it won't carry): the
# same finding is refused every time, so the event that produced it is poison.
SNS_CONTENT_CODES = frozenset({"InvalidParameter", "InvalidParameterValue", "InvalidParameterException"})
REASON_MAX = 500
_PARAMETER = re.compile(r"parameter ([A-Za-z0-9_.\[\]]+)")


def bounded(text: str, limit: int = REASON_MAX) -> str:
    """`text` cut to `limit` characters, visibly."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} characters cut]"


def classify(error: BaseException) -> Verdict:
    """What kind of failure `error` is, and why, in words safe to log and to put on the DLQ message."""
    # Imported when first needed: every module imports this one, and runtime.py orders its imports.
    from botocore import exceptions as boto
    from pydantic import ValidationError

    name = type(error).__name__
    if isinstance(error, PoisonEventError):
        return Verdict(ErrorClass.POISON, name, bounded(str(error)))
    if isinstance(error, ValidationError):
        return Verdict(ErrorClass.POISON, name, _validation_reason(error))
    if isinstance(error, RecursionError):
        return Verdict(ErrorClass.POISON, name, "the event nests too deeply to be processed")
    if isinstance(error, UnicodeError):
        return Verdict(ErrorClass.POISON, name, _unicode_reason(error))
    if isinstance(error, boto.ParamValidationError | boto.ValidationError | boto.InvalidHostLabelError):
        # Values from the event that botocore refuses before sending: AWS's API model (length,
        # type, range, unknown keys), a region name, a host label taken from a parameter.
        parameters = sorted(set(_PARAMETER.findall(str(error))))
        where = f" ({', '.join(parameters)})" if parameters else ""
        return Verdict(ErrorClass.POISON, name, bounded(f"AWS parameter validation refused a value{where}"))
    if isinstance(error, boto.ClientError):
        return _client_error(error)
    if isinstance(error, boto.ConnectionError | boto.HTTPClientError | TimeoutError | ConnectionError):
        return Verdict(ErrorClass.TRANSIENT, name, f"{name}: the request did not complete")
    if isinstance(error, DuplicateInProgressError):
        return Verdict(ErrorClass.TRANSIENT, name, "another delivery of this eventID is being processed")
    if isinstance(error, DeadlineExceededError | ConfigurationError):
        # A configuration error is fixed by a deployment, after which the retry succeeds.
        return Verdict(ErrorClass.TRANSIENT, name, bounded(str(error)))
    return Verdict(ErrorClass.UNCLASSIFIED, name, bounded(f"{name}: {error}"))


def _client_error(error: ClientError) -> Verdict:
    from connect_guard.aws_errors import transient

    response = error.response or {}
    code = str((response.get("Error") or {}).get("Code") or "")
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    operation = str(error.operation_name or "")
    name = type(error).__name__
    what = bounded(f"{operation or 'AWS'} answered {code or 'an error'}" + (f" (HTTP {status})" if status else ""))
    if transient(error):  # the responders' own test of a passing refusal: one rule for both
        return Verdict(ErrorClass.TRANSIENT, name, what)
    if operation == "Publish" and code in SNS_CONTENT_CODES:
        return Verdict(ErrorClass.POISON, name, f"{what}: SNS refuses the finding this event produces")
    return Verdict(ErrorClass.UNCLASSIFIED, name, what)


def _validation_reason(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "event"
        problems.append(f"{where}: {item['msg']}")
    return bounded("invalid event: " + "; ".join(problems))


def _unicode_reason(error: UnicodeError) -> str:
    reason = getattr(error, "reason", "") or "invalid text"
    start = getattr(error, "start", None)
    where = f" at position {start}" if isinstance(start, int) else ""
    return bounded(f"the event carries text that is not valid Unicode ({reason}{where})")
