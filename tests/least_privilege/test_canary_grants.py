"""The canary roles' grants, both ways: each call its schedules make (EventBridge Scheduler
universal targets, no function: the CallLog of test_least_privilege.py never sees them) is
granted, and every grant is one of those calls. Per account, over every stack deployed there:
the security account's role (template.yaml CanaryRole) also carries the grants that member
stacks in the account's other regions add for their instances."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.least_privilege.iam_model import Call, Request, Statement, evaluate, template_role
from tests.template.cfn import Resolver, parameters

SECURITY = "123456789012"
SOURCE = "111122223333"
INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"
OTHER_INSTANCE = "0c6d5e4f-1a2b-4c3d-8e9f-a0b1c2d3e4f5"
ROLE_NAME = "connect-guard-dev-member-canary"
TEMPLATES = {"security": load_template(), "member": load_template(PROJECT_ROOT / "member" / "template.yaml")}


@dataclass(frozen=True)
class Deployment:
    template: str  # security | member
    account: str
    region: str
    instance: str = ""

    def resolver(self) -> Resolver:
        doc = TEMPLATES[self.template]
        given = {"Environment": "dev", "CanaryConnectInstanceId": self.instance, "ResponseMode": "detect"}
        if self.template == "member":
            given |= {"SecurityAccountId": SECURITY, "SecurityRegion": "us-east-1"}
        pseudo = {"AWS::Partition": "aws", "AWS::Region": self.region, "AWS::AccountId": self.account}
        role_arn = f"arn:aws:iam::{self.account}:role/connect-guard/{ROLE_NAME}"
        physical = {"CanaryRole": ROLE_NAME, "CanaryRole.Arn": role_arn}
        return Resolver(doc, parameters(doc, **given), pseudo, physical)


def canary_calls(deployment: Deployment) -> list[Request]:
    """The requests each deployed canary schedule makes, from its target and input."""
    resolver = deployment.resolver()
    requests = []
    for name, resource in resolver.template["Resources"].items():
        if resource["Type"] != "AWS::Scheduler::Schedule" or not resolver.deployed(name):
            continue
        target = resolver.resolve(resource["Properties"]["Target"])
        if ":aws-sdk:" not in target["Arn"]:
            continue  # a function's schedule: its calls are the function's
        service, api = target["Arn"].rsplit(":", 2)[-2:]
        request = json.loads(target["Input"])
        tags = request["Tags"]
        keys = tuple(t["Key"] for t in tags) if isinstance(tags, list) else tuple(tags)
        if service == "iam":
            arn = f"arn:aws:iam::{deployment.account}:role/connect-guard/{request['RoleName']}"
        else:
            arn = request["ResourceArn"]
        assert target["RoleArn"] == f"arn:aws:iam::{deployment.account}:role/connect-guard/{ROLE_NAME}", name
        call = Call(name, f"{deployment.template} stack, {deployment.region}", service, api, request, "-", None, "-")
        requests.append(Request(call, f"{service}:{api[0].upper()}{api[1:]}", arn, {"aws:TagKeys": keys}))
    return requests


def canary_statements(deployments: list[Deployment]) -> list[Statement]:
    """The account's canary role (from the stack that creates it) and every policy added to it."""
    statements: list[Statement] = []
    for deployment in deployments:
        resolver = deployment.resolver()
        resources = resolver.template["Resources"]
        if "CanaryRole" in resources and resolver.deployed("CanaryRole"):
            statements += template_role(resolver, "CanaryRole", "CanaryRole").statements
        for name, resource in resources.items():
            if resource["Type"] == "AWS::IAM::RolePolicy" and resolver.deployed(name):
                props = resolver.resolve(resource["Properties"])
                assert props["RoleName"] == ROLE_NAME, name
                statements += [
                    Statement.parse("CanaryRole", f"{deployment.template}:{name}@{deployment.region}", s)
                    for s in props["PolicyDocument"]["Statement"]
                ]
    return statements


ACCOUNTS = {
    # The security account alone: its stack's own IAM and Connect canary, no member stack.
    "security-stack-only": [Deployment("security", SECURITY, "us-east-1", INSTANCE)],
    # ... with member stacks there too: us-east-1 (no second canary) and eu-west-2 (its instance).
    "security-with-member-stacks": [
        Deployment("security", SECURITY, "us-east-1", INSTANCE),
        Deployment("member", SECURITY, "us-east-1", INSTANCE),
        Deployment("member", SECURITY, "eu-west-2", OTHER_INSTANCE),
    ],
    "source-account": [
        Deployment("member", SOURCE, "us-east-1", INSTANCE),
        Deployment("member", SOURCE, "eu-west-2", OTHER_INSTANCE),
    ],
}


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
def test_every_canary_call_is_granted_and_every_canary_grant_is_called(account: str) -> None:
    deployments = ACCOUNTS[account]
    statements = canary_statements(deployments)
    requests = [r for d in deployments for r in canary_calls(d)]
    assert requests and statements
    for request in requests:
        assert evaluate(request, statements)[0] == "allowed", (request.call.function, request.resource)
    used = {(s.source, a) for r in requests for s in statements if s.applies(r) for a in s.actions}
    granted = {(s.source, a) for s in statements if s.effect == "Allow" for a in s.actions}
    assert granted == used, f"never called: {sorted(granted - used)}"
    # One canary per service and region: no stack doubles another's.
    per_source = [(r.action, r.resource) for r in requests]
    assert len(per_source) == len(set(per_source)), per_source


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
def test_the_canary_role_can_write_nothing_but_its_tag_on_its_own_resources(account: str) -> None:
    deployments = ACCOUNTS[account]
    statements = canary_statements(deployments)
    owner = deployments[0].account
    call = Call("forged", "-", "iam", "TagRole", {}, owner, None, "us-east-1")
    own_role = f"arn:aws:iam::{owner}:role/connect-guard/{ROLE_NAME}"
    forged = [
        Request(call, "iam:TagRole", own_role, {"aws:TagKeys": ("connect-guard:protected",)}),
        Request(call, "iam:TagRole", own_role, {"aws:TagKeys": ("connect-guard:canary", "x")}),
        Request(call, "iam:TagRole", f"arn:aws:iam::{owner}:role/connect-guard/connect-guard-dev-liveness", {}),
        Request(call, "iam:UntagRole", own_role, {"aws:TagKeys": ("connect-guard:canary",)}),
        Request(call, "connect:TagResource", f"arn:aws:connect:us-east-1:{owner}:instance/{INSTANCE}/agent/u1", {}),
        Request(call, "connect:UntagResource", f"arn:aws:connect:us-east-1:{owner}:instance/{INSTANCE}", {}),
    ]
    for request in forged:
        assert evaluate(request, statements)[0] == "not granted", (request.action, request.resource, request.context)
