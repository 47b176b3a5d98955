"""The replay's EventBridge matcher agrees with moto's reference implementation."""

from __future__ import annotations

import json

import pytest
from moto.events.models import EventPattern

from connect_guard_tools.inputs import iter_inputs
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
