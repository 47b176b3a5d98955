"""The scheduled functions, through their handlers: a failed run is alerted once, then raised."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connect_guard import scheduled
from connect_guard.clients import AwsClients
from connect_guard.responders import role_quarantine
from tests.integration.runtime_support import set_function_environment
from tests.integration.test_profile_rollback import Instance

ROOT = Path(__file__).resolve().parents[2]


def handler_module(function: str, aws: Any, monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    set_function_environment(aws, monkeypatch, ENVIRONMENT=aws.settings().environment, RESPONSE_MODE="enforce", **env)
    spec = importlib.util.spec_from_file_location(f"{function}_app", ROOT / "functions" / function / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    # The handler builds its clients from a new session (itself, or through scheduled.invoke):
    # give it the embedded AWS's.
    def embedded(region: str, account_id: str, config: Any) -> AwsClients:
        return AwsClients(region, aws.session, account_id, config)

    for owner in (module, scheduled):
        if hasattr(owner, "AwsClients"):
            monkeypatch.setattr(owner, "AwsClients", embedded)
    return module


def alerts(aws: Any) -> list[dict[str, Any]]:
    return [json.loads(m["Message"]) for m in aws.inbox()]


def test_a_failed_sweep_is_alerted_then_raised(aws, monkeypatch, lambda_context):
    instance = Instance(aws)
    app = handler_module("baseline_sweep", aws, monkeypatch, CONNECT_INSTANCE_ARNS=instance.arn)

    class Broken:
        def run(self) -> Any:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListUsers")

    monkeypatch.setattr(app, "build", lambda settings, clients: Broken())
    with pytest.raises(ClientError, match="AccessDenied"):
        app.lambda_handler({}, lambda_context)
    (finding,) = alerts(aws)
    assert finding["severity"] == "HIGH" and finding["title"].startswith("Baseline sweep FAILED")
    assert "AccessDenied" in finding["reasons"][0]
    assert finding["event"]["event_id"].endswith(lambda_context.aws_request_id)


def test_a_successful_sweep_sends_no_failed_alert(aws, monkeypatch, lambda_context):
    instance = Instance(aws)
    app = handler_module("baseline_sweep", aws, monkeypatch, CONNECT_INSTANCE_ARNS=instance.arn)
    assert app.lambda_handler({}, lambda_context)["instances"]
    assert not any("FAILED" in f["title"] for f in alerts(aws))


def test_a_failed_role_snapshot_is_alerted_then_raised(aws, monkeypatch, lambda_context):
    app = handler_module("role_snapshot", aws, monkeypatch)

    def broken(responder: Any) -> Any:
        raise RuntimeError("ListRoles throttled after retries")

    monkeypatch.setattr(app, "snapshot_protected_roles", broken)
    with pytest.raises(RuntimeError):
        app.lambda_handler({}, lambda_context)
    (finding,) = alerts(aws)
    assert finding["severity"] == "HIGH" and finding["title"].startswith("Role snapshot FAILED")
    assert finding["kind"] == "iam.role_snapshot_failed"


def test_a_successful_role_snapshot_sends_nothing(aws, monkeypatch, lambda_context):
    app = handler_module("role_snapshot", aws, monkeypatch)
    monkeypatch.setattr(app, "snapshot_protected_roles", role_quarantine.snapshot_protected_roles)
    assert "roles" in app.lambda_handler({}, lambda_context)
    assert alerts(aws) == []


def test_the_logging_drift_schedule_runs_the_check_through_the_logging_guard_handler(aws, monkeypatch, lambda_context):
    instances = ",".join(i.instance_arn for i in aws.instances)
    app = handler_module("logging_guard", aws, monkeypatch, CONNECT_INSTANCE_ARNS=instances)
    result = app.lambda_handler({"check": "logging-drift"}, lambda_context)
    titles = {a["title"] for a in alerts(aws)}
    assert "Trail drift restored: CloudTrail trail quiet-trail" in titles and len(result["findings"]) == len(titles)
    # Anything else is an SQS batch to the handler, and refused as one: never a drift check.
    from connect_guard.errors import DirectInvocationError

    with pytest.raises(DirectInvocationError):
        app.lambda_handler({"check": "logging-drift", "force": True}, lambda_context)
    assert alerts(aws) == []


def test_a_failed_logging_drift_check_is_alerted_then_raised(aws, monkeypatch, lambda_context):
    from connect_guard.responders import logging_drift

    app = handler_module("logging_guard", aws, monkeypatch)

    def broken(settings: Any, clients: Any) -> Any:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "DescribeTrails")

    monkeypatch.setattr(logging_drift, "run", broken)
    with pytest.raises(ClientError):
        app.lambda_handler({"check": "logging-drift"}, lambda_context)
    [failed] = alerts(aws)
    assert failed["title"] == "Logging drift check FAILED in 123456789012" and failed["severity"] == "HIGH"
