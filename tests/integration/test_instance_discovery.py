"""Instance discovery in the sweep: instances ConnectInstanceArns does not name are reported once
per change of the unwatched set; a listing that fails says it could not check."""

from __future__ import annotations

import json

from connect_guard.discovery import KIND, KIND_UNCHECKED, DiscoveryState, Scope
from connect_guard.sweep import build
from connect_guard_tools.local_aws import SECURITY_ACCOUNT

MEMBER = "111122223333"  # the demo state's source account, its instance configured
ROGUE = "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"
ROGUE_2 = "1c2d3e4f-5061-4b72-8c83-a4b5c6d7e8f9"


def run(aws, **overrides):
    sweep = build(aws.settings(**overrides), aws.clients)
    sweep.run()
    assert sweep.discovery is not None
    return sweep.discovery


def discovery_findings(aws) -> list[dict]:
    found = [json.loads(m["Message"]) for m in aws.inbox()]
    return [f for f in found if f["kind"] in (KIND, KIND_UNCHECKED)]


def test_an_account_with_only_watched_instances_is_quiet(aws):
    result = run(aws)
    assert [listing.scope for listing in result.listings] == [Scope(MEMBER, "us-east-1")]
    assert result.unwatched == () and result.failed == () and result.finding_ids == []
    assert discovery_findings(aws) == []
    calls = [name for name, _ in aws.connect.calls if name == "ListInstances"]
    assert calls == ["ListInstances"]  # one page


def test_an_unwatched_instance_is_reported_with_its_arn_alias_and_creation_time(aws):
    arn = aws.connect.add_instance(MEMBER, "us-east-1", ROGUE, "shadow-centre")
    aws.connect.add_instance(MEMBER, "eu-west-1", ROGUE_2, "elsewhere")  # no instance expected there: not listed
    aws.connect.add_instance("444455556666", "us-east-1", "a-stranger", "stranger")  # another account's

    result = run(aws)

    assert [i.arn for i in result.unwatched] == [arn] and result.new == {arn}
    (finding,) = discovery_findings(aws)
    assert finding["severity"] == "MEDIUM" and finding["kind"] == KIND
    assert finding["title"] == "1 Connect instance(s) not in ConnectInstanceArns (1 new)"
    (listed, advice) = finding["reasons"]
    created = result.unwatched[0].created
    assert created.startswith("20")  # ISO 8601 from ListInstances' CreatedTime
    assert listed == f"{arn} (alias shadow-centre, created {created}), new since the last report"
    assert "ConnectInstanceArns" in advice
    assert finding["event"]["account_id"] == MEMBER


def test_the_same_unwatched_set_is_not_re_alerted_and_a_new_instance_is(aws):
    first = aws.connect.add_instance(MEMBER, "us-east-1", ROGUE, "shadow-centre")
    run(aws)
    assert len(discovery_findings(aws)) == 1

    again = run(aws)
    assert [i.arn for i in again.unwatched] == [first]  # still unwatched, still known
    assert again.new == frozenset() and discovery_findings(aws) == []

    second = aws.connect.add_instance(MEMBER, "us-east-1", ROGUE_2, "second-shadow")
    third = run(aws)
    assert third.new == {second}
    (finding,) = discovery_findings(aws)
    assert finding["title"] == "2 Connect instance(s) not in ConnectInstanceArns (1 new)"
    # Both listed (by ARN: ROGUE sorts first); only the new one is marked.
    assert finding["reasons"][0].startswith(first) and not finding["reasons"][0].endswith("last report")
    assert finding["reasons"][1].startswith(second) and finding["reasons"][1].endswith("new since the last report")
    state = DiscoveryState(aws.clients.dynamodb, aws.baseline_table)
    assert state.reported(Scope(MEMBER, "us-east-1")) == {first, second}


def test_an_instance_added_to_the_configuration_is_no_longer_reported(aws):
    rogue = aws.connect.add_instance(MEMBER, "us-east-1", ROGUE, "shadow-centre")
    run(aws)
    discovery_findings(aws)
    configured = (*aws.settings().connect_instance_arns, rogue)
    result = run(aws, connect_instance_arns=configured)
    assert result.unwatched == ()
    assert DiscoveryState(aws.clients.dynamodb, aws.baseline_table).reported(Scope(MEMBER, "us-east-1")) == set()
    assert discovery_findings(aws) == []  # the set shrank: nothing new to say


def test_a_denied_listing_alerts_could_not_check_and_keeps_the_last_reported_set(aws):
    rogue = aws.connect.add_instance(MEMBER, "us-east-1", ROGUE, "shadow-centre")
    run(aws)
    discovery_findings(aws)

    aws.connect.fail_next("ListInstances", "AccessDeniedException")
    denied = run(aws)

    assert [listing.scope for listing in denied.failed] == [Scope(MEMBER, "us-east-1")]
    (finding,) = discovery_findings(aws)
    assert finding["kind"] == KIND_UNCHECKED and finding["severity"] == "HIGH"
    assert finding["reasons"][0].startswith(f"COULD NOT CHECK {MEMBER} in us-east-1: AccessDeniedException")
    assert finding["attempt"]["status"] == "failed"
    # Fail closed, not forgetful: the set reported before stands, so the next listing is quiet.
    assert run(aws).new == frozenset() and discovery_findings(aws) == []
    assert DiscoveryState(aws.clients.dynamodb, aws.baseline_table).reported(Scope(MEMBER, "us-east-1")) == {rogue}


def test_an_account_not_enrolled_cannot_be_checked(aws):
    stranger = f"arn:aws:connect:us-east-1:444455556666:instance/{ROGUE}"
    # The discovery alone: the sweep of that instance would stop at the same refusal first.
    sweep = build(aws.settings(connect_instance_arns=(*aws.settings().connect_instance_arns, stranger)), aws.clients)
    result = sweep.discover()
    assert [listing.scope.account_id for listing in result.failed] == ["444455556666"]
    assert "MemberAccessError" in (result.failed[0].error or "")
    assert [f["kind"] for f in discovery_findings(aws)] == [KIND_UNCHECKED]


def test_the_security_accounts_own_instances_are_listed_directly(aws):
    own = aws.connect.add_instance(SECURITY_ACCOUNT, "eu-west-2", ROGUE, "own-eu")
    unwatched = aws.connect.add_instance(SECURITY_ACCOUNT, "eu-west-2", ROGUE_2, "own-eu-2")
    result = run(aws, connect_instance_arns=(*aws.settings().connect_instance_arns, own))
    assert Scope(SECURITY_ACCOUNT, "eu-west-2") in [listing.scope for listing in result.listings]
    assert [i.arn for i in result.unwatched] == [unwatched]


def test_a_look_alike_of_the_watched_instance_is_still_reported(aws):
    """Watched means the exact configured ARN: an instance borrowing the watched one's alias, or an
    ID that differs only in case from a watched ID, is another instance."""
    (watched,) = aws.settings().connect_instance_arns
    watched_id = watched.rsplit("/", 1)[1]
    alias_twin = aws.connect.add_instance(MEMBER, "us-east-1", ROGUE, "acme-contact-centre")
    case_twin = aws.connect.add_instance(MEMBER, "us-east-1", watched_id.upper(), "acme-contact-centre")

    result = run(aws)

    assert {i.arn for i in result.unwatched} == {alias_twin, case_twin}
    assert watched not in {i.arn for i in result.unwatched}
    (finding,) = discovery_findings(aws)
    assert finding["title"] == "2 Connect instance(s) not in ConnectInstanceArns (2 new)"
