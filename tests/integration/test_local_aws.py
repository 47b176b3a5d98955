"""The embedded AWS is as strict as IAM where the suite's behaviour depends on it."""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError

from connect_guard_tools.local_aws import AwsManagedPolicies, LocalAws

ACCOUNT = "111122223333"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
)
QUARANTINE = f"arn:aws:iam::{ACCOUNT}:policy/connect-guard/connect-guard-quarantine"
# Every IAM call that edits a role, with the parameters it needs.
ROLE_EDITS = {
    "attach_role_policy": {"PolicyArn": QUARANTINE},
    "detach_role_policy": {"PolicyArn": QUARANTINE},
    "put_role_policy": {"PolicyName": "p", "PolicyDocument": DOCUMENT},
    "delete_role_policy": {"PolicyName": "p"},
    "tag_role": {"Tags": [{"Key": "connect-guard:quarantined", "Value": "x"}]},
    "untag_role": {"TagKeys": ["connect-guard:quarantined"]},
    "update_assume_role_policy": {"PolicyDocument": TRUST},
    "put_role_permissions_boundary": {"PermissionsBoundary": QUARANTINE},
}


@pytest.mark.parametrize("path", ["/aws-reserved/sso.amazonaws.com/", "/aws-service-role/connect.amazonaws.com/"])
@pytest.mark.parametrize("operation", sorted(ROLE_EDITS))
def test_iam_refuses_every_edit_of_a_role_aws_owns(aws, path, operation):
    iam = aws.account_session(ACCOUNT).client("iam")
    iam.create_role(RoleName="Owned", Path=path, AssumeRolePolicyDocument=TRUST)
    with pytest.raises(ClientError) as raised:
        getattr(iam, operation)(RoleName="Owned", **ROLE_EDITS[operation])
    error = raised.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "UnmodifiableEntity",
        "Cannot perform the operation on the protected role 'Owned' - this role is only modifiable by AWS",
    )


def test_an_ordinary_role_is_still_editable(aws):
    iam = aws.account_session(ACCOUNT).client("iam")
    iam.create_role(RoleName="Mine", Path="/aws-reserved-look-alike/", AssumeRolePolicyDocument=TRUST)
    for operation in ROLE_EDITS:
        if operation != "detach_role_policy":
            getattr(iam, operation)(RoleName="Mine", **ROLE_EDITS[operation])
    iam.detach_role_policy(RoleName="Mine", PolicyArn=QUARANTINE)


def test_the_refusal_comes_before_the_quota(aws):
    iam = aws.account_session(ACCOUNT).client("iam")
    iam.create_role(RoleName="Owned", Path="/aws-service-role/x.amazonaws.com/", AssumeRolePolicyDocument=TRUST)
    with aws.unmodifiable_roles.aws_side():  # as AWS attaches a service-linked role's policies
        for n in range(10):
            arn = iam.create_policy(PolicyName=f"p{n}", PolicyDocument=DOCUMENT)["Policy"]["Arn"]
            iam.attach_role_policy(RoleName="Owned", PolicyArn=arn)
    with pytest.raises(ClientError, match="UnmodifiableEntity"):
        iam.attach_role_policy(RoleName="Owned", PolicyArn=QUARANTINE)


def test_aws_managed_policy_documents_are_there_in_every_account(aws):
    for iam in (aws.session.client("iam"), aws.account_session(ACCOUNT).client("iam")):
        policy = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")["Policy"]
        version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        assert "connect:Describe*" in json.dumps(version["PolicyVersion"]["Document"])
    # Attachable, as in IAM (restore_role re-attaches an AWS managed policy from a snapshot).
    iam.create_role(RoleName="Reader", AssumeRolePolicyDocument=TRUST)
    iam.attach_role_policy(RoleName="Reader", PolicyArn="arn:aws:iam::aws:policy/AmazonConnectReadOnlyAccess")


def test_only_the_pinned_policies_are_loaded_and_the_environment_is_restored():
    os.environ.pop(AwsManagedPolicies.ENV, None)
    with LocalAws() as aws:
        assert os.environ[AwsManagedPolicies.ENV] == "true"
        listed = aws.session.client("iam").list_policies(Scope="AWS", MaxItems=1000)["Policies"]
        assert 5 < len(listed) < 20  # moto's full copy holds ~1,300: each account would parse them all
    assert AwsManagedPolicies.ENV not in os.environ
