"""The bench's events, from the corpus (events/), and the settings the replay acts with.

Each acting scenario runs in enforce mode, so that a quarantine quarantines and a rollback
rolls back: what the AWS-call budget is about.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connect_guard.settings import Settings
from connect_guard_tools.template import PROJECT_ROOT

EVENTS = PROJECT_ROOT / "events"
ENFORCE = {"ResponseMode": "enforce"}
# The Lambda's own queue in the handler runs (a record from another queue is refused).
SOURCE_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:connect-guard-bench"
# The embedded stack's quarantine role (LocalAws.settings' suite_role_arns).
SUITE_QUARANTINE_ROLE = "arn:aws:iam::123456789012:role/connect-guard/connect-guard-dev-role-quarantine"


@dataclass(frozen=True)
class Scenario:
    name: str
    responder: str
    event_file: str  # relative to events/
    kind: str  # the AWS-call budget it counts against: alert, quarantine, rollback
    expected: str  # the outcome it must have, or the measure is not of an acting event
    own_change: bool = False  # made the suite's own change: its quarantine-policy attachment

    def event(self, fresh: bool = False) -> dict[str, Any]:
        event: dict[str, Any] = json.loads((EVENTS / self.event_file).read_text())
        if self.own_change:
            event["detail"]["userIdentity"] = {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::123456789012:assumed-role/{SUITE_QUARANTINE_ROLE.rsplit('/', 1)[1]}/bench",
                "accountId": "123456789012",
                "sessionContext": {"sessionIssuer": {"type": "Role", "arn": SUITE_QUARANTINE_ROLE}},
            }
            # Another event than the one it is made from: its own eventID (and dedup record).
            event["detail"]["eventID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, event["detail"]["eventID"]))
            account = event["detail"]["recipientAccountId"]
            event["detail"]["requestParameters"]["policyArn"] = (
                f"arn:aws:iam::{account}:policy/connect-guard/connect-guard-quarantine"
            )
        if fresh:  # within the deployed functions' delivery horizon
            event = copy.deepcopy(event)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            event["time"] = now
            event["detail"]["eventTime"] = now
        return event


ACTING = (
    Scenario(
        "alert, AWS managed policy",
        "policy_alerts",
        "iam/attach-user-policy-administratoraccess.json",
        "alert",
        "alerted",
    ),
    Scenario(
        "alert, document read", "policy_alerts", "iam/attach-group-policy-customer-managed.json", "alert", "alerted"
    ),
    Scenario(
        "alert, document in event", "policy_alerts", "iam/put-user-policy-inline-notaction.json", "alert", "alerted"
    ),
    Scenario(
        "quarantine, role",
        "role_quarantine",
        "quarantine/delete-role-tagged-assumed-role.json",
        "quarantine",
        "quarantined",
    ),
    Scenario(
        "quarantine, user", "role_quarantine", "quarantine/delete-instance-connect.json", "quarantine", "quarantined"
    ),
    Scenario(
        "rollback, user profiles",
        "profile_rollback",
        "connect/update-user-security-profiles-iam-user.json",
        "rollback",
        "rolled_back",
    ),
    Scenario(
        "rollback, security profile",
        "profile_rollback",
        "connect/update-security-profile-add-recordings.json",
        "rollback",
        "rolled_back",
    ),
    # An assignment reads the set: three sso-admin reads and the publish (README "AWS calls per event").
    Scenario(
        "alert, permission set read",
        "policy_alerts",
        "sso/create-account-assignment-admin-set.json",
        "alert",
        "alerted",
    ),
)
# The one each responder's cold start and warm CPU are measured on.
COLD = {
    "policy_alerts": ACTING[0],
    "role_quarantine": ACTING[3],
    "profile_rollback": ACTING[5],
}
# Not acting: the suite's own change (an exempt identity), by responder.
NOT_ACTING = {
    "policy_alerts": Scenario(
        "own change, alert",
        "policy_alerts",
        "iam/attach-user-policy-administratoraccess.json",
        "alert",
        "ignored",
        own_change=True,
    ),
    "profile_rollback": Scenario(
        "own change, rollback",
        "profile_rollback",
        "connect/update-security-profile-by-suite.json",
        "rollback",
        "ignored",
    ),
}
NOISE_EVENT = "negatives/get-user-policy.json"


def replay_settings_values() -> dict[str, str]:
    """What `connect-guard replay --parameter-overrides ResponseMode=enforce` configures."""
    from connect_guard_tools.config import replay_parameters, settings_values

    return settings_values(replay_parameters("default", dict(ENFORCE)))


def lambda_environment(settings: Settings) -> dict[str, str]:
    """The Lambda environment that configures `settings` (Settings.from_env reads it back):
    every field that differs from its default, as FIELD_NAME=value (lists comma-joined)."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if name == "max_event_age_hours" or value == field.default:
            continue  # the deployed default horizon: the bench's events are stamped now
        if isinstance(value, tuple):
            env[name.upper()] = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            env[name.upper()] = "true" if value else "false"
        elif value is not None:
            env[name.upper()] = str(value)
    env["SOURCE_QUEUE_ARN"] = SOURCE_QUEUE_ARN
    expected = settings.model_copy(update={"source_queue_arn": SOURCE_QUEUE_ARN})
    read = Settings.from_env(env)
    differ = sorted(
        name
        for name in Settings.model_fields
        if name != "max_event_age_hours" and getattr(read, name) != getattr(expected, name)
    )
    if differ:
        raise RuntimeError(f"bench: the Lambda environment does not reproduce the replay's settings: {differ}")
    return env


def sqs_batch(event: dict[str, Any], records: int = 1) -> dict[str, Any]:
    """SQS records from the function's own queue, each carrying `event`, as Lambda delivers them."""
    body = json.dumps(event)
    now = str(int(datetime.now(UTC).timestamp() * 1000))
    return {
        "Records": [
            {
                "messageId": f"bench-{number}",
                "receiptHandle": "bench",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": SOURCE_QUEUE_ARN,
                "awsRegion": "us-east-1",
            }
            for number in range(records)
        ]
    }
