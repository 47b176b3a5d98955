"""Which AWS refusals of a write are passing: a responder raises them (SQS delivers the event
again) instead of reporting the action as failed for good.

A 5xx, a throttle or a concurrent modification says nothing about the request: the same call
can succeed a moment later. Anything else (a quota, a missing principal, a refusal) is final.
Connection errors and read timeouts are not ClientErrors: they propagate on their own.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

# Error codes AWS services return for throttling, their own faults and write conflicts, whatever
# HTTP status the service (or a fault in between) gave them.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "SlowDown",
        "PriorRequestNotComplete",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServiceError",
        "InternalServiceException",
        "ServiceFailure",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ConcurrentModification",
        "ConcurrentModificationException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def transient(error: ClientError) -> bool:
    """A refusal that retrying can fix: a transient code, HTTP 429, or any 5xx."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in TRANSIENT_CODES or status == 429 or (isinstance(status, int) and status >= 500)
