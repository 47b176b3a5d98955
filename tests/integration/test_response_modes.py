"""Response modes per control and per account, end to end against the embedded AWS: one
configuration where some controls enforce and others detect, and a pilot account in
DetectOnlyAccountIds that is never written to although its member stack has write roles."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connect_guard.errors import MemberAccessError
from connect_guard.events import CloudTrailEvent
from connect_guard.responders import logging_guard, profile_rollback, role_quarantine
from connect_guard.runtime import build_pipeline
from connect_guard.sweep import build as build_sweep
from tests.conftest import load_event
from tests.integration.test_logging_guard import DEMO_INSTANCE
from tests.integration.test_profile_rollback import INSTANCE, Instance, connect_event
from tests.integration.test_profile_rollback import settings as connect_settings
from tests.integration.test_role_quarantine import DENIED, POLICY_ARN, attached, iam_event, user

ACCOUNT = "111122223333"  # a member account of the demo state: its member roles exist
PILOT = f"account {ACCOUNT} is in DetectOnlyAccountIds"


@pytest.fixture
def iam(aws):
    client = aws.account_session(ACCOUNT).client("iam")
    client.create_user(UserName="mallory")
    return client


@pytest.fixture
def instance(aws):
    return Instance(aws)


def slr_attempt() -> CloudTrailEvent:
    return iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED)


def escalation(instance: Instance) -> CloudTrailEvent:
    return CloudTrailEvent.model_validate(connect_event("UpdateUserSecurityProfiles", instance.escalate_user()))


def responders(aws, **modes: Any) -> tuple[Any, Any]:
    """The quarantine and the rollback under one configuration, as the replay runs them."""
    settings = connect_settings(aws, **modes)
    return role_quarantine.build(settings, aws.clients), profile_rollback.build(settings, aws.clients)


def findings(aws) -> list[dict[str, Any]]:
    """The controls' findings; not the sweep's discovery of the demo state's instance, which
    these tests leave out of ConnectInstanceArns."""
    found = [json.loads(m["Message"]) for m in aws.inbox()]
    return [f for f in found if not f["kind"].startswith("connect.unwatched_instances")]


def test_quarantine_enforces_while_the_rollback_only_detects(aws, iam, instance):
    quarantine, rollback = responders(aws, response_mode="detect", quarantine_mode="enforce")

    quarantined = quarantine.handle(slr_attempt())
    assert quarantined.outcome == "quarantined" and attached(iam, "mallory") == [POLICY_ARN]
    assert quarantined.finding["mode"] == "enforce"
    assert quarantined.finding["mode_reason"] == "QuarantineMode=enforce"

    reported = rollback.handle(escalation(instance))
    assert reported.outcome == "alerted"
    assert instance.user_profiles() == {instance.agent, instance.admin}  # the escalation stands
    assert reported.finding["mode"] == "detect"
    assert reported.finding["mode_reason"] == "ResponseMode=detect (ProfileRollbackMode inherits)"
    assert any(
        r.endswith("(detect: ResponseMode=detect (ProfileRollbackMode inherits))") for r in reported.finding["reasons"]
    )
    assert [a["operation"] for a in aws.audit_records() if a["responder"]["S"] == "profile_rollback"] == []


def test_the_rollback_enforces_while_quarantine_is_kept_in_detect(aws, iam, instance):
    quarantine, rollback = responders(aws, response_mode="enforce", quarantine_mode="detect")

    reported = quarantine.handle(slr_attempt())
    assert reported.outcome == "alerted" and attached(iam, "mallory") == []
    assert reported.finding["mode"] == "detect" and reported.finding["mode_reason"] == "QuarantineMode=detect"
    assert [a["status"] for a in reported.finding["actions"]] == ["proposed", "proposed"]

    rolled_back = rollback.handle(escalation(instance))
    assert rolled_back.outcome == "rolled_back" and instance.user_profiles() == {instance.agent}
    assert rolled_back.finding["mode_reason"] == "ResponseMode=enforce (ProfileRollbackMode inherits)"


def test_a_detect_only_account_is_never_written_to_though_its_write_roles_exist(aws, iam, instance):
    # The pilot's member stack was deployed with write roles (the embedded AWS has them); the
    # security stack enforces everything, but lists the account in DetectOnlyAccountIds.
    for purpose in ("rollback", "quarantine"):
        assert iam.get_role(RoleName=f"connect-guard-dev-member-{purpose}")["Role"]["Path"] == "/connect-guard/"
    quarantine, rollback = responders(
        aws,
        response_mode="enforce",
        quarantine_mode="enforce",
        profile_rollback_mode="enforce",
        detect_only_account_ids=(ACCOUNT,),
    )

    q = quarantine.handle(slr_attempt())
    r = rollback.handle(escalation(instance))

    assert attached(iam, "mallory") == []
    assert iam.list_user_tags(UserName="mallory")["Tags"] == []
    assert instance.user_profiles() == {instance.agent, instance.admin}
    assert instance.updates() == ["UpdateUserSecurityProfiles"]  # the escalation itself, nothing after
    assert aws.audit_records() == []
    for outcome, parameter in ((q, "QuarantineMode"), (r, "ProfileRollbackMode")):
        assert outcome.outcome == "alerted"
        assert outcome.finding["mode"] == "detect"
        assert outcome.finding["mode_reason"] == f"{PILOT}; {parameter}=enforce"
        assert all(a["status"] == "proposed" for a in outcome.finding["actions"])
    # What the topic's subscribers receive says so too.
    published = findings(aws)
    assert len(published) == 2 and all(f["mode_reason"].startswith(PILOT) for f in published)


def test_below_the_responders_no_write_role_of_a_detect_only_account_is_ever_assumed(aws):
    # Fail closed even if a responder's own check were missed: the clients refuse the write roles.
    settings = aws.settings(response_mode="enforce", detect_only_account_ids=(ACCOUNT,))
    for purpose in ("rollback", "quarantine", "sso"):
        with pytest.raises(MemberAccessError, match="DetectOnlyAccountIds"):
            aws.clients.for_account("iam", ACCOUNT, "us-east-1", settings, purpose)
    assert aws.clients.for_account("iam", ACCOUNT, "us-east-1", settings, "read") is not None


def _drifted(instance: Instance) -> None:
    instance.client.update_user_security_profiles(
        InstanceId=INSTANCE, UserId=instance.user, SecurityProfileIds=[instance.agent, instance.admin]
    )


@pytest.mark.parametrize(
    ("modes", "restored", "reason"),
    [
        ({"response_mode": "enforce", "baseline_sweep_mode": "detect"}, False, "BaselineSweepMode=detect"),
        ({"response_mode": "detect", "baseline_sweep_mode": "enforce"}, True, "BaselineSweepMode=enforce"),
        (
            {"response_mode": "detect", "baseline_sweep_mode": "enforce", "detect_only_account_ids": (ACCOUNT,)},
            False,
            f"{PILOT}; BaselineSweepMode=enforce",
        ),
    ],
)
def test_the_sweep_follows_its_own_mode_and_the_detect_only_accounts(aws, instance, modes, restored, reason):
    _drifted(instance)
    sweep = build_sweep(connect_settings(aws, connect_instance_arns=(instance.arn,), **modes), aws.clients)
    sweep.run()
    assert (instance.user_profiles() == {instance.agent}) == restored
    (finding,) = findings(aws)
    assert finding["mode"] == ("enforce" if restored else "detect") and finding["mode_reason"] == reason
    assert [a["status"] for a in finding["actions"]] == ["taken" if restored else "proposed"]


# ---- the logging guard -----------------------------------------------------------------------------
MEMBER_TRAIL = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/member-trail"
OWN_TRAIL = "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail"


def _guard(aws, **modes: Any):
    return build_pipeline(logging_guard.build, aws.settings(**modes), aws.clients)


def _logging(aws, arn: str) -> bool:
    client = aws.account_session(arn.split(":")[4]).client("cloudtrail")
    return bool(client.get_trail_status(Name=arn)["IsLogging"])


def test_the_logging_guard_enforces_by_its_own_mode_and_spares_a_detect_only_account(aws):
    assert not _logging(aws, MEMBER_TRAIL) and not _logging(aws, OWN_TRAIL)
    guard = _guard(aws, response_mode="detect", logging_guard_mode="enforce", detect_only_account_ids=(ACCOUNT,))

    member = guard.process(load_event("logging/stop-logging-member-account.json"))
    own = guard.process(load_event("logging/stop-logging-by-name.json"))

    assert member["outcome"] == "alerted" and not _logging(aws, MEMBER_TRAIL)  # the pilot's trail: left alone
    assert own["outcome"] == "restored" and _logging(aws, OWN_TRAIL)  # the security account's: restored
    by_account = {f["event"]["account_id"]: f for f in findings(aws)}
    assert by_account[ACCOUNT]["mode_reason"] == f"{PILOT}; LoggingGuardMode=enforce"
    assert by_account[ACCOUNT]["actions"][0]["status"] == "proposed"
    assert by_account["123456789012"]["mode"] == "enforce"
    assert by_account["123456789012"]["mode_reason"] == "LoggingGuardMode=enforce"
    assert [a["target"]["S"] for a in aws.audit_records()] == [OWN_TRAIL]


def test_flow_logs_stay_off_when_only_the_other_controls_enforce(aws):
    guard = _guard(aws, response_mode="enforce", logging_guard_mode="detect")
    result = guard.process(load_event("logging/update-instance-attribute-flow-logs-off.json"))
    assert result["outcome"] == "alerted"
    assert aws.connect.attribute(DEMO_INSTANCE, "CONTACTFLOW_LOGS") == "false"
    (finding,) = findings(aws)
    assert finding["mode"] == "detect" and finding["mode_reason"] == "LoggingGuardMode=detect"
