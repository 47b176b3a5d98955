"""logging_guard in enforce mode: the trails of events/demo-state.yaml, tampered as each sample
says, are restored to their snapshot; what can't be restored is alerted and left alone."""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard.responders import logging_guard
from connect_guard.runtime import build_pipeline
from connect_guard.trails import TrailGateway
from tests.conftest import load_event

ARN = "arn:aws:cloudtrail:us-east-1:123456789012:trail/{}"


@pytest.fixture
def seeded(aws):
    """The trails of events/demo-state.yaml (the shared fixture seeds that file)."""
    return aws


def run(aws, sample: str, mode: str = "enforce") -> dict[str, Any]:
    pipeline = build_pipeline(logging_guard.build, aws.settings(response_mode=mode), aws.clients)
    return pipeline.process(load_event(f"logging/{sample}"))


def trail(aws, name: str):
    return TrailGateway(aws.session.client("cloudtrail")).state(ARN.format(name))


def test_a_stopped_trail_logs_again_and_the_restore_is_audited(seeded):
    assert not trail(seeded, "org-trail").is_logging
    result = run(seeded, "stop-logging-by-name.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert trail(seeded, "org-trail").is_logging
    [alert] = seeded.inbox()
    assert "Trail restored: CloudTrail trail org-trail (StopLogging)" in alert["Subject"] + alert["Message"]
    [audit] = seeded.audit_records()
    assert audit["action"]["S"] == "StartLogging" and audit["target"]["S"] == ARN.format("org-trail")


def test_management_events_switched_off_are_switched_back_on(seeded):
    assert not trail(seeded, "security-trail").records_management_writes
    assert run(seeded, "put-event-selectors-management-off.json")["outcome"] == "restored"
    restored = trail(seeded, "security-trail")
    assert restored.records_management_writes
    assert restored.event_selectors == [{"ReadWriteType": "All", "IncludeManagementEvents": True}]


def test_a_trail_redirected_to_another_bucket_delivers_to_its_own_again(seeded):
    assert trail(seeded, "connect-audit-trail").s3_bucket == "cg-demo-attacker-sink"
    assert run(seeded, "update-trail-other-bucket.json")["outcome"] == "restored"
    assert trail(seeded, "connect-audit-trail").s3_bucket == "cg-demo-connect-audit-logs"


def test_the_same_event_twice_restores_once_and_alerts_once(seeded):
    run(seeded, "stop-logging-by-name.json")
    assert run(seeded, "stop-logging-by-name.json")["outcome"] == "duplicate"
    assert len(seeded.inbox()) == 1 and len(seeded.audit_records()) == 1


def test_a_retry_after_the_restore_still_reports_it(seeded):
    """A first attempt restored the trail and died before its finding: the retry (no dedup
    record, the trail now as approved) reports the restore from the action journal."""
    responder = logging_guard.build(seeded.settings(response_mode="enforce"), seeded.clients)
    event = load_event("logging/stop-logging-by-name.json")
    from connect_guard.runtime import parse_event

    _, parsed = parse_event(event)
    original = responder.publisher.publish
    responder.publisher.publish = lambda finding: (_ for _ in ()).throw(TimeoutError("killed"))  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        responder.handle(parsed)
    responder.publisher.publish = original  # type: ignore[method-assign]
    assert trail(seeded, "org-trail").is_logging
    outcome = responder.handle(parsed)
    assert outcome.outcome == "restored"
    assert outcome.finding and outcome.finding["actions"][0]["operation"] == "StartLogging"


@pytest.mark.parametrize(
    ("sample", "severity"),
    [
        ("delete-trail-by-arn.json", "CRITICAL"),
        ("stop-logging-unknown-trail.json", "HIGH"),
        ("update-trail-by-cloudformation.json", "CRITICAL"),
        ("stop-logging-denied.json", "HIGH"),
    ],
)
def test_what_cannot_be_restored_is_alerted_and_left_alone(seeded, sample, severity):
    before = {name: trail(seeded, name) for name in ("org-trail", "sandbox-trail")}
    result = run(seeded, sample)
    assert result["outcome"] == "alerted" and result["severity"] == severity
    assert {name: trail(seeded, name) for name in before} == before
    assert seeded.audit_records() == []


def test_the_last_attempt_says_the_trail_is_still_stopped(seeded):
    responder = logging_guard.build(seeded.settings(response_mode="enforce"), seeded.clients)
    from connect_guard.runtime import parse_event

    _, parsed = parse_event(load_event("logging/stop-logging-by-name.json"))
    responder.give_up(parsed, RuntimeError("throttled"))
    [alert] = seeded.inbox()
    assert "Trail restore FAILED for StopLogging" in alert["Subject"]
    assert "is_logging: approved true, now false" in alert["Message"]


def test_insights_narrowed_are_put_back_at_high(seeded):
    result = run(seeded, "put-insight-selectors-narrowed.json")
    assert result["outcome"] == "restored" and result["severity"] == "HIGH"
    assert trail(seeded, "api-insights-trail").insight_selectors == [
        {"InsightType": "ApiCallRateInsight"},
        {"InsightType": "ApiErrorRateInsight"},
    ]


def test_approve_trail_records_the_trail_as_it_is_now_and_the_guard_restores_to_it(seeded):
    import io

    from connect_guard_tools import cli
    from tests.integration.test_replay_cli import _stack

    sandbox = ARN.format("sandbox-trail")
    seeded.session.client("cloudtrail").start_logging(Name=sandbox)  # reviewed, put right, approved
    args = cli._parser().parse_args(
        ["approve-trail", "--trail-arn", sandbox, "--stack", _stack(seeded), "--approved-by", "soc@example.com"]
    )
    out = io.StringIO()
    assert cli.approve_trail(args, out, session=seeded.session) == 0
    assert f"approved {sandbox}" in out.getvalue()
    [audit] = seeded.audit_records()
    assert audit["action"]["S"] == "ApproveTrailSnapshot" and audit["actor"]["S"] == "soc@example.com"
    seeded.session.client("cloudtrail").stop_logging(Name=sandbox)
    assert run(seeded, "stop-logging-unknown-trail.json")["outcome"] == "restored"
    assert trail(seeded, "sandbox-trail").is_logging


def test_approve_trail_refuses_a_trail_that_logs_nothing_the_suite_needs(seeded):
    import io

    from connect_guard_tools import cli
    from tests.integration.test_replay_cli import _stack

    args = cli._parser().parse_args(
        ["approve-trail", "--trail-arn", ARN.format("security-trail"), "--stack", _stack(seeded), "--approved-by", "x"]
    )
    out = io.StringIO()
    assert cli.approve_trail(args, out, session=seeded.session) == 2
    assert "does not log write management events" in out.getvalue() and seeded.audit_records() == []


def test_a_trail_stopped_and_restarted_since_is_reported_for_its_gap(seeded):
    seeded.session.client("cloudtrail").start_logging(Name=ARN.format("org-trail"))  # by hand, before the event
    result = run(seeded, "stop-logging-by-name.json")
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"
    [alert] = seeded.inbox()
    assert "Trail was stopped: CloudTrail trail org-trail" in alert["Subject"]
    assert "recorded nothing from 2026-11-27 09:14:31 UTC" in alert["Message"]
    assert seeded.audit_records() == []


def test_a_change_that_leaves_the_trail_as_approved_is_not_alerted(seeded):
    cloudtrail = seeded.session.client("cloudtrail")
    cloudtrail.put_event_selectors(
        TrailName=ARN.format("security-trail"),
        EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}],
    )
    result = run(seeded, "put-event-selectors-management-off.json")
    assert result["outcome"] == "ignored" and seeded.inbox() == []


def test_a_multi_region_trail_named_from_another_region_is_restored_in_its_home_region(seeded):
    """CloudTrail changes a multi-region trail only in its home region: the ARN's region is where
    it is re-read and restored, whichever region the event arrived from."""
    event = load_event("logging/stop-logging-by-name.json")
    event["region"] = event["detail"]["awsRegion"] = "eu-west-1"
    event["detail"]["requestParameters"] = {"name": ARN.format("org-trail")}
    pipeline = build_pipeline(logging_guard.build, seeded.settings(response_mode="enforce"), seeded.clients)
    assert pipeline.process(event)["outcome"] == "restored"
    assert trail(seeded, "org-trail").is_logging


# ---- contact flow logs ----------------------------------------------------------------------------
DEMO_INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"


def test_contact_flow_logs_switched_off_are_switched_back_on_through_the_member_rollback_role(seeded):
    assert seeded.connect.attribute(DEMO_INSTANCE, "CONTACTFLOW_LOGS") == "false"
    result = run(seeded, "update-instance-attribute-flow-logs-off.json")
    assert result["outcome"] == "restored" and result["severity"] == "HIGH"
    assert seeded.connect.attribute(DEMO_INSTANCE, "CONTACTFLOW_LOGS") == "true"
    [alert] = seeded.inbox()
    assert f"Contact flow logs restored: Connect instance {DEMO_INSTANCE}" in alert["Subject"]
    [audit] = seeded.audit_records()
    assert audit["action"]["S"] == "UpdateInstanceAttribute"
    assert audit["target"]["S"] == f"arn:aws:connect:us-east-1:111122223333:instance/{DEMO_INSTANCE}"
    [(_, write)] = [c for c in seeded.connect.calls if c[0] == "UpdateInstanceAttribute"]
    assert (write["InstanceId"], write["AttributeType"], write["Value"]) == (DEMO_INSTANCE, "CONTACTFLOW_LOGS", "true")


def test_flow_logs_on_again_before_the_event_is_read_need_nothing(seeded):
    seeded.connect.set_attribute(DEMO_INSTANCE, "CONTACTFLOW_LOGS", "true")
    result = run(seeded, "update-instance-attribute-flow-logs-off.json")
    assert result["outcome"] == "ignored" and seeded.inbox() == []


def test_flow_logs_of_an_instance_the_suite_does_not_cover_are_alerted_not_restored(seeded):
    pipeline = build_pipeline(
        logging_guard.build, seeded.settings(response_mode="enforce", connect_instance_arns=()), seeded.clients
    )
    result = pipeline.process(load_event("logging/update-instance-attribute-flow-logs-off.json"))
    assert result["outcome"] == "alerted" and result["severity"] == "HIGH"
    assert seeded.connect.attribute(DEMO_INSTANCE, "CONTACTFLOW_LOGS") == "false"
    assert "not in ConnectInstanceArns" in seeded.inbox()[0]["Message"]


def test_the_last_attempt_says_flow_logs_are_still_off(seeded):
    responder = logging_guard.build(seeded.settings(response_mode="enforce"), seeded.clients)
    from connect_guard.runtime import parse_event

    _, parsed = parse_event(load_event("logging/update-instance-attribute-flow-logs-off.json"))
    responder.give_up(parsed, RuntimeError("throttled"))
    [alert] = seeded.inbox()
    assert "Flow logs restore FAILED for UpdateInstanceAttribute in 111122223333" in alert["Subject"]


def _as_actor(event: dict[str, Any], issuer_arn: str, issuer_id: str) -> dict[str, Any]:
    """The event made by a session of another role (same session name as the suite's)."""
    role = issuer_arn.rsplit("/", 1)[-1]
    event["detail"]["userIdentity"] = {
        "type": "AssumedRole",
        "principalId": f"{issuer_id}:{role}",
        "arn": f"arn:aws:sts::123456789012:assumed-role/{role}/{role}",
        "accountId": "123456789012",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": issuer_id,
                "arn": issuer_arn,
                "accountId": "123456789012",
                "userName": role,
            }
        },
    }
    return event


SUITE_ROLE = "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-logging-guard"


@pytest.mark.parametrize(
    ("issuer_arn", "issuer_id", "suite_ids"),
    [
        # The suite's role name on a path anyone with iam:CreateRole can pick.
        ("arn:aws:iam::123456789012:role/attacker/connect-guard-dev-logging-guard", "AROAZ7QXK3ATTACKER01", ()),
        # The suite's exact ARN, re-created: a new unique ID is not the deployed role.
        (SUITE_ROLE, "AROAZ7QXK3RECREATED1", ("AROAZ7QXK3LOGGINGGRD",)),
    ],
)
def test_a_look_alike_of_the_suites_role_weakening_a_trail_is_not_taken_for_its_restore(
    seeded, issuer_arn, issuer_id, suite_ids
):
    event = _as_actor(load_event("logging/put-event-selectors-management-off.json"), issuer_arn, issuer_id)
    settings = seeded.settings(response_mode="enforce", suite_role_arns=(SUITE_ROLE,), suite_role_ids=suite_ids)
    result = build_pipeline(logging_guard.build, settings, seeded.clients).process(event)
    assert result["outcome"] != "ignored" and result["severity"] == "CRITICAL"
    restored = trail(seeded, "security-trail")
    assert restored is not None and all(s.get("IncludeManagementEvents") for s in restored.event_selectors)


def test_the_suites_own_role_weakening_a_trail_is_alerted_as_compromised_and_restored(seeded):
    # Its identity exempts only a restore that leaves the trail as approved, never a weakening.
    event = _as_actor(load_event("logging/put-event-selectors-management-off.json"), SUITE_ROLE, "AROAZ7QXK3LOGGINGGRD")
    settings = seeded.settings(
        response_mode="enforce", suite_role_arns=(SUITE_ROLE,), suite_role_ids=("AROAZ7QXK3LOGGINGGRD",)
    )
    pipeline = build_pipeline(logging_guard.build, settings, seeded.clients)
    result = pipeline.process(event)
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    (finding,) = [m for m in seeded.inbox()]
    assert "the role is compromised" in finding["Message"]
    restored = trail(seeded, "security-trail")
    assert restored is not None and all(s.get("IncludeManagementEvents") for s in restored.event_selectors)


def test_the_suites_own_restore_is_left_alone_once_the_trail_is_as_approved(seeded):
    assert run(seeded, "put-event-selectors-management-off.json")["outcome"] == "restored"
    seeded.inbox()
    result = run(seeded, "put-event-selectors-by-suite.json")
    assert result["outcome"] == "ignored" and result["reason"] == "the suite's own restore of the approved trail"
    assert seeded.inbox() == []


def test_flow_logs_switched_off_by_the_suites_own_member_role_are_still_switched_back_on(seeded):
    # The member rollback role (exact ARN, a suite principal) turns flow logs on, never off.
    role = "arn:aws:iam::111122223333:role/connect-guard/connect-guard-dev-member-rollback"
    event = _as_actor(load_event("logging/update-instance-attribute-flow-logs-off.json"), role, "AROAZ7QXK3MEMBERRB01")
    event["detail"]["userIdentity"]["accountId"] = "111122223333"
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["accountId"] = "111122223333"
    result = run_event(seeded, event)
    assert result["outcome"] == "restored" and result["severity"] == "HIGH"
    assert seeded.connect.attribute(DEMO_INSTANCE, "CONTACTFLOW_LOGS") == "true"


def run_event(aws, event: dict[str, Any]) -> dict[str, Any]:
    return build_pipeline(logging_guard.build, aws.settings(response_mode="enforce"), aws.clients).process(event)


# ---- member accounts' trails --------------------------------------------------------------------
MEMBER_TRAIL = "arn:aws:cloudtrail:us-east-1:111122223333:trail/member-trail"


def member_trail(aws):
    cloudtrail = aws.account_session("111122223333").client("cloudtrail", region_name="us-east-1")
    return TrailGateway(cloudtrail).state(MEMBER_TRAIL)


def test_a_member_accounts_stopped_trail_is_restored_through_the_member_rollback_role(seeded, monkeypatch):
    assumed: list[str] = []
    real = seeded.clients.member_client

    def recorded(service: str, role_arn: str, region: str | None = None) -> Any:
        assumed.append(f"{service} {role_arn.rsplit('/', 1)[-1]}")
        return real(service, role_arn, region)

    monkeypatch.setattr(seeded.clients, "member_client", recorded)
    assert not member_trail(seeded).is_logging
    result = run(seeded, "stop-logging-member-account.json")
    assert result["outcome"] == "restored" and result["severity"] == "CRITICAL"
    assert member_trail(seeded).is_logging
    assert assumed == ["cloudtrail connect-guard-dev-member-read", "cloudtrail connect-guard-dev-member-rollback"]
    [audit] = seeded.audit_records()
    assert (audit["action"]["S"], audit["target"]["S"]) == ("StartLogging", MEMBER_TRAIL)


def test_a_member_trail_change_is_critical_not_assessed_when_the_member_role_is_unreachable(seeded):
    from botocore.stub import Stubber

    with Stubber(seeded.clients.sts) as sts:  # its read role refuses us (deleted, or its trust rewritten)
        sts.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
        result = run(seeded, "stop-logging-member-account.json")
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    [alert] = seeded.inbox()
    assert "Trail change not assessed: CloudTrail trail member-trail" in alert["Subject"]
    assert (
        "cannot assume arn:aws:iam::111122223333:role/connect-guard/connect-guard-dev-member-read" in alert["Message"]
    )
    assert not member_trail(seeded).is_logging and seeded.audit_records() == []


def test_a_member_trail_named_with_another_accounts_arn_is_not_read_or_restored(seeded):
    # An organization trail's ARN names the management account: its own events are the ones to act on.
    event = load_event("logging/stop-logging-member-account.json")
    event["detail"]["requestParameters"] = {"name": ARN.format("org-trail")}
    result = run_event(seeded, event)
    assert result["outcome"] == "alerted" and result["severity"] == "CRITICAL"
    assert "Trail change not assessed" in seeded.inbox()[0]["Subject"]
    assert not trail(seeded, "org-trail").is_logging


def test_approve_trail_approves_a_member_trail_read_with_the_operators_role_there(seeded):
    import io

    from connect_guard_tools import cli
    from tests.integration.test_replay_cli import _stack

    member = seeded.account_session("111122223333")
    member.client("cloudtrail", region_name="us-east-1").start_logging(Name=MEMBER_TRAIL)  # put right, reviewed
    operator = "arn:aws:iam::111122223333:role/SecurityOperator"
    argv = ["approve-trail", "--trail-arn", MEMBER_TRAIL, "--stack", _stack(seeded), "--approved-by", "soc@example.com"]
    out = io.StringIO()
    assert cli.approve_trail(cli._parser().parse_args([*argv, "--assume-role-arn", operator]), out, seeded.session) == 0
    [audit] = seeded.audit_records()
    assert audit["action"]["S"] == "ApproveTrailSnapshot" and audit["target"]["S"] == MEMBER_TRAIL
    assert (
        MEMBER_TRAIL
        in seeded.clients.dynamodb.query(
            TableName=seeded.baseline_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "trail#index#111122223333"}},
        )["Items"][-1]["sk"]["S"]
    )
    # An account the stack does not enrol is refused: a snapshot nothing acts on would only mislead.
    stranger = "arn:aws:cloudtrail:us-east-1:444455556666:trail/t"
    out = io.StringIO()
    assert cli.approve_trail(cli._parser().parse_args([*argv[:2], stranger, *argv[3:]]), out, seeded.session) == 2
    assert "not enrolled" in out.getvalue()
