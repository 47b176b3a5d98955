"""Every sample in events/ through the replay: routed by template.yaml's patterns, processed by
the real responder against the embedded AWS, and checked against events/expectations.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from connect_guard.profile_access import ProfileAccess
from connect_guard.responders.connect_user_guard import FieldChange
from connect_guard_tools.config import replay_parameters, settings_values
from connect_guard_tools.inputs import iter_inputs
from connect_guard_tools.local_aws import LocalAws
from connect_guard_tools.replay import Replayer, ReplayResult
from tests.conftest import EVENTS

EXPECTATIONS: dict[str, Any] = yaml.safe_load((EVENTS / "expectations.yaml").read_text())


def _expected_items() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, expected in EXPECTATIONS.items():
        if "records" in expected:
            for index, record in enumerate(expected["records"]):
                yield f"{path}#{index}", record
        else:
            yield path, expected


def dig(body: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        body = body[int(part)] if isinstance(body, list) else body[part]
    return body


@pytest.fixture(scope="module")
def results() -> dict[str, ReplayResult]:
    """Replay the whole corpus once, with the dev configuration from samconfig.toml."""
    with LocalAws.for_replay() as aws:  # as the replay command runs it
        aws.seed(EVENTS / "demo-state.yaml")
        parameters = replay_parameters("default")
        replayer = Replayer(aws, aws.settings(**settings_values(parameters)))
        replayed = {}
        for item in iter_inputs([EVENTS], root=EVENTS):
            source = item.source.replace(".jsonl:", ".jsonl#")
            if source.endswith(".jsonl") or ".jsonl#" in source:  # JSON Lines count from line 1
                head, _, line = source.rpartition("#")
                source = f"{head}#{int(line) - 1}"
            replayed[source] = replayer.replay(item)
        replayed["__inbox__"] = aws.inbox()  # type: ignore[assignment]
        return replayed


def test_every_sample_has_an_expectation(results):
    replayed = {k for k in results if k != "__inbox__"}
    assert replayed == {key for key, _ in _expected_items()}


@pytest.mark.parametrize(("source", "expected"), list(_expected_items()), ids=lambda v: v if isinstance(v, str) else "")
def test_sample_produces_the_expected_outcome(results, source, expected):
    result = results[source]
    assert result.rules == expected.get("rules", []), "matched by the wrong rules"
    assert result.outcome == expected["outcome"], result.reason
    if expected["outcome"] == "error":
        assert expected["error_contains"] in (result.reason or "").lower()
        return
    if "reason_contains" in expected:
        assert expected["reason_contains"] in (result.reason or "")
    if expected["outcome"] not in ("alerted", "rolled_back", "rejected"):
        assert result.alerts == [] and result.finding is None
        assert not [a for a in result.actions if a["service"] == "sns"]
        return
    assert result.severity == expected["severity"]
    # One alert per rule that alerted (an event two rules match may alert twice: `alerts`).
    severities = expected.get("alerts", [expected["severity"]])
    assert [a["severity"] for a in result.alerts] == severities
    for dotted, value in (expected.get("finding") or {}).items():
        assert dig(result.finding, dotted) == value, dotted
    calls = [f"{a['service']}:{a['operation']}" for a in result.actions]
    # One publish per alert, the last call of its route: the dedup claim comes first and is never
    # completed; detect mode never changes Connect.
    assert calls.count("sns:Publish") == len(severities)
    assert calls[0] == "dynamodb:PutItem"
    if len(result.rules) == 1:
        assert calls[-1] == "sns:Publish"
    assert not [c for c in calls if c.startswith("connect:")]
    if result.matched == ["policy_alerts"]:
        assert len(calls) == 2


def test_every_alert_reached_the_soc_inbox_with_filterable_attributes(results):
    alerted = [r for k, r in results.items() if k != "__inbox__" and r.outcome in ("alerted", "rejected")]
    inbox = results["__inbox__"]
    assert len(inbox) == sum(len(r.alerts) for r in alerted)
    for message in inbox:
        attributes = message["MessageAttributes"]
        assert set(attributes) == {"severity", "event_name", "account", "responder", "kind"}
        assert attributes["responder"]["Value"] in (
            "policy_alerts",
            "profile_rollback",
            "role_quarantine",
            "logging_guard",
            "event_scope",
            "liveness",
        )
        subject = message["Subject"]
        assert subject.isascii() and len(subject) < 100 and "\n" not in subject


def _shown(user: dict[str, Any], field: str) -> str:
    """A user's value of a connect_user_guard field, as its findings show it."""
    if field == "hierarchy":
        value: str | None = user.get("HierarchyGroupId", "")
    elif field.startswith("tag:"):
        value = user["Tags"].get(field.removeprefix("tag:"))
    else:
        value = user["IdentityInfo"].get(field, "")
    return FieldChange(field, value, None).shown(value)


# The UpdateSecurityProfile fields that restore a profile's restrictions and applications.
ACCESS_FIELDS = {
    "AllowedAccessControlTags",
    "TagRestrictedResources",
    "HierarchyRestrictedResources",
    "AllowedAccessControlHierarchyGroupId",
    "Applications",
}


def test_enforce_mode_rolls_back_every_escalation_sample_to_the_state_it_reports():
    with LocalAws.for_replay() as aws:  # as the replay command runs it
        aws.seed(EVENTS / "demo-state.yaml")
        parameters = replay_parameters("default", {"ResponseMode": "enforce"})
        replayer = Replayer(aws, aws.settings(**settings_values(parameters)))
        (instance,) = aws.instances
        names = {
            p["Id"]: p["Name"]
            for p in aws.session.client("connect").list_security_profiles(InstanceId=instance.instance_id)[
                "SecurityProfileSummaryList"
            ]
        }
        rolled_back = 0
        for item in iter_inputs([EVENTS / "connect"], root=EVENTS):
            expected = EXPECTATIONS[item.source]
            result = replayer.replay(item)
            if "actions.0.operation" not in (expected.get("finding") or {}):
                assert result.outcome == expected["outcome"], item.source
                continue
            rolled_back += 1
            connect, change = result.finding["connect"], result.finding["change"]
            if result.finding["kind"] == "connect.user_change":  # identity, hierarchy group, tags
                assert result.outcome == "restored", (item.source, result.reason)
                user = aws.connect.user(instance.instance_id, connect["user_id"])
                assert [_shown(user, field) for field in change["gained"]] == change["after"], item.source
                continue
            assert result.outcome == "rolled_back", (item.source, result.reason)
            if result.finding["target"]["kind"] == "connect_user":
                now = aws.connect.user(instance.instance_id, connect["user_id"])["SecurityProfileIds"]
                assert sorted(names[i] for i in now) == change["after"], item.source
            else:
                profile = aws.connect.profile(instance.instance_id, connect["security_profile_id"])
                now = profile["Permissions"]
                if set(result.finding["actions"][0]["parameters"]) & ACCESS_FIELDS:  # restrictions restored too
                    now = now + sorted(ProfileAccess.from_api(profile, profile["Applications"]).markers())
                assert now == change["after"], item.source
            assert set(change["gained"]).isdisjoint(change["after"])
        assert rolled_back >= 6
        audit = aws.audit_records()
        assert (
            len([a for a in audit if a["status"]["S"] == "taken" and a["action"]["S"] != "ApproveBaseline"])
            == rolled_back
        )
        # The allowlisted pipeline's Admin grant was not approved: the sweep still sees it.
        from connect_guard.sweep import build

        (swept,) = build(replayer.settings, aws.clients).run()
        assert "k.lindqvist" in {d.name for d in swept.drift if d.kind == "connect_user"}


def test_enforce_mode_quarantines_the_sample_actors_and_release_lifts_it():
    from connect_guard.quarantine import SUITE_TAG_KEYS
    from connect_guard.responders import role_quarantine

    with LocalAws.for_replay() as aws:  # as the replay command runs it
        aws.seed(EVENTS / "demo-state.yaml")
        settings = aws.settings(**settings_values(replay_parameters("default", {"ResponseMode": "enforce"})))
        replayer = Replayer(aws, settings)
        outcomes = {
            item.source: replayer.replay(item).outcome for item in iter_inputs([EVENTS / "quarantine"], root=EVENTS)
        }
        assert outcomes["quarantine/delete-role-connect-slr-denied-iam-user.json"] == "quarantined"
        assert outcomes["quarantine/delete-role-by-root.json"] == "alerted"
        # IAM lets only AWS modify an Identity Center role: that sample alerts, and attaches nothing.
        assert outcomes["quarantine/delete-role-federation-succeeded-sso.json"] == "alerted"
        iam = aws.account_session("111122223333").client("iam")
        policy = "arn:aws:iam::111122223333:policy/connect-guard/connect-guard-quarantine"
        attached = [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName="mallory.ops")["AttachedPolicies"]]
        assert attached == [policy]
        sso = "AWSReservedSSO_AdministratorAccess_5e4e8d7a17fe85dc"

        def quarantined(role: str) -> bool:
            return policy in [
                p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
            ]

        # The role behind the other assumed-role sample gets the policy; no inline policy is written.
        assert {r["RoleName"] for r in iam.list_roles()["Roles"] if quarantined(r["RoleName"])} == {
            "ConnectOpsAutomation"
        }
        assert iam.list_role_policies(RoleName="ConnectOpsAutomation")["PolicyNames"] == [
            "RunbookOperations"
        ]  # its own
        assert not set(SUITE_TAG_KEYS) & {t["Key"] for t in iam.list_role_tags(RoleName=sso)["Tags"]}

        responder = role_quarantine.build(settings, aws.clients)
        role_quarantine.release(responder, "111122223333", user="mallory.ops", role=None, by="soc", reason="cleared")
        role = "ConnectOpsAutomation"
        role_quarantine.release(responder, "111122223333", user=None, role=role, by="soc", reason="cleared")
        assert iam.list_attached_user_policies(UserName="mallory.ops")["AttachedPolicies"] == []
        assert not quarantined(role)
        assert not set(SUITE_TAG_KEYS) & {t["Key"] for t in iam.list_role_tags(RoleName=role)["Tags"]}
