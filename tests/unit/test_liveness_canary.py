"""Which writes count as the suite's canary: the exact role of the event's own account, on its own
resource, with the canary tag, succeeded. Pure: no AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connect_guard import liveness
from connect_guard.events import CloudTrailEvent
from connect_guard.settings import Settings
from tests.conftest import load_event

SETTINGS = Settings(
    alert_topic_arn="arn:aws:sns:us-east-1:123456789012:connect-guard-alerts",
    dedup_table_name="dedup",
    member_account_ids=("111122223333",),
    connect_instance_arns=(
        "arn:aws:connect:eu-west-2:111122223333:instance/f3c95789-ace1-4954-ac5d-6baed2eac902",
        "arn:aws:connect:us-east-1:999988887777:instance/00000000-0000-4000-8000-000000000000",
    ),
)


def parsed(name: str, edit: Any = None) -> CloudTrailEvent:
    event = load_event(f"liveness/{name}")
    if edit:
        edit(event)
    return CloudTrailEvent.model_validate(json.loads(json.dumps(event)))


def test_the_genuine_canaries_count():
    assert liveness.not_a_canary(parsed("iam-canary.json"), SETTINGS) == ("iam", "")
    assert liveness.not_a_canary(parsed("connect-canary-after-silence.json"), SETTINGS) == ("connect", "")


def _tag_other_role(event: dict[str, Any]) -> None:
    event["detail"]["requestParameters"]["roleName"] = "ConnectPlatformAdmin"


def _other_tag(event: dict[str, Any]) -> None:
    event["detail"]["requestParameters"]["tags"] = [{"key": "owner", "value": "x"}]


def _other_account_instance(event: dict[str, Any]) -> None:
    arn = "arn:aws:connect:us-east-1:444455556666:instance/f3c95789-ace1-4954-ac5d-6baed2eac902"
    event["detail"]["requestParameters"]["resourceArn"] = arn


def _iam_outside_us_east_1(event: dict[str, Any]) -> None:
    event["detail"]["awsRegion"] = event["region"] = "eu-west-2"


def _another_environment(event: dict[str, Any]) -> None:
    issuer = event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]
    issuer["arn"] = issuer["arn"].replace("-dev-", "-prod-")


@pytest.mark.parametrize(
    ("sample", "edit", "reason"),
    [
        ("iam-canary.json", _tag_other_role, "tags role 'ConnectPlatformAdmin', not the canary role"),
        ("iam-canary.json", _other_tag, "no connect-guard:canary tag in the request"),
        ("iam-canary.json", _iam_outside_us_east_1, "an IAM canary recorded in eu-west-2, not us-east-1"),
        ("iam-canary.json", _another_environment, "connect-guard-prod-member-canary, not arn:aws:iam"),
        ("connect-canary-after-silence.json", _other_account_instance, "not a Connect instance of 111122223333"),
        ("iam-canary-forged-path.json", None, "role/attacker/connect-guard-dev-member-canary, not"),
        ("iam-canary-denied.json", None, "the canary write was denied (AccessDenied)"),
    ],
)
def test_anything_else_does_not_count_and_says_why(sample, edit, reason):
    service, why = liveness.not_a_canary(parsed(sample, edit), SETTINGS)
    assert service is not None and reason in why


def test_expected_sources_are_iam_per_enrolled_account_and_connect_per_enrolled_instance_region():
    assert liveness.expected_sources(SETTINGS) == [
        liveness.Source("123456789012", "us-east-1", "iam"),
        liveness.Source("111122223333", "us-east-1", "iam"),
        liveness.Source("111122223333", "eu-west-2", "connect"),  # 999988887777 is not enrolled
    ]


def _security_account(event: dict[str, Any]) -> None:
    text = json.dumps(event).replace("111122223333", "123456789012")
    event.clear()
    event.update(json.loads(text))


def test_the_security_accounts_canary_needs_the_stacks_role_id_too():
    """Read from CANARY_ROLE_ID (template.yaml: CanaryRole.RoleId); a member account's canary is
    known by its ARN alone, the security account's by ARN and unique ID."""
    env = {
        "ALERT_TOPIC_ARN": SETTINGS.alert_topic_arn,
        "DEDUP_TABLE_NAME": "dedup",
        "MEMBER_ACCOUNT_IDS": "111122223333",
        "CANARY_ROLE_ID": "AROAHCXANKA6CANARY01",
    }
    settings = Settings.from_env(env)
    assert settings.canary_role_id == "AROAHCXANKA6CANARY01"
    assert liveness.not_a_canary(parsed("iam-canary.json", _security_account), settings) == ("iam", "")
    assert liveness.not_a_canary(parsed("iam-canary.json"), settings) == ("iam", "")
    other = settings.model_copy(update={"canary_role_id": "AROAHCXANKA6RECREATED"})
    service, why = liveness.not_a_canary(parsed("iam-canary.json", _security_account), other)
    assert service == "iam" and "unique ID AROAHCXANKA6CANARY01 is not the stack's AROAHCXANKA6RECREATED" in why
    # Without the ID (an older deployment), the ARN alone decides, as for member accounts.
    unset = settings.model_copy(update={"canary_role_id": None})
    assert liveness.not_a_canary(parsed("iam-canary.json", _security_account), unset) == ("iam", "")


def test_a_canary_role_id_that_is_no_role_id_is_a_configuration_error():
    from connect_guard.errors import ConfigurationError

    env = {"ALERT_TOPIC_ARN": SETTINGS.alert_topic_arn, "DEDUP_TABLE_NAME": "dedup", "CANARY_ROLE_ID": "canary"}
    with pytest.raises(ConfigurationError, match="CANARY_ROLE_ID"):
        Settings.from_env(env)
