"""Subjects SNS accepts, actors as an analyst reads them, and the suite's safety checks."""

import pytest

from connect_guard.errors import ConfigurationError
from connect_guard.events import CloudTrailRecord
from connect_guard.findings import sns_subject
from connect_guard.principals import Actor, allowlist_match, is_suite_principal
from connect_guard.settings import Settings

SETTINGS = Settings(
    alert_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
    dedup_table_name="dedup",
    member_role_name="connect-guard-member",
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


def assumed(role_arn: str, session: str, account: str = "111122223333") -> Actor:
    role_name = role_arn.rsplit("/", 1)[-1]
    return Actor.from_record(
        record(
            {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
                "accountId": account,
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account},
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


def test_suite_principals_are_recognised_by_role_path_and_member_role():
    own = assumed(
        "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-PolicyAlertsRole-ABC",
        "x",
        "123456789012",
    )
    member = assumed("arn:aws:iam::111122223333:role/connect-guard-member", "connect-guard-read")
    lookalike_path_elsewhere = assumed("arn:aws:iam::111122223333:role/connect-guard/evil", "x")
    session_name_only = assumed("arn:aws:iam::111122223333:role/Attacker", "connect-guard-read")
    assert is_suite_principal(own, SETTINGS)
    assert is_suite_principal(member, SETTINGS)
    assert not is_suite_principal(lookalike_path_elsewhere, SETTINGS)
    assert not is_suite_principal(session_name_only, SETTINGS)


def test_allowlist_matches_role_and_session_patterns_case_insensitively():
    actor = assumed("arn:aws:iam::111122223333:role/ConnectChangePipeline", "deploy-4711")
    assert allowlist_match(actor, ("arn:aws:iam::111122223333:role/connectchangepipeline",))
    assert allowlist_match(actor, ("arn:aws:sts::*:assumed-role/ConnectChangePipeline/deploy-*",))
    assert allowlist_match(actor, ("arn:aws:iam::111122223333:role/Other",)) is None
    assert allowlist_match(actor, ()) is None


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
            "ALLOWLISTED_PRINCIPALS": " arn:a , arn:b ,,",
            "MEMBER_ROLE_NAME": "",
        }
    )
    assert settings.allowlisted_principals == ("arn:a", "arn:b")
    assert settings.member_role_name is None
    assert settings.own_account_id == "123456789012"
