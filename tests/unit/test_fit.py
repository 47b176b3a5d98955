"""publisher.fit: every finding within SNS's budget, shortened deterministically and visibly."""

from __future__ import annotations

from connect_guard.findings import Attempt, EventRef, Finding, PolicyRef, console_url
from connect_guard.policy import Severity, action_risk, analyse, parse_document
from connect_guard.principals import Actor
from connect_guard.publisher import BUDGET, _size, fit

EVENT = EventRef("e1", "PutRolePolicy", "iam.amazonaws.com", "2026-11-20T10:00:00Z", "111122223333", "us-east-1", "")


def finding(**overrides) -> Finding:
    values = {
        "responder": "policy_alerts",
        "kind": "iam.policy_change",
        "severity": Severity.HIGH,
        "title": "inline policy put on role r",
        "summary": "s",
        "event": EVENT,
        "actor": Actor.system("tester"),
        "attempt": Attempt("succeeded"),
        "allowlisted": False,
        "reasons": ("r",),
        "runbook_url": "https://example.com/runbook",
        "environment": "dev",
        "mode": "enforce",
        "created_at": "2026-11-20T10:00:01+00:00",
    }
    return Finding(**{**values, **overrides})


def test_a_finding_within_budget_is_published_as_it_is():
    small = finding()
    assert fit(small) is small


def test_huge_strings_and_lists_are_cut_visibly_and_the_same_way_every_time():
    huge = finding(reasons=("x" * 300_000, *(f"reason {i}" for i in range(5_000))), summary="y" * 100_000)
    fitted = fit(huge)
    assert _size(fitted) <= BUDGET and fit(huge) == fitted
    assert fitted.truncated == ("summary", "reasons[]", "reasons")
    assert fitted.reasons[0].endswith("… [295,904 characters cut]") and fitted.reasons[-1] == "… and 4,951 more"
    assert fitted.to_dict()["truncated"] == ["summary", "reasons[]", "reasons"]


def test_grants_of_a_huge_inline_policy_point_at_the_cloudtrail_event():
    actions = [f"svc{i % 40}:Get{i}" for i in range(12_000)] + ["iam:CreateAccessKey"]
    analysis = analyse(parse_document({"Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    policy = PolicyRef("inline", None, "p", grants=tuple(analysis.grants), grants_total=analysis.grants_total)
    # Padded so the grants alone do not decide: the whole message is over budget.
    fitted = fit(finding(policy=policy, summary="z" * 60_000))
    assert fitted.truncated == ("policy.grants",) and _size(fitted) <= BUDGET
    (grant,) = fitted.policy.grants if fitted.policy else ()
    assert grant.startswith("Allow 12,001 actions in 41 services on *: iam:CreateAccessKey, svc0:Get0, ")
    assert "(full document: requestParameters.policyDocument of CloudTrail event e1)" in grant


def test_actions_are_ranked_escalation_connect_writes_wildcards_writes_reads():
    ranked = ["iam:Put*", "connect:UpdateUser*", "ec2:*", "ec2:RunInstances", "ec2:DescribeInstances"]
    assert [action_risk(a) for a in ranked] == [0, 1, 2, 3, 4]


def test_console_links_quote_what_the_event_says():
    url = console_url("evil.example/x?", "1#<!channel>")
    assert url.startswith("https://evil.example%2Fx%3F.console.aws.amazon.com/") and "<" not in url
