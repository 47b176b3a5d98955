"""Pure decisions of the Connect user guard (identity info, hierarchy group, tags) and their drift."""

from __future__ import annotations

import pytest

from connect_guard.baseline import InstanceBaseline, ProfileBaseline, UserBaseline
from connect_guard.connect import ConnectUser, InstanceRef
from connect_guard.errors import ConfigurationError
from connect_guard.profile_access import ProfileAccess
from connect_guard.responders.connect_user_guard import (
    FieldChange,
    hierarchy_changes,
    identity_changes,
    outside_domains,
    restore_calls,
    tag_changes,
)
from connect_guard.settings import Settings
from connect_guard.sweep import diff

INSTANCE = InstanceRef("111122223333", "us-east-1", "i-1")
APPROVED_IDENTITY = (("Email", "a@example.com"), ("FirstName", "Ada"), ("LastName", "Admin"), ("SecondaryEmail", ""))


def user(
    identity: dict[str, str] | None = None, group: str = "g-admin", tags: dict[str, str] | None = None
) -> ConnectUser:
    info = {"Email": "a@example.com", "FirstName": "Ada", "LastName": "Admin", "Mobile": "+15550100"}
    info |= identity or {}
    return ConnectUser(
        "u-1",
        "a.admin",
        frozenset({"p-admin"}),
        identity=tuple(sorted(info.items())),
        hierarchy_group_id=group,
        tags=tuple(sorted((tags if tags is not None else {"Department": "Admin"}).items())),
    )


def baseline(**fields: object) -> UserBaseline:
    values: dict[str, object] = {
        "identity": APPROVED_IDENTITY,
        "hierarchy_group_id": "g-admin",
        "tags": (("Department", "Admin"),),
    }
    values |= fields
    return UserBaseline("u-1", "a.admin", frozenset({"p-admin"}), **values)  # type: ignore[arg-type]


def test_identity_changes_compare_only_recorded_fields_and_ignore_mobile():
    changes, unrecorded = identity_changes(user({"Email": "x@evil.example", "Mobile": "+15550199"}), baseline())
    assert changes == (FieldChange("Email", "a@example.com", "x@evil.example"),) and unrecorded == ()
    # A secondary email set where none was approved is a change too.
    changes, _ = identity_changes(user({"SecondaryEmail": "b@evil.example"}), baseline())
    assert changes == (FieldChange("SecondaryEmail", "", "b@evil.example"),)
    # Names only (a SearchUsers snapshot of an unprivileged user): the emails are unrecorded.
    names = baseline(identity=(("FirstName", "Ada"), ("LastName", "Admin")))
    changes, unrecorded = identity_changes(user({"Email": "x@evil.example"}), names)
    assert changes == () and unrecorded == ("Email", "SecondaryEmail")
    assert identity_changes(user(), None) == ((), ("FirstName", "LastName", "Email", "SecondaryEmail"))
    assert identity_changes(user(), baseline(identity=None))[1] == ("FirstName", "LastName", "Email", "SecondaryEmail")


def test_hierarchy_and_tag_changes_against_the_baseline():
    assert hierarchy_changes(user(group="g-sales"), baseline()) == (
        (FieldChange("hierarchy", "g-admin", "g-sales"),),
        (),
    )
    assert hierarchy_changes(user(), baseline()) == ((), ())
    assert hierarchy_changes(user(), baseline(hierarchy_group_id=None)) == ((), ("hierarchy",))
    changes, _ = tag_changes(user(tags={"Department": "Sales", "Team": "x", "aws:system": "y"}), baseline())
    assert changes == (FieldChange("tag:Department", "Admin", "Sales"), FieldChange("tag:Team", None, "x"))
    removed, _ = tag_changes(user(tags={}), baseline())
    assert removed == (FieldChange("tag:Department", "Admin", None),)
    assert tag_changes(user(), baseline(tags=None)) == ((), ("tags",))


def test_restore_calls_send_the_approved_values_only():
    (identity,) = restore_calls(
        "identity",
        INSTANCE,
        user({"Email": "x@evil.example"}),
        (FieldChange("Email", "a@example.com", "x@evil.example"),),
    )
    assert identity.operation == "UpdateUserIdentityInfo" and identity.status == "proposed"
    assert identity.parameters["IdentityInfo"] == {
        "Email": "a@example.com",
        "FirstName": "Ada",
        "LastName": "Admin",
        "Mobile": "+15550100",  # not compared, sent as it is: the update replaces the whole IdentityInfo
    }
    (out,) = restore_calls("hierarchy", INSTANCE, user(group="g-sales"), (FieldChange("hierarchy", "", "g-sales"),))
    assert out.parameters == {"InstanceId": "i-1", "UserId": "u-1"}  # no group: out of every group
    tags = restore_calls(
        "tags",
        INSTANCE,
        user(),
        (FieldChange("tag:Department", "Admin", "Sales"), FieldChange("tag:Team", None, "x")),
    )
    assert [(a.operation, a.parameters) for a in tags] == [
        ("TagResource", {"resourceArn": f"{INSTANCE.arn}/agent/u-1", "tags": {"Department": "Admin"}}),
        ("UntagResource", {"resourceArn": f"{INSTANCE.arn}/agent/u-1", "tagKeys": ["Team"]}),
    ]


def test_outside_domains_is_case_insensitive_and_off_without_a_list():
    mixed = user({"Email": "A@Example.COM", "SecondaryEmail": "a@example.com.evil.example"})
    assert outside_domains(mixed, ("example.com",)) == ("a@example.com.evil.example",)
    assert outside_domains(user({"Email": "x@evil.example"}), ()) == ()


def test_organization_email_domains_setting_is_validated_and_case_folded():
    required = {"ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts", "DEDUP_TABLE_NAME": "dedup"}
    settings = Settings.from_env({**required, "ORGANIZATION_EMAIL_DOMAINS": "Example.com, @corp.example.org"})
    assert settings.organization_email_domains == ("example.com", "corp.example.org")
    assert Settings.from_env(required).organization_email_domains == ()
    with pytest.raises(ConfigurationError, match="ORGANIZATION_EMAIL_DOMAINS"):
        Settings.from_env({**required, "ORGANIZATION_EMAIL_DOMAINS": "not a domain"})


def test_sweep_drift_covers_identity_hierarchy_and_tags_where_both_sides_recorded_them():
    approved = InstanceBaseline("arn")
    approved.profiles["p-admin"] = ProfileBaseline("p-admin", "Admin", frozenset({"Users.Edit"}), ProfileAccess())
    approved.users["u-1"] = baseline()
    approved.users["u-2"] = UserBaseline("u-2", "old", frozenset({"p-admin"}))  # an older item: no identity
    current = InstanceBaseline("arn")
    current.profiles["p-admin"] = approved.profiles["p-admin"]
    now = user({"Email": "x@evil.example"}, group="g-sales", tags={"Department": "Sales"})
    current.users["u-1"] = UserBaseline(
        "u-1",
        "a.admin",
        frozenset({"p-admin"}),
        tuple((k, v) for k, v in now.identity if k != "Mobile"),
        now.hierarchy_group_id,
        now.tags,
    )
    current.users["u-2"] = UserBaseline("u-2", "old", frozenset({"p-admin"}), (("FirstName", "Z"),), "g-x", ())
    (drift,) = diff(current, approved)
    assert drift.id == "u-1"
    assert drift.added == {"Email=x@evil.example", "hierarchy=g-sales", "tag:Department=Sales"}
    assert drift.removed == {"Email=a@example.com", "hierarchy=g-admin", "tag:Department=Admin"}


def test_an_email_domain_is_the_organizations_only_when_it_is_exactly_one_of_them():
    domains = ("example.com",)
    inside = user({"Email": "a@EXAMPLE.com", "SecondaryEmail": ""})
    assert outside_domains(inside, domains) == ()
    for forged in (
        "a@example.com.attacker.net",  # the domain as a prefix
        "a@attacker-example.com",  # as a suffix
        "a@sub.example.com",  # a subdomain is not the domain listed
        "example.com@attacker.net",  # the domain as the local part
        "a@example.com@attacker.net",  # two at signs: the last decides
    ):
        assert outside_domains(user({"Email": forged}), domains) == (forged,), forged
    assert outside_domains(user({"SecondaryEmail": "x@attacker.net"}), domains) == ("x@attacker.net",)
    assert outside_domains(user({"Email": "a@attacker.net"}), ()) == ()  # no list: no domain check
