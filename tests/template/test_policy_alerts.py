"""Policy alerts: the responder's function and exactly the actions its role holds."""

from __future__ import annotations

from tests.template.stack import (
    OWN_ENV,
    function_role,
    grants,
    member_role,
    props,
    target,
)


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
        "POWERTOOLS_SERVICE_NAME": "policy-alerts",
        "POWERTOOLS_METRICS_NAMESPACE": "ConnectGuard",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **OWN_ENV["PolicyAlertsFunction"],
    }


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
    "dynamodb:GetItem": "DedupTable",
    "dynamodb:UpdateItem": "DedupTable",
    "dynamodb:DeleteItem": "DedupTable",
    "iam:GetPolicy": None,
    "iam:GetPolicyVersion": None,
    "sts:AssumeRole": None,
    # what a permission set grants, only where this account administers IAM Identity Center
    "sso:ListManagedPoliciesInPermissionSet": None,
    "sso:GetInlinePolicyForPermissionSet": None,
    "sso:ListCustomerManagedPolicyReferencesInPermissionSet": None,
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
