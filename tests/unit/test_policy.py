"""Policy analysis: what a SOC analyst would grade each grant."""

import json

import pytest

from connect_guard.errors import PoisonEventError
from connect_guard.policy import MAX_DOCUMENT_CHARS, Severity, analyse, known_aws_managed, parse_document


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


@pytest.mark.parametrize(
    ("document", "severity", "reason"),
    [
        (doc(allow("*")), Severity.CRITICAL, "full administrator access"),
        (doc(allow("iam:*")), Severity.CRITICAL, "iam:*"),
        (doc(allow("iam:Put*")), Severity.CRITICAL, "iam:PutRolePolicy"),
        (
            doc(allow("IAM:attachrolepolicy", "arn:aws:iam::1:role/x")),
            Severity.CRITICAL,
            "iam:AttachRolePolicy",
        ),
        (
            doc(allow("iam:CreatePolicyVersion", "arn:aws:iam::1:policy/p")),
            Severity.CRITICAL,
            "CreatePolicyVersion",
        ),
        (doc(allow("iam:PassRole")), Severity.CRITICAL, "iam:PassRole on every resource"),
        (doc(allow("sts:AssumeRole")), Severity.CRITICAL, "sts:AssumeRole on every resource"),
        (doc(allow("connect:*")), Severity.HIGH, "connect:UpdateUserSecurityProfiles"),
        (doc(allow(["connect:Update*", "connect:Describe*"])), Severity.HIGH, "Connect write access"),
        (
            doc(allow(["connect:Describe*", "connect:List*", "connect:Get*"])),
            Severity.MEDIUM,
            "no administrator",
        ),
        (doc(allow("s3:GetObject", "arn:aws:s3:::bucket/*")), Severity.MEDIUM, "no administrator"),
    ],
)
def test_severity_follows_what_the_policy_grants(document, severity, reason):
    analysis = analyse(parse_document(document))
    assert analysis.severity == severity
    assert any(reason in r for r in analysis.reasons), analysis.reasons


def test_passrole_on_a_single_role_is_not_critical():
    analysis = analyse(parse_document(doc(allow("iam:PassRole", "arn:aws:iam::1:role/ConnectFlows"))))
    assert analysis.severity == Severity.MEDIUM


def test_notaction_grants_everything_it_does_not_list():
    everything_but_iam = {
        "Effect": "Allow",
        "NotAction": ["iam:*", "sts:*", "organizations:*"],
        "Resource": "*",
    }
    analysis = analyse(parse_document(doc(everything_but_iam)))
    assert analysis.severity == Severity.HIGH  # connect:* is in, IAM escalation is out
    everything_but_s3 = {"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}
    assert analyse(parse_document(doc(everything_but_s3))).severity == Severity.CRITICAL


def test_deny_statements_grant_nothing():
    assert analyse(parse_document(doc({"Effect": "Deny", "Action": "*", "Resource": "*"}))).severity == Severity.MEDIUM


def test_url_encoded_single_statement_document():
    encoded = (
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C"
        "%22Action%22%3A%22iam%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%7D"
    )
    assert analyse(parse_document(encoded)).severity == Severity.CRITICAL


def test_grants_are_described_for_the_alert():
    analysis = analyse(
        parse_document(
            doc(allow(["connect:Describe*"], "*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}))
        )
    )
    assert analysis.grants == ["Allow connect:Describe* on * (with conditions)"]


def test_a_long_statement_is_described_in_part():
    # AWS managed ReadOnlyAccess lists ~1,800 actions: all of them would not fit an SNS message.
    actions = [f"svc{n}:Get*" for n in range(1800)]
    (described,) = analyse(parse_document(doc(allow(actions, "*")))).grants
    assert described.startswith("Allow svc0:Get*, svc1:Get*,") and described.endswith("svc24:Get* … (1775 more) on *")


def test_oversized_document_is_a_poison_event():
    with pytest.raises(PoisonEventError, match="too large"):
        parse_document(" " * (MAX_DOCUMENT_CHARS + 1))


@pytest.mark.parametrize("bad", ["{not json", "[]", '{"Statement": 3}', '{"Statement": [{"Action": 5}]}'])
def test_malformed_documents_raise_value_error(bad):
    with pytest.raises(ValueError):
        parse_document(bad)


def test_admin_grade_aws_managed_policies_are_known_by_name():
    assert known_aws_managed("arn:aws:iam::aws:policy/AdministratorAccess")[0] == Severity.CRITICAL
    assert known_aws_managed("arn:aws:iam::aws:policy/PowerUserAccess")[0] == Severity.HIGH
    assert known_aws_managed("arn:aws:iam::aws:policy/AmazonConnect_FullAccess")[0] == Severity.HIGH
    assert known_aws_managed("arn:aws:iam::111122223333:policy/AdministratorAccess") is None
    assert known_aws_managed("arn:aws:iam::aws:policy/ReadOnlyAccess") is None
