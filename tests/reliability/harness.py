"""SQS-driven reliability harness: the real Lambda handlers, their queues, and injected faults.

`Cell` deploys what template.yaml wires for one responder on the embedded AWS (LocalAws seeded
with events/demo-state.yaml): the function's environment as the template resolves it, its SQS
queue with the template's VisibilityTimeout and RedrivePolicy, and its DLQ. It then does what
Lambda's event source mapping does: receive batches of up to BatchSize, invoke the function
(functions/<name>/app.py, imported afresh per container), delete what succeeded, leave the
`batchItemFailures` (or the whole batch when the invocation raised) to come back with a growing
ApproximateReceiveCount, and let SQS move a message to the DLQ on the receive after its fifth.

Faults are injected into the handler's own clients through botocore's event hooks, per
dependency (SNS, DynamoDB, IAM, STS, Connect) and kind: an error answered in `before-call`
(nothing reaches the service, and botocore does not retry it: the call fails as it does once
the client's retries are spent), a connection error, or a read timeout raised in `after-call`
after the service applied the call. A fault is active during the first N receive rounds (every
message still queued is received once per round) or hits calls at random from a seeded RNG.

Every call the handler makes is kept in a ledger (what was applied, what was refused, which
fault hit it); the SOC inbox holds what was published; the embedded IAM and Connect hold the
state after. `check` compares them with the same cell run without faults.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import itertools
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import botocore.loaders
import botocore.session
import yaml
from botocore import handlers
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from cryptography.hazmat.primitives.asymmetric import rsa

from connect_guard_tools import local_aws
from connect_guard_tools.config import replay_parameters
from connect_guard_tools.connect_fake import ConnectApiError
from connect_guard_tools.local_aws import QUARANTINE_POLICY, REGION, SECURITY_ACCOUNT, LocalAws, SnsPublishLimit
from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.conftest import EVENTS, delivered_now
from tests.least_privilege.iam_model import default_physical
from tests.least_privilege.test_least_privilege import environment_of, physical_resources, stacks_for

TEMPLATE = load_template()
SOURCE_ACCOUNT = "111122223333"  # the corpus' source account (a member account)
DEMO_INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"  # its Connect instance (events/demo-state.yaml)
FINDING_SCHEMA = "connect-guard/finding"

# The template's function for each responder, and the code it runs.
FUNCTIONS = {
    "policy_alerts": "PolicyAlertsFunction",
    "profile_rollback": "ProfileRollbackFunction",
    "role_quarantine": "QuarantineFunction",
    "logging_guard": "LoggingGuardFunction",
}

# ---- faults -------------------------------------------------------------------------------------
SERVICES = ("sns", "dynamodb", "iam", "sts", "connect", "cloudtrail")
KINDS = ("throttling", "5xx", "access_denied", "connection", "timeout_after_apply")
TRANSIENT = frozenset({"throttling", "5xx", "connection", "timeout_after_apply"})
# (error code, HTTP status) each service answers with: its API model's codes where it declares
# them, else AWS's common errors (ServiceUnavailable 503, Throttling 400).
ERRORS: dict[str, dict[str, tuple[str, int]]] = {
    "sns": {
        "throttling": ("Throttled", 429),
        "5xx": ("InternalError", 500),
        "access_denied": ("AuthorizationError", 403),
    },
    "dynamodb": {
        "throttling": ("ThrottlingException", 400),
        "5xx": ("InternalServerError", 500),
        "access_denied": ("AccessDeniedException", 400),
    },
    "iam": {
        "throttling": ("Throttling", 400),
        "5xx": ("ServiceUnavailable", 503),
        "access_denied": ("AccessDenied", 403),
    },
    "sts": {
        "throttling": ("Throttling", 400),
        "5xx": ("ServiceUnavailable", 503),
        "access_denied": ("AccessDenied", 403),
    },
    "connect": {
        "throttling": ("ThrottlingException", 429),
        "5xx": ("InternalServiceException", 500),
        "access_denied": ("AccessDeniedException", 403),
    },
    # CloudTrail's model declares ThrottlingException and AccessDeniedException; no 5xx shape.
    "cloudtrail": {
        "throttling": ("ThrottlingException", 400),
        "5xx": ("ServiceUnavailable", 503),
        "access_denied": ("AccessDeniedException", 400),
    },
}
# The writes whose count is the "no duplicate action" invariant.
CONNECT_WRITES = frozenset({"UpdateUserSecurityProfiles", "UpdateSecurityProfile"})
IAM_ATTACHMENTS = frozenset({"AttachUserPolicy", "AttachRolePolicy"})
# logging_guard's restores: a trail's settings put back, an instance attribute set back.
TRAIL_WRITES = frozenset({"UpdateTrail", "PutEventSelectors", "PutInsightSelectors", "StartLogging"})
ATTRIBUTE_WRITES = frozenset({"UpdateInstanceAttribute"})


@dataclass(frozen=True)
class Fault:
    """`kind` on `service` (only `operations`, when given): during the first `rounds` receive
    rounds, or, with `rate`, on each matching call with that probability. Of a cell's faults,
    the first active one that matches a call is the one it meets."""

    service: str
    kind: str
    operations: frozenset[str] = frozenset()
    rounds: int | None = None
    rate: float = 0.0

    def __post_init__(self) -> None:
        assert self.service in SERVICES and self.kind in KINDS, self
        assert (self.rounds is None) != (self.rate == 0.0), "a fault is either for N rounds or at random"

    @property
    def label(self) -> str:
        ops = f"[{'+'.join(sorted(self.operations))}]" if self.operations else ""
        when = f"{self.rounds}-rounds" if self.rounds is not None else f"p{self.rate:g}"
        return f"{self.service}{ops}:{self.kind}:{when}"


@dataclass
class Call:
    """One call the handler made, as it left botocore."""

    service: str
    operation: str
    params: dict[str, Any]
    round: int
    status: int | None  # HTTP status; None: no response (connection error)
    fault: str | None  # the injected kind, if any
    code: str | None = None  # the error code answered

    @property
    def applied(self) -> bool:
        """The service applied it (a read timeout after the call still applied it)."""
        return self.status is not None and self.status < 300

    def finding(self) -> dict[str, Any] | None:
        """The finding an SNS Publish carried."""
        if self.operation != "Publish":
            return None
        return _finding_of(self.params.get("Message"))


_PARAMS = "reliability_params"
_FAULT = "reliability_fault"


class Dependencies:
    """Fault injection and the call ledger, as botocore hooks on the handler's clients.

    Armed only while the simulator invokes the function: the harness's own reads of the state
    neither meet a fault nor enter the ledger.
    """

    def __init__(self, faults: Iterable[Fault] = (), seed: int = 0) -> None:
        self.faults = tuple(faults)
        self.rng = random.Random(seed)
        self.calls: list[Call] = []
        self.round = 0
        self.armed = False

    def hooks(self) -> list[tuple[str, Callable[..., Any], bool]]:
        """(event, handler, first): most specific names, so they run before the Connect fake."""
        specs: list[tuple[str, Callable[..., Any], bool]] = []
        for service in SERVICES:
            specs += [
                (f"before-parameter-build.{service}", self._params, False),
                (f"before-call.{service}", self._before, True),
                (f"after-call.{service}", self._after, True),
            ]
        return specs

    def _fault_for(self, service: str, operation: str) -> Fault | None:
        for fault in self.faults:
            if fault.service != service or (fault.operations and operation not in fault.operations):
                continue
            if fault.rounds is not None:
                if self.round <= fault.rounds:
                    return fault
            elif self.rng.random() < fault.rate:
                return fault
        return None

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_PARAMS] = copy.deepcopy(params)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        context[_FAULT] = None
        if not self.armed:
            return None
        service = model.service_model.service_id.hyphenize()
        fault = self._fault_for(service, model.name)
        if fault is None:
            return None
        context[_FAULT] = fault.kind
        endpoint = f"https://{model.service_model.endpoint_prefix}.{REGION}.amazonaws.com/"
        if fault.kind == "connection":
            self.calls.append(Call(service, model.name, context.get(_PARAMS, {}), self.round, None, fault.kind))
            raise EndpointConnectionError(endpoint_url=endpoint)
        if fault.kind == "timeout_after_apply":
            return None  # the call goes through; after-call times it out
        code, status = ERRORS[service][fault.kind]
        error = {"Code": code, "Message": f"injected {fault.kind} ({fault.label})"}
        return AWSResponse(endpoint, status, {}, None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.armed:
            return
        service = model.service_model.service_id.hyphenize()
        kind = context.get(_FAULT)
        status = int(http_response.status_code)
        code = (parsed.get("Error") or {}).get("Code") if status >= 300 else None
        call = Call(service, model.name, context.get(_PARAMS, {}), self.round, status, kind, code)
        self.calls.append(call)
        if kind == "timeout_after_apply" and call.applied:
            endpoint = f"https://{model.service_model.endpoint_prefix}.{REGION}.amazonaws.com/"
            raise ReadTimeoutError(endpoint_url=endpoint)


class _BuiltinHandlers:
    """An emitter stand-in whose registrations go to every botocore session created from now on
    (botocore.handlers.BUILTIN_HANDLERS, as moto's own hook): the handlers build their sessions."""

    def __init__(self) -> None:
        self.specs: list[tuple[Any, ...]] = []
        self.events = self  # SnsPublishLimit.install takes a session and registers on .events

    def register(self, event_name: str, handler: Callable[..., Any], unique_id: str | None = None) -> None:
        self.specs.append((event_name, handler))

    def register_first(self, event_name: str, handler: Callable[..., Any]) -> None:
        self.specs.append((event_name, handler, handlers.REGISTER_FIRST))


@contextlib.contextmanager
def every_new_session(aws: LocalAws, dependencies: Dependencies) -> Iterator[None]:
    """Sessions the handlers create get the Connect fake, SNS's size limit and the fault hooks."""
    builtin = _BuiltinHandlers()
    for event, handler, first in dependencies.hooks():
        (builtin.register_first if first else builtin.register)(event, handler)
    aws.connect.install(builtin)
    SnsPublishLimit(aws.session).install(builtin)
    saved = boto3.DEFAULT_SESSION
    boto3.DEFAULT_SESSION = None  # a boto3.client() call builds its default session afresh, hooked
    handlers.BUILTIN_HANDLERS.extend(builtin.specs)
    try:
        yield
    finally:
        for spec in builtin.specs:
            handlers.BUILTIN_HANDLERS.remove(spec)
        boto3.DEFAULT_SESSION = saved


# ---- the template's wiring ----------------------------------------------------------------------
@dataclass(frozen=True)
class Wiring:
    """What template.yaml says about one responder's function, queue and DLQ."""

    responder: str
    function: str  # logical ID
    code_dir: Path
    queue: str  # logical IDs
    dlq: str
    batch_size: int
    max_receive_count: int
    visibility_timeout: int
    timeout: int
    memory: int
    report_failures: bool

    @classmethod
    @cache
    def of(cls, responder: str) -> Wiring:
        function = FUNCTIONS[responder]
        props = TEMPLATE["Resources"][function]["Properties"]
        defaults = TEMPLATE.get("Globals", {}).get("Function", {})
        (source,) = [e["Properties"] for e in props["Events"].values() if e["Type"] == "SQS"]
        queue = source["Queue"]["Fn::GetAtt"][0]
        queue_props = TEMPLATE["Resources"][queue]["Properties"]
        redrive = queue_props["RedrivePolicy"]
        return cls(
            responder=responder,
            function=function,
            code_dir=PROJECT_ROOT / props["CodeUri"],
            queue=queue,
            dlq=redrive["deadLetterTargetArn"]["Fn::GetAtt"][0],
            batch_size=int(source.get("BatchSize", 10)),
            max_receive_count=int(redrive["maxReceiveCount"]),
            visibility_timeout=int(queue_props.get("VisibilityTimeout", 30)),
            timeout=int(props.get("Timeout", defaults.get("Timeout", 3))),
            memory=int(props.get("MemorySize", defaults.get("MemorySize", 128))),
            report_failures="ReportBatchItemFailures" in source.get("FunctionResponseTypes", []),
        )


def parameters() -> dict[str, str]:
    """The dev deployment in enforce mode, enrolling the corpus' source account and instance."""
    return replay_parameters(
        "default",
        {
            "ResponseMode": "enforce",
            "MemberAccountIds": SOURCE_ACCOUNT,
            "ConnectInstanceArns": f"arn:aws:connect:{REGION}:{SOURCE_ACCOUNT}:instance/{DEMO_INSTANCE}",
        },
    )


# ---- the function as Lambda runs it -------------------------------------------------------------
@dataclass
class Context:
    """A Lambda context whose remaining time counts down from the template's Timeout."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float  # time.monotonic() when Lambda stops the invocation
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class Function:
    """functions/<name>/app.py in one container: imported on the first invocation (a cold
    start), its module-level state kept from one invocation to the next."""

    _imports = itertools.count()

    def __init__(self, wiring: Wiring, environment: dict[str, str]) -> None:
        self.wiring = wiring
        self.name = f"connect-guard-dev-{wiring.function}"
        self.environment = {
            **environment,
            # What Lambda itself sets.
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(wiring.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }
        self._module: ModuleType | None = None
        self.invocations = 0

    def _container(self) -> ModuleType:
        if self._module is None:
            path = self.wiring.code_dir / "app.py"
            spec = importlib.util.spec_from_file_location(f"reliability_app_{next(self._imports)}", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._module = module
        return self._module

    def invoke(self, event: dict[str, Any]) -> Any:
        self.invocations += 1
        context = Context(
            self.name,
            self.wiring.memory,
            f"arn:aws:lambda:{REGION}:{SECURITY_ACCOUNT}:function:{self.name}",
            str(uuid.uuid4()),
            time.monotonic() + self.wiring.timeout,
            log_group_name=f"/aws/lambda/{self.name}",
            log_stream_name=f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
        )
        with mock.patch.dict(os.environ, self.environment):
            return self._container().lambda_handler(event, context)


# ---- the queue and the event source mapping -----------------------------------------------------
@dataclass
class Sent:
    message_id: str
    body: str
    event_id: str | None  # None: not a parseable event (poison)
    source: str  # the corpus file


@dataclass
class Delivery:
    """What became of each sent message."""

    processed: set[str] = field(default_factory=set)  # deleted after the function reported success
    dlq: Counter[str] = field(default_factory=Counter)  # sent message ID → copies in a DLQ
    unattributed: list[str] = field(default_factory=list)  # DLQ bodies that match no sent message
    receives: Counter[str] = field(default_factory=Counter)  # message ID → times received
    left: set[str] = field(default_factory=set)  # still queued after the drain (should never happen)
    rounds: int = 0
    errors: list[str] = field(default_factory=list)  # invocations that raised


class Cell:
    """One responder deployed on a fresh embedded AWS, fed through its queue."""

    def __init__(
        self, aws: LocalAws, responder: str, dependencies: Dependencies, environment: dict[str, str | None]
    ) -> None:
        self.aws = aws
        self.wiring = Wiring.of(responder)
        self.deps = dependencies
        self.sqs = aws.session.client("sqs")  # the harness's own client: no faults, no ledger
        params = parameters()
        # The responders name neither the archive key nor the chat topic: stand-ins will do.
        stand_in = aws.session.client("sns").create_topic(Name="connect-guard-dev-chat")["TopicArn"]
        embedded = physical_resources(aws, aws.key_id, stand_in)
        own = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": SECURITY_ACCOUNT}
        self.physical = default_physical(TEMPLATE, params, own | {"AWS::StackName": "connect-guard-dev"}) | embedded
        self.stacks = stacks_for(params, embedded)
        resolved = environment_of(self.stacks, self.wiring.function) | environment
        self.environment = {k: v for k, v in resolved.items() if v is not None}
        self._create_queues()
        self.function = Function(self.wiring, self.environment)
        self.queue_url = self.physical[self.wiring.queue]
        self.queue_arn = self.physical[f"{self.wiring.queue}.Arn"]
        self.sent: list[Sent] = []
        self.delivery = Delivery()

    def _create_queues(self) -> None:
        """The function's queue and DLQ, and any other queue its environment names (a DLQ it
        sends to itself, say), named and configured as deployed (DLQs first)."""
        resolver = self.stacks.security
        named = set(self.environment.values())
        queues = [
            (logical, resolver.resolve(r.get("Properties", {})))
            for logical, r in TEMPLATE["Resources"].items()
            if r["Type"] == "AWS::SQS::Queue"
            and resolver.deployed(logical)
            and logical != "FindingsArchiveQueue"  # the embedded AWS has it
            and (
                logical in (self.wiring.queue, self.wiring.dlq)
                or {self.physical[logical], self.physical[f"{logical}.Arn"]} & named
            )
        ]
        for logical, props in sorted(queues, key=lambda q: "RedrivePolicy" in q[1]):
            attributes = {"VisibilityTimeout": str(props.get("VisibilityTimeout", 30))}
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            url = self.sqs.create_queue(QueueName=self.physical[f"{logical}.QueueName"], Attributes=attributes)
            assert url["QueueUrl"] == self.physical[logical], (url, self.physical[logical])

    # -- feeding and draining ---------------------------------------------------------------
    def send(self, items: Iterable[tuple[str, str]]) -> None:
        """(corpus file, body) pairs, as EventBridge delivers them to the queue."""
        for source, body in items:
            message_id = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]
            self.sent.append(Sent(message_id, body, _event_id(body), source))

    def _records(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The SQS event Lambda's event source mapping invokes the function with."""
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": dict(m.get("Attributes", {})),
                    "messageAttributes": {
                        name: {
                            "stringValue": a.get("StringValue"),
                            "binaryValue": a.get("BinaryValue"),
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": a["DataType"],
                        }
                        for name, a in (m.get("MessageAttributes") or {}).items()
                    },
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }

    def _invoke(self, messages: list[dict[str, Any]]) -> set[str]:
        """One invocation; the message IDs that failed (all of them when it raised)."""
        ids = {m["MessageId"] for m in messages}
        self.deps.armed = True
        try:
            response = self.function.invoke(self._records(messages))
        except Exception as error:  # a function error: Lambda returns the whole batch to the queue
            self.delivery.errors.append(f"{type(error).__name__}: {error}")
            return ids
        finally:
            self.deps.armed = False
        if not self.wiring.report_failures or not response:
            return set()
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        if failures is None:
            return set()
        failed = {str(f.get("itemIdentifier") or "") for f in failures}
        if not failed <= ids:  # an empty or unknown identifier: Lambda fails the whole batch
            return ids
        return failed

    def drain(self, max_rounds: int = 12) -> Delivery:
        """Receive rounds until the queue is empty: a message that failed is visible again in
        the next round, as after its visibility timeout."""
        for round_number in range(1, max_rounds + 1):
            self.deps.round = round_number
            failed_handles: list[str] = []
            received = 0
            while True:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=min(self.wiring.batch_size, 10),
                    VisibilityTimeout=self.wiring.visibility_timeout,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not messages:
                    break
                received += len(messages)
                for m in messages:
                    self.delivery.receives[m["MessageId"]] += 1
                failed = self._invoke(messages)
                done = [m for m in messages if m["MessageId"] not in failed]
                if done:
                    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
                    self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
                    self.delivery.processed.update(m["MessageId"] for m in done)
                failed_handles += [m["ReceiptHandle"] for m in messages if m["MessageId"] in failed]
            # Nothing visible: what had its last receive moved to the DLQ on this receive.
            if not received and self._queued() == 0:
                self.delivery.rounds = round_number
                break
            if failed_handles:
                for start in range(0, len(failed_handles), 10):
                    entries = [
                        {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                        for i, handle in enumerate(failed_handles[start : start + 10])
                    ]
                    self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
                self._elapse(self.wiring.visibility_timeout)
        else:
            self.delivery.rounds = max_rounds
        self._read_dlqs()
        self.delivery.left = {s.message_id for s in self.sent} - self.delivery.processed - set(self.delivery.dlq)
        return self.delivery

    def _queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def _elapse(self, seconds: int) -> None:
        """The visibility timeout passes before SQS redelivers: it is 6x the function timeout,
        so an in-progress dedup record a failed attempt left behind has expired by then. The
        redelivery here comes at once: the dedup items' expiry times are moved back instead."""
        table = self.environment.get("DEDUP_TABLE_NAME")
        if not table:
            return
        dynamodb = self.aws.session.client("dynamodb")
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                updates = {}
                for attribute, unit in (("expiration", 1), ("in_progress_expiration", 1000)):
                    if "N" in item.get(attribute, {}):
                        updates[attribute] = {"N": str(int(item[attribute]["N"]) - seconds * unit)}
                if updates:
                    dynamodb.put_item(TableName=table, Item={**item, **updates})

    def dlq_urls(self) -> list[str]:
        """The redrive target, and any queue the function's environment names that is a DLQ."""
        urls = [self.physical[self.wiring.dlq]]
        by_arn = {v: self.physical[k.removesuffix(".Arn")] for k, v in self.physical.items() if k.endswith(".Arn")}
        for value in self.environment.values():
            url = by_arn.get(value, value)
            name = url.rsplit("/", 1)[-1]
            dead_letter = any(word in name.lower() for word in ("dlq", "deadletter", "dead-letter"))
            if url.startswith("https://sqs.") and dead_letter and url not in urls:
                urls.append(url)
        return urls

    def _read_dlqs(self) -> None:
        by_id = {s.message_id: s for s in self.sent}
        for url in self.dlq_urls():
            for message in _drain_queue(self.sqs, url):
                source = origin(message, self.sent, by_id)
                if source is None:
                    self.delivery.unattributed.append(message["Body"][:200])
                else:
                    self.delivery.dlq[source] += 1

    # -- what the SOC and the state show ------------------------------------------------------
    def findings(self) -> list[dict[str, Any]]:
        found = []
        for envelope in self.aws.inbox():
            finding = _finding_of(envelope.get("Message"))
            if finding is not None:
                found.append(finding)
        return found


def _drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        messages += batch
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        with contextlib.suppress(ValueError):
            yield from _strings(json.loads(value))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def origin(message: dict[str, Any], sent: list[Sent], by_id: dict[str, Sent]) -> str | None:
    """The sent message a DLQ message stands for: moved by the redrive (same ID), or sent there
    by the function itself (the same body, or a wrapper naming the message ID or holding the body)."""
    if message["MessageId"] in by_id:
        return str(message["MessageId"])
    for s in sent:
        if message["Body"] == s.body:
            return s.message_id
    attributes = [a.get("StringValue") for a in (message.get("MessageAttributes") or {}).values()]
    strings = set(_strings(message["Body"])) | {a for a in attributes if a}
    for s in sent:
        if s.message_id in strings or s.body in strings:
            return s.message_id
    return None


def _event_id(body: str) -> str | None:
    try:
        event = json.loads(body)
        event_id = event["detail"]["eventID"]
    except (ValueError, KeyError, TypeError):
        return None
    return event_id if isinstance(event_id, str) and event_id.strip() else None


def _finding_of(message: Any) -> dict[str, Any] | None:
    """The JSON finding in an SNS message (MessageStructure json: its `default`), if it is one."""
    try:
        value = json.loads(message) if isinstance(message, str) else message
        if isinstance(value, dict) and "default" in value and "schema" not in value:
            value = json.loads(value["default"])
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) and value.get("schema") == FINDING_SCHEMA else None


# ---- the corpus ---------------------------------------------------------------------------------
def corpus_item(relative: str) -> tuple[str, str]:
    """A sample as delivered now (fresh timestamps); a file that is not JSON goes as it is."""
    text = (EVENTS / relative).read_text()
    try:
        event = json.loads(text)
    except ValueError:
        return relative, text
    if isinstance(event, dict) and isinstance(event.get("detail"), dict):
        event = delivered_now(event)
    return relative, json.dumps(event)


# ---- findings, actions and the state they claim -------------------------------------------------
# ("connect_user" | "security_profile", instance ID, its ID) or ("iam_user" | "iam_role", account, name)
Subject = tuple[str, str, str]


@dataclass(frozen=True)
class Claim:
    """An action a finding reports: on what, what it sets, and whether it says it was taken."""

    subject: Subject
    operation: str
    status: str  # taken | failed | proposed
    target: frozenset[str] | None  # Connect: the profile IDs or permissions it sets


def is_failed_alert(finding: dict[str, Any]) -> bool:
    """The last-attempt alert: "Rollback FAILED", "Quarantine FAILED" (the state re-read: not in place)."""
    return " FAILED" in f" {finding.get('title', '')}" or str(finding.get("kind", "")).endswith("_failed")


def is_unconfirmed_alert(finding: dict[str, Any]) -> bool:
    """The last-attempt alert when the state could not be re-read: "Rollback UNCONFIRMED",
    "Quarantine UNCONFIRMED". It claims neither way, so it stands for an action in place and
    for one that is not (the SOC checks by hand)."""
    return " UNCONFIRMED" in f" {finding.get('title', '')}" or str(finding.get("kind", "")).endswith("_unconfirmed")


def claims(finding: dict[str, Any]) -> list[Claim]:
    found = []
    for action in finding.get("actions") or []:
        params, operation = action.get("parameters") or {}, action.get("operation")
        if action.get("service") == "connect" and operation in CONNECT_WRITES:
            instance = str(params.get("InstanceId", "")).rsplit("/", 1)[-1]
            if operation == "UpdateUserSecurityProfiles":
                subject: Subject = ("connect_user", instance, str(params.get("UserId")))
                target = frozenset(params.get("SecurityProfileIds") or ())
            else:
                subject = ("security_profile", instance, str(params.get("SecurityProfileId")))
                target = frozenset(params.get("Permissions") or ())
            found.append(Claim(subject, operation, str(action.get("status")), target))
        elif action.get("service") == "iam" and operation in IAM_ATTACHMENTS:
            account = str(params.get("PolicyArn", "")).split(":")[4]
            if operation == "AttachUserPolicy":
                subject = ("iam_user", account, str(params.get("UserName")))
            else:
                subject = ("iam_role", account, str(params.get("RoleName")))
            found.append(Claim(subject, operation, str(action.get("status")), None))
        elif (action.get("service"), operation) in LOGGING_WRITES:
            subject, target = _logging_subject(operation, params)
            found.append(Claim(subject, operation, str(action.get("status")), target))
    return found


LOGGING_WRITES = {("cloudtrail", op) for op in TRAIL_WRITES} | {("connect", op) for op in ATTRIBUTE_WRITES}


def _logging_subject(operation: str, params: dict[str, Any]) -> tuple[Subject, frozenset[str]]:
    """A logging_guard write: ("trail", trail, operation) with the settings it puts, or
    ("instance_attribute", instance ID, attribute) with the value it sets."""
    if operation in ATTRIBUTE_WRITES:
        instance = str(params.get("InstanceId", "")).rsplit("/", 1)[-1]
        return ("instance_attribute", instance, str(params.get("AttributeType"))), frozenset({str(params.get("Value"))})
    trail = str(params.get("Name") or params.get("TrailName") or "").rsplit("/", 1)[-1]
    settings = {k: json.dumps(v, sort_keys=True) for k, v in params.items() if k not in ("Name", "TrailName")}
    return ("trail", trail, operation), frozenset(f"{k}={v}" for k, v in settings.items())


def written_subject(call: Call) -> Subject | None:
    """The subject of an applied write in the ledger (the writes the invariants count)."""
    params = call.params
    if (call.service, call.operation) in LOGGING_WRITES:
        return _logging_subject(call.operation, params)[0]
    if call.service == "connect" and call.operation in CONNECT_WRITES:
        instance = str(params.get("InstanceId", "")).rsplit("/", 1)[-1]
        if call.operation == "UpdateUserSecurityProfiles":
            return ("connect_user", instance, str(params.get("UserId")))
        return ("security_profile", instance, str(params.get("SecurityProfileId")))
    if call.service == "iam" and call.operation in IAM_ATTACHMENTS:
        if not str(params.get("PolicyArn", "")).endswith(f"/{QUARANTINE_POLICY}"):
            return None
        account = str(params["PolicyArn"]).split(":")[4]
        kind, key = ("iam_user", "UserName") if call.operation == "AttachUserPolicy" else ("iam_role", "RoleName")
        return (kind, account, str(params.get(key)))
    return None


class State:
    """The embedded IAM and Connect as they are after a drain (read with the harness's clients)."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        self._iam: dict[str, Any] = {}

    def _client(self, account: str) -> Any:
        if account not in self._iam:
            self._iam[account] = self.aws.account_session(account).client("iam")
        return self._iam[account]

    def connect(self, subject: Subject) -> frozenset[str] | None:
        kind, instance, key = subject
        try:
            if kind == "connect_user":
                return frozenset(self.aws.connect.user(instance, key)["SecurityProfileIds"])
            return frozenset(self.aws.connect.profile(instance, key)["Permissions"])
        except ConnectApiError:  # gone
            return None

    def quarantined(self, subject: Subject) -> bool:
        kind, account, name = subject
        iam = self._client(account)
        if kind == "iam_user":
            attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        else:
            attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        return any(p["PolicyArn"].endswith(f"/{QUARANTINE_POLICY}") for p in attached)

    def in_place(self, claim: Claim) -> bool:
        """The claimed action is what the state now shows."""
        if claim.subject[0].startswith("iam_"):
            return self.quarantined(claim.subject)
        if claim.subject[0] == "trail":
            return self.trail_shows(claim)
        if claim.subject[0] == "instance_attribute":
            _, instance, kind = claim.subject
            return {self.aws.connect.attribute(instance, kind)} == claim.target
        return self.connect(claim.subject) == claim.target

    def trail_shows(self, claim: Claim) -> bool:
        """The security account's trail has the settings the restore put (read back from CloudTrail)."""
        _, name, operation = claim.subject
        wanted = {k: json.loads(v) for k, v in (item.split("=", 1) for item in claim.target or ())}
        cloudtrail = self.aws.session.client("cloudtrail")
        try:
            if operation == "StartLogging":
                return bool(cloudtrail.get_trail_status(Name=name)["IsLogging"])
            if operation == "PutEventSelectors":
                got = cloudtrail.get_event_selectors(TrailName=name)
                key = "AdvancedEventSelectors" if "AdvancedEventSelectors" in wanted else "EventSelectors"
                return _selectors(got.get(key)) == _selectors(wanted[key])
            if operation == "PutInsightSelectors":
                got = cloudtrail.get_insight_selectors(TrailName=name).get("InsightSelectors", [])
                return _selectors(got) == _selectors(wanted["InsightSelectors"])
            trail = cloudtrail.get_trail(Name=name)["Trail"]
        except cloudtrail.exceptions.TrailNotFoundException:
            return False
        shown = {
            "S3BucketName": trail.get("S3BucketName", ""),
            "S3KeyPrefix": trail.get("S3KeyPrefix", ""),
            "KmsKeyId": trail.get("KmsKeyId", ""),
            "IsMultiRegionTrail": trail.get("IsMultiRegionTrail"),
            "IncludeGlobalServiceEvents": trail.get("IncludeGlobalServiceEvents"),
            "EnableLogFileValidation": trail.get("LogFileValidationEnabled"),
        }
        return all(shown.get(k) == v for k, v in wanted.items())


def _selectors(selectors: Any) -> list[str]:
    """Selectors compared by what they select (CloudTrail fills in empty lists it was not sent)."""
    return sorted(
        json.dumps({k: v for k, v in s.items() if v not in ([], None)}, sort_keys=True) for s in selectors or []
    )


# ---- one run ------------------------------------------------------------------------------------
@dataclass
class Result:
    responder: str
    faults: tuple[Fault, ...]
    sent: list[Sent]
    delivery: Delivery
    findings: list[dict[str, Any]]
    calls: list[Call]
    in_place: dict[Claim, bool]  # every claim any finding (or the fault-free run) made, against the state after
    invocations: int

    def findings_for(self, event_id: str) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["event"]["event_id"] == event_id and f.get("responder") == self.responder]


def run(
    responder: str,
    items: list[tuple[str, str]],
    faults: Iterable[Fault] = (),
    seed: int = 0,
    expected: Result | None = None,
    environment: dict[str, str | None] | None = None,
) -> Result:
    """Send `items` to the responder's queue on a fresh embedded AWS and drain it under `faults`
    (`environment` changes the function's variables: None removes one)."""
    dependencies = Dependencies(faults, seed)
    with quick_setup(), LocalAws() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        with every_new_session(aws, dependencies):
            cell = Cell(aws, responder, dependencies, environment or {})
            cell.send(items)
            delivery = cell.drain()
        findings = cell.findings()
        state = State(aws)
        every_claim = {c for f in findings for c in claims(f)}
        if expected is not None:
            every_claim |= {c for f in expected.findings for c in claims(f)}
        in_place = {c: state.in_place(c) for c in every_claim}
        return Result(
            responder,
            dependencies.faults,
            cell.sent,
            delivery,
            findings,
            dependencies.calls,
            in_place,
            cell.function.invocations,
        )


@cache
def _loader() -> Any:
    return botocore.loaders.create_loader()


_safe_load = yaml.safe_load


@cache
def _parsed(text: str) -> Any:
    return _safe_load(text)


_key_material = cache(rsa.generate_private_key)


@contextlib.contextmanager
def quick_setup() -> Iterator[None]:
    """What each cell repeats for nothing, done once: every session shares one model loader (a
    cold start parses each service model again, ~30 ms a client), the demo state is parsed once,
    and the RSA keys moto makes for KMS keys and SNS signatures are made once (~40 ms a key).
    None of it changes what the code under test sees; together they halve a cell's cost."""
    with (
        mock.patch.object(botocore.session, "create_loader", lambda *_: _loader()),
        mock.patch.object(local_aws.yaml, "safe_load", lambda text: copy.deepcopy(_parsed(text))),
        mock.patch.object(rsa, "generate_private_key", _key_material),
    ):
        yield


@cache
def fault_free(responder: str, items: tuple[tuple[str, str], ...]) -> Result:
    """The same cell without faults: what each event needs (alerts, actions) when nothing fails.

    Cached per corpus selection; timestamps were fixed when the items were built.
    """
    return run(responder, list(items))


# ---- the invariants -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    invariant: str
    event: str  # the corpus file(s) of the event
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.event}: {self.detail}"


def _publish_hit(result: Result, event_id: str, failed_alert: bool | None = None) -> bool:
    """An injected SNS fault hit a publish of a finding about the event (of a last-attempt alert
    only, FAILED or UNCONFIRMED, or of any other only, when `failed_alert` says so)."""
    for call in result.calls:
        if call.service != "sns" or call.operation != "Publish" or call.fault is None:
            continue
        finding = call.finding()
        if finding is None or finding["event"]["event_id"] != event_id:
            continue
        last_attempt = is_failed_alert(finding) or is_unconfirmed_alert(finding)
        if failed_alert is None or last_attempt == failed_alert:
            return True
    return False


def check(result: Result, expected: Result) -> list[Violation]:
    """The invariants of issue 11 point 6, for one cell against its fault-free run.

    - nothing lost: every message was processed (deleted after a success) or is in the DLQ,
      once; nothing in a DLQ that was not sent;
    - every processed event whose fault-free run alerted has an alert (other than a FAILED one);
    - no duplicate action: at most one applied Connect update or quarantine-policy attachment
      per user, profile or principal (a call that timed out after it was applied counts);
    - every finding agrees with the state after: an action it says was taken is in place, one
      it says failed is not; a FAILED alert never stands for an action that is in place;
    - an event's findings, duplicates included, all carry the same finding ID;
    - every event that ended in the DLQ with an action due (taken in the fault-free run) and
      not in place has its FAILED alert, unless an injected SNS fault hit that very alert;
    - an action in place is reported as taken by a finding about its event (the retry after a
      crash or a fault included), unless the event ended in the DLQ with SNS refusing its alerts;
    - transient faults (throttling, 5xx, connection errors, timeouts) never leave a due action
      undone on an event that was acknowledged, and when they clear before the last receive
      they send nothing but poison to the DLQ;
    - no finding stands for a message that is not an event (poison).
    """
    out: list[Violation] = []
    delivery = result.delivery
    groups: dict[str, list[Sent]] = {}
    for sent in result.sent:
        if sent.event_id is not None:
            groups.setdefault(sent.event_id, []).append(sent)

    def name(sents: list[Sent]) -> str:
        return ", ".join(sorted({s.source for s in sents}))

    # Nothing lost.
    for sent in result.sent:
        copies = delivery.dlq.get(sent.message_id, 0)
        if sent.message_id in delivery.left:
            out.append(Violation("nothing lost", sent.source, f"still queued after {delivery.rounds} rounds"))
        elif sent.message_id not in delivery.processed and not copies:
            out.append(Violation("nothing lost", sent.source, "neither processed nor in the DLQ"))
        if copies > 1:
            out.append(Violation("nothing lost", sent.source, f"{copies} copies in the DLQ"))
    out += [
        Violation("nothing lost", "(DLQ)", f"a DLQ message matches no sent message: {b!r}")
        for b in delivery.unattributed
    ]
    accounted = len(delivery.processed | set(delivery.dlq))
    if accounted != len(result.sent):
        out.append(Violation("nothing lost", "(all)", f"processed + DLQ = {accounted}, received {len(result.sent)}"))

    # No duplicate action.
    writes = Counter(s for c in result.calls if c.applied and (s := written_subject(c)) is not None)
    for subject, count in writes.items():
        if count > 1:
            out.append(Violation("no duplicate action", "/".join(subject), f"{count} applied writes"))

    transient_only = bool(result.faults) and all(f.kind in TRANSIENT for f in result.faults)
    clears_in_time = transient_only and all(
        f.rounds is not None and f.rounds < Wiring.of(result.responder).max_receive_count for f in result.faults
    )
    for event_id, sents in groups.items():
        event = name(sents)
        ids = {s.message_id for s in sents}
        # A message the function put in its DLQ itself (and reported handled) counts as DLQ'd. An
        # acknowledged copy vouches for its event only when no copy is in a DLQ: another message's
        # copy is acknowledged as a duplicate while the first holds the dedup claim, and the event
        # is then that message's to finish: by a retry, or in the DLQ with its FAILED alert
        # (docs/reliability.md, "Dedup").
        in_dlq = bool(ids & set(delivery.dlq))
        processed = not in_dlq and bool(ids & delivery.processed)
        findings = result.findings_for(event_id)
        unconfirmed = [f for f in findings if is_unconfirmed_alert(f)]
        alerts = [f for f in findings if not is_failed_alert(f) and not is_unconfirmed_alert(f)]
        failed_alerts = [f for f in findings if is_failed_alert(f)]
        wanted = [f for f in expected.findings_for(event_id) if not is_failed_alert(f)]
        due = {c for f in wanted for c in claims(f) if c.status == "taken"}
        if due - result.in_place.keys():
            raise ValueError("run the cell with expected= its fault-free result: its claims need the state after")

        if processed and wanted and not alerts:
            out.append(Violation("alert for every processed event", event, "acknowledged with no alert published"))

        for finding in findings:
            for claim in claims(finding):
                if claim.status == "taken" and not result.in_place[claim]:
                    out.append(
                        Violation(
                            "finding agrees with the state",
                            event,
                            f"{finding['title']!r} says {claim.operation} taken on {'/'.join(claim.subject)}, "
                            "the state does not show it",
                        )
                    )
                if claim.status == "failed" and result.in_place[claim]:
                    out.append(
                        Violation(
                            "finding agrees with the state",
                            event,
                            f"{finding['title']!r} says {claim.operation} failed, but it is in place",
                        )
                    )
        # A FAILED alert is true when sent; a later copy of the same event (same finding ID) that
        # then made the action supersedes it with its own report. Only a FAILED one left last lies.
        reports = [f for f in findings if is_failed_alert(f) or any(c.status == "taken" for c in claims(f))]
        if reports and is_failed_alert(reports[-1]) and any(result.in_place[c] for c in due):
            out.append(
                Violation("finding agrees with the state", event, "a FAILED alert for an action that is in place")
            )

        finding_ids = {f["finding_id"] for f in findings}
        if len(finding_ids) > 1:
            out.append(Violation("duplicates share the finding ID", event, f"{len(finding_ids)} finding IDs"))

        undone = [c for c in due if not result.in_place[c]]
        if (
            in_dlq
            and undone
            and not failed_alerts
            and not unconfirmed
            and not _publish_hit(result, event_id, failed_alert=True)
        ):
            out.append(
                Violation(
                    "FAILED alert for every DLQ'd due action",
                    event,
                    f"{undone[0].operation} not in place, no FAILED alert",
                )
            )

        for claim in due:
            if not result.in_place[claim]:
                continue
            reported = any(c.subject == claim.subject and c.status == "taken" for f in alerts for c in claims(f))
            if not reported and not unconfirmed and not (in_dlq and _publish_hit(result, event_id)):
                out.append(
                    Violation(
                        "an action in place is reported",
                        event,
                        f"{claim.operation} is in place but no finding says so "
                        f"({'; '.join(repr(f['title']) for f in alerts) or 'no alert'})",
                    )
                )

        if transient_only and processed:
            for claim in undone:
                out.append(
                    Violation(
                        "transient faults leave no due action undone",
                        event,
                        f"acknowledged with {claim.operation} not in place",
                    )
                )
        if clears_in_time and not processed:
            out.append(Violation("transient faults that clear send nothing to the DLQ", event, "ended in the DLQ"))

    known = set(groups)
    for finding in result.findings:
        if finding.get("responder") == result.responder and finding["event"]["event_id"] not in known:
            out.append(Violation("no finding for poison", finding["event"]["event_id"], repr(finding.get("title"))))
    return out


def summary(result: Result) -> str:
    """What a cell did, for a failure message."""
    delivery = result.delivery
    lines = [
        f"{result.responder} under {', '.join(f.label for f in result.faults) or 'no fault'}: "
        f"{len(result.sent)} sent, {len(delivery.processed)} processed, {sum(delivery.dlq.values())} in the DLQ, "
        f"{result.invocations} invocations over {delivery.rounds} rounds, "
        f"{sum(1 for c in result.calls if c.fault)} calls faulted",
    ]
    for sent in result.sent:
        status = "?"
        if delivery.dlq[sent.message_id]:
            status = "DLQ"
        elif sent.message_id in delivery.processed:
            status = "processed"
        titles = [f["title"] for f in result.findings_for(sent.event_id)] if sent.event_id else []
        lines.append(f"  {sent.source}: {status} after {delivery.receives[sent.message_id]} receive(s); {titles}")
    return "\n".join(lines)
