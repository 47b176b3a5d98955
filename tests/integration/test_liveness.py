"""Liveness: canaries recorded per account and region, silences alerted once, recoveries reported,
forged canaries never counted; the deployed handler runs the check on the schedule's input."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connect_guard import liveness
from connect_guard.observability import metrics
from connect_guard.runtime import Pipeline
from connect_guard.settings import Settings
from connect_guard_tools.local_aws import SECURITY_ACCOUNT, LocalAws
from tests.conftest import EVENTS, load_event, with_new_event_id
from tests.integration.test_scheduled_failures import alerts, handler_module

SOURCE = "111122223333"
INSTANCE = f"arn:aws:connect:us-east-1:{SOURCE}:instance/f3c95789-ace1-4954-ac5d-6baed2eac902"
HEARD = datetime(2026, 11, 20, 10, 15, 4, tzinfo=UTC)  # iam-canary.json's eventTime


def settings_for(aws: LocalAws, **overrides: Any) -> Settings:
    return aws.settings(connect_instance_arns=(INSTANCE,), **overrides)


def pipeline(aws: LocalAws, settings: Settings) -> Pipeline:
    responder = liveness.build(settings, aws.clients)
    return Pipeline(responder, None, 3600, settings=settings, publisher=responder.publisher)


def canary(name: str, at: datetime | None = None) -> dict[str, Any]:
    event = with_new_event_id(load_event(f"liveness/{name}"))
    if at is not None:
        stamp = at.isoformat().replace("+00:00", "Z")
        event["time"] = event["detail"]["eventTime"] = stamp
    return event


def item(aws: LocalAws, account: str, region: str, service: str) -> dict[str, str] | None:
    got = aws.session.client("dynamodb").get_item(
        TableName=aws.baseline_table, Key={"pk": {"S": f"canary#{account}#{region}"}, "sk": {"S": service}}
    )
    return {k: v["S"] for k, v in got["Item"].items()} if "Item" in got else None


@pytest.fixture
def fresh_aws() -> Iterator[LocalAws]:
    """The demo state without its seeded canaries: every canary record starts empty."""
    with LocalAws() as local:
        local.seed(EVENTS / "demo-state.yaml")
        dynamodb = local.session.client("dynamodb")
        for row in dynamodb.scan(TableName=local.baseline_table)["Items"]:
            if row["pk"]["S"].startswith("canary#"):
                dynamodb.delete_item(TableName=local.baseline_table, Key={"pk": row["pk"], "sk": row["sk"]})
        yield local


def test_a_silent_account_is_alerted_once_naming_it_and_its_last_canary_then_its_recovery(fresh_aws):
    aws = fresh_aws
    settings = settings_for(aws)
    flow = pipeline(aws, settings)
    check = liveness.build(settings, aws.clients).check

    assert flow.process(canary("iam-canary.json"))["outcome"] == "recorded"
    assert item(aws, SOURCE, "us-east-1", "iam")["heard_at"] == "2026-11-20T10:15:04Z"
    # First check: the sources never heard (the security account, the Connect canary) start being
    # expected now; the IAM canary heard 30 min ago is within the limit. Nothing is alerted.
    assert check(HEARD + timedelta(minutes=30)) == []
    assert alerts(aws) == []

    late = HEARD + timedelta(minutes=91)
    assert len(check(late)) == 1
    (finding,) = alerts(aws)
    assert finding["severity"] == "HIGH" and finding["kind"] == "suite.canary_silent"
    assert finding["title"] == f"Canary silent: IAM events of {SOURCE} in us-east-1"
    assert f"account {SOURCE}, region us-east-1: last heard 2026-11-20T10:15:04Z" in finding["reasons"]
    assert "for 91 min" in finding["summary"] and "the limit is 90 min" in finding["summary"]
    assert (finding["event"]["account_id"], finding["event"]["region"]) == (SOURCE, "us-east-1")
    # Once per silence: the next runs stay quiet while it lasts.
    assert check(late + timedelta(minutes=15)) == [] and alerts(aws) == []

    back = late + timedelta(minutes=20)
    outcome = flow.process(canary("iam-canary.json", at=back))
    assert outcome["outcome"] == "alerted" and outcome["severity"] == "LOW"
    (recovered,) = alerts(aws)
    assert recovered["kind"] == "suite.canary_recovered"
    assert recovered["title"] == f"Canary heard again: IAM canary of {SOURCE} in us-east-1"
    assert recovered["reasons"][1] == "last heard 2026-11-20T10:15:04Z"
    assert "silent_alerted_at" not in item(aws, SOURCE, "us-east-1", "iam")
    # Heard again, once: a second canary is just recorded.
    assert flow.process(canary("iam-canary.json", at=back + timedelta(minutes=15)))["outcome"] == "recorded"
    assert alerts(aws) == []


def test_never_heard_sources_are_alerted_after_the_limit_from_when_they_became_expected(fresh_aws):
    aws = fresh_aws
    settings = settings_for(aws)
    check = liveness.build(settings, aws.clients).check
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert check(start) == []
    titles = sorted(f.title for f in check(start + timedelta(minutes=91)))
    assert titles == [
        f"Canary silent: CONNECT events of {SOURCE} in us-east-1",
        f"Canary silent: IAM events of {SOURCE} in us-east-1",
        f"Canary silent: IAM events of {SECURITY_ACCOUNT} in us-east-1",
    ]
    finding = next(f for f in alerts(aws) if SECURITY_ACCOUNT in f["title"])
    assert finding["reasons"][0] == (
        f"account {SECURITY_ACCOUNT}, region us-east-1: never heard (expected since 2026-11-20T12:00:00Z)"
    )


@pytest.mark.parametrize(
    "sample",
    ["iam-canary-forged-path.json", "iam-canary-forged-other-account.json", "iam-canary-denied.json"],
)
def test_a_forged_or_denied_canary_does_not_count_as_alive(fresh_aws, sample):
    aws = fresh_aws
    settings = settings_for(aws)
    flow = pipeline(aws, settings)
    flow.process(canary("iam-canary.json"))
    later = HEARD + timedelta(minutes=80)
    outcome = flow.process(canary(sample, at=later))
    assert outcome["outcome"] == "alerted" and outcome["severity"] == "MEDIUM"
    (finding,) = alerts(aws)
    assert finding["kind"] == "suite.canary_not_counted"
    # The genuine canary's time stands, and the silence is alerted as if the forgery never came.
    assert item(aws, SOURCE, "us-east-1", "iam")["heard_at"] == "2026-11-20T10:15:04Z"
    silent = liveness.build(settings, aws.clients).check(HEARD + timedelta(minutes=95))
    assert [f.title for f in silent if SOURCE in f.title and "IAM" in f.title] == [
        f"Canary silent: IAM events of {SOURCE} in us-east-1"
    ]


def test_a_canary_from_an_unenrolled_account_is_rejected_before_it_is_recorded(fresh_aws):
    aws = fresh_aws
    flow = pipeline(aws, settings_for(aws))
    event = canary("iam-canary.json")
    twin = json.loads(json.dumps(event).replace(SOURCE, "999988887777"))
    assert flow.process(twin)["outcome"] == "rejected"
    assert item(aws, "999988887777", "us-east-1", "iam") is None


def test_an_older_canary_never_moves_the_last_heard_time_back(fresh_aws):
    aws = fresh_aws
    flow = pipeline(aws, settings_for(aws))
    flow.process(canary("iam-canary.json"))
    earlier = copy.deepcopy(canary("iam-canary.json", at=HEARD - timedelta(minutes=15)))
    assert flow.process(earlier)["outcome"] == "recorded"
    assert item(aws, SOURCE, "us-east-1", "iam")["heard_at"] == "2026-11-20T10:15:04Z"


def test_the_connect_canary_is_recorded_for_the_instances_region(fresh_aws):
    aws = fresh_aws
    flow = pipeline(aws, settings_for(aws))
    assert flow.process(canary("connect-canary-after-silence.json"))["outcome"] == "recorded"
    assert item(aws, SOURCE, "us-east-1", "connect")["heard_at"] == "2026-11-20T10:30:05Z"


def test_the_deployed_handler_runs_the_check_on_the_schedules_input_and_alerts_a_failed_run(
    fresh_aws, monkeypatch, lambda_context
):
    aws = fresh_aws
    app = handler_module("liveness", aws, monkeypatch, CONNECT_INSTANCE_ARNS=INSTANCE, MAX_EVENT_AGE_HOURS="")
    assert app.lambda_handler(app.CHECK, lambda_context) == {"silent": []}
    assert item(aws, SECURITY_ACCOUNT, "us-east-1", "iam")["expected_since"]

    def broken(settings: Any, clients: Any) -> Any:
        raise RuntimeError("GetItem throttled after retries")

    monkeypatch.setattr(app.liveness, "run_check", broken)
    with pytest.raises(RuntimeError):
        app.lambda_handler(app.CHECK, lambda_context)
    (finding,) = alerts(aws)
    assert finding["title"].startswith("Canary check FAILED") and finding["severity"] == "HIGH"
    # Anything but the schedule's input is an SQS batch or refused: never a check.
    from connect_guard.errors import DirectInvocationError

    with pytest.raises(DirectInvocationError):
        app.lambda_handler({"check": "something-else"}, lambda_context)


def test_a_recovery_whose_alert_fails_is_reported_when_sqs_retries_the_event(fresh_aws, monkeypatch):
    aws = fresh_aws
    settings = settings_for(aws)
    flow = pipeline(aws, settings)
    flow.process(canary("iam-canary.json"))
    liveness.build(settings, aws.clients).check(HEARD + timedelta(minutes=91))
    alerts(aws)
    back = canary("iam-canary.json", at=HEARD + timedelta(minutes=100))
    publisher = flow.responder.publisher
    real = publisher.publish

    def unreachable(finding: Any) -> str:
        raise ConnectionError("SNS unreachable")

    monkeypatch.setattr(publisher, "publish", unreachable)
    with pytest.raises(ConnectionError):
        flow.process(back)
    assert item(aws, SOURCE, "us-east-1", "iam")["silent_alerted_at"]  # put back as it was
    monkeypatch.setattr(publisher, "publish", real)
    assert flow.process(back)["outcome"] == "alerted"
    (recovered,) = alerts(aws)
    assert recovered["reasons"][1] == "last heard 2026-11-20T10:15:04Z"


# ---- the security account's own canary (template.yaml CanaryRole) --------------------------------
CANARY_ROLE_ID = "AROAHCXANKA6CANARY01"  # the samples' sessionIssuer principalId


def own_canary(at: datetime | None = None, role_id: str = CANARY_ROLE_ID) -> dict[str, Any]:
    """iam-canary.json as the security stack's own canary writes it: its role, its account."""
    event = json.loads(json.dumps(canary("iam-canary.json", at)).replace(SOURCE, SECURITY_ACCOUNT))
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["principalId"] = role_id
    return event


def test_the_security_accounts_own_canary_reaches_the_rule_and_keeps_it_heard_without_a_member_stack(fresh_aws):
    from connect_guard_tools.routing import compile_pattern
    from connect_guard_tools.template import load_template

    aws = fresh_aws
    settings = settings_for(aws, canary_role_id=CANARY_ROLE_ID)
    flow = pipeline(aws, settings)
    check = liveness.build(settings, aws.clients).check
    pattern = load_template()["Resources"]["LivenessCanaryRule"]["Properties"]["EventPattern"]
    assert compile_pattern(pattern)(own_canary())  # straight to the rule on the security bus

    assert check(HEARD - timedelta(minutes=1)) == []  # every source expected from now
    assert flow.process(own_canary())["outcome"] == "recorded"
    assert item(aws, SECURITY_ACCOUNT, "us-east-1", "iam")["heard_at"] == "2026-11-20T10:15:04Z"
    # It keeps writing: heard within the limit, never silent, while the member account (no
    # canary since) is.
    for minutes in (15, 30, 45, 60, 75):
        assert flow.process(own_canary(HEARD + timedelta(minutes=minutes)))["outcome"] == "recorded"
    titles = [f.title for f in check(HEARD + timedelta(minutes=95))]
    assert f"Canary silent: IAM events of {SECURITY_ACCOUNT} in us-east-1" not in titles
    assert f"Canary silent: IAM events of {SOURCE} in us-east-1" in titles
    assert all(SECURITY_ACCOUNT not in f["title"] for f in alerts(aws))


def test_the_security_accounts_canary_gone_quiet_is_alerted_naming_its_last_arrival(fresh_aws):
    aws = fresh_aws
    settings = settings_for(aws, canary_role_id=CANARY_ROLE_ID)
    flow = pipeline(aws, settings)
    assert flow.process(own_canary())["outcome"] == "recorded"
    liveness.build(settings, aws.clients).check(HEARD + timedelta(minutes=91))
    (finding,) = [f for f in alerts(aws) if SECURITY_ACCOUNT in f["title"]]
    assert finding["severity"] == "HIGH" and finding["kind"] == "suite.canary_silent"
    assert finding["title"] == f"Canary silent: IAM events of {SECURITY_ACCOUNT} in us-east-1"
    assert finding["reasons"][0] == f"account {SECURITY_ACCOUNT}, region us-east-1: last heard 2026-11-20T10:15:04Z"
    # Heard again: a recovery, as for a member account.
    assert flow.process(own_canary(HEARD + timedelta(minutes=100)))["outcome"] == "alerted"
    (recovered,) = alerts(aws)
    assert recovered["kind"] == "suite.canary_recovered" and SECURITY_ACCOUNT in recovered["title"]


def test_a_role_re_created_under_the_canarys_name_in_the_security_account_does_not_count(fresh_aws):
    """Whoever can delete and create roles in the security account could make a role with the
    canary's exact ARN and tag it from anywhere: its new unique ID gives it away."""
    aws = fresh_aws
    settings = settings_for(aws, canary_role_id=CANARY_ROLE_ID)
    flow = pipeline(aws, settings)
    assert flow.process(own_canary())["outcome"] == "recorded"
    impostor = own_canary(HEARD + timedelta(minutes=80), role_id="AROAHCXANKA6IMPOSTOR")
    outcome = flow.process(impostor)
    assert outcome["outcome"] == "alerted" and outcome["severity"] == "MEDIUM"
    (finding,) = alerts(aws)
    assert finding["kind"] == "suite.canary_not_counted"
    assert "unique ID AROAHCXANKA6IMPOSTOR is not the stack's AROAHCXANKA6CANARY01" in finding["reasons"][0]
    assert item(aws, SECURITY_ACCOUNT, "us-east-1", "iam")["heard_at"] == "2026-11-20T10:15:04Z"
    # A member account's canary is known by its ARN alone: the security stack's ID is not asked of it.
    assert flow.process(canary("iam-canary.json", HEARD + timedelta(minutes=5)))["outcome"] == "recorded"


def test_the_check_reports_the_longest_canary_silence_for_the_dashboard(fresh_aws):
    """CanaryAgeSeconds (the dashboard's canary age): the oldest expected canary's silence, every run."""
    aws = fresh_aws
    settings = settings_for(aws)
    assert pipeline(aws, settings).process(canary("iam-canary.json"))["outcome"] == "recorded"
    check = liveness.build(settings, aws.clients).check
    metrics.clear_metrics()
    try:
        # The sources never heard start being expected now (age 0); the IAM canary is 30 min old.
        check(HEARD + timedelta(minutes=30))
        assert metrics.metric_set[liveness.CANARY_AGE_METRIC]["Value"] == [1800.0]
        assert metrics.metric_set[liveness.CANARY_AGE_METRIC]["Unit"] == "Seconds"
        metrics.clear_metrics()
        # An hour later: the IAM canary 91 min silent (alerted), the others expected for 61 min.
        assert len(check(HEARD + timedelta(minutes=91))) == 1
        assert metrics.metric_set[liveness.CANARY_AGE_METRIC]["Value"] == [91 * 60.0]
    finally:
        metrics.clear_metrics()
