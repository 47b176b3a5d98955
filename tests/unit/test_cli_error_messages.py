"""The error boundary's lines, one per failure an operator meets: each says what went wrong and
what to do, on one line, for errors as botocore raises them."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.stub import Stubber

from connect_guard.errors import MemberAccessError
from connect_guard_tools.errors import ParameterError, UsageError, describe, exit_code


def client_error(code: str, message: str, operation: str = "DescribeStacks") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            NoRegionError(),
            "no AWS region configured; pass --region (e.g. --region us-east-1) or set AWS_DEFAULT_REGION",
        ),
        (InvalidRegionError(region_name="us east"), "'us east' is not a region name; pass --region like us-east-1"),
        (NoCredentialsError(), "no AWS credentials found; configure them (aws configure, aws sso login, AWS_PROFILE,"),
        (
            PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            "incomplete AWS credentials (Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY); set",
        ),
        (
            CredentialRetrievalError(provider="sso", error_msg="token expired"),
            "cannot get AWS credentials (Error when retrieving credentials from sso: token expired); refresh them",
        ),
        (ProfileNotFound(profile="secops"), "AWS profile 'secops' not found; check AWS_PROFILE and ~/.aws/config"),
        (
            ConnectTimeoutError(endpoint_url="https://sts.amazonaws.com"),
            "cannot reach https://sts.amazonaws.com (Connect timeout on endpoint URL",
        ),
        (ReadTimeoutError(endpoint_url="https://iam.amazonaws.com"), "cannot reach https://iam.amazonaws.com (Read"),
        (
            client_error("ValidationError", "Stack with id connect-guard-prd does not exist"),
            "unknown stack connect-guard-prd in eu-west-1; check --stack and --region",
        ),
        (
            client_error("ValidationError", "Stack [connect-guard-prd] does not exist", "DescribeStackEvents"),
            "unknown stack connect-guard-prd in eu-west-1; check --stack and --region",
        ),
        (
            client_error("AccessDenied", "User: arn:aws:iam::1:user/x is not authorized to perform: iam:GetRole"),
            "AWS denied DescribeStacks (AccessDenied: User: arn:aws:iam::1:user/x is not authorized to perform: "
            "iam:GetRole); use credentials allowed to call it",
        ),
        (client_error("ExpiredToken", "The security token included in the request is expired"), "have expired"),
        (client_error("InvalidClientTokenId", "The security token is invalid"), "AWS rejected the credentials"),
        (client_error("ThrottlingException", "Rate exceeded", "ListSecurityProfiles"), "AWS throttled Lis"),
        (
            client_error("ResourceNotFoundException", "Requested resource not found", "GetItem"),
            "GetItem failed (ResourceNotFoundException: Requested resource not found); check",
        ),
        (FileNotFoundError(2, "No such file or directory", "trail.json"), "trail.json: No such file or directory; "),
        (UsageError("no such file or directory: x", "check the input paths"), "no such file or directory: x; check"),
        (
            ParameterError("unknown parameter 'responsemode' (did you mean 'ResponseMode'?)"),
            "'ResponseMode'?); use the names",
        ),
        (MemberAccessError("cannot assume arn:aws:iam::1:role/r"), "cannot assume arn:aws:iam::1:role/r; see the"),
        (ValueError("odd\nvalue"), "unexpected ValueError: odd value; rerun with --debug to see the traceback"),
    ],
)
def test_each_error_is_one_line_that_says_what_to_do(error, line):
    text = describe(error, "eu-west-1")
    assert line in text and "\n" not in text and "; " in text, text
    assert exit_code(error) == 2


def test_a_parameter_report_from_a_real_client_is_folded_into_one_line():
    client = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with pytest.raises(ParamValidationError) as raised:
        client.describe_stacks(StackName=7)
    text = describe(raised.value)
    assert text.startswith("invalid request (Invalid type for parameter StackName") and "\n" not in text


def test_access_denied_from_a_stubbed_call_names_the_operation():
    client = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stub, pytest.raises(ClientError) as raised:
        stub.add_client_error("describe_stacks", "AccessDenied", "not authorized to perform DescribeStacks", 403)
        client.describe_stacks(StackName="connect-guard-prod")
    assert describe(raised.value, "us-east-1") == (
        "AWS denied DescribeStacks (AccessDenied: not authorized to perform DescribeStacks); use credentials "
        "allowed to call it"
    )


def test_a_long_message_is_bounded():
    assert len(describe(ValueError("x" * 5000))) < 500


def test_interrupted_exits_130():
    assert exit_code(KeyboardInterrupt()) == 130 and describe(KeyboardInterrupt()).startswith("interrupted; ")
