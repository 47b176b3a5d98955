"""Cold-start properties that a refactor could silently lose (timings live in `make bench`)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import sys
sys.path.insert(0, "functions/FUNCTION")
import botocore.client
created = []
original = botocore.client.ClientCreator.create_client


def recorded(self, *args, **kwargs):
    created.append(kwargs.get("service_name") or args[0])
    return original(self, *args, **kwargs)


botocore.client.ClientCreator.create_client = recorded
import app
print("parser-models" if "aws_lambda_powertools.utilities.parser.models" in sys.modules else "lean")
print("tracer" if "aws_xray_sdk" in sys.modules else "no-tracer")
print("asyncio" if "asyncio" in sys.modules else "no-asyncio")
print("clients:" + ",".join(created))
"""
# What template.yaml gives a deployed responder, and what Lambda itself sets.
DEPLOYED = {
    "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:connect-guard-dev-alerts",
    "DEDUP_TABLE_NAME": "connect-guard-dev-dedup",
    "BASELINE_TABLE_NAME": "connect-guard-dev-baseline",
    "AUDIT_TABLE_NAME": "connect-guard-dev-audit",
    "SOURCE_QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:connect-guard-dev-PolicyAlertsQueue",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/connect-guard-dev-PolicyAlertsDLQ",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_SERVICE_NAME": "policy-alerts",
    "AWS_LAMBDA_FUNCTION_NAME": "connect-guard-dev-policy-alerts",
}
SQS_RESPONDERS = ("policy_alerts", "profile_rollback", "role_quarantine", "logging_guard", "liveness")


def probe(function: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Not the worker's Powertools settings: an in-process replay test sets the log level to CRITICAL.
    clean = {k: v for k, v in os.environ.items() if k not in DEPLOYED and not k.startswith("POWERTOOLS_")}
    return subprocess.run(
        [sys.executable, "-c", PROBE.replace("FUNCTION", function)],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def test_importing_a_handler_loads_no_parser_models_no_tracer_and_builds_no_client():
    result = probe("policy_alerts", {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["lean", "no-tracer", "no-asyncio", "clients:"]


@pytest.mark.parametrize("function", SQS_RESPONDERS)
def test_in_lambda_the_import_is_the_init_and_builds_only_the_clients_every_event_needs(function):
    """Deployed, the set-up runs in INIT: the alert topic's and the dedup table's clients, no
    other (the DLQ's SQS client waits for a poison record; member and IAM clients for an event)."""
    result = probe(function, DEPLOYED)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:3] == ["lean", "no-tracer", "no-asyncio"]
    assert sorted(lines[3].removeprefix("clients:").split(",")) == ["dynamodb", "sns"]


def test_a_missing_setting_fails_the_init_with_one_line_that_names_it():
    env = {k: v for k, v in DEPLOYED.items() if k != "ALERT_TOPIC_ARN"}
    result = probe("policy_alerts", env)
    assert result.returncode != 0  # Lambda reports an init error and retries INIT on the next invocation
    assert "ConfigurationError" in result.stderr and "ALERT_TOPIC_ARN" in result.stderr
    errors = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(errors) == 1
    (line,) = errors
    assert line["level"] == "ERROR" and line["message"] == "function not configured: no event can be processed"
    assert "ALERT_TOPIC_ARN" in line["reason"] and line["service"] == "policy-alerts"
