"""The replay's embedded AWS (`LocalAws.for_replay()`) makes only what the replayed events need,
when a call first needs it, and keeps its delivery queues short without losing a delivery."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import boto3

from connect_guard.baseline import BaselineStore
from connect_guard_tools.config import replay_parameters, settings_values
from connect_guard_tools.inputs import InputItem
from connect_guard_tools.local_aws import REGION, SECURITY_ACCOUNT, LocalAws
from connect_guard_tools.replay import Replayer
from tests.conftest import EVENTS, load_event

IAM_ALERT = "iam/attach-user-policy-administratoraccess.json"


def _replayer(aws: LocalAws) -> Replayer:
    return Replayer(aws, aws.settings(**settings_values(replay_parameters("default"))))


def _observer() -> boto3.session.Session:
    """A session of its own: moto answers it, but it makes nothing on demand and puts nothing back."""
    return boto3.session.Session(region_name=REGION)


def _alerts(count: int) -> list[InputItem]:
    base = load_event(IAM_ALERT)
    items = []
    for i in range(count):
        event = copy.deepcopy(base)
        event["detail"]["eventID"] = str(uuid.UUID(int=i + 1))
        items.append(InputItem(f"alert#{i}", event))
    return items


def test_nothing_is_made_before_a_call_needs_it_but_what_settings_name_is_known():
    with LocalAws.for_replay() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        settings = aws.settings()
        assert aws.provisioned == []
        assert settings.member_account_ids == ("111122223333",)
        assert settings.connect_instance_arns == tuple(i.instance_arn for i in aws.instances) != ()
        assert settings.suite_key_arns == (
            f"arn:aws:kms:{REGION}:{SECURITY_ACCOUNT}:key/5ec0a1d2-9a7b-4c3e-8f10-2b6d4e8c0a11",
        )
        observer = _observer()
        assert observer.client("dynamodb").list_tables()["TableNames"] == []
        assert observer.client("sqs").list_queues().get("QueueUrls", []) == []


def test_a_replay_of_one_iam_alert_makes_the_alerting_path_and_nothing_else():
    with LocalAws.for_replay() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        (item,) = (InputItem(IAM_ALERT, load_event(IAM_ALERT)),)
        result = _replayer(aws).replay(item)
        assert result.outcome == "alerted"
        assert sorted(aws.provisioned) == ["alert topic", "tables"]
        # Seeding is nobody's action: the event's calls are its one dedup claim and its publish.
        assert [f"{a['service']}:{a['operation']}" for a in result.actions] == ["dynamodb:PutItem", "sns:Publish"]
        observer = _observer()
        assert observer.client("kms").list_keys()["Keys"] == []
        assert observer.client("s3").list_buckets()["Buckets"] == []
        assert observer.client("cloudtrail").describe_trails()["trailList"] == []
        assert observer.client("events").list_rules()["Rules"] == []
        assert observer.client("iam").list_policies(Scope="Local")["Policies"] == []
        dynamodb = observer.client("dynamodb")
        assert sorted(dynamodb.list_tables()["TableNames"]) == sorted(
            [aws.table_name, aws.baseline_table, aws.audit_table]
        )
        assert dynamodb.scan(TableName=aws.baseline_table)["Count"] == 0  # no snapshot seeded: none read
        assert len(aws.inbox()) == 1


def test_a_replay_that_published_nothing_reads_an_empty_inbox_without_making_the_alerting_path():
    with LocalAws.for_replay() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        assert aws.inbox() == []
        assert aws.provisioned == []
        assert _observer().client("sqs").list_queues().get("QueueUrls", []) == []


def test_moto_and_the_replay_read_each_service_model_with_one_loader_a_process():
    from moto.core import utils
    from moto.core.base_backend import AccountSpecificBackend

    with LocalAws.for_replay() as first:
        moto_loader = utils.create_loader()
        assert utils.create_loader() is moto_loader  # moto's extras on botocore's models, listed once
        regions = AccountSpecificBackend.get_session()
        loader = first.session._session.get_component("data_loader")
        assert regions._session.get_component("data_loader") is loader
        assert loader is not moto_loader
    with LocalAws.for_replay() as second:
        assert second.session._session.get_component("data_loader") is loader
        assert loader.search_paths == list(dict.fromkeys(loader.search_paths))  # boto3's folder once
    assert utils.create_loader() is not moto_loader  # undone with the mock


def test_the_first_read_of_the_baseline_table_finds_the_demo_state_as_seeded_up_front():
    def approved(aws: LocalAws) -> dict[str, Any]:
        store = BaselineStore(aws.clients.dynamodb, aws.baseline_table)
        baselines = {i.instance_arn: store.instance(i.instance_arn) for i in aws.instances}
        return {arn: (b.profiles, b.users) for arn, b in baselines.items()}  # not when it was approved

    with LocalAws() as eager:
        eager.seed(EVENTS / "demo-state.yaml")
        expected = approved(eager)
    with LocalAws.for_replay() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        found = approved(aws)
        assert any(name.startswith("baseline arn:aws:connect:") for name in aws.provisioned)
        assert "iam 111122223333" in aws.provisioned  # its role snapshots live in the same table
    assert found == expected and all(profiles and users for profiles, users in found.values())


def test_an_iam_read_in_a_source_account_finds_its_seeded_policies():
    with LocalAws.for_replay() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        iam = aws.account_session("111122223333").client("iam")
        names = {p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]}
        assert {"ConnectAgentTools", "ConnectOpsSupport", "connect-guard-quarantine"} <= names
        assert "trails" not in aws.provisioned


def test_deliveries_are_held_out_of_the_queues_and_all_still_delivered():
    count = 25
    with LocalAws.for_replay() as aws:
        replayer = Replayer(aws, aws.settings(member_account_ids=("111122223333",)))
        observer = _observer().client("sqs")
        for item in _alerts(count):
            assert replayer.replay(item).outcome == "alerted"
            for url in (aws.inbox_url, aws.findings_archive_url):  # moto's queues stay empty
                attributes = observer.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
        # A call naming the archive queue finds every finding in it, oldest first.
        sqs = aws.session.client("sqs")
        counted = sqs.get_queue_attributes(
            QueueUrl=aws.findings_archive_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert counted["Attributes"]["ApproximateNumberOfMessages"] == str(count)
        archived = []
        while batch := sqs.receive_message(QueueUrl=aws.findings_archive_url, MaxNumberOfMessages=10).get("Messages"):
            archived += batch
            sqs.delete_message_batch(
                QueueUrl=aws.findings_archive_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        assert len(archived) == count
        inbox = aws.inbox()
        assert len(inbox) == count and aws.inbox() == []  # drained, as before
        event_ids = [str(uuid.UUID(int=i + 1)) for i in range(count)]
        assert [m["Message"] for m in inbox] == [m["Body"] for m in archived]  # same findings, same order
        assert all(event_id in m["Message"] for event_id, m in zip(event_ids, inbox, strict=True))
