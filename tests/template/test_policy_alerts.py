"""Policy alerts: the responder's function and exactly the actions its role holds."""

from __future__ import annotations

from typing import Any

import pytest

from connect_guard_tools.routing import compile_pattern
from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.template.stack import (
    OWN_ENV,
    function_role,
    grants,
    member_role,
    props,
    target,
)
from tests.template.test_delivery import ESCALATION_EVENTS


def test_policy_alerts_function_contract() -> None:
    p = props("PolicyAlertsFunction")
    assert p["CodeUri"] == "functions/policy_alerts"
    assert p["Handler"] == "app.lambda_handler"
    assert p["ReservedConcurrentExecutions"] == {"Ref": "PolicyAlertsConcurrency"}
    (event,) = p["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["PolicyAlertsQueue", "Arn"]}
    env = p["Environment"]["Variables"]
    assert env == {
        "ENVIRONMENT": {"Ref": "Environment"},
        "RESPONSE_MODE": {"Ref": "ResponseMode"},
        "ALERT_TOPIC_ARN": {"Ref": "AlertTopic"},
        "DEDUP_TABLE_NAME": {"Ref": "DedupTable"},
        "ALLOWLISTED_PRINCIPALS": {"Ref": "AllowlistedPrincipals"},
        "RUNBOOK_BASE_URL": {"Ref": "RunbookBaseUrl"},
        "PROTECTED_ROLE_NAMES": {"Ref": "ProtectedRoleNames"},
        "PROTECTED_ROLE_TAG_KEY": {"Ref": "ProtectedRoleTagKey"},
        "QUARANTINE_ON_TAMPERING": {"Ref": "QuarantineOnTampering"},
        "DEACTIVATE_ACCESS_KEYS": {"Ref": "DeactivateAccessKeys"},
        "QUARANTINE_POLICY_NAME": {"Ref": "QuarantinePolicyName"},
        "SNAPSHOT_ACCOUNT_IDS": {"Ref": "SnapshotAccountIds"},
        # Permission sets are read where IAM Identity Center is administered.
        "IDENTITY_CENTER_ACCOUNT_ID": {"Ref": "IdentityCenterAccountId"},
        "IDENTITY_CENTER_REGION": {"Ref": "IdentityCenterRegion"},
        "BASELINE_TABLE_NAME": {"Ref": "BaselineTable"},
        "ORGANIZATION_ID": {"Ref": "OrganizationId"},
        "POWERTOOLS_SERVICE_NAME": "policy-alerts",
        "POWERTOOLS_METRICS_NAMESPACE": "ConnectGuard",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **OWN_ENV["PolicyAlertsFunction"],
    }


PRINCIPAL_READS = (
    "iam:ListAttachedGroupPolicies",
    "iam:ListGroupPolicies",
    "iam:GetGroupPolicy",
    "iam:ListAttachedUserPolicies",
    "iam:ListUserPolicies",
    "iam:GetUserPolicy",
    "iam:ListGroupsForUser",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
)
POLICY_ALERTS_ACTIONS = {
    # the function's own plumbing (what SAM's managed policies would grant on "*")
    "logs:CreateLogStream": "PolicyAlertsLogGroup",
    "logs:PutLogEvents": "PolicyAlertsLogGroup",
    "sqs:ReceiveMessage": "PolicyAlertsQueue",
    "sqs:DeleteMessage": "PolicyAlertsQueue",
    "sqs:GetQueueAttributes": "PolicyAlertsQueue",
    "sqs:SendMessage": "PolicyAlertsDLQ",  # poison, on its first receive
    # the contract
    "sns:Publish": "AlertTopic",
    "kms:Decrypt": "SuiteKey",
    "kms:GenerateDataKey": "SuiteKey",
    "dynamodb:PutItem": "DedupTable",
    "dynamodb:GetItem": None,  # the dedup table, and the role snapshots of the baseline table
    "dynamodb:UpdateItem": "DedupTable",
    "dynamodb:DeleteItem": "DedupTable",
    "iam:GetPolicy": None,
    "iam:GetPolicyVersion": None,
    "sts:AssumeRole": None,
    # what a permission set grants, only where this account administers IAM Identity Center
    "sso:ListManagedPoliciesInPermissionSet": None,
    "sso:GetInlinePolicyForPermissionSet": None,
    "sso:ListCustomerManagedPolicyReferencesInPermissionSet": None,
    # escalation without an attachment: what a group, user or role can do now
    **dict.fromkeys(PRINCIPAL_READS, None),
}


def test_policy_alerts_has_exactly_the_contract_actions_on_their_resources() -> None:
    _, role_props = function_role("PolicyAlertsFunction")
    granted = grants(role_props)
    assert set(granted) == set(POLICY_ALERTS_ACTIONS)
    for action, resource in POLICY_ALERTS_ACTIONS.items():
        if resource:
            assert {target(r) for r in granted[action]} == {resource}, action
    assert (
        granted["iam:GetPolicy"]
        == granted["iam:GetPolicyVersion"]
        == [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/*"},
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/*"},
        ]
    )
    assert granted["sts:AssumeRole"] == [member_role("read")]  # never a write role
    statements = role_props["Policies"][0]["PolicyDocument"]["Statement"]
    (reads,) = [s["Fn::If"] for s in statements if "Fn::If" in s]
    assert reads[0] == "IsIdentityCenterAccount" and reads[2] == {"Ref": "AWS::NoValue"}
    assert reads[1]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:sso:::instance/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:sso:::permissionSet/*"},
    ]
    own = ("group", "user", "role")
    for action in PRINCIPAL_READS:  # this account's principals only
        assert granted[action] == [{"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:{k}/*"} for k in own]
    assert {target(r) for r in granted["dynamodb:GetItem"]} == {"DedupTable", "BaselineTable"}


def test_the_role_snapshot_read_is_role_snapshots_only() -> None:
    _, role_props = function_role("PolicyAlertsFunction")
    (statement,) = [
        s
        for p in role_props["Policies"]
        if isinstance(p, dict) and "PolicyDocument" in p
        for s in p["PolicyDocument"]["Statement"]
        if s.get("Sid") == "ReadRoleSnapshots"
    ]
    assert statement["Action"] == "dynamodb:GetItem"
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["roles#*"]}}


# ---- routing: escalation without an attachment ----------------------------------------------------
ESCALATIONS = ESCALATION_EVENTS  # the rule's list (test_delivery pins the whole pattern)
# Not routed: each only takes access away (README, "Policy alerts").
DE_ESCALATIONS = [
    "DeletePolicyVersion",
    "DetachUserPolicy",
    "DetachGroupPolicy",
    "DeleteUserPolicy",
    "DeleteGroupPolicy",
    "RemoveUserFromGroup",
]


def _iam_event(name: str, **detail: Any) -> dict[str, Any]:
    return {
        "source": "aws.iam",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": "iam.amazonaws.com", "eventName": name, **detail},
    }


def _matching(event: dict[str, Any]) -> set[str]:
    return {name for name, rule in _rules().items() if rule(event)}


@pytest.mark.parametrize("name", ESCALATIONS)
def test_escalations_reach_the_policy_alerts_rule_succeeded_or_denied(name: str) -> None:
    assert "PolicyAttachmentRule" in _matching(_iam_event(name, requestParameters={"userName": "bob"}))
    denied = _iam_event(name, errorCode="AccessDenied", requestParameters=None)
    assert "PolicyAttachmentRule" in _matching(denied)
    # The same name from another service (a look-alike source or eventSource) is not IAM's.
    assert "PolicyAttachmentRule" not in _matching({**_iam_event(name), "source": "aws.sts"})
    forged = _iam_event(name)
    forged["detail"]["eventSource"] = "iam.amazonaws.com.attacker.example"
    assert "PolicyAttachmentRule" not in _matching(forged)


@pytest.mark.parametrize("name", DE_ESCALATIONS)
def test_de_escalations_reach_no_rule(name: str) -> None:
    assert _matching(_iam_event(name)) == set()


def test_the_role_de_escalations_reach_only_the_quarantine() -> None:
    # Detaching or deleting a protected role's policy is tampering (role quarantine), not an escalation.
    for name in ("DetachRolePolicy", "DeleteRolePolicy"):
        assert _matching(_iam_event(name)) == {"RoleProtectionRule"}


def test_the_member_stack_forwards_every_escalation() -> None:
    member = load_template(PROJECT_ROOT / "member" / "template.yaml")
    pattern = member["Resources"]["ForwardPolicyAttachmentRule"]["Properties"]["EventPattern"]
    forward = compile_pattern(pattern)
    for name in ESCALATIONS:
        assert forward(_iam_event(name)), name
    for name in DE_ESCALATIONS:
        assert not forward(_iam_event(name)), name


def _rules() -> dict[str, Any]:
    resources = load_template()["Resources"]
    return {
        name: compile_pattern(r["Properties"]["EventPattern"])
        for name, r in resources.items()
        if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]
    }
