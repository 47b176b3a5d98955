"""AWS calls per event, per control and scenario, against the budget (README "AWS calls per
event" says why each call is there). Counted around a responder's `handle`: the dedup write is
the runtime's, outside it; role assumptions are per container (call_counts). Counts are
behaviour, not timing: a call added to one of these paths is a regression."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from connect_guard.events import CloudTrailEvent
from connect_guard.quarantine import RoleSnapshots, take_snapshot
from connect_guard.responders import policy_alerts, profile_rollback
from tests.conftest import load_event, with_new_event_id
from tests.integration import test_profile_rollback as rollback
from tests.integration import test_role_quarantine as quarantine
from tests.integration.call_counts import CallCounter

ACCOUNT = quarantine.ACCOUNT
QUARANTINE_POLICY = quarantine.POLICY_ARN
ALERT_BUDGET, QUARANTINE_BUDGET = 3, 3  # DESIGN's budget, beyond the dedup write (rollback: 4)


@pytest.fixture
def counter(aws):
    with CallCounter(aws) as counting:
        yield counting


@pytest.fixture
def iam(aws):
    """mallory and eve (IAM users with a key), ConnectOps (unprotected), ConnectAgentFederation (tag-protected)."""
    client = aws.account_session(ACCOUNT).client("iam")
    for name in ("mallory", "eve"):
        client.create_user(UserName=name)
        client.create_access_key(UserName=name)
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "*"}]}
    client.create_role(RoleName="ConnectOps", AssumeRolePolicyDocument=json.dumps(trust))
    client.create_role(
        RoleName="ConnectAgentFederation",
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[{"Key": "connect-guard:protected", "Value": "true"}],
    )
    return client


def counted(counter: CallCounter, run: Callable[[], object]) -> Counter[str]:
    with counter.counting():
        run()
    return counter.by_operation


def audit_items_of(aws, outcome) -> list[dict]:
    finding_id = outcome.finding["finding_id"]
    return [r for r in aws.audit_records() if r["finding_id"]["S"] == finding_id]


# ---- quarantine -------------------------------------------------------------------------------
# Beyond the acting writes (attach, tags, key deactivations), a quarantine costs: the re-read of
# what is attached, the quarantine policy's check, the journal before and the audit after the
# writes, and the publish; a target protected by tag adds its tags (and, once gone, its snapshot).


def denied_slr_deletion(name: str) -> CloudTrailEvent:
    return quarantine.iam_event("DeleteServiceLinkedRole", quarantine.user(name), None, **quarantine.DENIED)


def test_a_user_quarantine_writes_one_audit_item_and_reads_the_policy_document_once_per_container(aws, iam, counter):
    responder = quarantine.responder(aws)
    first = {}
    calls = counted(counter, lambda: first.setdefault("outcome", responder.handle(denied_slr_deletion("mallory"))))
    assert first["outcome"].outcome == "quarantined"
    assert calls == Counter(
        {
            "iam:ListAttachedUserPolicies": 1,  # the state, re-read before acting
            "iam:GetPolicy": 1,  # the quarantine policy's default version (a tampering moves it)
            "iam:GetPolicyVersion": 1,  # its document, checked once per version per container
            "dynamodb:PutItem": 1,  # the journal, before IAM is written
            "iam:AttachUserPolicy": 1,
            "iam:TagUser": 1,
            "dynamodb:TransactWriteItems": 1,  # the audit item and the journal marked audited
            "sns:Publish": 1,
        }
    )
    (item,) = audit_items_of(aws, first["outcome"])  # one item for the event, its actions listed
    assert (item["action"]["S"], item["status"]["S"]) == ("AttachUserPolicy", "taken")
    steps = json.loads(item["steps"]["S"])
    assert [(s["operation"], s["status"]) for s in steps] == [("AttachUserPolicy", "taken"), ("TagUser", "taken")]

    second = counted(counter, lambda: responder.handle(denied_slr_deletion("eve")))
    # The verified document is not read again. 7 calls: over the budget of 3 by the re-read, the
    # policy check and the journal's two writes (README, AWS calls per event).
    assert second == calls - Counter({"iam:GetPolicyVersion": 1})


def test_an_already_quarantined_principal_is_within_budget(aws, iam, counter):
    responder = quarantine.responder(aws)
    responder.handle(denied_slr_deletion("mallory"))
    again = {}
    calls = counted(counter, lambda: again.setdefault("outcome", responder.handle(denied_slr_deletion("mallory"))))
    assert again["outcome"].finding["actions"] == []
    # The re-read, the journal (did this event's earlier attempt make it?), the publish.
    assert calls == Counter({"iam:ListAttachedUserPolicies": 1, "dynamodb:GetItem": 1, "sns:Publish": 1})
    assert sum(calls.values()) <= QUARANTINE_BUDGET


def test_a_deleted_roles_snapshot_is_read_once_per_event(aws, iam, counter):
    RoleSnapshots(aws.clients.dynamodb, aws.baseline_table).put(
        take_snapshot(iam, ACCOUNT, "ConnectAgentFederation", quarantine_policy_arn=QUARANTINE_POLICY)
    )
    iam.delete_role(RoleName="ConnectAgentFederation")
    responder = quarantine.responder(aws)
    responder.verified.remember((ACCOUNT, *_policy_key(iam)))  # a warm container: the document checked already
    event = quarantine.iam_event(
        "DeleteRole", quarantine.assumed("ConnectOps", "s"), {"roleName": "ConnectAgentFederation"}
    )
    done = {}
    calls = counted(counter, lambda: done.setdefault("outcome", responder.handle(event)))
    assert done["outcome"].outcome == "quarantined"
    assert done["outcome"].finding["snapshot"]["role_name"] == "ConnectAgentFederation"
    assert calls == Counter(
        {
            "iam:ListRoleTags": 1,  # NoSuchEntity: the role is gone
            "dynamodb:GetItem": 1,  # its snapshot: its tags decide, and the finding attaches it
            "iam:ListAttachedRolePolicies": 1,
            "iam:GetPolicy": 1,
            "dynamodb:PutItem": 1,
            "iam:AttachRolePolicy": 1,
            "iam:TagRole": 1,
            "dynamodb:TransactWriteItems": 1,
            "sns:Publish": 1,
        }
    )
    (item,) = audit_items_of(aws, done["outcome"])
    assert [s["operation"] for s in json.loads(item["steps"]["S"])] == ["AttachRolePolicy", "TagRole"]


def test_a_denied_role_deletion_reads_no_snapshot(aws, iam, counter):
    responder = quarantine.responder(aws)
    responder.verified.remember((ACCOUNT, *_policy_key(iam)))
    event = quarantine.iam_event(
        "DeleteRole",
        quarantine.assumed("ConnectOps", "s"),
        None,
        errorCode="AccessDenied",
        errorMessage="User is not authorized to perform: iam:DeleteRole on resource: role ConnectAgentFederation",
    )
    done = {}
    calls = counted(counter, lambda: done.setdefault("outcome", responder.handle(event)))
    assert done["outcome"].outcome == "quarantined"
    assert "dynamodb:GetItem" not in calls  # the role exists: its tags are read from IAM, no snapshot needed
    assert calls["iam:ListRoleTags"] == 1 and sum(calls.values()) == 8


def _policy_key(iam) -> tuple[str, str]:
    policy = iam.get_policy(PolicyArn=QUARANTINE_POLICY)["Policy"]
    return policy["PolicyId"], policy["DefaultVersionId"]


# ---- rollback ---------------------------------------------------------------------------------
ROLLBACK_WRITES = {"dynamodb:PutItem": 1, "dynamodb:TransactWriteItems": 1, "sns:Publish": 1}


@pytest.fixture
def instance(aws):
    return rollback.Instance(aws)


def rollback_responder(aws):
    return profile_rollback.build(rollback.settings(aws, response_mode="enforce"), aws.clients)


def escalation(instance, identity=rollback.IAM_USER) -> CloudTrailEvent:
    params = instance.escalate_user()
    return CloudTrailEvent.model_validate(rollback.connect_event("UpdateUserSecurityProfiles", params, identity))


def website(user_id: str) -> dict:
    return rollback.assumed(
        "AWSServiceRoleForAmazonConnect_a1b2c3", user_id, "/aws-service-role/connect.amazonaws.com/"
    )


@pytest.mark.parametrize("by", ["iam_user", "admin_website"])
def test_a_user_rollback_reads_the_baseline_with_one_query_and_the_user_once(aws, instance, counter, by):
    responder = rollback_responder(aws)
    identity = rollback.IAM_USER if by == "iam_user" else website(instance.website_admin)
    done = {}
    calls = counted(counter, lambda: done.setdefault("outcome", responder.handle(escalation(instance, identity))))
    assert done["outcome"].outcome == "rolled_back" and instance.user_profiles() == {instance.agent}
    if by == "admin_website":  # named from the baseline: no DescribeUser for the actor
        assert done["outcome"].finding["connect"]["actor_username"] == "it.admin"
    assert calls == Counter(
        {
            "dynamodb:Query": 1,  # the whole baseline: meta (completeness), the user, the approved profiles
            "connect:DescribeUser": 1,  # the state, re-read before acting
            "connect:UpdateUserSecurityProfiles": 1,
            **ROLLBACK_WRITES,
        }
    )
    (item,) = audit_items_of(aws, done["outcome"])
    assert item["action"]["S"] == "UpdateUserSecurityProfiles"


def test_a_website_user_outside_the_baseline_escalating_themselves_is_described_once(aws, instance, counter):
    newcomer = instance.fake.add_user(rollback.INSTANCE, "new.admin", [instance.agent])  # not approved
    instance.client.update_user_security_profiles(
        InstanceId=rollback.INSTANCE, UserId=newcomer, SecurityProfileIds=[instance.agent, instance.admin]
    )
    params = {"InstanceId": rollback.INSTANCE, "UserId": newcomer, "SecurityProfileIds": "***"}
    event = CloudTrailEvent.model_validate(
        rollback.connect_event("UpdateUserSecurityProfiles", params, website(newcomer))
    )
    done = {}
    calls = counted(counter, lambda: done.setdefault("outcome", rollback_responder(aws).handle(event)))
    assert done["outcome"].outcome == "rolled_back"
    assert done["outcome"].finding["connect"]["actor_username"] == "new.admin"
    assert calls["connect:DescribeUser"] == 1  # the actor and the subject: one user, one read


def test_a_profile_rollback_reads_the_baseline_with_one_query(aws, instance, counter):
    instance.client.update_security_profile(
        InstanceId=rollback.INSTANCE,
        SecurityProfileId=instance.manager,
        Permissions=["AccessMetrics", "Users.View", "DownloadCallRecordings"],
    )
    params = {"InstanceId": rollback.INSTANCE, "SecurityProfileId": instance.manager, "Permissions": "***"}
    event = CloudTrailEvent.model_validate(rollback.connect_event("UpdateSecurityProfile", params))
    done = {}
    calls = counted(counter, lambda: done.setdefault("outcome", rollback_responder(aws).handle(event)))
    assert done["outcome"].outcome == "rolled_back"
    assert calls == Counter(
        {
            "dynamodb:Query": 1,
            "connect:ListSecurityProfilePermissions": 1,
            # The whole profile: its access-control restrictions and its applications, re-read too.
            "connect:DescribeSecurityProfile": 1,
            "connect:ListSecurityProfileApplications": 1,
            "connect:UpdateSecurityProfile": 1,
            **ROLLBACK_WRITES,
        }
    )
    # 8 calls: over the budget of 4 by the journal's two writes and the whole profile's two reads
    # (README, AWS calls per event).


def test_created_users_and_profiles_cost_the_reads_of_what_the_baseline_lacks(aws, instance, counter):
    responder = rollback_responder(aws)
    created = instance.fake.add_user(rollback.INSTANCE, "new.hire", [instance.admin])
    params = {"InstanceId": rollback.INSTANCE, "Username": "new.hire", "SecurityProfileIds": [instance.admin]}
    event = rollback.connect_event("CreateUser", params, responseElements={"UserId": created})
    done = {}
    calls = counted(counter, lambda: done.setdefault("o", responder.handle(CloudTrailEvent.model_validate(event))))
    assert done["o"].outcome == "rolled_back"  # to the fallback profile (Admin is privileged by name)
    assert calls == Counter(
        {
            "dynamodb:Query": 1,
            "connect:DescribeUser": 1,
            "connect:UpdateUserSecurityProfiles": 1,
            **ROLLBACK_WRITES,
        }
    )
    profile = instance.fake.add_security_profile(rollback.INSTANCE, "Shadow", ["Users.Edit"])
    params = {"InstanceId": rollback.INSTANCE, "SecurityProfileName": "Shadow", "Permissions": ["Users.Edit"]}
    event = rollback.connect_event("CreateSecurityProfile", params, responseElements={"SecurityProfileId": profile})
    calls = counted(counter, lambda: done.update(o=responder.handle(CloudTrailEvent.model_validate(event))))
    assert done["o"].outcome == "rolled_back"
    assert calls == Counter(
        {
            "dynamodb:Query": 1,
            "connect:ListSecurityProfilePermissions": 1,
            "connect:DescribeSecurityProfile": 1,  # its restrictions, and its name: not in the baseline
            "connect:ListSecurityProfileApplications": 1,
            "connect:UpdateSecurityProfile": 1,
            **ROLLBACK_WRITES,
        }
    )


def test_a_deleted_profile_is_alerted_from_the_baseline_alone(aws, instance, counter):
    instance.client.delete_security_profile(InstanceId=rollback.INSTANCE, SecurityProfileId=instance.manager)
    params = {"InstanceId": rollback.INSTANCE, "SecurityProfileId": instance.manager}
    event = CloudTrailEvent.model_validate(rollback.connect_event("DeleteSecurityProfile", params))
    done = {}
    calls = counted(counter, lambda: done.setdefault("outcome", rollback_responder(aws).handle(event)))
    assert done["outcome"].outcome == "alerted" and done["outcome"].finding["snapshot"]["Permissions"]
    assert calls == Counter({"dynamodb:Query": 1, "sns:Publish": 1})  # the snapshot is the baseline's


def test_a_partial_baseline_is_told_by_the_same_query(aws, instance, counter):
    db = aws.clients.dynamodb
    db.delete_item(
        TableName=aws.baseline_table,
        Key={"pk": {"S": f"instance#{instance.arn}"}, "sk": {"S": f"user#{instance.user}"}},
    )
    done = {}
    calls = counted(counter, lambda: done.setdefault("outcome", rollback_responder(aws).handle(escalation(instance))))
    assert done["outcome"].outcome == "alerted" and done["outcome"].severity == "CRITICAL"
    assert "baseline partial" in done["outcome"].finding["reasons"][0]
    assert calls == Counter({"dynamodb:Query": 1, "sns:Publish": 1})


# ---- policy alerts ----------------------------------------------------------------------------
CUSTOMER_MANAGED = "arn:aws:iam::111122223333:policy/ConnectAgentTools"


def attach_customer_managed() -> CloudTrailEvent:
    return CloudTrailEvent.model_validate(
        with_new_event_id(load_event("iam/attach-group-policy-customer-managed.json"))
    )


def test_a_customer_managed_document_is_read_once_per_version_per_container(aws, counter):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    first = counted(counter, lambda: responder.handle(attach_customer_managed()))
    assert first == Counter({"iam:GetPolicy": 1, "iam:GetPolicyVersion": 1, "sns:Publish": 1})
    assert sum(first.values()) <= ALERT_BUDGET
    again = {}
    second = counted(counter, lambda: again.setdefault("outcome", responder.handle(attach_customer_managed())))
    assert second == Counter({"iam:GetPolicy": 1, "sns:Publish": 1})  # the default version is still cached
    assert again["outcome"].finding["policy"]["version_id"] == "v2"
    assert "connect:UpdateUserSecurityProfiles" in again["outcome"].finding["reasons"][0]


def _admin_document(action: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})


def test_a_new_default_version_is_read_not_taken_from_the_cache(aws, counter):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    responder.handle(attach_customer_managed())
    member_iam = aws.account_session(ACCOUNT).client("iam")
    for old in member_iam.list_policy_versions(PolicyArn=CUSTOMER_MANAGED)["Versions"]:
        if not old["IsDefaultVersion"]:
            member_iam.delete_policy_version(PolicyArn=CUSTOMER_MANAGED, VersionId=old["VersionId"])
    new = member_iam.create_policy_version(
        PolicyArn=CUSTOMER_MANAGED, PolicyDocument=_admin_document("iam:*"), SetAsDefault=True
    )["PolicyVersion"]["VersionId"]
    outcome = {}
    calls = counted(counter, lambda: outcome.setdefault("o", responder.handle(attach_customer_managed())))
    assert calls == Counter({"iam:GetPolicy": 1, "iam:GetPolicyVersion": 1, "sns:Publish": 1})
    assert outcome["o"].finding["policy"]["version_id"] == new != "v2"
    assert outcome["o"].severity == "CRITICAL" and "iam:*" in " ".join(outcome["o"].finding["reasons"])


def test_a_policy_re_created_under_the_same_arn_is_read_again(aws, counter):
    member_iam = aws.account_session(ACCOUNT).client("iam")
    name = f"tools-{uuid.uuid4().hex[:6]}"
    arn = member_iam.create_policy(PolicyName=name, PolicyDocument=_admin_document("connect:ListUsers"))["Policy"][
        "Arn"
    ]
    raw = with_new_event_id(load_event("iam/attach-group-policy-customer-managed.json"))
    raw["detail"]["requestParameters"]["policyArn"] = arn
    responder = policy_alerts.build(aws.settings(), aws.clients)
    benign = responder.handle(CloudTrailEvent.model_validate(raw))
    member_iam.delete_policy(PolicyArn=arn)
    member_iam.create_policy(PolicyName=name, PolicyDocument=_admin_document("*"))  # v1 again, a new PolicyId
    calls = counted(counter, lambda: responder.handle(CloudTrailEvent.model_validate(with_new_event_id(raw))))
    assert calls["iam:GetPolicyVersion"] == 1  # same ARN, same version id: not the cached document
    latest = json.loads(aws.inbox()[-1]["Message"])
    assert latest["policy"]["version_id"] == benign.finding["policy"]["version_id"] == "v1"
    assert latest["severity"] == "CRITICAL" and benign.severity != "CRITICAL"


# ---- escalation without an attachment (responders/iam_escalation.py) ------------------------------
# Over the alert budget by design: what a principal can do is several documents (README "AWS calls
# per event"). Each list and each inline policy is one call; AWS managed policies known by name none.
def iam_escalation(relative: str, **params: object) -> CloudTrailEvent:
    raw = with_new_event_id(load_event(relative))
    raw["detail"]["requestParameters"] = {**(raw["detail"]["requestParameters"] or {}), **params}
    return CloudTrailEvent.model_validate(raw)


def test_a_group_joined_reads_the_groups_policies_once_each(aws, counter):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    calls = counted(counter, lambda: responder.handle(iam_escalation("iam/add-user-to-group-admins.json")))
    # AdministratorAccess is known by name: no document read.
    assert calls == Counter(
        {"iam:ListAttachedGroupPolicies": 1, "iam:ListGroupPolicies": 1, "iam:GetGroupPolicy": 1, "sns:Publish": 1}
    )


def test_a_key_for_another_user_reads_its_policies_and_its_groups(aws, counter):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    calls = counted(counter, lambda: responder.handle(iam_escalation("iam/create-access-key-other-user.json")))
    assert calls == Counter(
        {
            "iam:ListAttachedUserPolicies": 1,
            "iam:ListUserPolicies": 1,
            "iam:GetUserPolicy": 1,
            "iam:ListGroupsForUser": 1,
            "iam:ListAttachedGroupPolicies": 1,
            "iam:ListGroupPolicies": 1,
            "iam:GetPolicy": 1,  # AmazonConnectReadOnlyAccess: read, then cached per container
            "iam:GetPolicyVersion": 1,
            "sns:Publish": 1,
        }
    )
    again = counted(counter, lambda: responder.handle(iam_escalation("iam/create-access-key-other-user.json")))
    assert again["iam:GetPolicyVersion"] == 0 and again["iam:GetPolicy"] == 1


def test_a_user_whose_own_policy_is_critical_has_its_groups_left_unread(aws, counter):
    member_iam = aws.account_session(ACCOUNT).client("iam")
    member_iam.put_user_policy(UserName="svc.ivr-deploy", PolicyName="Admin", PolicyDocument=_admin_document("*"))
    responder = policy_alerts.build(aws.settings(), aws.clients)
    outcome = {}
    calls = counted(
        counter,
        lambda: outcome.setdefault("o", responder.handle(iam_escalation("iam/create-access-key-other-user.json"))),
    )
    assert outcome["o"].severity == "CRITICAL"
    assert calls["iam:ListGroupsForUser"] == 0 and calls["iam:ListAttachedGroupPolicies"] == 0


def test_self_service_and_denied_calls_read_nothing(aws, counter):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    for sample in ("iam/create-access-key-self-service.json", "iam/create-access-key-denied.json"):
        calls = counted(counter, lambda s=sample: responder.handle(iam_escalation(s)))
        assert calls == Counter({"sns:Publish": 1}), sample


def test_a_trust_change_reads_the_roles_snapshot_and_nothing_from_iam(aws, counter):
    responder = policy_alerts.build(aws.settings(), aws.clients)
    calls = counted(counter, lambda: responder.handle(iam_escalation("iam/update-assume-role-policy-star.json")))
    assert calls == Counter({"dynamodb:GetItem": 1, "sns:Publish": 1})
    assert sum(calls.values()) <= ALERT_BUDGET
