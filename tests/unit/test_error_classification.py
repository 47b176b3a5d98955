"""The written classification (README, "Error classification and delivery guarantees"): what
is poison (to the DLQ on the first receive), transient (retried) or unclassified (retried,
logged as such, counted), and reasons that never quote the event."""

from __future__ import annotations

import copy
import json

import pytest
from botocore import exceptions as boto
from pydantic import ValidationError

from connect_guard.errors import (
    ConfigurationError,
    DeadlineExceededError,
    DuplicateInProgressError,
    ErrorClass,
    PoisonEventError,
    classify,
)
from connect_guard.events import CloudTrailEvent
from tests.conftest import load_event

POISON, TRANSIENT, UNCLASSIFIED = ErrorClass.POISON, ErrorClass.TRANSIENT, ErrorClass.UNCLASSIFIED


def client_error(code: str, status: int, operation: str) -> boto.ClientError:
    response = {"Error": {"Code": code, "Message": "User: arn:aws:iam::111122223333:user/alice said no"}}
    return boto.ClientError({**response, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def validation_error() -> ValidationError:
    event = copy.deepcopy(load_event("iam/attach-user-policy-administratoraccess.json"))
    event["detail"]["userIdentity"] = "alice-the-secret-value"
    try:
        CloudTrailEvent.model_validate(event)
    except ValidationError as error:
        return error
    raise AssertionError("validated")


CASES = {
    "PoisonEventError": (PoisonEventError("unsupported event 'X'"), POISON),
    "pydantic ValidationError": (validation_error(), POISON),
    "RecursionError": (RecursionError("maximum recursion depth exceeded"), POISON),
    "UnicodeEncodeError": (UnicodeEncodeError("utf-8", "a\ud800", 1, 2, "surrogates not allowed"), POISON),
    "ParamValidationError": (
        boto.ParamValidationError(report="Invalid length for parameter RoleName, value: 0, valid min length: 1"),
        POISON,
    ),
    "InvalidRegionError": (boto.InvalidRegionError(region_name="mars-1 x"), POISON),
    "InvalidHostLabelError": (boto.InvalidHostLabelError(label="a b"), POISON),
    "SNS InvalidParameter": (client_error("InvalidParameter", 400, "Publish"), POISON),
    "Throttling": (client_error("Throttling", 400, "GetPolicy"), TRANSIENT),
    "ThrottlingException": (client_error("ThrottlingException", 400, "DescribeUser"), TRANSIENT),
    "TooManyRequestsException": (client_error("TooManyRequestsException", 429, "DescribeUser"), TRANSIENT),
    "ProvisionedThroughputExceeded": (
        client_error("ProvisionedThroughputExceededException", 400, "PutItem"),
        TRANSIENT,
    ),
    "5xx": (client_error("ServiceUnavailable", 503, "AttachUserPolicy"), TRANSIENT),
    "500 without a code": (client_error("", 500, "Publish"), TRANSIENT),
    "ReadTimeoutError": (boto.ReadTimeoutError(endpoint_url="https://iam.amazonaws.com/"), TRANSIENT),
    "ConnectTimeoutError": (boto.ConnectTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com/"), TRANSIENT),
    "EndpointConnectionError": (boto.EndpointConnectionError(endpoint_url="https://sts.amazonaws.com/"), TRANSIENT),
    "ConnectionClosedError": (boto.ConnectionClosedError(endpoint_url="https://connect.amazonaws.com/"), TRANSIENT),
    "TimeoutError": (TimeoutError("timed out"), TRANSIENT),
    "ConnectionResetError": (ConnectionResetError("reset by peer"), TRANSIENT),
    "deadline": (DeadlineExceededError("not attempted"), TRANSIENT),
    "configuration": (ConfigurationError("missing configuration: AUDIT_TABLE_NAME"), TRANSIENT),
    "duplicate in progress": (DuplicateInProgressError("another receive of this event is being processed"), TRANSIENT),
    "dedup store 5xx": (client_error("InternalServerError", 500, "PutItem"), TRANSIENT),
    "dedup store timeout": (boto.ReadTimeoutError(endpoint_url="https://dynamodb/"), TRANSIENT),
    "AccessDenied": (client_error("AccessDenied", 403, "GetRole"), UNCLASSIFIED),
    "IAM InvalidInput": (client_error("InvalidInput", 400, "GetRole"), UNCLASSIFIED),
    "AttributeError": (AttributeError("'float' object has no attribute 'lower'"), UNCLASSIFIED),
    "KeyError": (KeyError("Policy"), UNCLASSIFIED),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_error_has_its_class(name: str) -> None:
    error, expected = CASES[name]
    assert classify(error).kind is expected


def test_reasons_name_what_failed_never_the_values_from_the_event() -> None:
    reasons = {name: classify(error).reason for name, (error, _) in CASES.items()}
    assert reasons["pydantic ValidationError"] == (
        "invalid event: detail.userIdentity: Input should be a valid dictionary or instance of UserIdentity"
    )
    assert reasons["ParamValidationError"] == "AWS parameter validation refused a value (RoleName)"
    assert reasons["SNS InvalidParameter"] == (
        "Publish answered InvalidParameter (HTTP 400): SNS refuses the finding this event produces"
    )
    assert reasons["5xx"] == "AttachUserPolicy answered ServiceUnavailable (HTTP 503)"
    assert reasons["UnicodeEncodeError"] == (
        "the event carries text that is not valid Unicode (surrogates not allowed at position 1)"
    )
    assert reasons["dedup store 5xx"] == "PutItem answered InternalServerError (HTTP 500)"
    assert classify(CASES["dedup store 5xx"][0]).error_type == "ClientError"  # the claim's own error, unwrapped
    assert reasons["duplicate in progress"] == "another delivery of this eventID is being processed"
    for name, reason in reasons.items():
        assert "alice" not in reason and "said no" not in reason, name  # AWS's message echoes the request


def test_an_unclassified_error_keeps_its_type_and_a_bounded_message() -> None:
    verdict = classify(ValueError("x" * 5_000))
    assert (verdict.kind, verdict.error_type) == (UNCLASSIFIED, "ValueError")
    assert verdict.reason.startswith("ValueError: xxx") and verdict.reason.endswith("characters cut]")
    assert len(verdict.reason) < 600


def test_the_reliability_guide_documents_each_class() -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "docs" / "reliability.md").read_text()
    section = readme.split("## Error classification and delivery guarantees", 1)[1].split("\n## ", 1)[0]
    for words in ("Poison", "Transient", "Unclassified", "UnclassifiedErrors"):
        assert f"| {words} |" in section or words in section, words
    for words in ("at least once per finding id", "at most once per action"):
        assert words in section.lower(), words
    assert json.dumps(sorted(ErrorClass)) == json.dumps(["poison", "transient", "unclassified"])
