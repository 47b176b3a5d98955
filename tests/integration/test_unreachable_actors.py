"""An actor the quarantine can't reach is a CRITICAL finding saying so, never a silent DLQ entry:
an IAM user or role deleted since the call, a principal type IAM can't quarantine, an account
whose quarantine role refuses the suite."""

from __future__ import annotations

import json
from typing import Any

from connect_guard.responders import role_quarantine
from connect_guard.runtime import build_pipeline
from tests.integration import test_role_quarantine
from tests.integration.delivery import Refuse
from tests.integration.test_role_quarantine import ACCOUNT, assumed, iam_event, user

iam = test_role_quarantine.iam  # the fixture: IAM with the sample users and roles
FEDERATED_BY_ROOT = {  # GetFederationToken called with the root user's keys
    "type": "FederatedUser",
    "principalId": f"{ACCOUNT}:bob",
    "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/bob",
    "accountId": ACCOUNT,
    "sessionContext": {"sessionIssuer": {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT}},
}


def process(aws, event: Any, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = aws.settings(response_mode="enforce", **overrides)
    result = build_pipeline(role_quarantine.build, settings, aws.clients).process(
        event.model_dump(mode="json", by_alias=True)
    )
    (message,) = aws.inbox()
    return result, json.loads(message["Message"])


def test_an_iam_user_deleted_since_the_call_is_critical_not_a_dlq_entry(aws, iam):
    event = iam_event("DeleteRole", user("ghost"), {"roleName": "ConnectAgentFederation"})
    result, finding = process(aws, event)
    assert (result["outcome"], result["severity"]) == ("alerted", "CRITICAL")
    assert finding["actions"] == [] and not finding["title"].startswith("Quarantined")
    (note,) = [r for r in finding["reasons"] if "NoSuchEntity" in r]
    assert note.startswith(f"user ghost does not exist in account {ACCOUNT} (NoSuchEntity")
    assert "NOT quarantined" in note


def test_the_deleted_role_behind_a_session_is_critical_not_a_dlq_entry(aws, iam):
    event = iam_event("DeleteRole", assumed("TemporaryAdmin", "eve"), {"roleName": "ConnectAgentFederation"})
    result, finding = process(aws, event)
    assert result["severity"] == "CRITICAL"
    assert any(r.startswith(f"role TemporaryAdmin does not exist in account {ACCOUNT}") for r in finding["reasons"])


def test_a_principal_iam_cannot_quarantine_is_critical_even_for_tampering(aws, iam):
    params = {"roleName": "ConnectAgentFederation", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}
    event = iam_event("DetachRolePolicy", FEDERATED_BY_ROOT, params)
    result, finding = process(aws, event, quarantine_on_tampering=True)
    assert result["severity"] == "CRITICAL"  # tampering alone is HIGH: here a quarantine was due and can't be
    assert "a FederatedUser principal cannot be quarantined automatically; act by hand" in finding["reasons"]


def test_an_account_whose_quarantine_role_refuses_the_suite_is_critical_even_for_tampering(aws, iam):
    # The read role answers (protection is known); the quarantine role, assumed next, refuses.
    Refuse("sts:AssumeRole", "AccessDenied", 403, skip=1).install(aws)
    aws.clients = type(aws.clients)(aws.region, aws.session, aws.clients.account_id)  # a client with the fault
    params = {"roleName": "ConnectAgentFederation", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}
    result, finding = process(aws, iam_event("DetachRolePolicy", user("mallory"), params), quarantine_on_tampering=True)
    assert result["severity"] == "CRITICAL"
    (note,) = [r for r in finding["reasons"] if r.startswith(f"cannot reach account {ACCOUNT} to quarantine")]
    assert "user mallory not quarantined, act by hand" in note
