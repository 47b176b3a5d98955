"""A deployed connect-guard stack as `connect-guard redrive` and `status` see it, in the embedded
AWS's CloudFormation: template.yaml's queues under their logical IDs (each DLQ wired to its
queue as the template wires it), the responder queues' policies as the template writes them
(the embedded AWS enforces their Deny of SendMessage), the RedriveRole, the parameters and
outputs the commands read."""

from __future__ import annotations

import json
from typing import Any

from moto.sqs.models import sqs_backends

from connect_guard_tools.local_aws import REGION, SECURITY_ACCOUNT, SECURITY_ACCOUNT_TRUST, LocalAws
from connect_guard_tools.operations import CONTROLS
from connect_guard_tools.template import load_template
from tests.template.cfn import Resolver, parameters

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
        trust = SECURITY_ACCOUNT_TRUST
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
    apply_queue_policies(aws)
    return STACK


def rule_arn(logical_id: str) -> str:
    return f"arn:aws:events:{REGION}:{SECURITY_ACCOUNT}:rule/{STACK}-{logical_id}"


def apply_queue_policies(aws: LocalAws) -> None:
    """Each responder queue's policy (DenyEveryOtherSender), resolved for this stack: its rules,
    and the RedriveRole's unique ID as IAM has it now."""
    template, urls = load_template(), queues(aws)
    physical = {f"{logical}.Arn": arn(url) for logical, url in urls.items()}
    physical |= {f"{n}.Arn": rule_arn(n) for n, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"}
    try:
        physical["RedriveRole.RoleId"] = aws.clients.iam.get_role(RoleName="connect-guard-dev-redrive")["Role"][
            "RoleId"
        ]
    except aws.clients.iam.exceptions.NoSuchEntityException:
        physical["RedriveRole.RoleId"] = "AROANOREDRIVEROLE0000"
    pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": SECURITY_ACCOUNT}
    resolver = Resolver(template, parameters(template), pseudo, physical)
    sqs = aws.session.client("sqs")
    for control in CONTROLS:
        if not control.movable:
            continue
        (policy,) = [
            r
            for r in template["Resources"].values()
            if r["Type"] == "AWS::SQS::QueuePolicy" and r["Properties"]["Queues"] == [{"Ref": control.queue}]
        ]
        document = resolver.resolve(policy["Properties"]["PolicyDocument"])
        sqs.set_queue_attributes(QueueUrl=urls[str(control.queue)], Attributes={"Policy": json.dumps(document)})


def deliver(url: str, *bodies: str) -> None:
    """Messages as the queue's EventBridge rule delivers them (the only sender its policy admits
    besides the RedriveRole: the embedded AWS's service side, past the policy)."""
    host, account, name = url.split("/")[-3:]
    backend = sqs_backends[account][host.split(".")[1]]
    for body in bodies:
        backend.send_message(name, body)


def queues(aws: LocalAws) -> dict[str, str]:
    """Logical ID → queue URL."""
    summaries = aws.session.client("cloudformation").list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    return {
        s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries if s["ResourceType"] == "AWS::SQS::Queue"
    }


def arn(url: str) -> str:
    host, account, name = url.split("/")[-3:]
    return f"arn:aws:sqs:{host.split('.')[1]}:{account}:{name}"
