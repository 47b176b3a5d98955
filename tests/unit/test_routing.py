"""The replay's EventBridge matcher agrees with moto's reference implementation."""

from __future__ import annotations

import json

import pytest
from moto.events.models import EventPattern

from connect_guard_tools.inputs import API_CALL, InputItem, envelope_from_record, iter_inputs
from connect_guard_tools.noise import noise_record
from connect_guard_tools.routing import Router, compile_pattern
from connect_guard_tools.template import rule_routes
from tests.conftest import EVENTS

CORPUS = [item.event for item in iter_inputs([EVENTS]) if item.event is not None]
PATTERNS = [
    {"source": ["aws.iam"], "detail": {"eventName": [{"prefix": "Attach"}]}},
    {"detail": {"errorCode": [{"exists": True}]}},
    {"detail": {"errorCode": [{"exists": False}], "eventName": [{"anything-but": ["GetUserPolicy"]}]}},
    {"detail": {"userIdentity": {"type": ["Root"]}}},
    {"detail": {"eventName": [{"suffix": "Policy"}], "awsRegion": [{"equals-ignore-case": "US-EAST-1"}]}},
    {"detail": {"eventName": [{"wildcard": "Put*Policy"}]}},
    {"$or": [{"detail": {"eventName": ["CreatePolicyVersion"]}}, {"source": ["aws.ec2"]}]},
    {"detail": {"requestParameters": {"setAsDefault": [True]}}},
]


@pytest.mark.parametrize("pattern", [r.pattern for r in rule_routes()] + PATTERNS, ids=str)
def test_matches_like_moto_on_every_corpus_event(pattern):
    reference = EventPattern.load(json.dumps(pattern))
    ours = compile_pattern(pattern)
    disagreements = [e["detail"].get("eventID") for e in CORPUS if ours(e) != reference.matches_event(e)]
    assert disagreements == []


def test_policy_attachment_rule_matches_denied_attempts_and_not_reads():
    router = Router()
    by_name = {e["detail"].get("eventName"): e for e in CORPUS if e["source"] == "aws.iam"}
    assert [r.rule for r in router.match(by_name["AttachUserPolicy"])] == ["PolicyAttachmentRule"]
    assert router.match(by_name["GetUserPolicy"]) == []
    denied = next(
        e
        for e in CORPUS
        if e["source"] == "aws.iam" and e["detail"]["eventName"].startswith("Attach") and e["detail"].get("errorCode")
    )
    assert [r.responder for r in router.match(denied)] == ["policy_alerts"]


def _reference(event: dict) -> list[str]:
    """Routing as it was before records were routed raw: every pattern of the event's source
    (indexed by `source` as EventBridge shards rules), then those without one, in template order."""
    compiled = [(r, compile_pattern(r.pattern)) for r in rule_routes()]
    by_source = [
        (r, m)
        for r, m in compiled
        if isinstance(r.pattern.get("source"), list) and event.get("source") in r.pattern["source"]
    ]
    rest = [(r, m) for r, m in compiled if not isinstance(r.pattern.get("source"), list)]
    return [r.rule for r, m in (*by_source, *rest) if m(event)]


def _edge_records() -> list[dict]:
    """Records at the edges of what the rules read: each field a rule names missing, of another
    type, of another case, or a name a rule wants from a service it does not watch."""
    attach = next(i.record for i in iter_inputs([EVENTS]) if i.record and i.record["eventName"] == "AttachUserPolicy")
    put_bucket = {
        **attach,
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "requestParameters": {"bucketName": "connect-guard-archive"},
    }
    canary = {
        **attach,
        "eventName": "TagRole",
        "userIdentity": {
            "type": "AssumedRole",
            "sessionContext": {"sessionIssuer": {"userName": "connect-guard-dev-member-canary"}},
        },
        "requestParameters": {"roleName": "connect-guard-dev-member-canary"},
    }
    edges = [attach, put_bucket, canary, {**put_bucket, "requestParameters": {"bucketName": "other"}}]
    for base in (attach, put_bucket, canary):
        edges += [
            {k: v for k, v in base.items() if k != "eventName"},
            {k: v for k, v in base.items() if k != "eventSource"},
            {**base, "eventName": [base["eventName"]]},  # arrays match any element
            {**base, "eventName": base["eventName"].lower()},
            {**base, "eventName": None},
            {**base, "eventSource": "ec2.amazonaws.com"},
            {**base, "eventSource": base["eventSource"].upper()},
            {**base, "eventSource": 7},
            {**base, "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"},
            {**base, "eventSource": "kms.amazonaws.com", "eventName": "PutKeyPolicy"},
            {**base, "eventSource": "events.amazonaws.com", "eventName": "PutRule"},
            {**base, "eventSource": "connect.amazonaws.com", "eventName": "TagResource"},
        ]
    return edges


def _items_both_ways() -> list[InputItem]:
    items = [i for i in iter_inputs([EVENTS]) if i.readable]
    for index, record in enumerate(_edge_records()):
        for detail_type in ("AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"):
            items.append(InputItem.of_record(f"edge#{index}", record, detail_type))
    return items


@pytest.mark.parametrize("item", _items_both_ways(), ids=lambda i: i.source)
def test_a_record_routed_raw_routes_as_its_envelope_did(item):
    router = Router()
    raw = [r.rule for r in router.match_item(item)]
    envelope = item.event
    assert raw == _reference(envelope) == [r.rule for r in router.match(envelope)]


def test_the_equivalence_covers_records_that_match_and_records_that_do_not():
    routed = [bool(Router().match_item(i)) for i in _items_both_ways() if i.source.startswith("edge#")]
    assert routed.count(True) >= 8 and routed.count(False) >= 8


def test_noise_is_routed_without_building_its_envelope():
    router = Router()
    noise = [InputItem.of_record(f"noise#{i}", noise_record(i), "AWS API Call via CloudTrail") for i in range(64)]
    assert {r["eventSource"] for r in (i.record for i in noise)} >= {"iam.amazonaws.com", "kms.amazonaws.com"}
    assert [router.match_item(i) for i in noise] == [[]] * 64
    assert all(i._event is None for i in noise)  # no uuid5, no envelope: noise costs its parse
    iam_read = next(i.record for i in noise if i.record and i.record["eventSource"] == "iam.amazonaws.com")
    wanted = InputItem.of_record("attach#0", {**iam_read, "eventName": "AttachUserPolicy"}, API_CALL)
    assert [r.rule for r in router.match_item(wanted)] == ["PolicyAttachmentRule"]
    assert wanted._event is not None and wanted.event == envelope_from_record(wanted.record)
