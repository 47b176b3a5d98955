"""The event model refuses what CloudTrail could not have written, as poison at parse time, and
still takes every real record in the corpus."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from connect_guard.errors import PoisonEventError
from connect_guard.runtime import parse_event
from connect_guard_tools.inputs import iter_inputs
from tests.conftest import EVENTS, load_event

ATTACH = "iam/attach-user-policy-administratoraccess.json"
CONNECT = "connect/update-user-security-profiles-iam-user.json"


def changed(relative: str, *path: str, value: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event(relative))
    holder = event
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return event


REFUSED = {
    "blank eventID": (changed(ATTACH, "detail", "eventID", value=""), "detail.eventID"),
    "whitespace eventID": (changed(ATTACH, "detail", "eventID", value="   "), "detail.eventID"),
    "eventID with a space": (changed(ATTACH, "detail", "eventID", value="a b"), "detail.eventID"),
    "numeric eventID": (changed(ATTACH, "detail", "eventID", value=7), "detail.eventID"),
    "blank envelope id": (changed(ATTACH, "id", value=" "), "id"),
    "account not 12 digits": (changed(ATTACH, "account", value="1111-2222"), "account"),
    "recipient not 12 digits": (changed(ATTACH, "detail", "recipientAccountId", value=""), "recipientAccountId"),
    "region": (changed(ATTACH, "detail", "awsRegion", value="../../etc"), "awsRegion"),
    "eventSource": (changed(ATTACH, "detail", "eventSource", value="iam"), "eventSource"),
    "eventName": (changed(ATTACH, "detail", "eventName", value="Attach User Policy"), "eventName"),
    "userIdentity a string": (changed(ATTACH, "detail", "userIdentity", value="alice"), "userIdentity"),
    "policyArn a list": (changed(ATTACH, "detail", "requestParameters", "policyArn", value=["x"]), "policyArn"),
    "policyArn no ARN": (changed(ATTACH, "detail", "requestParameters", "policyArn", value="x"), "policyArn"),
    "userName a number": (changed(ATTACH, "detail", "requestParameters", "userName", value=3.5), "userName"),
    "setAsDefault a string": (
        changed(ATTACH, "detail", "requestParameters", "setAsDefault", value="y"),
        "setAsDefault",
    ),
    "UserId an object": (changed(CONNECT, "detail", "requestParameters", "UserId", value={}), "UserId"),
    "profile IDs of numbers": (
        changed(CONNECT, "detail", "requestParameters", "SecurityProfileIds", value=[1, 2]),
        "SecurityProfileIds",
    ),
    "InstanceId a broken ARN": (
        changed(CONNECT, "detail", "requestParameters", "InstanceId", value="arn:aws:connect"),
        "InstanceId",
    ),
    "parameters nested 40 deep": (
        changed(ATTACH, "detail", "requestParameters", "extra", value=json.loads("[" * 40 + "]" * 40)),
        "nested deeper than 32 levels",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_garbage_is_poison_at_parse_time(name: str) -> None:
    event, where = REFUSED[name]
    with pytest.raises(PoisonEventError, match="invalid CloudTrail event") as refused:
        parse_event(json.dumps(event))
    assert where in str(refused.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"id": "\\udc00x"}', "invalid JSON: lone leading surrogate"),
        ("[" * 300 + "]" * 300, "invalid JSON: recursion limit exceeded"),
        ('{"a": 1', "invalid JSON: EOF while parsing an object"),
        ("[1, 2]", "event is a JSON list, not an object"),
    ],
    ids=["lone surrogate", "deep nesting", "truncated", "not an object"],
)
def test_text_no_aws_service_writes_is_poison_before_validation(text: str, reason: str) -> None:
    with pytest.raises(PoisonEventError, match="^" + reason.replace("(", r"\(")):
        parse_event(text)


def test_a_dict_is_held_to_the_same_rules_as_json_text() -> None:
    event = changed(ATTACH, "detail", "userAgent", value="a\ud800b")  # what Python's json accepts
    with pytest.raises(PoisonEventError, match="can't be encoded as JSON"):
        parse_event(event)


def test_no_refusal_quotes_the_value_it_refused() -> None:
    secret = "s3cr3t value from the event"
    for path in (("detail-type",), ("detail", "eventID"), ("account",), ("detail", "awsRegion")):
        event = changed(ATTACH, *path, value=secret)
        with pytest.raises(PoisonEventError) as refused:
            parse_event(json.dumps(event))
        assert secret not in str(refused.value), path


def test_every_real_record_in_the_corpus_still_parses() -> None:
    parsed = 0
    for item in iter_inputs([EVENTS], root=EVENTS):
        if item.event is None or "malformed" in item.source:
            continue
        if item.event.get("detail-type") != "AWS API Call via CloudTrail":
            continue
        parse_event(item.event)
        parsed += 1
    assert parsed > 60
