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


def _reference_to_dict(f: Finding) -> dict:
    """Finding.to_dict as dataclasses.asdict makes it, tuple fields as lists."""
    from dataclasses import asdict

    body = asdict(f, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v for k, v in items})
    body["severity"] = str(f.severity)
    body["actor"]["allowlisted"] = f.allowlisted
    body["actor"]["display"] = f.actor.display
    del body["allowlisted"]
    return {"schema": "connect-guard/finding", "schema_version": "1.2", "finding_id": f.finding_id, **body}


def test_a_finding_serialises_as_asdict_would_and_each_rendering_is_computed_once():
    import json
    from dataclasses import replace
    from datetime import UTC, datetime

    from connect_guard.findings import Action, Change, ConnectRef, Target
    from connect_guard.publisher import sns_message

    nested = {"Statement": [{"Action": ("iam:*",), "Condition": {"k": [1, 2.5, None, True]}}], "n": ("a", ("b",))}
    rich = finding(
        target=Target("role", "r", "arn:aws:iam::111122223333:role/r"),
        policy=PolicyRef("inline", None, "p", grants=("Allow iam:* on *",)),
        connect=ConnectRef("i-1", "arn:aws:connect:us-east-1:111122223333:instance/i-1", user_id="u"),
        change=Change(("A",), (), ("B", "C"), "approved"),
        actions=(Action("iam", "PutRolePolicy", nested, "proposed"),),
        snapshot={"role_name": "r", "tags": {"a": "b"}, "managed_policies": ["x"]},
        truncated=("policy.grants",),
    )
    body = rich.to_dict()
    assert body == _reference_to_dict(rich) and repr(body) == repr(_reference_to_dict(rich))
    # A copy, not the finding's own values: changing it changes nothing in the finding.
    body["actions"][0]["parameters"]["Statement"][0]["Condition"]["k"].append("x")
    assert rich.actions[0].parameters["Statement"][0]["Condition"]["k"] == [1, 2.5, None, True]
    assert json.loads(rich.to_json()) == json.loads(json.dumps(_reference_to_dict(rich), default=str))
    # Encoded from the dataclasses themselves: to_dict's JSON, byte for byte, non-JSON values included.
    odd = replace(rich, actions=(Action("iam", "X", {"at": datetime(2026, 1, 2, tzinfo=UTC), "ids": {"i"}}, "taken"),))
    for each in (rich, odd):
        assert each.to_json() == json.dumps(each.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)
        assert each.published() == json.loads(each.to_json()) and each.published() is not each.published()
    assert sns_message(rich) is sns_message(rich) and rich.to_json() is rich.to_json()
    assert json.loads(sns_message(rich)) == {"default": rich.to_json(), "email": rich.text}
    # Another finding (dataclasses.replace) renders afresh.
    other = replace(rich, title="another title")
    assert other.subject == "[HIGH] another title" and '"another title"' in other.to_json()
    assert rich.subject == "[HIGH] inline policy put on role r"
