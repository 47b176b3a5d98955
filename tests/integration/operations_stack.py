"""A deployed connect-guard stack as `connect-guard redrive` and `status` see it, in the embedded
AWS's CloudFormation: template.yaml's queues under their logical IDs (each DLQ wired to its
queue as the template wires it), the RedriveRole, the parameters and outputs the commands read."""

from __future__ import annotations

import json
from typing import Any

from connect_guard_tools.local_aws import SECURITY_ACCOUNT, LocalAws
from connect_guard_tools.template import load_template

STACK = "connect-guard-dev"
QUEUE_PROPERTIES = ("MessageRetentionPeriod", "VisibilityTimeout", "RedrivePolicy")


def deploy(aws: LocalAws, *, optional: bool = False, with_role: bool = True, **parameters: str) -> str:
    """Create the stack; `optional` adds the conditional queues (Slack, Security Hub, chat)."""
    template = load_template()
    resources: dict[str, Any] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::SQS::Queue" or (resource.get("Condition") and not optional):
            continue
        properties = {k: v for k, v in resource.get("Properties", {}).items() if k in QUEUE_PROPERTIES}
        resources[name] = {"Type": "AWS::SQS::Queue", "Properties": properties}
    outputs: dict[str, Any] = {"BaselineTableName": {"Value": aws.baseline_table}}
    if with_role:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{SECURITY_ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        resources["RedriveRole"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": "connect-guard-dev-redrive",
                "Path": "/connect-guard/",
                "AssumeRolePolicyDocument": trust,
            },
        }
        outputs["RedriveRoleArn"] = {"Value": {"Fn::GetAtt": ["RedriveRole", "Arn"]}}
    values = {"Environment": "dev", "ResponseMode": "detect", **parameters}
    body = {
        "Parameters": {name: {"Type": "String", "Default": value} for name, value in values.items()},
        "Resources": resources,
        "Outputs": outputs,
    }
    aws.session.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(body))
    return STACK


def queues(aws: LocalAws) -> dict[str, str]:
    """Logical ID → queue URL."""
    summaries = aws.session.client("cloudformation").list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    return {
        s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries if s["ResourceType"] == "AWS::SQS::Queue"
    }


def arn(url: str) -> str:
    host, account, name = url.split("/")[-3:]
    return f"arn:aws:sqs:{host.split('.')[1]}:{account}:{name}"
