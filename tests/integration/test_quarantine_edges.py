"""Quarantine edge cases: the last failed attempt, deletions nobody snapshotted, releases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard.quarantine import QuarantineIam
from connect_guard.responders import role_quarantine
from tests.conftest import sqs_batch
from tests.integration import test_role_quarantine
from tests.integration.runtime_support import set_function_environment
from tests.integration.test_role_quarantine import (
    ACCOUNT,
    POLICY_ARN,
    assumed,
    attached,
    iam_event,
    responder,
    user,
)

iam = test_role_quarantine.iam  # the fixture: IAM with the sample users and roles
QUEUE = "arn:aws:sqs:us-east-1:123456789012:quarantine"


def batch(event: Any, receives: int) -> dict[str, Any]:
    body = json.dumps(event.model_dump(mode="json", by_alias=True)) if not isinstance(event, str) else event
    return sqs_batch(body, receives, QUEUE)


@pytest.fixture
def handler(aws, monkeypatch):
    """The deployed handler, on the embedded AWS, with IAM throttled on every quarantine."""
    set_function_environment(
        aws,
        monkeypatch,
        ENVIRONMENT=aws.settings().environment,
        SOURCE_QUEUE_ARN=QUEUE,
        MAX_EVENT_AGE_HOURS=str(24 * 365 * 10),
        RESPONSE_MODE="enforce",
    )
    from connect_guard import runtime
    from connect_guard.clients import AwsClients

    monkeypatch.setattr(runtime, "AwsClients", lambda region, account_id: AwsClients(region, aws.session, account_id))

    def throttled(self: QuarantineIam, verified: Any) -> Any:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetPolicy")

    monkeypatch.setattr(QuarantineIam, "check_policy", throttled)
    return runtime.lambda_handler_for(role_quarantine.build)


def _deletion() -> Any:
    return iam_event("DeleteRole", user("mallory"), {"roleName": "ConnectAgentFederation"})


def test_the_last_failed_attempt_says_the_principal_is_not_quarantined(aws, iam, handler, lambda_context):
    from connect_guard.runtime import MAX_RECEIVE_COUNT

    event = _deletion()
    failed = {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert handler(batch(event, 1), lambda_context) == failed
    assert aws.inbox() == []  # an early failure is only retried
    assert handler(batch(event, MAX_RECEIVE_COUNT), lambda_context) == failed
    (alert,) = aws.inbox()
    assert alert["Subject"].startswith("[CRITICAL] Quarantine FAILED for mallory (DeleteRole on role ConnectAgentFed")
    finding = json.loads(alert["Message"])
    assert "the principal is NOT quarantined" in finding["title"]
    assert finding["actor"]["arn"].endswith(":user/mallory") and finding["target"]["name"] == "ConnectAgentFederation"
    assert attached(iam, "mallory") == []


def test_in_detect_mode_the_failed_alert_says_the_event_was_not_evaluated(
    aws, iam, handler, lambda_context, monkeypatch
):
    from connect_guard.runtime import MAX_RECEIVE_COUNT

    monkeypatch.setenv("RESPONSE_MODE", "detect")  # read on the handler's first invocation
    handler(batch(_deletion(), MAX_RECEIVE_COUNT), lambda_context)
    (alert,) = aws.inbox()
    assert "Quarantine FAILED" in alert["Subject"]
    assert json.loads(alert["Message"])["title"].endswith("the event was NOT evaluated (detect mode)")


@pytest.mark.parametrize(
    "event",
    [
        "not json",
        json.dumps({"detail-type": "AWS API Call via CloudTrail"}),  # not a CloudTrail event
        # Actions never due: a release, tampering without QuarantineOnTampering, an unsupported call.
        iam_event("DetachRolePolicy", user("mallory"), {"roleName": "ConnectOps", "policyArn": POLICY_ARN}),
        iam_event("DeleteRolePolicy", user("mallory"), {"roleName": "ConnectAgentFederation", "policyName": "saml"}),
        iam_event("CreateRole", user("mallory"), {"roleName": "x"}),
    ],
)
def test_no_failed_alert_for_a_quarantine_that_was_never_due(aws, iam, handler, lambda_context, monkeypatch, event):
    from connect_guard.runtime import MAX_RECEIVE_COUNT

    # Make every path fail, the ones that would otherwise succeed included.
    monkeypatch.setattr(
        role_quarantine.RoleQuarantineResponder, "_alert", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    handler(batch(event, MAX_RECEIVE_COUNT), lambda_context)
    assert aws.inbox() == []


def test_a_deleted_role_without_a_snapshot_is_critical_but_not_acted_on(aws, iam):
    iam.delete_role(RoleName="tmp-build")  # gone, never snapshotted: it may have been tag-protected
    outcome = responder(aws).handle(iam_event("DeleteRole", user("mallory"), {"roleName": "tmp-build"}))
    assert outcome.outcome == "alerted" and outcome.severity == "CRITICAL"
    assert "cannot be determined: the role is gone and no snapshot of it exists" in outcome.finding["reasons"][0]
    assert outcome.finding["actions"] == [] and attached(iam, "mallory") == []


def test_a_deleted_role_protected_by_name_is_still_quarantined_without_a_snapshot(aws, iam):
    iam.delete_role(RoleName="tmp-build")
    outcome = responder(aws, protected_role_names=("tmp-*",)).handle(
        iam_event("DeleteRole", user("mallory"), {"roleName": "tmp-build"})
    )
    assert outcome.outcome == "quarantined" and attached(iam, "mallory") == [POLICY_ARN]


@pytest.mark.parametrize(
    ("actor", "severity"),
    [
        (assumed("connect-guard-dev-member-quarantine", "connect-guard", "/connect-guard/"), "INFO"),
        (assumed("SecOpsAdmin", "zoe@example.com"), "HIGH"),  # by hand, outside `connect-guard release`
        (user("mallory"), "HIGH"),
    ],
)
@pytest.mark.parametrize("quarantine_on_tampering", [False, True])
def test_detaching_the_quarantine_policy_is_a_release_never_tampering(
    aws, iam, actor, severity, quarantine_on_tampering
):
    iam.attach_role_policy(RoleName="ConnectAgentFederation", PolicyArn=POLICY_ARN)
    iam.detach_role_policy(RoleName="ConnectAgentFederation", PolicyArn=POLICY_ARN)
    event = iam_event("DetachRolePolicy", actor, {"roleName": "ConnectAgentFederation", "policyArn": POLICY_ARN})
    outcome = responder(aws, quarantine_on_tampering=quarantine_on_tampering).handle(event)
    assert outcome.outcome == "alerted" and outcome.severity == severity
    assert outcome.finding["kind"] == "iam.quarantine_release" and outcome.finding["actions"] == []
    assert attached(iam, "mallory") == []
    assert any("never treated as tampering" in r for r in outcome.finding["reasons"])


def test_detaching_another_policy_from_a_protected_role_is_still_tampering(aws, iam):
    other = f"arn:aws:iam::{ACCOUNT}:policy/SomethingElse"
    event = iam_event("DetachRolePolicy", user("mallory"), {"roleName": "ConnectAgentFederation", "policyArn": other})
    outcome = responder(aws, quarantine_on_tampering=True).handle(event)
    assert outcome.finding["kind"] == "iam.protected_role_tampering" and attached(iam, "mallory") == [POLICY_ARN]


# What QuarantineOnTampering does (README "Protected roles and quarantine", the template's parameter):
# deletions and DeleteInstance quarantine in enforce mode whatever the flag; tampering with a
# protected role quarantines only with it; any change to the suite's own roles always does; a
# release never does; detect mode never does.
PROTECTED = "ConnectAgentFederation"
SUITE_ROLE = "connect-guard-dev-member-read"


def _instance_deletion() -> Any:
    event = iam_event("DeleteInstance", user("mallory"), {"instanceId": "0d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"})
    detail = event.detail.model_copy(update={"event_source": "connect.amazonaws.com"})
    return event.model_copy(update={"source": "aws.connect", "detail": detail})


KINDS: dict[str, Any] = {
    "DeleteRole": lambda: iam_event("DeleteRole", user("mallory"), {"roleName": PROTECTED}),
    "DeleteServiceLinkedRole (denied)": lambda: iam_event(
        "DeleteServiceLinkedRole", user("mallory"), None, **test_role_quarantine.DENIED
    ),
    "DeleteInstance": _instance_deletion,
    **{
        f"{name} on a protected role": (
            lambda name=name: iam_event(name, user("mallory"), {"roleName": PROTECTED, "policyName": "saml"})
        )
        for name in role_quarantine.TAMPERING
    },
    **{
        f"{name} on the suite's role": (lambda name=name: iam_event(name, user("mallory"), {"roleName": SUITE_ROLE}))
        for name in ("UpdateAssumeRolePolicy", "PutRolePermissionsBoundary")
    },
    "release": lambda: iam_event("DetachRolePolicy", user("mallory"), {"roleName": PROTECTED, "policyArn": POLICY_ARN}),
}
# (quarantined with the flag off, quarantined with it on), in enforce mode.
DOCUMENTED = {
    "DeleteRole": (True, True),
    "DeleteServiceLinkedRole (denied)": (True, True),
    "DeleteInstance": (True, True),
    **{f"{name} on a protected role": (False, True) for name in role_quarantine.TAMPERING},
    "UpdateAssumeRolePolicy on the suite's role": (True, True),
    "PutRolePermissionsBoundary on the suite's role": (True, True),
    "release": (False, False),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.parametrize("mode", ["detect", "enforce"])
def test_quarantine_on_tampering_does_what_the_docs_say(aws, iam, kind, flag, mode):
    outcome = responder(aws, mode, quarantine_on_tampering=flag).handle(KINDS[kind]())
    expected = DOCUMENTED[kind][flag] and mode == "enforce"
    assert (outcome.outcome == "quarantined") is expected, outcome.finding["reasons"]
    assert attached(iam, "mallory") == ([POLICY_ARN] if expected else [])
    proposed = [a["operation"] for a in outcome.finding["actions"] if a["status"] == "proposed"]
    assert ("AttachUserPolicy" in proposed) is (DOCUMENTED[kind][flag] and mode == "detect")
