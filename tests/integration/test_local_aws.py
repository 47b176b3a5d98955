"""The embedded AWS is as strict as IAM where the suite's behaviour depends on it."""

from __future__ import annotations

import json
import os

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
