"""The bench's logic (no timings): the budget table it reads, its verdicts and exit code, the
AWS-call counter and the recorded answers it replays. `make bench` itself is not run here."""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from connect_guard.settings import Settings
from connect_guard_tools.bench import budgets
from connect_guard_tools.bench.budgets import TIMES, Budget, BudgetError, Figure, exit_code, judge, parse_budgets
from connect_guard_tools.bench.calls import AnswerRecorder, CallCounter, summary
from connect_guard_tools.bench.child import answer_hook
from connect_guard_tools.bench.replaying import write_noise_log
from connect_guard_tools.bench.scenarios import SOURCE_QUEUE_ARN, lambda_environment, sqs_batch
from tests.conftest import ROOT

TABLE = f"""
intro
<!-- budget-table -->
| Key | Measure | Budget |
| --- | --- | --- |
| `cold.floor_ratio` | cold init / floor | ≤ 1.15{TIMES} |
| `replay.noise_rate` | noise rate | ≥ 100,000 events/s |
| calls.alert | calls per alert | <= 3 calls |
<!-- /budget-table -->
| `not.read` | outside the markers | ≤ 9 s |
"""


def test_the_doc_table_is_the_budget_the_bench_measures():
    doc = budgets.load_budgets()
    assert set(doc) == budgets.MEASURED_KEYS
    # The design's budget, as the doc states it (a spot check of the parse, not a second copy).
    assert doc["cold.floor_ratio"].at_most and doc["replay.noise_rate"].at_most is False


def test_budget_rows_parse_with_either_sign_and_thousands():
    parsed = parse_budgets(TABLE)
    assert set(parsed) == {"cold.floor_ratio", "replay.noise_rate", "calls.alert"}
    assert parsed["cold.floor_ratio"] == Budget("cold.floor_ratio", "cold init / floor", True, 1.15, TIMES)
    assert parsed["replay.noise_rate"].limit == 100_000 and parsed["replay.noise_rate"].unit == "events/s"
    assert parsed["calls.alert"].at_most and parsed["calls.alert"].limit == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("| `a.b` | x | ≤ 1 s |", "no budget table"),
        ("<!-- budget-table -->\n| `a.b` | x | about 1 s |\n<!-- /budget-table -->", "is not like"),
        ("<!-- budget-table -->\n| `a.b` | x | ≤ 1 s |\n| `a.b` | y | ≤ 2 s |\n<!-- /budget-table -->", "twice"),
        ("<!-- budget-table -->\n| Key | Measure | Budget |\n<!-- /budget-table -->", "no rows"),
        ("<!-- budget-table -->\n| Not A Key | x | ≤ 1 s |\n<!-- /budget-table -->", "is not a key"),
    ],
)
def test_an_unreadable_budget_table_is_an_error(text, message):
    with pytest.raises(BudgetError, match=message):
        parse_budgets(text)


def test_ceilings_and_floors_are_met_at_their_limit_and_missed_past_it():
    ceiling = Budget("k.a", "a", True, 1.0, "ms")
    floor = Budget("k.b", "b", False, 100.0, "events/s")
    assert ceiling.met_by(1.0) and not ceiling.met_by(1.01)
    assert floor.met_by(100.0) and not floor.met_by(99.9)


def test_exit_code_is_zero_only_when_every_figure_is_within_budget():
    table = parse_budgets(TABLE)
    met = [Figure("cold.floor_ratio", 1.1), Figure("calls.alert", 3)]
    assert exit_code(judge(met, table)) == 0
    missed = [*met, Figure("replay.noise_rate", 20_000.0)]
    verdicts = judge(missed, table)
    assert exit_code(verdicts) == 1
    assert [v.met for v in verdicts] == [True, True, False]
    assert exit_code([]) == 1  # nothing measured is not a pass
    # A full run that did not measure a row fails too.
    assert exit_code(judge(met, table), expected=set(table)) == 1


def test_a_figure_without_a_budget_row_is_refused():
    with pytest.raises(BudgetError, match=r"no budget for calls\.unknown"):
        judge([Figure("calls.unknown", 1)], parse_budgets(TABLE))


def test_each_line_shows_the_mark_the_figure_and_its_budget():
    table = parse_budgets(TABLE)
    line = judge([Figure("cold.floor_ratio", 1.46, "15 rounds", "policy_alerts")], table)[0].line()
    assert line.startswith(f"✗ cold init / floor — policy_alerts: 1.46{TIMES}")
    assert f"[budget ≤ 1.15{TIMES}]" in line and "(15 rounds)" in line
    line = judge([Figure("replay.noise_rate", 123_456.7)], table)[0].line()
    assert line.startswith("✓ noise rate: 123,457 events/s") and "[budget ≥ 100,000 events/s]" in line
    assert judge([Figure("calls.alert", 2)], table)[0].line().startswith("✓ calls per alert: 2 calls")


def _client(service: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session, session.client(service)


def test_the_counter_sees_each_call_once_and_tells_dedup_writes_from_the_rest():
    _, dynamodb = _client("dynamodb")
    counter = CallCounter(dedup_table="dedup")
    dynamodb.meta.events.register("before-parameter-build", counter)
    with Stubber(dynamodb) as stub:
        for operation in ("put_item", "put_item", "get_item", "put_item", "put_item"):
            stub.add_response(operation, {})
        dynamodb.put_item(TableName="dedup", Item={"id": {"S": "a"}})  # not counted: inactive
        counter.active = True
        dynamodb.put_item(TableName="dedup", Item={"id": {"S": "b"}})
        dynamodb.get_item(TableName="dedup", Key={"id": {"S": "b"}})
        dynamodb.put_item(TableName="audit", Item={"pk": {"S": "c"}})
        dynamodb.put_item(TableName="dedup", Item={"id": {"S": "d"}})
    calls = counter.take()
    assert [c.label() for c in calls] == [
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:PutItem",
    ]
    assert len(counter.dedup_writes(calls)) == 2
    # A read of the dedup table is not its write: it counts against the event's budget.
    assert summary(counter.beyond_dedup(calls)) == "dynamodb:GetItem, dynamodb:PutItem"
    assert counter.take() == []


def test_a_recorded_answer_replays_through_botocore_to_the_same_response():
    _, recorded_client = _client("dynamodb")
    recorder = AnswerRecorder(active=True)
    recorded_client.meta.events.register("before-parse", recorder.before_parse)
    recorded_client.meta.events.register("after-call", recorder.after_call)
    item = {"id": {"S": "event-1"}, "expiration": {"N": "1767225600"}, "status": {"S": "COMPLETED"}}
    with Stubber(recorded_client) as stub:  # answered before botocore sends: the JSON body is rebuilt
        stub.add_response("get_item", {"Item": item})
        recorded_client.get_item(TableName="dedup", Key={"id": {"S": "event-1"}})
    answers = recorder.take()
    assert list(answers) == ["before-send.dynamodb.GetItem"]

    _, replayed_client = _client("dynamodb")
    served: dict[str, int] = {}
    replayed_client.meta.events.register("before-send", answer_hook(answers, served))
    for _ in range(2):  # served in turn, and again from the first when they run out
        response = replayed_client.get_item(TableName="dedup", Key={"id": {"S": "event-1"}})
        assert response["Item"] == item
    assert served == {"before-send.dynamodb.GetItem": 2}
    with pytest.raises(RuntimeError, match=r"no recorded answer for before-send\.dynamodb\.PutItem"):
        replayed_client.put_item(TableName="dedup", Item=item)


def test_the_lambda_environment_reproduces_the_replay_settings():
    settings = Settings(
        alert_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
        dedup_table_name="dedup",
        response_mode="enforce",
        member_account_ids=("111122223333", "444455556666"),
        suite_role_arns=("arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-role-quarantine",),
        quarantine_on_tampering=True,
        max_event_age_hours=None,
    )
    env = lambda_environment(settings)
    assert env["MEMBER_ACCOUNT_IDS"] == "111122223333,444455556666"
    assert env["SOURCE_QUEUE_ARN"] == SOURCE_QUEUE_ARN
    read = Settings.from_env(env)
    assert read.member_account_ids == settings.member_account_ids and read.quarantine_on_tampering


def test_the_sqs_batch_comes_from_the_functions_own_queue():
    batch = sqs_batch({"detail": {"eventID": "e"}}, records=3)
    assert [r["messageId"] for r in batch["Records"]] == ["bench-0", "bench-1", "bench-2"]
    assert {r["eventSourceARN"] for r in batch["Records"]} == {SOURCE_QUEUE_ARN}
    assert json.loads(batch["Records"][0]["body"]) == {"detail": {"eventID": "e"}}


def test_the_noise_log_is_a_cloudtrail_file_of_distinct_calls_no_rule_matches(tmp_path):
    from connect_guard_tools.inputs import iter_inputs
    from connect_guard_tools.routing import Router

    log = tmp_path / "noise.json.gz"
    write_noise_log(log, 1_000)
    records = json.loads(gzip.decompress(log.read_bytes()))["Records"]
    assert len(records) == 1_000
    assert len({r["eventID"] for r in records}) == 1_000
    assert len({r["eventName"] for r in records}) > 5  # a trail's mix, not one call
    router = Router()
    items = list(iter_inputs([log], root=tmp_path))
    assert len(items) == 1_000
    assert not [item.source for item in items if router.match_item(item)]


def test_make_bench_is_not_part_of_ci():
    assert "bench" not in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    test_target = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "bench" not in test_target
