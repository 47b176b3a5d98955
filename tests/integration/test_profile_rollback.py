"""Profile rollback end to end: CloudTrail event → re-read → decide → restore → audit → alert,
against the embedded AWS and the in-memory Connect fake."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard.baseline import BaselineStore, InstanceBaseline, ProfileBaseline, UserBaseline
from connect_guard.events import CloudTrailEvent
from connect_guard.profile_access import ProfileAccess
from connect_guard.responders import profile_rollback
from connect_guard.runtime import Pipeline, build_pipeline
from tests.conftest import sqs_batch

ACCOUNT, REGION, INSTANCE = "111122223333", "us-east-1", "0d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"
IAM_USER = {
    "type": "IAMUser",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/mallory",
    "accountId": ACCOUNT,
    "userName": "mallory",
}


def assumed(role: str, session: str, path: str = "/") -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role{path}{role}"}},
    }


def connect_event(
    name: str, params: dict[str, Any] | None, identity: dict[str, Any] = IAM_USER, **detail: Any
) -> dict[str, Any]:
    event_id = str(uuid.uuid4())
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.connect",
        "account": ACCOUNT,
        "time": "2026-11-20T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": "2026-11-20T10:00:00Z",
            "eventSource": "connect.amazonaws.com",
            "eventName": name,
            "awsRegion": REGION,
            "sourceIPAddress": "198.51.100.7",
            "userAgent": "aws-cli/2.17",
            "requestParameters": params,
            "responseElements": None,
            "eventID": event_id,
            "recipientAccountId": ACCOUNT,
            **detail,
        },
    }


class Instance:
    """A small instance: Agent and Admin profiles, a manager profile, one agent user."""

    def __init__(self, aws) -> None:
        fake = aws.connect
        self.client = aws.session.client("connect", region_name=REGION)
        self.fake = fake
        self.arn = fake.add_instance(ACCOUNT, REGION, INSTANCE, "test-centre")
        self.agent = fake.add_security_profile(INSTANCE, "Agent", ["BasicAgentAccess", "OutboundCallAccess"])
        self.admin = fake.add_security_profile(
            INSTANCE, "Admin", ["Users.Edit", "Users.EditPermission", "SecurityProfiles.Edit"]
        )
        self.manager = fake.add_security_profile(INSTANCE, "CallCenterManager", ["AccessMetrics", "Users.View"])
        self.website_admin = fake.add_user(INSTANCE, "it.admin", [self.admin], first_name="Ida", last_name="Admin")
        self.user = fake.add_user(INSTANCE, "m.garcia", [self.agent])
        baseline = InstanceBaseline(self.arn)
        for pid in (self.agent, self.admin, self.manager):
            p = fake.profile(INSTANCE, pid)
            access = ProfileAccess.from_api(p, p["Applications"])  # restrictions and applications, approved too
            baseline.profiles[pid] = ProfileBaseline(pid, p["SecurityProfileName"], frozenset(p["Permissions"]), access)
        for uid in (self.website_admin, self.user):
            u = fake.user(INSTANCE, uid)
            baseline.users[uid] = UserBaseline(uid, u["Username"], frozenset(u["SecurityProfileIds"]))
        BaselineStore(aws.clients.dynamodb, aws.baseline_table).approve_instance(baseline, "test")

    def escalate_user(self) -> dict[str, Any]:
        """The change has happened (CloudTrail records it afterwards): Agent → Agent + Admin."""
        self.client.update_user_security_profiles(
            InstanceId=INSTANCE, UserId=self.user, SecurityProfileIds=[self.agent, self.admin]
        )
        return {
            "InstanceId": f"arn%3Aaws%3Aconnect%3A{REGION}%3A{ACCOUNT}%3Ainstance%2F{INSTANCE}",
            "UserId": self.user,
            "SecurityProfileIds": [self.agent, self.admin],
        }

    def user_profiles(self) -> set[str]:
        return set(self.fake.user(INSTANCE, self.user)["SecurityProfileIds"])

    def updates(self) -> list[str]:
        return [op for op, _ in self.fake.calls if op.startswith("Update")]


@pytest.fixture
def instance(aws):
    return Instance(aws)


INSTANCE_ARN = f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{INSTANCE}"


def settings(aws, **overrides: Any) -> Any:
    """The replay's settings with the test instance configured (ConnectInstanceArns)."""
    overrides.setdefault("connect_instance_arns", (*aws.settings().connect_instance_arns, INSTANCE_ARN))
    return aws.settings(**overrides)


def pipeline(aws, mode: str = "enforce", **overrides: Any) -> Pipeline:
    return build_pipeline(profile_rollback.build, settings(aws, response_mode=mode, **overrides), aws.clients)


def audit_items(aws) -> list[dict[str, Any]]:
    return aws.audit_records()


def test_enforce_restores_the_users_approved_profiles_with_an_audit_record(aws, instance):
    params = instance.escalate_user()
    result = pipeline(aws).process(connect_event("UpdateUserSecurityProfiles", params))

    assert result["outcome"] == "rolled_back" and result["severity"] == "CRITICAL"
    assert instance.user_profiles() == {instance.agent}
    (alert,) = aws.inbox()
    assert alert["Subject"].startswith("[CRITICAL] Rolled back: Connect user m.garcia gained Admin")
    (audit,) = audit_items(aws)
    assert audit["action"]["S"] == "UpdateUserSecurityProfiles" and audit["status"]["S"] == "taken"
    assert instance.admin in audit["before"]["S"] and instance.admin not in audit["after"]["S"]


def test_detect_mode_reports_the_exact_call_and_changes_nothing(aws, instance):
    params = instance.escalate_user()
    outcome = profile_rollback.build(settings(aws, response_mode="detect"), aws.clients).handle(
        CloudTrailEvent.model_validate(connect_event("UpdateUserSecurityProfiles", params))
    )
    assert outcome.outcome == "alerted"
    assert instance.user_profiles() == {instance.agent, instance.admin}
    (action,) = outcome.finding["actions"]
    assert action["status"] == "proposed"
    assert action["parameters"] == {
        "InstanceId": INSTANCE,
        "UserId": instance.user,
        "SecurityProfileIds": [instance.agent],
    }
    assert outcome.finding["change"] == {
        "before": ["Admin", "Agent"],
        "after": ["Agent"],
        "gained": ["Admin"],
        "baseline": "approved",
    }
    assert audit_items(aws) == []


def test_a_second_delivery_and_an_already_restored_state_do_nothing(aws, instance):
    event = connect_event("UpdateUserSecurityProfiles", instance.escalate_user())
    rollback = pipeline(aws)
    assert rollback.process(event)["outcome"] == "rolled_back"
    assert rollback.process(event)["outcome"] == "duplicate"
    # Same change delivered again as a different CloudTrail event: the state already matches.
    again = connect_event("UpdateUserSecurityProfiles", event["detail"]["requestParameters"])
    assert rollback.process(again)["outcome"] == "ignored"
    assert instance.updates().count("UpdateUserSecurityProfiles") == 2  # the escalation + one rollback


def test_the_suites_own_changes_and_replication_are_never_acted_on(aws, instance):
    params = instance.escalate_user()
    own = connect_event(
        "UpdateUserSecurityProfiles",
        params,
        assumed("connect-guard-dev-member-rollback", "connect-guard", "/connect-guard/"),
    )
    replicated = connect_event(  # as Global Resiliency records it: the service itself
        "UpdateUserSecurityProfiles",
        params,
        {"type": "AWSService", "invokedBy": "synchronization.connect.amazonaws.com"},
    )
    rollback = pipeline(aws)
    assert rollback.process(own)["outcome"] == "ignored"
    assert rollback.process(replicated)["outcome"] == "ignored"
    assert instance.user_profiles() == {instance.agent, instance.admin}
    assert aws.inbox() == []


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("connect-guard-dev-member-rollback", "/"),  # the write role's name, without its path
        ("connect-guard-dev-member-read", "/connect-guard/"),  # the read role never writes
        ("anything", "/connect-guard/"),  # the suite's path, chosen by whoever created the role
    ],
)
def test_a_look_alike_of_the_suite_is_rolled_back_like_anyone(aws, instance, role, path):
    params = instance.escalate_user()
    result = pipeline(aws).process(
        connect_event("UpdateUserSecurityProfiles", params, assumed(role, "connect-guard", path))
    )
    assert result["outcome"] == "rolled_back" and result["severity"] == "CRITICAL"
    assert instance.user_profiles() == {instance.agent}


PIPELINE = f"arn:aws:iam::{ACCOUNT}:role/ConnectChangePipeline"


def test_an_allowlisted_escalation_alerts_info_and_is_not_approved(aws, instance):
    params = instance.escalate_user()
    store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
    pipe = pipeline(aws, allowlisted_principals=(PIPELINE,))
    result = pipe.process(
        connect_event("UpdateUserSecurityProfiles", params, assumed("ConnectChangePipeline", "deploy-1"))
    )
    assert result["outcome"] == "alerted" and result["severity"] == "INFO"
    assert instance.user_profiles() == {instance.agent, instance.admin}  # not acted on
    approved = store.user(instance.arn, instance.user)
    assert approved is not None and approved.security_profile_ids == {instance.agent}  # baseline unchanged
    (alert,) = aws.inbox()
    assert "would otherwise be CRITICAL: gained Admin" in alert["Message"]
    # The escalation is still one: the same change by anyone else is rolled back.
    again = pipeline(aws).process(connect_event("UpdateUserSecurityProfiles", params))
    assert again["outcome"] == "rolled_back" and instance.user_profiles() == {instance.agent}


@pytest.mark.parametrize(
    "identity",
    [
        assumed("Attacker", "ConnectChangePipeline"),  # the pipeline's name as a session name
        assumed("ConnectChangePipeline", "x", "/other/"),  # the same name under another path
        {**assumed("ConnectChangePipeline", "x"), "accountId": "444455556666"},
    ],
    ids=["session-name", "other-path", "other-claimed-account"],
)
def test_look_alikes_of_an_allowlisted_role_are_rolled_back(aws, instance, identity):
    if identity["accountId"] != ACCOUNT:  # a role of the same name in another account
        identity["sessionContext"]["sessionIssuer"]["arn"] = "arn:aws:iam::444455556666:role/ConnectChangePipeline"
    params = instance.escalate_user()
    result = pipeline(aws, allowlisted_principals=(PIPELINE,)).process(
        connect_event("UpdateUserSecurityProfiles", params, identity)
    )
    assert result["outcome"] == "rolled_back" and result["severity"] == "CRITICAL"


def test_a_baseline_approvers_change_is_approved_audited_and_alerted(aws, instance):
    params = instance.escalate_user()
    store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
    pipe = pipeline(aws, baseline_approvers=(PIPELINE,))
    result = pipe.process(
        connect_event("UpdateUserSecurityProfiles", params, assumed("ConnectChangePipeline", "deploy-2"))
    )
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"  # a privileged gain approved
    (alert,) = aws.inbox()
    assert alert["Subject"].startswith("[HIGH] Baseline approved by deploy-2 via role ConnectChangePipeline")
    approved = store.user(instance.arn, instance.user)
    assert approved is not None and approved.security_profile_ids == {instance.agent, instance.admin}
    assert store.problem(instance.arn) is None  # counts unchanged, still complete
    (audit,) = audit_items(aws)
    assert audit["action"]["S"] == "ApproveBaseline" and "deploy-2" in audit["reason"]["S"]
    assert pipeline(aws).process(connect_event("UpdateUserSecurityProfiles", params))["outcome"] == "ignored"


def test_an_approved_new_user_keeps_the_baseline_complete(aws, instance):
    created = instance.fake.add_user(INSTANCE, "new.agent", [instance.agent])
    store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
    event = connect_event(
        "CreateUser", {"InstanceId": INSTANCE, "Username": "new.agent"}, assumed("ConnectChangePipeline", "d")
    )
    event["detail"]["responseElements"] = {"UserId": created}
    result = pipeline(aws, baseline_approvers=(PIPELINE,)).process(event)
    assert result["severity"] == "INFO"  # nothing privileged approved
    assert store.user(instance.arn, created) is not None and store.problem(instance.arn) is None


def test_an_instance_not_configured_is_alerted_and_never_read(aws, instance):
    params = instance.escalate_user()
    calls_before = len(instance.fake.calls)
    result = pipeline(aws, connect_instance_arns=()).process(connect_event("UpdateUserSecurityProfiles", params))
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"
    assert "not in ConnectInstanceArns" in aws.inbox()[0]["Message"]
    assert len(instance.fake.calls) == calls_before and instance.user_profiles() == {instance.agent, instance.admin}


@pytest.mark.parametrize("lost", ["meta", "user", "everything"])
def test_a_missing_or_partial_baseline_is_critical_and_nothing_is_done(aws, instance, lost):
    params = instance.escalate_user()
    db, pk = aws.clients.dynamodb, {"S": f"instance#{instance.arn}"}
    keys = {"meta": ["meta"], "user": [f"user#{instance.user}"]}.get(lost)
    items = db.query(
        TableName=aws.baseline_table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": pk}
    )["Items"]
    for item in items:
        if keys is None or item["sk"]["S"] in keys:
            db.delete_item(TableName=aws.baseline_table, Key={"pk": item["pk"], "sk": item["sk"]})
    result = pipeline(aws).process(connect_event("UpdateUserSecurityProfiles", params))
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "baseline" in aws.inbox()[0]["Message"]
    assert instance.user_profiles() == {instance.agent, instance.admin}
    assert instance.updates() == ["UpdateUserSecurityProfiles"]  # the escalation only


def test_a_rollback_removes_the_escalation_and_keeps_unrelated_changes(aws, instance):
    # Since the approval m.garcia also moved from Agent to CallCenterManager (not privileged).
    instance.client.update_user_security_profiles(
        InstanceId=INSTANCE, UserId=instance.user, SecurityProfileIds=[instance.manager, instance.admin]
    )
    params = {"InstanceId": INSTANCE, "UserId": instance.user, "SecurityProfileIds": "***"}
    result = pipeline(aws).process(connect_event("UpdateUserSecurityProfiles", params))
    assert result["outcome"] == "rolled_back"
    assert instance.user_profiles() == {instance.manager}


def test_profile_update_strips_the_gained_privileged_permissions(aws, instance):
    client = instance.client
    client.update_security_profile(
        InstanceId=INSTANCE,
        SecurityProfileId=instance.manager,
        Permissions=["AccessMetrics", "Users.View", "DownloadCallRecordings", "Reports.View"],
    )
    event = connect_event(
        "UpdateSecurityProfile", {"InstanceId": INSTANCE, "SecurityProfileId": instance.manager, "Permissions": "***"}
    )
    result = pipeline(aws).process(event)
    assert result["outcome"] == "rolled_back" and result["severity"] == "HIGH"
    # The privileged gain goes; the non-privileged addition made with it stays.
    assert instance.fake.profile(INSTANCE, instance.manager)["Permissions"] == [
        "AccessMetrics",
        "Reports.View",
        "Users.View",
    ]


def test_admin_website_changes_name_the_connect_user(aws, instance):
    params = instance.escalate_user()
    slr = assumed(
        "AWSServiceRoleForAmazonConnect_a1b2c3", instance.website_admin, "/aws-service-role/connect.amazonaws.com/"
    )
    outcome = profile_rollback.build(settings(aws, response_mode="detect"), aws.clients).handle(
        CloudTrailEvent.model_validate(connect_event("UpdateUserSecurityProfiles", params, slr))
    )
    assert outcome.finding["connect"]["actor_username"] == "it.admin"
    assert "it.admin (admin website)" in outcome.finding["summary"]


def test_denied_attempt_alerts_without_reading_or_acting(aws, instance):
    calls_before = len(instance.fake.calls)
    event = connect_event("UpdateUserSecurityProfiles", None, errorCode="AccessDenied", errorMessage="not authorized")
    result = pipeline(aws).process(event)
    assert result["outcome"] == "alerted" and result["severity"] == "MEDIUM"
    assert len(instance.fake.calls) == calls_before


def test_unreachable_account_fails_closed(aws, instance):
    # Enrolled, but its read role refuses us (deleted, or its trust policy rewritten).
    from botocore.stub import Stubber

    params = instance.escalate_user()
    rollback = pipeline(aws)
    with Stubber(aws.clients.sts) as sts:
        sts.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
        result = rollback.process(connect_event("UpdateUserSecurityProfiles", params))
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"  # blind there: CRITICAL
    assert instance.user_profiles() == {instance.agent, instance.admin}
    assert "cannot reach the instance" in aws.inbox()[0]["Message"]


def test_an_event_from_an_account_that_is_not_enrolled_is_rejected_without_reading_it(aws, instance):
    params = instance.escalate_user()
    calls_before = len(instance.fake.calls)
    result = pipeline(aws, member_account_ids=()).process(connect_event("UpdateUserSecurityProfiles", params))
    assert result["outcome"] == "rejected"
    assert len(instance.fake.calls) == calls_before and instance.user_profiles() == {instance.agent, instance.admin}


def test_throttled_rollback_is_retried_and_the_last_attempt_says_it_did_not_happen(aws, instance):
    params = instance.escalate_user()
    event = CloudTrailEvent.model_validate(connect_event("UpdateUserSecurityProfiles", params))
    responder = profile_rollback.build(settings(aws, response_mode="enforce"), aws.clients)
    instance.fake.fail_next("UpdateUserSecurityProfiles", "InternalServiceException", times=10)
    with pytest.raises(ClientError):
        responder.handle(event)
    responder.give_up(event, RuntimeError("InternalServiceException after 5 attempts"))
    (alert,) = aws.inbox()
    assert alert["Subject"].startswith("[CRITICAL] Rollback FAILED for UpdateUserSecurityProfiles")
    assert instance.user_profiles() == {instance.agent, instance.admin}


def test_missing_tables_fail_closed_at_build(aws):
    from connect_guard.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="BASELINE_TABLE_NAME"):
        profile_rollback.build(aws.settings(baseline_table_name=None), aws.clients)


def test_lambda_handler_alerts_on_the_last_receive_only(aws, instance, monkeypatch, lambda_context):
    import json

    from connect_guard.runtime import MAX_RECEIVE_COUNT, lambda_handler_for
    from tests.integration.runtime_support import set_function_environment

    set_function_environment(
        aws,
        monkeypatch,
        SOURCE_QUEUE_ARN="arn:aws:sqs:us-east-1:123456789012:q",
        MAX_EVENT_AGE_HOURS=str(24 * 365),  # the sample's eventTime is fixed in the past
        RESPONSE_MODE="enforce",
        CONNECT_INSTANCE_ARNS=INSTANCE_ARN,
    )
    from connect_guard import runtime
    from connect_guard.clients import AwsClients

    # The handler builds its clients from a new session: give it the one the Connect fake is on.
    monkeypatch.setattr(runtime, "AwsClients", lambda region, account_id: AwsClients(region, aws.session, account_id))
    handler = lambda_handler_for(profile_rollback.build)
    body = json.dumps(connect_event("UpdateUserSecurityProfiles", instance.escalate_user()))
    instance.fake.fail_next("UpdateUserSecurityProfiles", "ThrottlingException", times=2)

    def batch(receives: int) -> dict[str, Any]:
        return sqs_batch(body, receives, "arn:aws:sqs:us-east-1:123456789012:q")

    assert handler(batch(1), lambda_context) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert aws.inbox() == []  # an early failure is only retried
    assert handler(batch(MAX_RECEIVE_COUNT), lambda_context) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    (alert,) = aws.inbox()
    assert "Rollback FAILED" in alert["Subject"]
    assert handler(batch(MAX_RECEIVE_COUNT + 1), lambda_context) == {"batchItemFailures": []}  # a later redrive works
    assert instance.user_profiles() == {instance.agent}


def test_a_user_created_by_the_suites_own_role_is_judged_like_anyone(aws, instance):
    # The suite only restores profiles: a CreateUser from its role is not its own doing.
    params = instance.escalate_user()
    writer = assumed("connect-guard-dev-member-rollback", "connect-guard", "/connect-guard/")
    result = pipeline(aws, mode="detect").process(connect_event("CreateUser", {**params, "Username": "x"}, writer))
    assert result["outcome"] == "alerted"
