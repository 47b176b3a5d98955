"""Subjects SNS accepts, actors as an analyst reads them, and the suite's safety checks."""

import pytest

from connect_guard import arn_patterns
from connect_guard.errors import ConfigurationError
from connect_guard.events import CloudTrailRecord
from connect_guard.findings import sns_subject
from connect_guard.principals import Actor, allowlist_match, is_suite_principal
from connect_guard.settings import Settings

OWN_ROLLBACK = "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-profile-rollback"
OWN_ROLLBACK_ID = "AROAOWNROLLBACK000001"
ROLE_A, ROLE_B = "arn:aws:iam::111122223333:role/A", "arn:aws:iam::111122223333:role/B"
SETTINGS = Settings(
    alert_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
    dedup_table_name="dedup",
    member_account_ids=("111122223333",),
    suite_role_arns=(OWN_ROLLBACK,),
    suite_role_ids=(OWN_ROLLBACK_ID,),
)


def record(identity: dict) -> CloudTrailRecord:
    return CloudTrailRecord.model_validate(
        {
            "userIdentity": identity,
            "eventTime": "2026-11-20T10:00:00Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": "AttachRolePolicy",
            "awsRegion": "us-east-1",
            "eventID": "e1",
        }
    )


def assumed(role_arn: str, session: str, account: str = "111122223333", role_id: str = "AROAEXAMPLE") -> Actor:
    role_name = role_arn.rsplit("/", 1)[-1]
    return Actor.from_record(
        record(
            {
                "type": "AssumedRole",
                "principalId": f"{role_id}:{session}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
                "accountId": account,
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "principalId": role_id, "arn": role_arn, "accountId": account},
                    "attributes": {"mfaAuthenticated": "true"},
                },
            }
        )
    )


def test_subject_is_ascii_single_line_and_under_100_characters():
    subject = sns_subject("[HIGH] inline policy put on role for zoë.ångström@exemple.fr\nsecond line " + "x" * 200)
    assert subject.isascii()
    assert "\n" not in subject
    assert len(subject) < 100
    assert subject.startswith("[HIGH] inline policy put on role for zoe.angstrom@exemple.fr second line")
    assert subject.endswith("...")


def test_actor_names_the_person_behind_an_sso_session():
    actor = assumed(
        "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123456789abcdef",
        "zoë.ångström@exemple.fr",
    )
    assert actor.session_name == "zoë.ångström@exemple.fr"
    assert actor.display == "zoë.ångström@exemple.fr via role AWSReservedSSO_Admin_0123456789abcdef"
    assert actor.mfa_authenticated is True


def test_root_and_long_term_key_actors_have_no_session():
    root = Actor.from_record(
        record({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"})
    )
    assert root.display == "root user of 111122223333"
    assert root.session_issuer_arn is None and root.mfa_authenticated is None


def test_suite_principals_are_recognised_by_exact_role_arn_and_unique_id_only():
    own = assumed(OWN_ROLLBACK, "profile-rollback", "123456789012", OWN_ROLLBACK_ID)
    member_writer = assumed(
        "arn:aws:iam::111122223333:role/connect-guard/connect-guard-dev-member-rollback", "connect-guard"
    )
    assert is_suite_principal(own, SETTINGS)
    assert is_suite_principal(member_writer, SETTINGS)


@pytest.mark.parametrize(
    ("role_arn", "account", "role_id", "session"),
    [
        # A role of anyone's making under the suite's path, in the security account.
        (
            "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-policy-alerts-x",
            "123456789012",
            "AROAX",
            "s",
        ),
        # The suite's role name, deleted and re-created by an attacker: same ARN, new unique ID.
        (OWN_ROLLBACK, "123456789012", "AROARECREATED0000001", "profile-rollback"),
        # The member write role's exact name in an account that is not enrolled.
        ("arn:aws:iam::999988887777:role/connect-guard/connect-guard-dev-member-rollback", "999988887777", "A", "s"),
        # The member read role: it never writes, so its "changes" are not the suite's.
        ("arn:aws:iam::111122223333:role/connect-guard/connect-guard-dev-member-read", "111122223333", "A", "s"),
        # The member role name without the suite's path, in an enrolled account.
        ("arn:aws:iam::111122223333:role/connect-guard-dev-member-rollback", "111122223333", "A", "s"),
        # The old path-based identity: any role under /connect-guard/ in a member account.
        ("arn:aws:iam::111122223333:role/connect-guard/evil", "111122223333", "A", "s"),
        # A session named like the suite, on an ordinary role.
        ("arn:aws:iam::111122223333:role/Attacker", "111122223333", "A", "connect-guard"),
    ],
)
def test_look_alike_roles_and_sessions_are_judged_like_anyone(role_arn, account, role_id, session):
    assert not is_suite_principal(assumed(role_arn, session, account, role_id), SETTINGS)


def test_allowlist_matches_the_role_behind_a_session_case_insensitively():
    actor = assumed("arn:aws:iam::111122223333:role/ConnectChangePipeline", "deploy-4711")
    assert allowlist_match(actor, ("arn:aws:iam::111122223333:role/connectchangepipeline",))
    assert allowlist_match(actor, ("arn:aws:iam::111122223333:role/ConnectChange*",))
    assert allowlist_match(actor, ("arn:aws:iam::111122223333:role/Other",)) is None
    assert allowlist_match(actor, ()) is None


def test_a_session_name_never_allowlists():
    # A session of another role named like the pipeline, and a session-ARN pattern (refused by
    # Settings; matching ignores it too).
    impostor = assumed("arn:aws:iam::111122223333:role/Attacker", "ConnectChangePipeline")
    assert allowlist_match(impostor, ("arn:aws:iam::111122223333:role/ConnectChangePipeline",)) is None
    pipeline = assumed("arn:aws:iam::111122223333:role/ConnectChangePipeline", "deploy-4711")
    assert allowlist_match(pipeline, ("arn:aws:sts::111122223333:assumed-role/ConnectChangePipeline/*",)) is None


@pytest.mark.parametrize(
    ("pattern", "arn", "matched"),
    [
        ("arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:role/X", True),
        ("arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:role/a/b", False),  # * within one segment
        ("arn:aws:iam::111122223333:role/a/*", "arn:aws:iam::111122223333:role/a/b", True),
        ("arn:aws:iam::111122223333:role/Pipe*", "arn:aws:iam::111122223333:role/Pipe/Admin", False),
        ("arn:aws:iam::111122223333:role/X", "arn:aws:iam::444455556666:role/X", False),
        ("arn:aws:iam::111122223333:user/ci-*", "arn:aws:iam::111122223333:user/ci-bot", True),
        ("arn:aws:iam::111122223333:role/X", "arn:aws:iam::111122223333:user/X", False),
    ],
)
def test_patterns_match_segment_by_segment(pattern, arn, matched):
    assert arn_patterns.matches(pattern, arn) is matched


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("arn:aws:iam::*:role/X", "12-digit account"),
        ("arn:aws:iam::1111222233*:role/X", "12-digit account"),
        ("arn:aws:iam:::role/X", "12-digit account"),
        ("arn:aws:sts::111122223333:assumed-role/X/deploy-*", "session ARN"),
        ("ConnectChangePipeline", "must be arn:aws:iam"),
        ("arn:aws:iam::111122223333:*", "must be arn:aws:iam"),
        ("arn:aws:iam::111122223333:role/X?", "must be arn:aws:iam"),
        ("arn:*:iam::111122223333:role/X", "must be arn:aws:iam"),
    ],
)
def test_settings_refuse_patterns_that_could_fail_open_naming_the_entry(entry, reason):
    for variable in ("ALLOWLISTED_PRINCIPALS", "BASELINE_APPROVERS"):
        with pytest.raises(ConfigurationError) as error:
            Settings.from_env(
                {"ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:a", "DEDUP_TABLE_NAME": "d", variable: entry}
            )
        assert variable in str(error.value) and repr(entry) in str(error.value) and reason in str(error.value)


def test_settings_from_env_reports_every_problem_by_variable_name():
    with pytest.raises(ConfigurationError) as error:
        Settings.from_env({"ALERT_TOPIC_ARN": "not-an-arn", "RESPONSE_MODE": "destroy"})
    message = str(error.value)
    assert "ALERT_TOPIC_ARN" in message and "RESPONSE_MODE" in message and "DEDUP_TABLE_NAME" in message


def test_settings_from_env_parses_lists_and_empty_values():
    settings = Settings.from_env(
        {
            "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
            "DEDUP_TABLE_NAME": "dedup",
            "ALLOWLISTED_PRINCIPALS": f" {ROLE_A} , {ROLE_B} ,,",
            "MEMBER_ACCOUNT_IDS": "",
            "SUITE_ROLE_ARNS": OWN_ROLLBACK,
        }
    )
    assert settings.allowlisted_principals == (ROLE_A, ROLE_B)
    assert settings.member_account_ids == ()
    assert settings.suite_role_arns == (OWN_ROLLBACK,)
    assert settings.own_account_id == "123456789012"


def test_settings_refuse_malformed_account_ids_and_role_arns():
    with pytest.raises(ConfigurationError) as error:
        Settings.from_env(
            {
                "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
                "DEDUP_TABLE_NAME": "dedup",
                "MEMBER_ACCOUNT_IDS": "11112222333,abc",
                "SUITE_ROLE_ARNS": "connect-guard-dev-profile-rollback",
            }
        )
    assert "MEMBER_ACCOUNT_IDS" in str(error.value) and "SUITE_ROLE_ARNS" in str(error.value)
