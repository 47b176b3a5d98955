"""IAM escalation decisions that need no AWS: who the credential is for, and what documents grant."""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard.events import CloudTrailRecord
from connect_guard.iam import PrincipalDocument
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.responders.iam_escalation import EVENTS, assess, caller_user, describe

ACCOUNT = "111122223333"


def record(name: str, identity: dict[str, Any], params: dict[str, Any] | None, **extra: Any) -> CloudTrailRecord:
    return CloudTrailRecord.model_validate(
        {
            "eventVersion": "1.10",
            "userIdentity": identity,
            "eventTime": "2026-11-28T08:00:00Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "requestParameters": params,
            "eventID": "6a1c55f4-3e0c-4b0c-9f7e-0d6a0f0a1b2c",
            "recipientAccountId": ACCOUNT,
            **extra,
        }
    )


def user(name: str, account: str = ACCOUNT, identity_account: str | None = None) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "arn": f"arn:aws:iam::{account}:user/ops/{name}",
        "accountId": identity_account or account,
        "userName": name,
    }


def session(role: str, name: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{name}",
        "accountId": ACCOUNT,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}},
    }


def change_of(name: str, identity: dict[str, Any], params: dict[str, Any] | None, **extra: Any) -> Any:
    r = record(name, identity, params, **extra)
    return describe(r, Actor.from_record(r))


def test_the_caller_is_a_user_of_the_account_by_arn_and_identity_both():
    assert caller_user(Actor.from_record(record("CreateAccessKey", user("bob"), None)), ACCOUNT) == "bob"
    # An ARN of another account, or an identity claiming another account: not a user of this one.
    assert caller_user(Actor.from_record(record("CreateAccessKey", user("bob", "999988887777"), None)), ACCOUNT) is None
    forged = user("bob", identity_account="999988887777")
    assert caller_user(Actor.from_record(record("CreateAccessKey", forged, None)), ACCOUNT) is None
    assert caller_user(Actor.from_record(record("CreateAccessKey", session("bob", "bob"), None)), ACCOUNT) is None


@pytest.mark.parametrize("event_name", ["CreateAccessKey", "CreateLoginProfile", "UpdateLoginProfile"])
def test_a_credential_for_the_caller_itself_is_self_service(event_name):
    assert change_of(event_name, user("bob"), {"userName": "bob"}).self_service
    assert change_of(event_name, user("bob"), {"userName": "BOB"}).self_service  # one user, any case
    assert not change_of(event_name, user("bob"), {"userName": "alice"}).self_service
    assert not change_of(event_name, session("Admin", "bob"), {"userName": "bob"}).self_service
    assert not change_of(event_name, user("bob", "999988887777"), {"userName": "bob"}).self_service


def test_a_key_without_a_user_name_is_the_callers_own_or_roots():
    own = change_of("CreateAccessKey", user("bob"), None)
    assert own.self_service and own.target.name == "bob"
    root = {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT}
    assert change_of("CreateAccessKey", root, None).root_key
    # The response names the user when the request did not.
    by_role = change_of(
        "CreateAccessKey", session("Admin", "k"), None, responseElements={"accessKey": {"userName": "svc"}}
    )
    assert by_role.target.name == "svc" and not by_role.self_service
    # A role session naming nobody: IAM refuses it; nothing to judge.
    assert change_of("CreateAccessKey", session("Admin", "k"), None) is None


def test_a_denied_call_without_parameters_has_no_target():
    for name in EVENTS:
        assert change_of(name, user("bob"), None, errorCode="AccessDenied") is None, name


def test_what_each_event_is_about():
    group = change_of("AddUserToGroup", session("Admin", "k"), {"groupName": "admins", "userName": "bob"})
    assert (group.target.kind, group.target.name, group.member) == ("group", "admins", "bob")
    boundary = change_of(
        "PutRolePermissionsBoundary", session("Admin", "k"), {"roleName": "r", "permissionsBoundary": "arn:x"}
    )
    assert (boundary.change, boundary.target.kind, boundary.boundary_arn) == ("boundary_set", "role", "arn:x")
    trust = change_of("UpdateAssumeRolePolicy", session("Admin", "k"), {"roleName": "r", "policyDocument": "{}"})
    assert (trust.change, trust.trust_document) == ("trust", "{}")


def test_documents_are_judged_by_the_most_severe_and_say_where_it_comes_from():
    read = {"Statement": [{"Effect": "Allow", "Action": "s3:Get*"}]}
    documents = [
        PrincipalDocument("group readers: ReadOnly", document=read),
        PrincipalDocument("group admins: AdministratorAccess", known=(Severity.CRITICAL, "full administrator access")),
        PrincipalDocument("user bob: inline Broken", document={"Statement": "nope"}),
    ]
    analysis = assess(documents, "user bob")
    assert analysis.severity == Severity.CRITICAL
    assert analysis.reasons == ["group admins: AdministratorAccess: full administrator access"]
    assert assess(documents[2:], "user bob").severity == Severity.HIGH  # unreadable: high until reviewed
    assert assess([], "group empty").severity == Severity.LOW


def test_many_reason_lines_are_counted_not_listed():
    escalate = {"Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}
    documents = [PrincipalDocument(f"group g{i}: inline p", document=escalate) for i in range(10)]
    reasons = assess(documents, "user bob").reasons
    assert len(reasons) == 9 and reasons[-1].startswith("… and ")
