"""`invokedBy` exempts only the explicit AWS services in connect_guard.principals.EXEMPT_SERVICES.

Someone who forges a record writes whatever `invokedBy` they like; the AWSService identity type
alone exempts nothing either.
"""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard.events import CloudTrailRecord
from connect_guard.principals import EXEMPT_SERVICES, Actor, exempt_service
from connect_guard.responders import role_quarantine
from connect_guard.responders.role_quarantine import exemption
from connect_guard.settings import Settings

SETTINGS = Settings(alert_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts", dedup_table_name="dedup")
IAM_USER = {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory", "accountId": "111122223333"}
# Forged, lookalike, or real but not exempt (Connect itself deletes no role on anyone's behalf here).
NOT_EXEMPT = ["attacker.example.com", "evil.amazonaws.com", "connect.amazonaws.com"]


def actor(identity: dict[str, Any]) -> Actor:
    record = {
        "userIdentity": identity,
        "eventTime": "2026-12-01T09:00:00Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": "DeleteRole",
        "awsRegion": "us-east-1",
        "eventID": "e-1",
    }
    return Actor.from_record(CloudTrailRecord.model_validate(record))


# ---- the allowlist ------------------------------------------------------------------------------
def test_the_allowlist_is_explicit_and_each_entry_says_why() -> None:
    assert set(EXEMPT_SERVICES) == {"cloudformation.amazonaws.com", "synchronization.connect.amazonaws.com"}
    assert all(why for why in EXEMPT_SERVICES.values())
    assert set(role_quarantine.QUARANTINE_EXEMPT_SERVICES) <= set(EXEMPT_SERVICES)


@pytest.mark.parametrize("invoked_by", [*NOT_EXEMPT, None, "", "CLOUDFORMATION.AMAZONAWS.COM"])
def test_no_other_invoked_by_exempts_and_neither_does_the_aws_service_type(invoked_by: str | None) -> None:
    for kind in ("IAMUser", "AWSService"):
        claimed = actor({**IAM_USER, "type": kind, "invokedBy": invoked_by})
        assert exempt_service(claimed, EXEMPT_SERVICES) is None
        assert exemption(claimed, SETTINGS) is None, (kind, invoked_by)


def test_cloudformation_is_exempt_from_the_quarantine_and_replication_is_not() -> None:
    cfn = actor({**IAM_USER, "invokedBy": "cloudformation.amazonaws.com"})
    assert (exemption(cfn, SETTINGS) or "").startswith("an AWS service (cloudformation.amazonaws.com) made the call")
    replication = actor({"type": "AWSService", "invokedBy": "synchronization.connect.amazonaws.com"})
    assert exemption(replication, SETTINGS) is None  # replication deletes no role: nothing to excuse


def test_the_deploy_role_goes_with_its_unique_id() -> None:
    from connect_guard.errors import ConfigurationError
    from connect_guard.settings import Settings

    base = {"ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t", "DEDUP_TABLE_NAME": "dedup"}
    with pytest.raises(ConfigurationError, match="SUITE_DEPLOY_ROLE_ARN and SUITE_DEPLOY_ROLE_ID go together"):
        Settings.from_env({**base, "SUITE_DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/Deployer"})
    with pytest.raises(ConfigurationError, match="SUITE_DEPLOY_ROLE_ID"):
        Settings.from_env(
            {**base, "SUITE_DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/D", "SUITE_DEPLOY_ROLE_ID": "x"}
        )
    both = Settings.from_env(
        {
            **base,
            "SUITE_DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/D",
            "SUITE_DEPLOY_ROLE_ID": "AROAZ7QXK3CFNDEPLOY1",
        }
    )
    assert both.suite_deploy_role_id == "AROAZ7QXK3CFNDEPLOY1"
