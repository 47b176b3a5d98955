"""Member accounts' log groups pulled into the archive (connect_guard.member_logs), in the
embedded AWS with two accounts: the security account (123456789012) and the demo's source account
(111122223333, with its Connect instance acme-contact-centre in us-east-1, and the member stack's
roles and SSM parameter as member/template.yaml deploys them).

CloudWatch Logs (moto too) takes events from the last 14 days only, so the history here is a few
days old, and each source's checkpoint is set where that history starts (a group created then)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from connect_guard.archive import HOUR_MS, Checkpoint, CheckpointStore, archive_cycle
from connect_guard.clients import AwsClients
from connect_guard.member_logs import (
    DAY_MS,
    LogSource,
    MemberLogPuller,
    SourceRegistry,
    Target,
    export_line,
    object_key,
    pull_member_logs,
    targets,
)
from connect_guard.settings import member_export_parameter
from connect_guard_tools.local_aws import REGION, SECURITY_ACCOUNT

MEMBER = "111122223333"
FLOW_LOGS = "/aws/connect/acme-contact-centre"
SOURCE = LogSource(MEMBER, REGION, FLOW_LOGS)
PREFIX = f"logs/{MEMBER}/{REGION}/aws/connect/acme-contact-centre/"
NOW_MS = int(datetime.now(UTC).timestamp() * 1000)
T0 = (NOW_MS - 5 * DAY_MS) // DAY_MS * DAY_MS  # midnight UTC, five days ago
ROLE = f"arn:aws:iam::{MEMBER}:role/connect-guard/connect-guard-dev-member-logs"


def member_logs(aws: Any, region: str = REGION, account: str = MEMBER) -> Any:
    return aws.account_session(account).client("logs", region_name=region)


def seed_group(aws: Any, group: str, events: list[tuple[int, str]], region: str = REGION, account: str = MEMBER):
    logs = member_logs(aws, region, account)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="flows")
    logs.put_log_events(
        logGroupName=group, logStreamName="flows", logEvents=[{"timestamp": t, "message": m} for t, m in events]
    )
    # The group "was created" when its history starts: its archive starts there.
    name = LogSource(account, region, group).name
    CheckpointStore(aws.clients.dynamodb, aws.baseline_table).put(Checkpoint(name, T0))


def flow_event(n: int) -> str:
    return json.dumps({"ContactId": f"c-{n}", "ContactFlowName": "Main IVR", "Identifier": "Set logging behavior"})


# Across three days: two in the first hour, one in the last minute of a day and one at its very
# end (the next window's first millisecond), then a quiet day-and-a-half, then the rest.
EVENTS = [
    (T0 + 10 * 60_000, flow_event(0)),
    (T0 + 50 * 60_000 + 123, flow_event(1)),
    (T0 + DAY_MS - 1, flow_event(2)),
    (T0 + DAY_MS, flow_event(3)),
    (T0 + 2 * DAY_MS + 13 * HOUR_MS, flow_event(4)),
    (T0 + 3 * DAY_MS + 5 * HOUR_MS, "a message with a trailing newline\n"),
]


def settings(aws: Any, **overrides: Any) -> Any:
    return aws.settings(export_log_groups=(), **overrides)


def container(aws: Any) -> AwsClients:
    """A fresh Lambda container: no member credentials cached."""
    return AwsClients(aws.region, aws.session, SECURITY_ACCOUNT)


def archived(aws: Any, prefix: str = PREFIX) -> dict[str, list[str]]:
    s3 = aws.session.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=aws.archive_bucket, Prefix=prefix).get("Contents", [])]
    return {
        k: gzip.decompress(s3.get_object(Bucket=aws.archive_bucket, Key=k)["Body"].read()).decode().splitlines()
        for k in sorted(keys)
    }


def checkpoint(aws: Any, source: LogSource = SOURCE) -> Checkpoint | None:
    return CheckpointStore(aws.clients.dynamodb, aws.baseline_table).get(source.name)


def at(ms: int) -> Any:
    """A clock stopped at `ms`."""
    return lambda: ms / 1000


def test_the_enrolled_regions_are_every_member_region_and_the_security_accounts_others(aws):
    arns = (
        f"arn:aws:connect:{REGION}:{MEMBER}:instance/a",
        f"arn:aws:connect:eu-west-2:{MEMBER}:instance/b",
        f"arn:aws:connect:eu-west-2:{MEMBER}:instance/c",
        f"arn:aws:connect:{REGION}:{SECURITY_ACCOUNT}:instance/own",  # export tasks there
        f"arn:aws:connect:eu-west-2:{SECURITY_ACCOUNT}:instance/own-eu",
        f"arn:aws:connect:{REGION}:444455556666:instance/unenrolled",
    )
    assert targets(aws.settings(connect_instance_arns=arns)) == [
        Target(MEMBER, "eu-west-2", ("b", "c")),
        Target(MEMBER, REGION, ("a",)),
        Target(SECURITY_ACCOUNT, "eu-west-2", ("own-eu",)),
    ]


def test_windows_land_under_the_member_accounts_prefix_in_the_export_format(aws):
    seed_group(aws, FLOW_LOGS, EVENTS)
    clock = at(T0 + 4 * DAY_MS + 12 * HOUR_MS)  # everything up to T0 + 4 days is past the 12 h lag
    report = pull_member_logs(
        settings(aws), container(aws), CheckpointStore(aws.clients.dynamodb, aws.baseline_table), clock
    )
    day = [datetime.fromtimestamp((T0 + d * DAY_MS) / 1000, UTC).strftime("%Y/%m/%d") for d in range(4)]
    objects = archived(aws)
    # One object per window with events, named by the window's hours; windows never span two days.
    assert list(objects) == [
        f"{PREFIX}{day[0]}/0000-2400.log.gz",
        f"{PREFIX}{day[1]}/0000-2400.log.gz",
        f"{PREFIX}{day[2]}/0000-2400.log.gz",
        f"{PREFIX}{day[3]}/0000-2400.log.gz",
    ]
    assert objects[f"{PREFIX}{day[0]}/0000-2400.log.gz"] == [
        f"{datetime.fromtimestamp(T0 / 1000, UTC):%Y-%m-%d}T00:10:00.000Z {flow_event(0)}",
        f"{datetime.fromtimestamp(T0 / 1000, UTC):%Y-%m-%d}T00:50:00.123Z {flow_event(1)}",
        f"{datetime.fromtimestamp(T0 / 1000, UTC):%Y-%m-%d}T23:59:59.999Z {flow_event(2)}",
    ]
    assert objects[f"{PREFIX}{day[1]}/0000-2400.log.gz"][0].endswith(f"T00:00:00.000Z {flow_event(3)}")
    last = datetime.fromtimestamp((T0 + 3 * DAY_MS) / 1000, UTC)
    assert objects[f"{PREFIX}{day[3]}/0000-2400.log.gz"] == [
        f"{last:%Y-%m-%d}T05:00:00.000Z a message with a trailing newline"
    ]
    assert checkpoint(aws).exported_to == T0 + 4 * DAY_MS
    assert [(g, a, b) for g, a, b in report.completed] == [
        (SOURCE.name, T0 + d * DAY_MS, T0 + (d + 1) * DAY_MS) for d in range(4)
    ]
    assert report.failed == [] and report.behind == [] and report.low_watermark_ms == T0 + 4 * DAY_MS
    # Written with a SHA-256 checksum S3 keeps (what the manifests list).
    head = aws.session.client("s3").head_object(
        Bucket=aws.archive_bucket, Key=next(iter(objects)), ChecksumMode="ENABLED"
    )
    assert head.get("ChecksumSHA256")


def test_hourly_windows_are_named_by_their_hours_and_empty_ones_write_nothing(aws):
    seed_group(aws, FLOW_LOGS, EVENTS[:3])
    store = CheckpointStore(aws.clients.dynamodb, aws.baseline_table)
    clients = container(aws)
    puller = MemberLogPuller(
        lambda service, account, region: clients.for_account(service, account, region, aws.settings(), "logs"),
        clients.client("s3"),
        store,
        SourceRegistry(clients.dynamodb, aws.baseline_table),
        aws.archive_bucket,
        "dev",
        lag_hours=12,
        max_window_hours=6,
        behind_alert_hours=48,
        clock=at(T0 + DAY_MS + 12 * HOUR_MS),
    )
    report = puller.run([Target(MEMBER, REGION, ("f3c95789-ace1-4954-ac5d-6baed2eac902",))])
    day = datetime.fromtimestamp(T0 / 1000, UTC).strftime("%Y/%m/%d")
    assert list(archived(aws)) == [f"{PREFIX}{day}/0000-0600.log.gz", f"{PREFIX}{day}/1800-2400.log.gz"]
    assert len(report.completed) == 4  # the two quiet windows moved the checkpoint too
    assert store.get(SOURCE.name).exported_to == T0 + DAY_MS
    assert object_key(SOURCE, T0 + 6 * HOUR_MS, T0 + 12 * HOUR_MS).endswith(f"{day}/0600-1200.log.gz")


def test_a_day_of_member_downtime_leaves_the_checkpoint_and_is_caught_up_with_every_event_once(aws):
    seed_group(aws, FLOW_LOGS, EVENTS)
    store = CheckpointStore(aws.clients.dynamodb, aws.baseline_table)
    first = T0 + DAY_MS + 12 * HOUR_MS
    pull_member_logs(settings(aws), container(aws), store, at(first))
    assert checkpoint(aws).exported_to == T0 + DAY_MS
    # A day and a half down: the member-logs role refused (deleted, or its trust rewritten).
    for hour in range(1, 37, 6):
        clients = container(aws)
        with Stubber(clients.sts) as sts:
            sts.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
            report = pull_member_logs(settings(aws), clients, store, at(first + hour * HOUR_MS))
        assert report.failed == [(f"{MEMBER}/{REGION}", f"cannot assume {ROLE}: AccessDenied")]
        assert report.completed == [] and checkpoint(aws).exported_to == T0 + DAY_MS
        # Its sources still hold the watermark back: no day after its checkpoint can be sealed.
        assert report.low_watermark_ms == T0 + DAY_MS
    # Back: caught up window by window, from where it stopped.
    report = pull_member_logs(settings(aws), container(aws), store, at(T0 + 4 * DAY_MS + 12 * HOUR_MS))
    assert [a for _, a, _ in report.completed] == [T0 + DAY_MS, T0 + 2 * DAY_MS, T0 + 3 * DAY_MS]
    lines = [line for body in archived(aws).values() for line in body]
    assert lines == [export_line(t, m).rstrip("\n") for t, m in EVENTS]  # every event, once, in order
    assert checkpoint(aws).exported_to == T0 + 4 * DAY_MS


def test_a_failed_read_keeps_the_window_and_the_other_sources_go_on(aws):
    seed_group(aws, FLOW_LOGS, EVENTS[:2])
    aws.account_session(MEMBER).client("ssm", region_name=REGION).put_parameter(
        Name=member_export_parameter("dev"),
        Value=json.dumps({"log_groups": ["/acme/ivr"]}),
        Type="String",
        Overwrite=True,
    )
    seed_group(aws, "/acme/ivr", [(T0 + 5 * 60_000, "ivr started")])
    clients = container(aws)
    store = CheckpointStore(aws.clients.dynamodb, aws.baseline_table)
    logs = clients.for_account("logs", MEMBER, REGION, aws.settings(), "logs")
    real = logs.filter_log_events

    def throttled(**kwargs: Any) -> dict[str, Any]:
        if kwargs["logGroupName"] == FLOW_LOGS:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "FilterLogEvents")
        return real(**kwargs)

    logs.filter_log_events = throttled
    report = pull_member_logs(settings(aws), clients, store, at(T0 + DAY_MS + 12 * HOUR_MS))
    ivr = LogSource(MEMBER, REGION, "/acme/ivr")
    assert report.failed == [(SOURCE.name, "FAILED: FilterLogEvents answered ThrottlingException")]
    assert checkpoint(aws).exported_to == T0 and checkpoint(aws).failures == 1
    assert checkpoint(aws, ivr).exported_to == T0 + DAY_MS  # the listed group, from the member's SSM parameter
    assert list(archived(aws, f"logs/{MEMBER}/{REGION}/acme/ivr/")) != []
    # Next run: the same window again.
    report = pull_member_logs(settings(aws), container(aws), store, at(T0 + DAY_MS + 12 * HOUR_MS))
    assert report.completed == [(SOURCE.name, T0, T0 + DAY_MS)] and checkpoint(aws).failures == 0


def test_a_source_that_falls_behind_alerts_high_naming_its_account_region_and_group(aws):
    seed_group(aws, FLOW_LOGS, EVENTS[:1])
    store = CheckpointStore(aws.clients.dynamodb, aws.baseline_table)
    pull_member_logs(settings(aws), container(aws), store, at(T0 + DAY_MS + 12 * HOUR_MS))  # registered, at T0+1d
    clients = container(aws)
    with Stubber(clients.sts) as sts:
        sts.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
        report = archive_cycle(settings(aws), clients, clock=at(T0 + 4 * DAY_MS))
    assert report.behind == [(SOURCE.name, 72.0)]
    (alert,) = aws.inbox()
    finding = json.loads(alert["Message"])
    assert finding["kind"] == "archive.export_problem" and finding["severity"] == "HIGH"
    assert f"{MEMBER}/{REGION}/aws/connect/acme-contact-centre: archive is 72.0 h behind" in finding["reasons"]
    assert any(r.startswith(f"{MEMBER}/{REGION}: export failed (cannot assume {ROLE}") for r in finding["reasons"])


def test_a_member_never_reached_blocks_sealing_and_an_instance_without_flow_logs_waits_quietly(aws):
    store = CheckpointStore(aws.clients.dynamodb, aws.baseline_table)
    clients = container(aws)
    with Stubber(clients.sts) as sts:
        sts.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
        report = pull_member_logs(settings(aws), clients, store, at(NOW_MS))
    assert report.low_watermark_ms == 0  # what it holds is unknown: no day is sealable
    # Reachable, but the instance has never logged a flow (no group yet): nothing to archive, no alert.
    report = pull_member_logs(settings(aws), container(aws), store, at(NOW_MS))
    assert report.failed == [] and report.completed == [] and report.low_watermark_ms is None


def test_the_security_accounts_other_regions_are_pulled_with_its_own_role(aws):
    instance = aws.connect.add_instance(
        SECURITY_ACCOUNT, "eu-west-2", "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", "acme-eu"
    )
    seed_group(aws, "/aws/connect/acme-eu", EVENTS[:1], region="eu-west-2", account=SECURITY_ACCOUNT)
    clients = container(aws)
    calls: list[str] = []
    clients.session.events.register("before-call.sts.AssumeRole", lambda **kw: calls.append("AssumeRole"))
    own = settings(aws, connect_instance_arns=(instance,))
    pull_member_logs(
        own, clients, CheckpointStore(aws.clients.dynamodb, aws.baseline_table), at(T0 + DAY_MS + 12 * HOUR_MS)
    )
    day = datetime.fromtimestamp(T0 / 1000, UTC).strftime("%Y/%m/%d")
    assert list(archived(aws, "logs/")) == [
        f"logs/{SECURITY_ACCOUNT}/eu-west-2/aws/connect/acme-eu/{day}/0000-2400.log.gz"
    ]
    assert calls == []


@pytest.mark.parametrize("message", ["plain", "ends with a newline\n"])
def test_export_lines_are_cloudwatchs_format(message):
    assert export_line(1_795_000_000_007, message) == "2026-11-18T11:06:40.007Z " + message.rstrip("\n") + "\n"


class PagedLogs:
    """FilterLogEvents as AWS pages it (a page may even be empty), recording each request."""

    def __init__(self, pages: list[list[tuple[int, str]]]) -> None:
        self.pages, self.requests = pages, []

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        index = int(kwargs.get("nextToken", "0"))
        page = {"events": [{"timestamp": t, "message": m} for t, m in self.pages[index]]}
        return {**page, "nextToken": str(index + 1)} if index + 1 < len(self.pages) else page


def test_a_window_is_read_page_by_page_into_one_object(aws):
    logs = PagedLogs([[(T0 + 1, "a"), (T0 + 2, "b")], [], [(T0 + 3, "c")]])
    clients = container(aws)
    puller = MemberLogPuller(
        lambda *_: None,
        clients.client("s3"),
        CheckpointStore(clients.dynamodb, aws.baseline_table),
        SourceRegistry(clients.dynamodb, aws.baseline_table),
        aws.archive_bucket,
        "dev",
        lag_hours=12,
        max_window_hours=24,
        behind_alert_hours=48,
    )
    key = puller._pull(SOURCE, logs, T0, T0 + HOUR_MS)
    assert [r.get("nextToken") for r in logs.requests] == [None, "1", "2"]
    # Half-open windows: FilterLogEvents' endTime is inclusive, so the window's last millisecond.
    assert {(r["startTime"], r["endTime"]) for r in logs.requests} == {(T0, T0 + HOUR_MS - 1)}
    assert [line.split(" ", 1)[1] for line in archived(aws)[key]] == ["a", "b", "c"]
    assert puller._pull(SOURCE, PagedLogs([[]]), T0 + HOUR_MS, T0 + 2 * HOUR_MS) is None  # nothing written
