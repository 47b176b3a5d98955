"""Policy analysis: what a SOC analyst would grade each grant."""

import json

import pytest

from connect_guard.errors import PoisonEventError
from connect_guard.policy import (
    ESCALATION_ACTIONS,
    MAX_DENY_LINES,
    MAX_DOCUMENT_CHARS,
    Severity,
    analyse,
    caveats,
    known_aws_managed,
    parse_document,
    patterns_overlap,
)


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


MFA_AND_IP = {"Bool": {"aws:MultiFactorAuthPresent": "true"}, "IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}


def test_a_conditioned_admin_grant_stays_critical_and_says_its_condition_keys():
    analysis = analyse(parse_document(doc(allow("*", Condition=MFA_AND_IP))))
    assert analysis.severity == Severity.CRITICAL
    assert analysis.reasons[0] == "full administrator access (Action * on Resource *)"
    assert (
        "grant conditioned on aws:MultiFactorAuthPresent, aws:SourceIp: the severity assumes the condition holds"
        in analysis.reasons
    )


def test_a_conditioned_connect_write_grant_stays_high_and_says_so():
    analysis = analyse(
        parse_document(doc(allow("connect:Update*", Condition={"Bool": {"aws:SecureTransport": "true"}})))
    )
    assert analysis.severity == Severity.HIGH
    assert analysis.reasons[1] == "grant conditioned on aws:SecureTransport: the severity assumes the condition holds"


def test_a_deny_overlapping_part_of_the_grant_is_said():
    document = doc(
        allow(["iam:*", "s3:GetObject"]),
        {"Effect": "Deny", "Action": ["iam:Delete*", "ec2:*"], "Resource": "arn:aws:iam::1:role/connect-guard-*"},
    )
    analysis = analyse(parse_document(document))
    assert analysis.severity == Severity.CRITICAL
    # Only the denied actions that meet the grant: ec2:* does not.
    assert analysis.reasons[-1] == (
        "partly denied in the same document: iam:Delete* denied on arn:aws:iam::1:role/connect-guard-*"
    )


def test_a_conditioned_deny_says_its_keys_and_a_notaction_deny_its_exceptions():
    document = doc(
        allow("iam:AttachRolePolicy", "arn:aws:iam::1:role/*"),
        {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:ViaAWSService": "false"}}},
    )
    analysis = analyse(parse_document(document))
    assert analysis.severity == Severity.CRITICAL
    assert analysis.reasons[-1] == (
        "partly denied in the same document: every action except s3:* denied on * "
        "(the deny conditioned on aws:ViaAWSService)"
    )


@pytest.mark.parametrize(
    "deny",
    [
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},  # other actions
        {"Effect": "Deny", "Action": "iam:*", "Resource": "arn:aws:iam::1:user/*"},  # other resources
        {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"},  # spares all the grant names
    ],
)
def test_a_deny_that_does_not_meet_the_grant_is_not_said(deny):
    analysis = analyse(parse_document(doc(allow("iam:PutRolePolicy", "arn:aws:iam::1:role/ops-*"), deny)))
    assert analysis.reasons == ["IAM privilege escalation: iam:PutRolePolicy"]


def test_a_policy_variable_in_a_resource_may_match_anything():
    document = doc(
        allow("iam:CreateAccessKey", "arn:aws:iam::1:user/${aws:username}"),
        {"Effect": "Deny", "Action": "iam:CreateAccessKey", "Resource": "arn:aws:iam::1:user/breakglass"},
    )
    assert analyse(parse_document(document)).reasons[-1].startswith("partly denied in the same document")


def caveats_of(reasons: list[str]) -> list[str]:
    return [r for r in reasons if "conditioned on" in r or r.startswith(("partly denied", "more Deny"))]


def test_an_unconditioned_undenied_grant_says_nothing_extra():
    admin = analyse(parse_document(doc(allow("*"))))
    assert admin.reasons[0] == "full administrator access (Action * on Resource *)"
    assert admin.reasons and caveats_of(admin.reasons) == []
    assert analyse(parse_document(doc(allow("connect:UpdateUserSecurityProfiles")))).reasons == [
        "Amazon Connect write access: connect:UpdateUserSecurityProfiles"
    ]


def test_conditions_on_grants_that_do_not_drive_the_severity_are_not_said():
    document = doc(allow("iam:*", "arn:aws:iam::1:role/ops-*"), allow("s3:GetObject", Condition=MFA_AND_IP))
    assert analyse(parse_document(document)).reasons == [
        "iam:* (can grant itself anything)",
        "IAM privilege escalation: " + ", ".join(ESCALATION_ACTIONS),
    ]
    medium = analyse(parse_document(doc(allow("s3:GetObject", Condition=MFA_AND_IP))))
    assert medium.reasons == ["no administrator, IAM escalation or Connect write permissions"]


def test_a_condition_whose_keys_cannot_be_read_is_still_said():
    analysis = analyse(parse_document(doc(allow("iam:PassRole", Condition="aws:SourceIp"))))
    assert analysis.reasons[-1] == (
        "grant conditioned on keys that could not be read: the severity assumes the condition holds"
    )


@pytest.mark.parametrize(
    ("left", "right", "overlap"),
    [
        ("iam:Put*", "iam:*RolePolicy", True),
        ("iam:Get*", "iam:Put*", False),
        ("*", "connect:UpdateUser", True),
        ("iam:?etRole", "iam:GetRole", True),
        ("iam:?etRole", "iam:GetUser", False),
        ("arn:aws:iam::1:role/a*", "arn:aws:iam::1:role/*z", True),
        ("arn:aws:iam::1:role/a*", "arn:aws:iam::1:role/b*", False),
        ("IAM:PUTROLEPOLICY", "iam:putrolepolicy", True),
    ],
)
def test_patterns_overlap_with_iam_wildcards(left, right, overlap):
    assert patterns_overlap(left, right) is overlap
    assert patterns_overlap(right, left) is overlap


def test_when_only_some_driving_grants_are_conditioned_the_line_says_the_others_are_not():
    document = doc(allow("iam:PassRole", Condition=MFA_AND_IP), allow("sts:AssumeRole"))
    assert analyse(parse_document(document)).reasons[-1] == (
        "1 of 2 grants behind the severity conditioned on aws:MultiFactorAuthPresent, aws:SourceIp; the others are not"
    )


def test_a_document_of_many_denies_gets_a_few_lines_and_a_pointer_to_the_rest():
    denies = [
        {"Effect": "Deny", "Action": "iam:PutRolePolicy", "Resource": f"arn:aws:iam::1:role/r{i}"} for i in range(40)
    ]
    analysis = analyse(parse_document(doc(allow("iam:PutRolePolicy", "arn:aws:iam::1:role/*"), *denies)))
    denied = [r for r in analysis.reasons if r.startswith("partly denied")]
    assert denied[0] == "partly denied in the same document: iam:PutRolePolicy denied on arn:aws:iam::1:role/r0"
    assert len(denied) == MAX_DENY_LINES
    assert analysis.reasons[-1] == "35 more Deny statements not compared: read them in the document"


def test_comparing_denies_is_bounded_and_what_was_not_compared_is_said():
    def pair(stars: int) -> tuple[list, list]:
        grant = parse_document(doc(allow("iam:Put*", "arn:aws:iam::1:role/" + "*a" * stars)))
        deny = {"Effect": "Deny", "Action": "iam:*", "Resource": "arn:aws:iam::1:role/" + "a*" * stars + "b"}
        return grant, parse_document(doc(deny, deny, deny))

    grant, denies = pair(100)  # some 40,000 steps to compare
    assert caveats(grant, denies) == ["3 more Deny statements not compared: read them in the document"]
    grant, denies = pair(20)
    assert caveats(grant, denies[:1]) == []  # compared, and disjoint (no a...b role ends in a)
    assert caveats(grant, denies[:1], max_steps=50) == ["1 more Deny statement not compared: read it in the document"]
