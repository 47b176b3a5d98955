"""Least privilege, both ways: what the code calls against what the templates grant.

- `CallLog` records every AWS call the code makes, with the credentials that sign it.
- `runtime_calls` and `implied_requests` add what AWS does with a function's role beside its
  code (Lambda's logging, event source and destinations; KMS behind encrypted topics, queues,
  tables and buckets), as the template configures it.
- `Stacks` reads each role's statements from template.yaml and member/template.yaml for one
  parameter set; `requests_of` turns a call into IAM requests; `check` decides them and lists
  the grants no request used.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from botocore import handlers
from botocore.exceptions import ClientError

from tests.template.cfn import Resolver


@dataclass(frozen=True)
class Call:
    """One AWS call: whose code made it (function, path) and with which credentials."""

    function: str  # the template's function logical ID
    path: str  # what drove it: an event file, a scheduled run, the Lambda runtime
    service: str  # IAM action prefix (botocore's signing name)
    operation: str
    params: dict[str, Any]
    account: str  # account of the credentials
    role: str | None  # an assumed role's ARN; None: the function's own role
    region: str
    error: str | None = None  # the error code the call got, if any (it still needed the grant)


class CallLog:
    """Records the calls made while `running(function, path)`; everything else (set-up, checks)
    is left out. Credentials: the default ones are the function's own role; those that
    sts:AssumeRole returned are the role assumed (access key ID → RoleArn).

    Every client class gets a base class that sees `_make_api_call`, so no event handler can
    hide a call (the Connect fake answers in before-call, where botocore stops).
    """

    def __init__(self, own_account: str) -> None:
        self.own_account = own_account
        self.own_access_key = os.environ["AWS_ACCESS_KEY_ID"]
        self.calls: list[Call] = []
        self.assumed: dict[str, str] = {}
        self._running: tuple[str, str] | None = None
        log = self

        class Recorded:
            def _make_api_call(self, operation_name: str, api_params: dict[str, Any]) -> Any:
                index = log._record(self, operation_name, api_params)
                try:
                    result = super()._make_api_call(operation_name, api_params)  # type: ignore[misc]
                except ClientError as error:
                    log._failed(index, str(error.response.get("Error", {}).get("Code")))
                    raise
                if operation_name == "AssumeRole":
                    log.assumed[result["Credentials"]["AccessKeyId"]] = api_params["RoleArn"]
                return result

        self._base = Recorded

    def install(self, emitter: Any) -> None:
        """Hook one emitter (a session's `events`): clients created afterwards are recorded."""
        emitter.register("creating-client-class", self._add_base, unique_id=f"least-privilege-{id(self)}")

    @contextmanager
    def every_new_session(self) -> Iterator[None]:
        """Also hook the sessions created meanwhile (handlers and Powertools build their own)."""
        spec = ("creating-client-class", self._add_base)
        handlers.BUILTIN_HANDLERS.append(spec)
        try:
            yield
        finally:
            handlers.BUILTIN_HANDLERS.remove(spec)

    @contextmanager
    def running(self, function: str, path: str) -> Iterator[None]:
        previous, self._running = self._running, (function, path)
        try:
            yield
        finally:
            self._running = previous

    def _add_base(self, base_classes: list[type], **_: Any) -> None:
        if self._base not in base_classes:
            base_classes.insert(0, self._base)

    def _record(self, client: Any, operation: str, params: dict[str, Any]) -> int | None:
        if self._running is None:
            return None
        credentials = client._get_credentials()  # botocore's only accessor (private)
        key = credentials.get_frozen_credentials().access_key if credentials else ""
        role = None if key == self.own_access_key else self.assumed.get(key, f"<unknown credentials {key}>")
        self.calls.append(
            Call(
                function=self._running[0],
                path=self._running[1],
                service=client.meta.service_model.signing_name,
                operation=operation,
                params=copy.copy(params),
                account=self.own_account if role is None else (role.split(":") + ["?"] * 5)[4],
                role=role,
                region=client.meta.region_name,
            )
        )
        return len(self.calls) - 1

    def _failed(self, index: int | None, code: str) -> None:
        if index is not None:
            self.calls[index] = replace(self.calls[index], error=code)


# ---- policies -----------------------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    return _glob(pattern, True).fullmatch(action) is not None  # action names ignore case


def resource_matches(pattern: str, resource: str) -> bool:
    return _glob(pattern, False).fullmatch(resource) is not None


@dataclass(frozen=True)
class Request:
    """What IAM authorizes for one call: an action on a resource, with its context keys."""

    call: Call
    action: str
    resource: str | None  # None: the call does not name it (only the action is checked)
    context: Context = field(default_factory=dict)
    via: str | None = None  # the call AWS made this KMS request for, on the caller's behalf


_NEGATED = ("StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike")
Context = dict[str, str | tuple[str, ...]]  # a tuple: a multivalued key (aws:TagKeys)


def _matches(base: str, actual: str, values: list[str]) -> bool:
    if base in ("StringEquals", "StringNotEquals"):
        return actual in values
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() in {v.lower() for v in values}
    if base in ("StringLike", "StringNotLike", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"):
        return any(resource_matches(v, actual) for v in values)
    if base == "Bool":
        return actual.lower() in {v.lower() for v in values}
    raise NotImplementedError(f"condition operator {base} is not modelled")


def _condition_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    values = [str(v).lower() if isinstance(v, bool) else str(v) for v in as_list(expected)]
    qualifier, _, name = operator.rpartition(":")
    if name == "Null":
        return (key not in context) == (values[0].lower() == "true")
    base = name.removesuffix("IfExists")
    if key not in context:
        # IAM: a missing key fails the condition, unless negated or ...IfExists; ForAllValues
        # holds over an empty set (hence the Null check beside it).
        return qualifier == "ForAllValues" or name.endswith("IfExists") or base in _NEGATED
    actual = context[key]
    actuals = actual if isinstance(actual, tuple) else (actual,)
    hits = [_matches(base, a, values) != (base in _NEGATED) for a in actuals]
    return all(hits) if qualifier == "ForAllValues" else any(hits)


@dataclass(frozen=True)
class Statement:
    role: str  # the role's label: a logical ID, "member:<logical ID>" for the member template
    source: str  # policy and Sid, for messages
    effect: str
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    condition: dict[str, dict[str, Any]]
    principals: tuple[str, ...] = ()  # trust policies: the AWS principals admitted

    @classmethod
    def parse(cls, role: str, source: str, raw: dict[str, Any]) -> Statement:
        principal = raw.get("Principal") or {}
        aws = principal if principal == "*" else principal.get("AWS", ()) if isinstance(principal, dict) else ()
        return cls(
            role=role,
            source=f"{source}#{raw['Sid']}" if raw.get("Sid") else source,
            effect=raw["Effect"],
            actions=tuple(as_list(raw.get("Action", raw.get("NotAction", [])))),
            not_action="NotAction" in raw,
            resources=tuple(as_list(raw.get("Resource", raw.get("NotResource", "*")))),
            not_resource="NotResource" in raw,
            condition=raw.get("Condition") or {},
            principals=tuple(str(p) for p in as_list(aws)),
        )

    def covers_action(self, action: str) -> bool:
        return any(action_matches(p, action) for p in self.actions) != self.not_action

    def covers_resource(self, resource: str | None) -> bool:
        if resource is None:  # unknown: an Allow may cover it; a Deny only when it names everything
            return self.effect == "Allow" or (self.resources == ("*",) and not self.not_resource)
        return any(resource_matches(p, resource) for p in self.resources) != self.not_resource

    def conditions_hold(self, context: Context) -> bool:
        return all(
            _condition_holds(operator, key, expected, context)
            for operator, keys in self.condition.items()
            for key, expected in keys.items()
        )

    def applies(self, request: Request) -> bool:
        return (
            self.covers_action(request.action)
            and self.covers_resource(request.resource)
            and self.conditions_hold(request.context)
        )

    def admits(self, principal_arn: str) -> bool:
        """Trust policies: whether the principal (a role ARN) is named, by ARN or account."""
        _, partition, _, _, account, _ = principal_arn.split(":", 5)
        return any(p in ("*", principal_arn, account, f"arn:{partition}:iam::{account}:root") for p in self.principals)


def evaluate(request: Request, statements: list[Statement]) -> tuple[str, Statement | None]:
    """IAM's identity-policy logic: an explicit Deny wins, then any Allow, else not granted."""
    applicable = [s for s in statements if s.applies(request)]
    deny = next((s for s in applicable if s.effect == "Deny"), None)
    if deny:
        return "denied", deny
    allow = next((s for s in applicable if s.effect == "Allow"), None)
    return ("allowed", allow) if allow else ("not granted", None)


# ---- calls → IAM requests -----------------------------------------------------------------------
# API operations whose IAM action has another name (the rest are the same).
ACTION_NAMES = {
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "HeadObject"): "GetObject",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
    ("s3", "GetBucketLifecycleConfiguration"): "GetLifecycleConfiguration",
    ("s3", "PutBucketLifecycleConfiguration"): "PutLifecycleConfiguration",
    ("s3", "GetBucketEncryption"): "GetEncryptionConfiguration",
    ("s3", "PutBucketEncryption"): "PutEncryptionConfiguration",
    # SQS authorizes a batch as its single action.
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
}
# Authorized for every principal: no statement needed.
UNAUTHORIZED_ACTIONS = {"sts:GetCallerIdentity"}
# Operations whose PolicyArn is the attached policy (condition key iam:PolicyARN), not the resource.
_ATTACHMENTS = {f"{verb}{kind}Policy" for verb in ("Attach", "Detach") for kind in ("User", "Role", "Group")}
# Operations whose tag keys are the condition key aws:TagKeys.
_TAGGING = {f"{verb}{kind}" for verb in ("Tag", "Untag") for kind in ("User", "Role", "Policy")}

ArnLookup = Callable[[str, str, str], str]  # (account, "user" | "role" | "group", name) → ARN with its path


def queue_arn(url: str) -> str:
    host, account, name = url.split("/")[-3:]
    return f"arn:aws:sqs:{host.split('.')[1]}:{account}:{name}"


def _iam_resource(call: Call, lookup: ArnLookup) -> str | None:
    params = call.params
    for kind, key in (("user", "UserName"), ("role", "RoleName"), ("group", "GroupName")):
        if params.get(key):
            return lookup(call.account, kind, params[key])
    if params.get("PolicyArn"):
        return str(params["PolicyArn"])
    return "*" if call.operation.startswith("List") else None


def _connect_resource(call: Call) -> str | None:
    if call.params.get("resourceArn"):  # the tag operations name the resource itself
        return str(call.params["resourceArn"])
    instance = str(call.params.get("InstanceId", ""))
    if not instance:
        return "*" if call.operation == "ListInstances" else None  # no resource type
    if not instance.startswith("arn:"):
        instance = f"arn:aws:connect:{call.region}:{call.account}:instance/{instance}"
    for key, kind in (("UserId", "agent"), ("SecurityProfileId", "security-profile")):
        if call.params.get(key):
            return f"{instance}/{kind}/{call.params[key]}"
    return instance


def _resources(call: Call, lookup: ArnLookup) -> list[str | None]:
    p, region, account = call.params, call.region, call.account
    if call.service == "dynamodb":
        tables = [p["TableName"]] if "TableName" in p else list(p.get("RequestItems", {}))
        tables += [next(iter(item.values()))["TableName"] for item in p.get("TransactItems", [])]
        arns = [t if t.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{t}" for t in tables]
        return [f"{arn}/index/{p['IndexName']}" if "IndexName" in p else arn for arn in arns] or [None]
    if call.service == "sns":
        return [p.get("TopicArn") or p.get("TargetArn")]
    if call.service == "sqs":
        if "SourceArn" in p:  # the message-move task operations name the source queue by ARN
            return [str(p["SourceArn"])]
        return [queue_arn(p["QueueUrl"])] if "QueueUrl" in p else [None]
    if call.service == "iam":
        return [_iam_resource(call, lookup)]
    if call.service == "sts":
        return [p.get("RoleArn")]
    if call.service == "s3":
        bucket = p.get("Bucket")
        return [f"arn:aws:s3:::{bucket}/{p['Key']}" if "Key" in p else f"arn:aws:s3:::{bucket}" if bucket else None]
    if call.service == "logs":
        group = p.get("logGroupName")
        if not group:
            return ["*"] if call.operation.startswith("Describe") else [None]
        arn = f"arn:aws:logs:{region}:{account}:log-group:{group}"
        return [f"{arn}:log-stream:{p['logStreamName']}" if "logStreamName" in p else arn]
    if call.service == "connect":
        resource = _connect_resource(call)
        group = call.params.get("HierarchyGroupId")
        if call.operation == "UpdateUserHierarchy" and group and resource:
            # The group assigned is authorized as well as the user (hierarchy-group, agent-group/ in ARNs).
            return [resource, f"{resource.split('/agent/')[0]}/agent-group/{group}"]
        return [resource]
    if call.service == "cloudtrail":
        # A trail by ARN (as the suite names it) or by name in the call's region; DescribeTrails
        # has no resource type.
        name = str(p.get("Name") or p.get("TrailName") or "")
        if not name:
            return ["*"] if call.operation == "DescribeTrails" else [None]
        return [name if name.startswith("arn:") else f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"]
    if call.service == "securityhub":
        return sorted({f["ProductArn"] for f in p.get("Findings", [])}) or [None]
    if call.service == "secretsmanager":
        secret = str(p.get("SecretId", ""))
        return [secret if secret.startswith("arn:") else f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}"]
    if call.service == "organizations":
        return [_policy_arn(call.account, str(p["PolicyId"]))] if "PolicyId" in p else [None]
    if call.service == "sso":  # sso-admin authorizes a permission set's reads on its instance and on the set
        return [p[key] for key in ("InstanceArn", "PermissionSetArn") if p.get(key)] or [None]
    if call.service == "identitystore":
        store = p.get("IdentityStoreId")
        return [f"arn:aws:identitystore::{account}:identitystore/{store}"] if store else [None]
    if call.service == "events":
        rule = p.get("Name") or p.get("Rule")
        return [f"arn:aws:events:{region}:{account}:rule/{rule}"] if rule else [None]
    if call.service == "ssm":
        name = str(p.get("Name", ""))
        return [f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"] if name else [None]
    if call.service == "kms":
        key = str(p.get("KeyId", ""))
        return [key if key.startswith("arn:") else f"arn:aws:kms:{region}:{account}:key/{key}"]
    return [None]


def _policy_arn(account: str, policy_id: str) -> str:
    """An Organizations policy's ARN (management account, organization and type in it), from moto's state."""
    from moto.organizations.models import organizations_backends

    try:
        return str(organizations_backends[account]["aws"].get_policy_by_id(policy_id).arn)
    except Exception:  # no such policy: the request names it as the API does
        return f"arn:aws:organizations::{account}:policy/o-unknown/service_control_policy/{policy_id}"


_KEY_CONDITION_PK = re.compile(r"\bpk\s*=\s*(:\w+)")


def _partition_key(key: dict[str, Any]) -> str | None:
    """The partition key's value in a DynamoDB Key or Item (the suite's tables: pk; Powertools': id)."""
    value = key.get("pk") or key.get("id")
    return str(next(iter(value.values()))) if isinstance(value, dict) else None


def leading_keys(call: Call, table: str | None = None) -> tuple[str, ...] | None:
    """dynamodb:LeadingKeys of a call (on one table of a batch): the partition keys it reads or writes."""
    p = call.params
    keys: list[dict[str, Any]] = []
    if "Key" in p:
        keys.append(p["Key"])
    if "Item" in p:
        keys.append(p["Item"])
    for name, requests in p.get("RequestItems", {}).items():
        if table is not None and name != table:
            continue
        for request in requests if isinstance(requests, list) else requests.get("Keys", []):
            body = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key") or request
            keys.append(body)
    values = [v for v in (_partition_key(k) for k in keys) if v is not None]
    match = _KEY_CONDITION_PK.search(str(p.get("KeyConditionExpression", "")))
    if match:
        values.append(str(next(iter(p["ExpressionAttributeValues"][match.group(1)].values()))))
    return tuple(values) or None


def requests_of(call: Call, lookup: ArnLookup) -> list[Request]:
    """The IAM requests one call makes: its action on each resource it names."""
    action = f"{call.service}:{ACTION_NAMES.get((call.service, call.operation), call.operation)}"
    if action == "s3:GetObject" and "VersionId" in call.params:  # a version read is its own action
        action = "s3:GetObjectVersion"
    if action in UNAUTHORIZED_ACTIONS:
        return []
    context: Context = {"aws:RequestedRegion": call.region, "aws:SecureTransport": "true"}
    if call.operation in _ATTACHMENTS and "PolicyArn" in call.params:
        context["iam:PolicyARN"] = call.params["PolicyArn"]
    if call.operation in _TAGGING:  # the keys a request names (none: the key is missing)
        keys = [t["Key"] for t in call.params.get("Tags", [])] + list(call.params.get("TagKeys", []))
        if keys:
            context["aws:TagKeys"] = tuple(keys)
    if call.service == "dynamodb" and "TransactItems" in call.params:
        requests = []
        for item, resource in zip(call.params["TransactItems"], _resources(call, lookup), strict=True):
            for kind, body in item.items():
                pk = _partition_key(body.get("Key") or body.get("Item") or {})
                keyed = {**context, "dynamodb:LeadingKeys": (pk,)} if pk else context
                requests.append(Request(call, f"dynamodb:{kind}Item", resource, keyed))
        return requests
    if call.service == "dynamodb":
        # The partition keys the call touches, per table of a batch: what LeadingKeys conditions test.
        tables = list(call.params.get("RequestItems", {})) or [None]
        requests = []
        for table, resource in zip(tables, _resources(call, lookup), strict=True):
            keys = leading_keys(call, table)
            requests.append(
                Request(call, action, resource, {**context, "dynamodb:LeadingKeys": keys} if keys else context)
            )
        return requests
    return [Request(call, action, resource, context) for resource in _resources(call, lookup)]


# ---- what AWS does with a function's role beside its code ---------------------------------------
LAMBDA_LOG_STREAM = "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef"


def queue_url(arn: str) -> str:
    _, _, _, region, account, name = arn.split(":")
    return f"https://sqs.{region}.amazonaws.com/{account}/{name}"


def runtime_calls(security: Resolver, function: str) -> list[Call]:
    """The calls Lambda makes with the function's role, as the template configures them: its
    log group, its SQS event sources, its destinations and dead-letter queue."""
    props = security.resolve(security.template["Resources"][function]["Properties"])
    account, region = security.pseudo["AWS::AccountId"], security.pseudo["AWS::Region"]

    def call(what: str, service: str, operation: str, **params: Any) -> Call:
        return Call(function, f"Lambda runtime: {what}", service, operation, params, account, None, region)

    def send(what: str, kind: str, target: str) -> Call:
        if kind == "SQS":
            return call(what, "sqs", "SendMessage", QueueUrl=queue_url(target))
        if kind == "SNS":
            return call(what, "sns", "Publish", TopicArn=target)
        raise NotImplementedError(f"{function}: {what} of type {kind} is not modelled")

    group = (props.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/<{function}>"
    calls = [
        call("LoggingConfig", "logs", op, logGroupName=group, logStreamName=LAMBDA_LOG_STREAM)
        for op in ("CreateLogStream", "PutLogEvents")
    ]
    for name, event in (props.get("Events") or {}).items():
        if event["Type"] == "SQS":
            url = queue_url(event["Properties"]["Queue"])
            calls += [
                call(f"event source {name}", "sqs", op, QueueUrl=url)
                for op in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
            ]
    destinations = (props.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}
    calls += [send(f"{when} destination", d["Type"], d["Destination"]) for when, d in destinations.items()]
    if props.get("DeadLetterQueue"):
        calls.append(send("DeadLetterQueue", props["DeadLetterQueue"]["Type"], props["DeadLetterQueue"]["TargetArn"]))
    return calls


# The KMS requests a service makes with the caller's permissions when the resource is encrypted
# with a customer managed key (an AWS managed key, alias/aws/..., needs no grant).
KMS_BEHIND: dict[str, tuple[str, ...]] = {
    "sns:Publish": ("GenerateDataKey", "Decrypt"),
    "sqs:SendMessage": ("GenerateDataKey", "Decrypt"),
    "sqs:ReceiveMessage": ("Decrypt",),
    "s3:PutObject": ("GenerateDataKey",),
    "s3:GetObject": ("Decrypt",),
    "s3:GetObjectVersion": ("Decrypt",),
    "dynamodb:*": ("Decrypt",),  # the table key, on every data-plane call
}


def encryption_keys(security: Resolver) -> dict[str, str]:
    """Resource ARN → ARN of the customer managed key the template encrypts it with."""
    keys: dict[str, str] = {}
    for name, resource in security.template["Resources"].items():
        if not security.deployed(name):
            continue
        props = security.resolve(resource.get("Properties", {}))
        kind = resource["Type"]
        if kind == "AWS::SNS::Topic":
            arn, key = security.ref(name), props.get("KmsMasterKeyId")
        elif kind == "AWS::SQS::Queue":
            arn, key = security.ref(f"{name}.Arn"), props.get("KmsMasterKeyId")
        elif kind == "AWS::DynamoDB::Table":
            arn, key = security.ref(f"{name}.Arn"), (props.get("SSESpecification") or {}).get("KMSMasterKeyId")
        elif kind == "AWS::S3::Bucket":
            rules = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or [{}]
            default = rules[0].get("ServerSideEncryptionByDefault") or {}
            arn, key = security.ref(f"{name}.Arn"), default.get("KMSMasterKeyID")
        else:
            continue
        if key and not str(key).startswith("alias/aws/"):
            keys[arn] = str(key)
    return keys


def _kms_behind(request: Request, keys: dict[str, str]) -> list[Request]:
    if request.resource is None:
        return []
    service = request.action.split(":")[0]
    actions = KMS_BEHIND.get(request.action) or KMS_BEHIND.get(f"{service}:*", ())
    base = request.resource.split("/index/")[0] if service == "dynamodb" else request.resource
    key = keys.get(base) or (keys.get(base.split("/")[0]) if service == "s3" else None)
    if not key or not actions:
        return []
    context = {**request.context, "kms:ViaService": f"{service}.{request.call.region}.amazonaws.com"}
    return [Request(request.call, f"kms:{a}", key, context, via=request.action) for a in actions]


def _export_write(request: Request) -> list[Request]:
    """CreateExportTask needs the caller to be allowed to write to the destination (the API
    reference: "credentials that have permission to write to the S3 bucket"); CloudWatch Logs
    first writes its test object there."""
    if request.action != "logs:CreateExportTask":
        return []
    params = request.call.params
    prefix = str(params.get("destinationPrefix", "")).strip("/")
    key = f"{prefix}/aws-logs-write-test" if prefix else "aws-logs-write-test"
    resource = f"arn:aws:s3:::{params['destination']}/{key}"
    return [Request(request.call, "s3:PutObject", resource, request.context, via=request.action)]


# Connect's service-linked role as Connect names it in an instance's account (the suffix varies).
CONNECT_SLR = "role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_DEMO"


def _storage_checks(request: Request) -> list[Request]:
    """Associate/UpdateInstanceStorageConfig: what Connect checks on the caller before it writes
    to the storage (the admin guide's examples: the bucket's ACL and location, or the stream, and
    iam:PutRolePolicy on its service-linked role); with SSE-KMS, the key and a grant Connect makes
    (kms:GrantIsForAWSResource)."""
    if request.action not in ("connect:AssociateInstanceStorageConfig", "connect:UpdateInstanceStorageConfig"):
        return []
    call, context = request.call, request.context
    config = call.params.get("StorageConfig") or {}
    arn = f"arn:aws:iam::{call.account}:{CONNECT_SLR}"
    implied = [Request(call, "iam:PutRolePolicy", arn, context, via=request.action)]
    s3 = config.get("S3Config") or {}
    if s3.get("BucketName"):
        bucket = f"arn:aws:s3:::{s3['BucketName']}"
        for action in ("s3:GetBucketAcl", "s3:GetBucketLocation"):
            implied.append(Request(call, action, bucket, context, via=request.action))
    if stream := (config.get("KinesisStreamConfig") or {}).get("StreamArn"):
        implied.append(Request(call, "kinesis:DescribeStream", stream, context, via=request.action))
    encryption = s3.get("EncryptionConfig") or (config.get("KinesisVideoStreamConfig") or {}).get("EncryptionConfig")
    if encryption:
        key = encryption["KeyId"]
        via = {**context, "kms:ViaService": f"connect.{call.region}.amazonaws.com"}
        implied.append(Request(call, "kms:DescribeKey", key, via, via=request.action))
        grant = {**via, "kms:GrantIsForAWSResource": "true"}
        implied.append(Request(call, "kms:CreateGrant", key, grant, via=request.action))
    return implied


def _move_task(request: Request) -> list[Request]:
    """A message-move task runs with its caller's permissions (SQS's DLQ redrive guide): it reads
    and deletes on the source queue (the DLQ) and sends to the destination."""
    if request.action != "sqs:StartMessageMoveTask":
        return []
    call, source = request.call, request.resource
    destination = call.params.get("DestinationArn")  # None: the DLQ's source queues, unnamed
    implied = [
        Request(call, f"sqs:{action}", source, request.context, via=request.action)
        for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
    ]
    return [*implied, Request(call, "sqs:SendMessage", destination, request.context, via=request.action)]


def implied_requests(request: Request, keys: dict[str, str]) -> list[Request]:
    """The requests AWS makes with the caller's permissions behind one request: the write an
    export task checks, what Connect checks before it associates storage, and the KMS requests
    behind encrypted resources."""
    implied = _export_write(request) + _storage_checks(request) + _move_task(request)
    return implied + [k for r in (request, *implied) for k in _kms_behind(r, keys)]


# ---- templates → roles --------------------------------------------------------------------------
def default_physical(template: dict[str, Any], params: dict[str, str], pseudo: dict[str, str]) -> dict[str, str]:
    """Physical values CloudFormation would give the template's resources (their name property,
    else `<stack>-<logical ID>`); a caller's own mapping overrides them."""
    names = Resolver(template, params, pseudo)
    partition, region, account = pseudo["AWS::Partition"], pseudo["AWS::Region"], pseudo["AWS::AccountId"]
    stack = pseudo.get("AWS::StackName", "stack")
    physical: dict[str, str] = {}
    for logical, resource in template["Resources"].items():
        props, kind = resource.get("Properties", {}), resource["Type"]

        def name(key: str) -> str:
            return str(names.resolve(props[key])) if key in props else f"{stack}-{logical}"  # noqa: B023

        if kind == "AWS::SQS::Queue":
            queue = name("QueueName")
            arn = f"arn:{partition}:sqs:{region}:{account}:{queue}"
            physical |= {logical: queue_url(arn), f"{logical}.Arn": arn, f"{logical}.QueueName": queue}
        elif kind == "AWS::SNS::Topic":
            topic = name("TopicName")
            physical |= {logical: f"arn:{partition}:sns:{region}:{account}:{topic}", f"{logical}.TopicName": topic}
        elif kind == "AWS::DynamoDB::Table":
            table = name("TableName")
            physical |= {logical: table, f"{logical}.Arn": f"arn:{partition}:dynamodb:{region}:{account}:table/{table}"}
        elif kind == "AWS::Logs::LogGroup":
            group = name("LogGroupName")
            physical |= {
                logical: group,
                f"{logical}.Arn": f"arn:{partition}:logs:{region}:{account}:log-group:{group}:*",
            }
        elif kind == "AWS::KMS::Key":
            physical |= {logical: logical, f"{logical}.Arn": f"arn:{partition}:kms:{region}:{account}:key/{logical}"}
        elif kind == "AWS::S3::Bucket":
            bucket = name("BucketName")
            physical |= {logical: bucket, f"{logical}.Arn": f"arn:{partition}:s3:::{bucket}"}
        elif kind == "AWS::Events::Rule":
            rule = name("Name")
            physical |= {logical: rule, f"{logical}.Arn": f"arn:{partition}:events:{region}:{account}:rule/{rule}"}
        elif kind == "AWS::SSM::Parameter":
            physical[logical] = name("Name")
        elif kind == "AWS::IAM::ManagedPolicy":
            path = str(names.resolve(props.get("Path", "/")))
            physical[logical] = f"arn:{partition}:iam::{account}:policy{path}{name('ManagedPolicyName')}"
        elif kind == "AWS::IAM::Role":
            path, role = str(names.resolve(props.get("Path", "/"))), name("RoleName")[:64]
            arn = f"arn:{partition}:iam::{account}:role{path}{role}"
            unique = "AROA" + hashlib.sha256(arn.encode()).hexdigest()[:17].upper()  # IAM's RoleId form
            physical |= {logical: role, f"{logical}.Arn": arn, f"{logical}.RoleId": unique}
    return physical


@dataclass(frozen=True)
class Role:
    label: str
    arn: str
    statements: list[Statement]
    trust: list[Statement]


def template_role(resolver: Resolver, logical_id: str, label: str) -> Role:
    """A template role and every statement attached to it: inline policies, template managed
    policies (ManagedPolicyArns), and AWS::IAM::Policy/ManagedPolicy resources naming it."""
    resources = resolver.template["Resources"]
    raw = resources[logical_id]["Properties"]
    if "PermissionsBoundary" in raw:
        raise NotImplementedError(f"{logical_id}: permissions boundaries are not modelled")
    props = resolver.resolve(raw)
    documents = [(f"{logical_id}/{p['PolicyName']}", p["PolicyDocument"]) for p in props.get("Policies", [])]
    managed = {resolver.ref(n): n for n, r in resources.items() if r["Type"] == "AWS::IAM::ManagedPolicy"}
    for arn in props.get("ManagedPolicyArns", []):
        if arn not in managed:
            raise NotImplementedError(f"{logical_id}: managed policy {arn} is not defined in the template")
        documents.append((managed[arn], resolver.resolve(resources[managed[arn]]["Properties"]["PolicyDocument"])))
    for name, resource in resources.items():
        policy = resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        if (
            policy
            and {"Ref": logical_id} in as_list(resource["Properties"].get("Roles", []))
            and resolver.deployed(name)
        ):
            documents.append((name, resolver.resolve(resource["Properties"]["PolicyDocument"])))
    statements = [
        Statement.parse(label, source, raw_statement)
        for source, document in documents
        for raw_statement in as_list(document["Statement"])
    ]
    trust = [
        Statement.parse(label, f"{logical_id}/trust", s)
        for s in as_list(props["AssumeRolePolicyDocument"]["Statement"])
    ]
    return Role(label, resolver.ref(f"{logical_id}.Arn"), statements, trust)


# A person running `connect-guard release` (or restore-role): their own credentials are theirs,
# not the suite's, so only what they reach through a member role is checked (and its trust).
OPERATOR = "Operator"


class Stacks:
    """The roles the two templates deploy for one parameter set: each function's own role in the
    security account, and the member roles (by RoleName) in each source account."""

    def __init__(self, security: Resolver, member: Callable[[str], Resolver], member_accounts: list[str]) -> None:
        self.security = security
        self.member = member  # account → the member template resolved for it
        self.member_accounts = member_accounts
        resources = security.template["Resources"]
        self.functions: dict[str, str] = {}
        for name, resource in resources.items():
            if resource["Type"] == "AWS::Serverless::Function" and security.deployed(name):
                role = resource["Properties"].get("Role")
                if not (isinstance(role, dict) and "Fn::GetAtt" in role):
                    raise NotImplementedError(f"{name}: only explicit roles (Role: !GetAtt X.Arn) are modelled")
                self.functions[name] = as_list(role["Fn::GetAtt"])[0].split(".")[0]
        self.own = {role: template_role(security, role, role) for role in set(self.functions.values())}
        self._members: dict[str, dict[str, Role]] = {}

    def member_roles(self, account: str) -> dict[str, Role]:
        """RoleName → role, as the member stack deploys them in `account` (us-east-1 holds IAM)."""
        if account not in self._members:
            resolver = self.member(account)
            self._members[account] = {
                resolver.ref(name): template_role(resolver, name, f"member:{name}")
                for name, resource in resolver.template["Resources"].items()
                if resource["Type"] == "AWS::IAM::Role" and resolver.deployed(name)
            }
        return self._members[account]

    def role_of(self, call: Call) -> Role | None:
        if call.role is None:
            return self.own[self.functions[call.function]]
        if not call.role.startswith("arn:"):  # credentials nobody handed out here
            return None
        return self.member_roles(call.account).get(call.role.rsplit("/", 1)[-1])

    def in_scope(self) -> list[tuple[str, Role]]:
        """(account, role) of every role a function acts as: its own, and each member role that
        trusts a principal of the security account."""
        own_account = self.security.pseudo["AWS::AccountId"]
        scoped = [(own_account, role) for role in self.own.values()]
        for account in self.member_accounts:
            for role in self.member_roles(account).values():
                if any(_account_of(p) == own_account for s in role.trust for p in s.principals):
                    scoped.append((account, role))
        return scoped


def trusts(target: Role, principal_arn: str) -> bool:
    """Whether the role's trust policy lets `principal_arn` (a role's ARN) assume it."""
    context: Context = {"aws:PrincipalArn": principal_arn, "aws:PrincipalAccount": principal_arn.split(":")[4]}
    call = Call("-", "trust", "sts", "AssumeRole", {}, principal_arn.split(":")[4], None, "-")
    request = Request(call, "sts:AssumeRole", None, context)
    return evaluate(request, [s for s in target.trust if s.admits(principal_arn)])[0] == "allowed"


def _account_of(principal: str) -> str:
    return principal.split(":")[4] if principal.startswith("arn:") else principal


# ---- both ways ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mismatch:
    kind: str  # "not granted", "denied", "not trusted", "unknown role", "never called"
    role: str
    action: str
    resource: str
    where: str  # the function and the path that made the call, or the statement that grants it

    def line(self) -> str:
        return f"{self.kind:<12} {self.role:<28} {self.action:<36} {self.resource}\n{'':13}{self.where}"


def _where(request: Request, count: int) -> str:
    via = f", for {request.via}" if request.via else ""
    more = f" (+{count - 1} more)" if count > 1 else ""
    return f"{request.call.function} <- {request.call.path}{via}{more}"


def _check_operator(request: Request, stacks: Stacks, found: dict[tuple[str, str, str, str], list[Request]]) -> None:
    """An operator's own call: only a member role they assume must trust them (OperatorRoleArn)."""
    if request.action != "sts:AssumeRole" or not request.resource:
        return
    assumed = replace(request.call, role=request.resource, account=request.resource.split(":")[4])
    target = stacks.role_of(assumed)
    operator = stacks.member(assumed.account).params.get("OperatorRoleArn", "")
    if target is None or not operator or not trusts(target, operator):
        kind = "not trusted" if target else "unknown role"
        found.setdefault((kind, OPERATOR, request.action, request.resource), []).append(request)


def check(requests: list[Request], stacks: Stacks) -> list[Mismatch]:
    """Every request granted (and trusted, for sts:AssumeRole), and every grant requested."""
    found: dict[tuple[str, str, str, str], list[Request]] = {}
    used: set[tuple[str, str, str]] = set()  # (account, statement source, action pattern)
    for request in requests:
        if request.call.function == OPERATOR and request.call.role is None:
            _check_operator(request, stacks, found)
            continue
        role = stacks.role_of(request.call)
        if role is None:
            found.setdefault(("unknown role", str(request.call.role), request.action, "-"), []).append(request)
            continue
        decision, statement = evaluate(request, role.statements)
        if decision == "allowed" and statement and request.action == "sts:AssumeRole" and request.resource:
            assumed = replace(request.call, role=request.resource, account=request.resource.split(":")[4])
            target = stacks.role_of(assumed)
            if target is None or not trusts(target, role.arn):
                decision = "not trusted" if target else "unknown role"
        if decision != "allowed":
            found.setdefault((decision, role.label, request.action, str(request.resource)), []).append(request)
        for s in role.statements:
            if s.effect == "Allow" and s.applies(request):
                used |= {(request.call.account, s.source, a) for a in s.actions if action_matches(a, request.action)}
    mismatches = [Mismatch(*key, _where(hits[0], len(hits))) for key, hits in found.items()]
    for account, role in stacks.in_scope():
        for s in role.statements:
            if s.effect != "Allow":
                continue
            if s.not_action or s.not_resource:
                mismatches.append(Mismatch("never called", role.label, "NotAction/NotResource", "-", s.source))
                continue
            mismatches += [
                Mismatch("never called", role.label, a, " ".join(s.resources), f"granted by {s.source}")
                for a in s.actions
                if (account, s.source, a) not in used
            ]
    return sorted(set(mismatches), key=lambda m: (m.kind, m.role, m.action, m.resource))
