"""An embedded, in-memory AWS (moto) holding the stack's stateful resources.

Serves the replay and the integration tests alike: the alert topic (KMS) with a "SOC inbox"
queue subscribed to it, the dedup table with the key schema template.yaml declares, and the
demo IAM state of the source accounts (events/demo-state.yaml).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.session
import yaml
from moto import mock_aws
from moto.cloudtrail.models import Trail
from moto.iam.exceptions import IAMException, LimitExceededException
from moto.iam.models import IAMBackend
from moto.organizations.exceptions import ConstraintViolationException
from moto.organizations.models import OrganizationsBackend
from moto.sqs.models import Message, Queue, sqs_backends

from connect_guard.baseline import BaselineStore, InstanceBaseline, ProfileBaseline, UserBaseline
from connect_guard.clients import AwsClients
from connect_guard.connect_storage import StorageSnapshots, StorageState
from connect_guard.identity_center import DENY_SID, SCP_MAX_CHARACTERS, deny_statement
from connect_guard.profile_access import ProfileAccess
from connect_guard.quarantine import RoleSnapshot, RoleSnapshots
from connect_guard.settings import (
    MEMBER_ROLE_PATH,
    SUITE_WRITER_ROLES,
    Settings,
    member_export_parameter,
    member_role_name,
    suite_role_name,
)
from connect_guard.trails import TrailGateway, TrailSnapshots, TrailState
from connect_guard_tools.backend_patches import BackendPatches
from connect_guard_tools.connect_fake import ConnectFake, SeededInstance, seed_from_spec
from connect_guard_tools.local_kms import DeferredKeyPairs, KmsKeyStates, create_key, seed_key, tamper_key
from connect_guard_tools.message_moves import MessageMoves
from connect_guard_tools.plumbing import PARAMETER as PLUMBING_PARAMETER
from connect_guard_tools.plumbing import EmbeddedPlumbing, PlumbingStrictness
from connect_guard_tools.queue_policies import QueuePolicySends

_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SECURITY_ACCOUNT = "123456789012"  # moto's default account plays the security account
# A role the security account may assume (its own policies decide who): the embedded member roles.
SECURITY_ACCOUNT_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SECURITY_ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    ],
}
REGION = "us-east-1"  # IAM's CloudTrail events reach EventBridge only here
SUITE_KEY_ID = "5ec0a1d2-9a7b-4c3e-8f10-2b6d4e8c0a11"  # template.yaml's SuiteKey (fixed: samples name it)
ENVIRONMENT = "dev"
QUARANTINE_POLICY = "connect-guard-quarantine"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


_READ_PREFIXES = (
    "Get",
    "List",
    "Describe",
    "Search",
    "Query",
    "Scan",
    "BatchGet",
    "Head",
    "Receive",
    "AssumeRole",
)


class CallRecorder:
    """Mutating AWS calls as they leave botocore, and the email text of each SNS publish."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.emails: list[str] = []
        self.findings: list[dict[str, Any]] = []
        self.paused = False  # while the embedded AWS provisions itself: its calls are nobody's actions

    def clear(self) -> None:
        self.calls.clear()
        self.emails.clear()
        self.findings.clear()

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.paused or model.name.startswith(_READ_PREFIXES):
            return
        self.calls.append({"service": model.service_model.endpoint_prefix, "operation": model.name})
        if model.name == "Publish" and params.get("MessageStructure") == "json":
            message = json.loads(params["Message"])
            self.emails.append(message.get("email", ""))
            self.findings.append(json.loads(message["default"]))


# The stacks' QuarantinePolicy (template.yaml, member/template.yaml).
QUARANTINE_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "QuarantineDeniesEverything", "Effect": "Deny", "Action": "*", "Resource": "*"}],
}


def _create_quarantine_policy(iam: Any) -> None:
    iam.create_policy(
        PolicyName=QUARANTINE_POLICY, Path="/connect-guard/", PolicyDocument=json.dumps(QUARANTINE_DOCUMENT)
    )


class SnsPublishLimit:
    """SNS's 256 KB limit on a Publish (message and attributes together), which moto does not
    enforce: a larger one fails with InvalidParameter, as in SNS, before anything records it.

    A botocore hook: `install(session)` before creating clients, and every SNS client has it.
    """

    MAX_BYTES = 262_144

    def __init__(self, session: boto3.session.Session) -> None:
        # The session's own exception classes: `sns.exceptions.InvalidParameterException` catches it.
        self._exceptions = session._session._get_internal_component("exceptions_factory")

    def install(self, session: boto3.session.Session) -> None:
        # The most specific event name runs first: before the CallRecorder's generic hook.
        session.events.register("before-parameter-build.sns.Publish", self)

    @staticmethod
    def size(params: dict[str, Any]) -> int:
        attributes = params.get("MessageAttributes") or {}
        values = (
            len(name.encode()) + len(str(a.get("DataType", "")).encode()) + len(_attribute_value(a))
            for name, a in attributes.items()
        )
        return len(str(params.get("Message", "")).encode()) + sum(values)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        size = self.size(params)
        if size > self.MAX_BYTES:
            error = self._exceptions.create_client_exceptions(model.service_model).from_code("InvalidParameter")
            raise error(
                {
                    "Error": {"Code": "InvalidParameter", "Message": "Invalid parameter: Message too long"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )


def _attribute_value(attribute: dict[str, Any]) -> bytes:
    binary = attribute.get("BinaryValue")
    return bytes(binary) if binary is not None else str(attribute.get("StringValue", "")).encode()


class IamQuotas(BackendPatches):
    """IAM's quota on managed policies attached to one user or role (10 by default), which moto
    does not enforce: an attachment beyond it fails with LimitExceeded and IAM's message."""

    MANAGED_POLICIES_PER_PRINCIPAL = 10

    def patches(self) -> list[Any]:
        return [
            mock.patch.object(IAMBackend, "attach_user_policy", _limited(IAMBackend.attach_user_policy, "User")),
            mock.patch.object(IAMBackend, "attach_role_policy", _limited(IAMBackend.attach_role_policy, "Role")),
        ]


def _limited(attach: Callable[[IAMBackend, str, str], None], kind: str) -> Callable[[IAMBackend, str, str], None]:
    def attach_within_quota(backend: IAMBackend, policy_arn: str, name: str) -> None:
        principal = backend.get_user(name) if kind == "User" else backend.get_role(name)
        limit = IamQuotas.MANAGED_POLICIES_PER_PRINCIPAL
        if policy_arn not in principal.managed_policies and len(principal.managed_policies) >= limit:
            raise LimitExceededException(f"Cannot exceed quota for PoliciesPer{kind}: {limit}")
        attach(backend, policy_arn, name)

    return attach_within_quota


class UnmodifiableEntity(IAMException):
    code = "UnmodifiableEntity"


# Roles AWS owns: service-linked roles, and the roles IAM Identity Center makes for permission sets.
AWS_OWNED_ROLE_PATHS = ("/aws-service-role/", "/aws-reserved/sso.amazonaws.com/")
# moto's backend methods that change a role, and where each takes the role name (IAM's own
# argument order: attach and detach take the policy ARN first).
_ROLE_EDITS = {
    "attach_role_policy": 1,
    "detach_role_policy": 1,
    "put_role_policy": 0,
    "delete_role_policy": 0,
    "tag_role": 0,
    "untag_role": 0,
    "update_assume_role_policy": 0,
    "put_role_permissions_boundary": 0,
}


class UnmodifiableRoles(BackendPatches):
    """IAM refuses every edit of a role AWS owns (UnmodifiableEntity); moto allows them, which
    would let a test "quarantine" an SSO permission-set role where AWS never would.

    Installed after IamQuotas, so a refusal comes first, as in IAM. `aws_side()` lifts it
    while the demo state is seeded: there AWS itself is making the roles.
    """

    def __init__(self) -> None:
        self.enforced = True

    def patches(self) -> list[Any]:
        return [
            mock.patch.object(IAMBackend, name, self._guarded(getattr(IAMBackend, name), position))
            for name, position in _ROLE_EDITS.items()
        ]

    @contextmanager
    def aws_side(self) -> Iterator[None]:
        self.enforced = False
        try:
            yield
        finally:
            self.enforced = True

    def _guarded(self, edit: Callable[..., Any], position: int) -> Callable[..., Any]:
        def refuse_aws_owned(backend: IAMBackend, *args: Any) -> Any:
            role = backend.get_role(args[position])
            if self.enforced and role.path.startswith(AWS_OWNED_ROLE_PATHS):
                raise UnmodifiableEntity(
                    f"Cannot perform the operation on the protected role '{role.name}' - "
                    "this role is only modifiable by AWS"
                )
            return edit(backend, *args)

        return refuse_aws_owned


# AWS managed policies the corpus and the tests name, pinned from moto's copy of AWS's (moto
# loads all ~1,300 with MOTO_IAM_LOAD_MANAGED_POLICIES, which costs ~1.4 s a start). To add one,
# copy its entry from moto.iam.aws_managed_policies.aws_managed_policies_data.
MANAGED_POLICIES_FILE = Path(__file__).parent / "data" / "aws-managed-policies.json"


@cache
def _pinned_managed_policies() -> str:
    return MANAGED_POLICIES_FILE.read_text()


class AwsManagedPolicies(BackendPatches):
    """Documents of the pinned AWS managed policies, in every account, as moto would load them:
    an attachment is analysed as a deployed stack would (AWS's document, not "unavailable")."""

    ENV = "MOTO_IAM_LOAD_MANAGED_POLICIES"
    _saved: str | None = None

    def patches(self) -> list[Any]:
        # moto reads the data when it creates an account's IAM backend: patched for the mock's life.
        return [mock.patch("moto.iam.models.aws_managed_policies_data", _pinned_managed_policies())]

    def start(self) -> None:
        self._saved = os.environ.get(self.ENV)
        os.environ[self.ENV] = "true"
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._saved is None:
            os.environ.pop(self.ENV, None)
        else:
            os.environ[self.ENV] = self._saved


@cache
def _botocore_models() -> Any:
    """One botocore loader for the process: each new one lists botocore's ~400 service folders
    (~10 ms) and reads and decodes a service's model again (DynamoDB's: ~15 ms)."""
    return botocore.session.Session().get_component("data_loader")


def shared_models_session(region: str) -> boto3.session.Session:
    """A boto3 session whose service models are the process's (`_botocore_models`)."""
    core = botocore.session.Session()
    loader = _botocore_models()
    core.register_component("data_loader", loader)
    session = boto3.session.Session(region_name=region, botocore_session=core)
    loader.search_paths[:] = dict.fromkeys(loader.search_paths)  # boto3 appends its data folder each time
    return session


class SharedServiceModels(BackendPatches):
    """Start-up time, not strictness: moto reads each service's model with a new loader (its
    extras on botocore's) and finds a backend's regions with a session of its own; one loader
    each, for every service, lists botocore's folders once and decodes each model once."""

    def patches(self) -> list[Any]:
        from moto.core import loaders
        from moto.core.base_backend import AccountSpecificBackend

        extras = loaders.create_loader()
        regions = functools.cache(lambda: shared_models_session(REGION))
        return [
            mock.patch("moto.core.utils.create_loader", lambda: extras),
            mock.patch.object(AccountSpecificBackend, "get_session", classmethod(lambda cls: regions())),
        ]


class TrailInsights(BackendPatches):
    """PutInsightSelectors replaces a trail's Insights selectors (an empty list turns Insights off);
    moto appends them, so a restore would never read back as the approved state."""

    def patches(self) -> list[Any]:
        def replace(trail: Trail, insight_selectors: list[dict[str, str]]) -> None:
            trail.insight_selectors = list(insight_selectors)

        return [mock.patch.object(Trail, "put_insight_selectors", replace)]


class NullVersionReads(BackendPatches):
    """HeadObject with VersionId "null" (an object written while versioning was off or
    suspended) reads that version in AWS; moto answers 400 unless the bucket is versioned now.
    On such a bucket the null version is the key's current one: read it as such. Started with
    the archive bucket (moto's S3 responses load with the first S3 call, not at start-up)."""

    def patches(self) -> list[Any]:
        from moto.s3.responses import S3Response

        head = S3Response.head_object

        def head_object(response: Any, bucket_name: str, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            if query.get("versionId") == ["null"] and not response.backend.get_bucket(bucket_name).is_versioned:
                query = {k: v for k, v in query.items() if k != "versionId"}
            return head(response, bucket_name, query, *args, **kwargs)

        return [mock.patch.object(S3Response, "head_object", head_object)]


class ScpLimits(BackendPatches):
    """Organizations' size limit for an SCP document (5,120 characters), which moto does not hold."""

    def patches(self) -> list[Any]:
        return [
            mock.patch.object(
                OrganizationsBackend, "update_policy", _within_scp_limit(OrganizationsBackend.update_policy)
            )
        ]


def _within_scp_limit(update: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def update_within_limit(backend: OrganizationsBackend, **kwargs: Any) -> dict[str, Any]:
        if len(kwargs.get("Content") or "") > SCP_MAX_CHARACTERS:
            raise ConstraintViolationException("The provided policy document exceeds the maximum allowed size.")
        return update(backend, **kwargs)

    return update_within_limit


@dataclass(frozen=True)
class IdentityCenter:
    """An Identity Center set-up as the runbook prepares it: the deny-list SCP and its users."""

    account_id: str
    identity_store_id: str
    policy_id: str
    user_ids: dict[str, str]  # user name → identity store user ID

    def parameters(self) -> dict[str, str]:
        """The security stack's parameters for it."""
        return {
            "IdentityCenterAccountId": self.account_id,
            "IdentityStoreId": self.identity_store_id,
            "SsoDenyListPolicyId": self.policy_id,
        }


@dataclass(frozen=True)
class Provision:
    """A part of the embedded stack or of the demo state, made when a call first needs it.

    `triggers` are the services whose calls need it ("iam", "kms", ...) and, for what a table
    holds, "dynamodb:<table>" (a read of the baseline table needs the snapshots in it).
    """

    name: str
    triggers: frozenset[str]
    make: Callable[[], None]


def _tables_named(params: dict[str, Any]) -> set[str]:
    """The tables a DynamoDB call names: one, or several in a batch or a transaction."""
    if params.get("TableName"):
        return {str(params["TableName"])}
    tables = set(params.get("RequestItems") or ())
    for item in params.get("TransactItems") or ():
        tables.update(str(op["TableName"]) for op in item.values() if isinstance(op, dict) and "TableName" in op)
    return tables


class LocalAws:
    """Start with `with LocalAws() as aws:`; nothing leaves the process.

    `on_demand=True` (the replay) makes each part of the stack and of the seeded demo state
    when a call first needs it (`Provision`): a replay of one IAM event creates no trail,
    Connect baseline or log group, and pays for none. The default makes everything up front,
    as the tests that read moto's backends directly expect. `provisioned` names what was made.

    `hold_deliveries=True` (the replay) keeps the SOC inbox and findings-archive queues short:
    what a publish delivers to them waits outside moto (`_hold`) until a call names the queue.
    """

    def __init__(self, region: str = REGION, on_demand: bool = False, hold_deliveries: bool = False) -> None:
        self.region = region
        self.on_demand = on_demand
        self.hold_deliveries = hold_deliveries
        self._held: dict[str, list[Message]] = {}  # queue URL → messages taken out of it, oldest first
        self._pending: list[Provision] = []
        self.provisioned: list[str] = []
        self._provisioning = 0  # depth of parts being made (they may need others)
        self._mock = mock_aws()
        self.unmodifiable_roles = UnmodifiableRoles()
        self.message_moves = MessageMoves()  # SQS message-move tasks (redrive), which moto lacks
        self._strictness: list[BackendPatches] = [
            AwsManagedPolicies(),
            IamQuotas(),
            self.unmodifiable_roles,
            ScpLimits(),
            TrailInsights(),
            KmsKeyStates(),
            PlumbingStrictness(),
            self.message_moves,
            QueuePolicySends(),  # a queue policy's Deny of SendMessage
            DeferredKeyPairs(),  # not strictness: start-up time (a key pair only when a key signs)
            SharedServiceModels(),  # not strictness either: start-up time
        ]
        self._saved_env: dict[str, str | None] = {}

    @classmethod
    def for_replay(cls, region: str = REGION) -> LocalAws:
        """As `connect-guard replay` runs it: parts made on demand, deliveries held."""
        return cls(region, on_demand=True, hold_deliveries=True)

    def __enter__(self) -> LocalAws:
        for key, value in FAKE_CREDENTIALS.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        for behaviour in self._strictness:  # before the mock: moto makes backends from then on
            behaviour.start()
        self._mock.start()
        self.session = shared_models_session(self.region)
        # Registered before any client exists: botocore copies the hooks into each client.
        SnsPublishLimit(self.session).install(self.session)
        self.recorder = CallRecorder()
        self.session.events.register("before-parameter-build", self.recorder)
        if self.on_demand:
            self.session.events.register("before-parameter-build", self._provide_for_call)
        if self.hold_deliveries:
            self.session.events.register("after-call.sns", self._hold)
            self.session.events.register("before-parameter-build.sqs", self._put_back)
        # moto has no Connect users or profiles: an in-memory fake answers Connect's calls.
        self.connect = ConnectFake()
        self.connect.install(self.session.events)
        self.instances: list[SeededInstance] = []
        self.member_accounts: list[str] = []
        self.identity_center_home: tuple[str, str] | None = None
        self._account_sessions: dict[str, boto3.session.Session] = {}
        self.clients = AwsClients(self.region, self.session, SECURITY_ACCOUNT)
        self._create_stack()
        return self

    def _provide(self, name: str, triggers: set[str], make: Callable[[], None]) -> None:
        """Make a part now, or (on demand) when a call first needs it."""
        if self.on_demand:
            self._pending.append(Provision(name, frozenset(triggers), make))
        else:
            self._make(Provision(name, frozenset(triggers), make))

    def _make(self, part: Provision) -> None:
        self._provisioning += 1
        paused, self.recorder.paused = self.recorder.paused, True
        try:
            part.make()
        finally:
            self.recorder.paused = paused
            self._provisioning -= 1
        self.provisioned.append(part.name)

    def _provide_for_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        """botocore hook (before-parameter-build): first make the pending parts this call needs."""
        if not self._pending:
            return
        service = model.service_model.service_name
        needs = {service}
        # A table's contents matter to whoever reads it, not to the parts writing their own items.
        if service == "dynamodb" and not self._provisioning:
            needs |= {f"dynamodb:{table}" for table in _tables_named(params) or self._tables()}
        for part in [p for p in self._pending if p.triggers & needs]:
            if part in self._pending:  # not made meanwhile, by a part that needed it
                self._pending.remove(part)
                self._make(part)

    def provide_all(self) -> None:
        """Make every pending part now (a state read straight from moto's backends needs them)."""
        while self._pending:
            self._make(self._pending.pop(0))

    def _queue(self, url: str) -> Queue | None:
        return sqs_backends[SECURITY_ACCOUNT][self.region].queues.get(url.rsplit("/", 1)[1])

    def _hold(self, **_: Any) -> None:
        """botocore hook (after-call.sns): take what a publish delivered out of the SOC inbox and
        the findings archive. moto's SendMessage reads all of a queue's attributes, its message
        counts among them, each a scan of every message: each publish would cost more than the last."""
        for url in (self.inbox_url, self.findings_archive_url):
            queue = self._queue(url)
            if queue is not None and queue._messages:
                with queue._messages_lock:
                    self._held.setdefault(url, []).extend(queue._messages)
                    queue._messages.clear()

    def _put_back(self, params: dict[str, Any], **_: Any) -> None:
        """botocore hook (before-parameter-build.sqs): a call naming a queue finds it whole, the
        held messages in front (they are the older ones)."""
        held = self._held.pop(str(params.get("QueueUrl")), None)
        queue = self._queue(str(params["QueueUrl"])) if held else None
        if queue is not None:
            with queue._messages_lock:
                queue._messages[:0] = held

    def _tables(self) -> tuple[str, ...]:
        return (self.table_name, self.baseline_table, self.audit_table)

    def __exit__(self, *exc: object) -> None:
        self._mock.stop()
        for behaviour in reversed(self._strictness):
            behaviour.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _create_stack(self) -> None:
        """The security stack's stateful resources; their names and ARNs are known before they exist."""
        self.key_id = SUITE_KEY_ID
        self.suite_key_arn = f"arn:aws:kms:{self.region}:{SECURITY_ACCOUNT}:key/{SUITE_KEY_ID}"
        self.topic_arn = f"arn:aws:sns:{self.region}:{SECURITY_ACCOUNT}:connect-guard-alerts"
        self.inbox_url = f"https://sqs.{self.region}.amazonaws.com/{SECURITY_ACCOUNT}/soc-inbox"
        self.findings_archive_url = f"https://sqs.{self.region}.amazonaws.com/{SECURITY_ACCOUNT}/findings-archive"
        self.table_name = "connect-guard-dedup"
        self.baseline_table = "connect-guard-baseline"
        self.audit_table = "connect-guard-audit"
        self.archive_bucket = "connect-guard-archive"
        self._suite_key_tampered: dict[str, Any] = {}  # the demo's changes to it, once it exists
        self._plumbing_tampered: dict[str, Any] | None = None
        self._provide("suite key", {"kms"}, self._create_suite_key)
        self._provide("alert topic", {"sns", "sqs"}, self._create_alerting)
        self._provide("tables", {"dynamodb"}, self._create_tables)
        self._provide("quarantine policy", {"iam"}, lambda: _create_quarantine_policy(self.clients.iam))
        self._provide("archive and plumbing", {"s3", "events", "logs", "ssm"}, self._create_plumbing)

    def _create_suite_key(self) -> None:
        arn = create_key(
            self.session, SECURITY_ACCOUNT, self.region, {"id": SUITE_KEY_ID, "description": "connect-guard suite key"}
        )
        assert arn == self.suite_key_arn, arn
        if self._suite_key_tampered:
            self.tamper_key(SECURITY_ACCOUNT, self.suite_key_arn, self._suite_key_tampered)

    def _create_alerting(self) -> None:
        """The alert topic (KMS), the SOC inbox subscribed to it, and the queue that keeps every
        finding for the archive (raw delivery)."""
        sns, sqs = self.clients.sns, self.session.client("sqs")
        topic = sns.create_topic(Name="connect-guard-alerts", Attributes={"KmsMasterKeyId": self.key_id})
        assert topic["TopicArn"] == self.topic_arn, topic
        for url, attributes in ((self.inbox_url, {}), (self.findings_archive_url, {"RawMessageDelivery": "true"})):
            created = sqs.create_queue(QueueName=url.rsplit("/", 1)[1])["QueueUrl"]
            assert created == url, created
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            extra = {"Attributes": attributes} if attributes else {}
            sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn, **extra)

    def _create_tables(self) -> None:
        dynamodb = self.clients.dynamodb
        dynamodb.create_table(
            TableName=self.table_name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for table in (self.baseline_table, self.audit_table):
            dynamodb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )

    def _create_plumbing(self) -> None:
        """The archive bucket; the suite's rules, log groups and archive settings as template.yaml
        deploys them, and the SSM parameter that says so (PlumbingStateParameter)."""
        self.session.client("s3").create_bucket(Bucket=self.archive_bucket)
        null_versions = NullVersionReads()
        null_versions.start()
        self._strictness.append(null_versions)  # stopped with the others
        self.plumbing = EmbeddedPlumbing.create(self.session, self.archive_bucket, self.key_id)
        if self._plumbing_tampered is not None:
            self.plumbing.tamper(self.session, self._plumbing_tampered)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "alert_topic_arn": self.topic_arn,
            "dedup_table_name": self.table_name,
            "member_account_ids": tuple(self.member_accounts),
            # The security stack's writing roles, as template.yaml names them (moto's default
            # credentials stand in for each function's own role).
            "suite_role_arns": tuple(
                f"arn:aws:iam::{SECURITY_ACCOUNT}:role/connect-guard/{suite_role_name(ENVIRONMENT, control)}"
                for control in SUITE_WRITER_ROLES
            ),
            "baseline_table_name": self.baseline_table,
            "audit_table_name": self.audit_table,
            "connect_instance_arns": tuple(i.instance_arn for i in self.instances),
            "suite_key_arns": (self.suite_key_arn,),
            "archive_bucket_name": self.archive_bucket,
            "checkpoint_table_name": self.baseline_table,
            "findings_archive_queue_url": self.findings_archive_url,
            "plumbing_state_parameter": PLUMBING_PARAMETER,
            # The replay and the tests run recorded history: no delivery horizon on its age.
            "max_event_age_hours": None,
        }
        if self.identity_center_home:  # the seeded permission sets are read there
            values["identity_center_account_id"], values["identity_center_region"] = self.identity_center_home
        values.update(overrides)
        return Settings.model_validate(values)

    def prepare_identity_center(
        self, user_names: list[str], store: str = "d-906700a1b2", account: str = SECURITY_ACCOUNT
    ) -> IdentityCenter:
        """An organization managed from the security account, the deny-list SCP attached to its
        root (with its statement naming nobody, as the runbook prepares it), and Identity Center
        users (a session of a permission-set role is named after its user)."""
        session = self.account_session(account)
        organizations = session.client("organizations")
        organizations.create_organization(FeatureSet="ALL")
        root = organizations.list_roots()["Roots"][0]["Id"]
        content = json.dumps({"Version": "2012-10-17", "Statement": [deny_statement([])]})
        assert DENY_SID in content
        policy = organizations.create_policy(
            Name="connect-guard-deny-list",
            Description="connect-guard: IAM Identity Center users denied everything",
            Type="SERVICE_CONTROL_POLICY",
            Content=content,
        )["Policy"]["PolicySummary"]["Id"]
        organizations.attach_policy(PolicyId=policy, TargetId=root)
        identitystore = session.client("identitystore")
        users = {
            name: identitystore.create_user(
                IdentityStoreId=store,
                UserName=name,
                DisplayName=name,
                Name={"GivenName": name.split("@")[0], "FamilyName": "User"},
            )["UserId"]
            for name in user_names
        }
        return IdentityCenter(account, store, policy, users)

    def audit_records(self) -> list[dict[str, Any]]:
        """The audit table's records (its day partitions), without the action journal's items."""
        items = self.clients.dynamodb.scan(TableName=self.audit_table)["Items"]
        return [item for item in items if item["pk"]["S"].startswith("audit#")]

    def journal(self) -> list[dict[str, Any]]:
        """The action journal's items (connect_guard.audit.ActionJournal)."""
        items = self.clients.dynamodb.scan(TableName=self.audit_table)["Items"]
        return [item for item in items if item["pk"]["S"].startswith("finding#")]

    def inbox(self) -> list[dict[str, Any]]:
        """Every message the SOC inbox queue received (SNS envelopes, JSON finding in Message)."""
        if any(part.name == "alert topic" for part in self._pending):
            return []  # no SNS or SQS call was made, so nothing was delivered: no topic made to say so
        sqs = self.session.client("sqs")
        # Held messages were never received: read here, as ReceiveMessage would return their body.
        messages: list[dict[str, Any]] = [json.loads(m.body) for m in self._held.pop(self.inbox_url, [])]
        while True:
            batch = sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])

    def account_session(self, account_id: str) -> boto3.session.Session:
        """A session acting in another (moto) account (moto lets any role there be assumed)."""
        if account_id == SECURITY_ACCOUNT:
            return self.session
        if account_id not in self._account_sessions:  # one per account: each costs an AssumeRole
            creds = self.session.client("sts").assume_role(
                RoleArn=f"arn:aws:iam::{account_id}:role/seed", RoleSessionName="seed"
            )["Credentials"]
            # The service models this process has parsed already: a new botocore session would
            # read and decode each one again (~15 ms a client).
            core = botocore.session.Session()
            core.register_component("data_loader", self.session._session.get_component("data_loader"))
            self._account_sessions[account_id] = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                region_name=self.region,
                botocore_session=core,
            )
            if self.on_demand:  # what a call there needs is made first, as for the security account
                core.register("before-parameter-build", self._provide_for_call)
            if self.hold_deliveries:
                core.register("before-parameter-build.sqs", self._put_back)
        return self._account_sessions[account_id]

    def seed(self, state_file: Path, with_trails: bool = True) -> None:
        """Create the demo state: per source account the member role, managed policies with their
        versions, and Connect instances (current state in the fake, approved state as baseline);
        the CloudTrail trails (`trails`: the security account's, or `account`'s), unless `with_trails` is False.

        On demand, what is known without AWS (the enrolled accounts, the Connect fake's instances)
        is set now and each part's AWS state when a call first needs it."""
        # libyaml's safe loader where PyYAML has it: the pure-Python one takes ~0.1 s on the demo state.
        state = yaml.load(state_file.read_text(), Loader=_SAFE_LOADER) or {}  # noqa: S506  # a safe loader
        baseline = f"dynamodb:{self.baseline_table}"
        if with_trails:
            trails = [(str(t.get("account", SECURITY_ACCOUNT)), t) for t in state.get("trails") or []]
            if trails:
                self._provide("trails", {"cloudtrail", "s3", baseline}, lambda: self._seed_trails(trails))
            if state.get("suite_key"):  # the security account's own key, tampered as the demo says
                self._tamper_suite_key(state["suite_key"].get("tampered") or {})
        if state.get("canaries"):
            self._provide("canaries", {baseline}, lambda: self._seed_canaries(state["canaries"]))
        center = state.get("identity_center")
        if center:  # permission sets, read by policy_alerts in the account that administers Identity Center
            self.identity_center_home = (str(center["account"]), str(center.get("region", self.region)))
            self._provide("identity center", {"sso-admin"}, functools.partial(self.seed_permission_sets, center))
        if with_trails:  # the security account's, like its trails
            self._tamper_plumbing(state.get("plumbing") or {})
        for account_id, account in (state.get("accounts") or {}).items():
            account_id = str(account_id)
            for spec in (account.get("connect") or {}).get("instances") or []:
                self._seed_instance(account_id, spec)
            keys = account.get("kms_keys") or []
            if keys:
                self._provide(
                    f"keys {account_id}", {"kms", baseline}, functools.partial(self._seed_keys, account_id, keys)
                )
            if account_id != SECURITY_ACCOUNT:  # the security stack holds its own policy, and no member roles
                self.member_accounts.append(account_id)
                regions = {self.region} | {i.region for i in self.instances if i.account_id == account_id}
                self._provide(
                    f"member export {account_id}",
                    {"ssm"},
                    functools.partial(self._seed_member_export, account_id, sorted(regions), account),
                )
            self._provide(
                f"iam {account_id}", {"iam", baseline}, functools.partial(self._seed_account_iam, account_id, account)
            )

    def seed_permission_sets(self, spec: dict[str, Any]) -> None:
        """`identity_center` of demo-state.yaml: its instance's permission sets, under the ARNs the
        samples name, with their managed, inline and customer managed policies."""
        from moto.ssoadmin.models import ssoadmin_backends  # only where a replay reads permission sets

        account, region = str(spec["account"]), str(spec.get("region", self.region))
        sso = self.account_session(account).client("sso-admin", region_name=region)
        backend = ssoadmin_backends[account][region]
        instance = spec["instance_arn"]
        backend.instances[0].instance_arn = instance  # moto draws a random one
        for permission_set in spec.get("permission_sets") or []:
            made = sso.create_permission_set(Name=permission_set["name"], InstanceArn=instance)["PermissionSet"]
            # moto names a set instance/<id>/ps-<random>; AWS, permissionSet/<instance id>/ps-<id>.
            held = next(p for p in backend.permission_sets if p.permission_set_arn == made["PermissionSetArn"])
            held.permission_set_arn = arn = permission_set["arn"]
            keys = {"InstanceArn": instance, "PermissionSetArn": arn}
            for policy in permission_set.get("managed_policies") or []:
                sso.attach_managed_policy_to_permission_set(**keys, ManagedPolicyArn=policy)
            inline = permission_set.get("inline_policy")
            if inline:
                sso.put_inline_policy_to_permission_set(**keys, InlinePolicy=json.dumps(inline))
            for reference in permission_set.get("customer_managed") or []:
                named = {"Name": reference["name"], "Path": reference.get("path", "/")}
                sso.attach_customer_managed_policy_reference_to_permission_set(
                    **keys, CustomerManagedPolicyReference=named
                )

    def _seed_trails(self, trails: list[tuple[str, dict[str, Any]]]) -> None:
        for account_id, trail in trails:
            self.seed_trail(account_id, trail)

    def _tamper_suite_key(self, tampered: dict[str, Any]) -> None:
        if "suite key" in self.provisioned:
            self.tamper_key(SECURITY_ACCOUNT, self.suite_key_arn, tampered)
        else:
            self._suite_key_tampered = tampered

    def _tamper_plumbing(self, tampered: dict[str, Any]) -> None:
        if "archive and plumbing" in self.provisioned:
            self.plumbing.tamper(self.session, tampered)
        else:
            self._plumbing_tampered = tampered

    def _seed_keys(self, account_id: str, keys: list[dict[str, Any]]) -> None:
        for key in keys:
            self.seed_key(account_id, key)

    def _seed_account_iam(self, account_id: str, account: dict[str, Any]) -> None:
        iam = self.account_session(account_id).client("iam")
        if account_id != SECURITY_ACCOUNT:
            self._seed_member_roles(iam)
            _create_quarantine_policy(iam)  # what member/template.yaml deploys in every source account
        with self.unmodifiable_roles.aws_side():  # the demo's SSO and service-linked roles, as AWS made them
            self._seed_iam(account_id, iam, account.get("iam") or {})
        for policy in account.get("managed_policies") or []:
            versions = policy["versions"]
            arn = iam.create_policy(
                PolicyName=policy["name"],
                Path=policy.get("path", "/"),
                PolicyDocument=json.dumps(versions[0]),
            )["Policy"]["Arn"]
            for document in versions[1:]:
                iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document))
            default = policy.get("default_version", "v1")
            if default != "v1":
                iam.set_default_policy_version(PolicyArn=arn, VersionId=default)

    def seed_trail(self, account_id: str, spec: dict[str, Any]) -> str:
        """A trail as approved (its snapshot, unless `snapshot: false`), then as `tampered` leaves it
        (`logging: false`, `event_selectors`, `insight_selectors`, `bucket`, `deleted: true`). Returns its ARN."""
        session = self.account_session(account_id)
        region = spec.get("region", self.region)
        s3, cloudtrail = session.client("s3", region_name=region), session.client("cloudtrail", region_name=region)
        tampered = spec.get("tampered") or {}
        for bucket in {spec["bucket"], tampered.get("bucket") or spec["bucket"]}:
            s3.create_bucket(Bucket=bucket)
        arn: str = cloudtrail.create_trail(
            Name=spec["name"],
            S3BucketName=spec["bucket"],
            IsMultiRegionTrail=spec.get("multi_region", True),
            IncludeGlobalServiceEvents=spec.get("global_events", True),
            EnableLogFileValidation=spec.get("log_validation", True),
        )["TrailARN"]
        cloudtrail.start_logging(Name=arn)
        if spec.get("insight_selectors"):
            cloudtrail.put_insight_selectors(TrailName=arn, InsightSelectors=spec["insight_selectors"])
        if spec.get("snapshot", True):
            state = TrailGateway(cloudtrail).state(arn)
            assert state is not None
            approved = TrailState.from_dict({**state.to_dict(), "taken_at": "2026-11-20T06:00:00+00:00"})
            TrailSnapshots(self.clients.dynamodb, self.baseline_table).put(approved)
        if tampered.get("event_selectors") is not None:
            cloudtrail.put_event_selectors(TrailName=arn, EventSelectors=tampered["event_selectors"])
        if tampered.get("insight_selectors") is not None:
            cloudtrail.put_insight_selectors(TrailName=arn, InsightSelectors=tampered["insight_selectors"])
        if tampered.get("bucket"):
            cloudtrail.update_trail(Name=arn, S3BucketName=tampered["bucket"])
        if tampered.get("logging") is False:
            cloudtrail.stop_logging(Name=arn)
        if tampered.get("deleted"):
            cloudtrail.delete_trail(Name=spec["name"])  # moto ignores an ARN here (AWS accepts both)
        return arn

    def seed_key(self, account_id: str, spec: dict[str, Any]) -> str:
        """A KMS key of `kms_keys` (connect_guard_tools.local_kms.seed_key); returns its ARN."""
        region = spec.get("region", self.region)
        session = self.account_session(account_id)
        return seed_key(session, account_id, region, spec, self.clients.dynamodb, self.baseline_table)

    def tamper_key(self, account_id: str, arn: str, tampered: dict[str, Any]) -> None:
        tamper_key(self.account_session(account_id).client("kms", region_name=arn.split(":")[3]), arn, tampered)

    def _seed_canaries(self, canaries: list[dict[str, Any]]) -> None:
        """What the liveness function remembers: per account, region and service the last canary
        heard and, when its silence was alerted, since when (connect_guard.liveness)."""
        dynamodb = self.session.client("dynamodb")
        for canary in canaries:
            key = {"pk": {"S": f"canary#{canary['account']}#{canary['region']}"}, "sk": {"S": canary["service"]}}
            fields = ("heard_at", "expected_since", "silent_alerted_at")
            values = {f: {"S": str(canary[f])} for f in fields if canary.get(f)}
            dynamodb.put_item(TableName=self.baseline_table, Item={**key, **values})

    def _seed_member_export(self, account_id: str, regions: list[str], account: dict[str, Any]) -> None:
        """The SSM parameter each region's member stack publishes: its ExportLogGroups (`export_log_groups`)."""
        value = json.dumps({"log_groups": list(account.get("export_log_groups") or [])})
        for region in regions:
            ssm = self.account_session(account_id).client("ssm", region_name=region)
            ssm.put_parameter(Name=member_export_parameter(ENVIRONMENT), Value=value, Type="String", Overwrite=True)

    @staticmethod
    def _seed_member_roles(iam: Any) -> None:
        """The member stack's roles (member/template.yaml) in a source account."""
        trust = SECURITY_ACCOUNT_TRUST
        for purpose in ("read", "rollback", "quarantine", "forward", "logs"):
            iam.create_role(
                RoleName=member_role_name(ENVIRONMENT, purpose),
                Path=MEMBER_ROLE_PATH,
                AssumeRolePolicyDocument=json.dumps(trust),
            )

    def _seed_iam(self, account_id: str, iam: Any, spec: dict[str, Any]) -> None:
        """Groups and users (with access keys, policies and groups) and roles; deleted roles leave
        only their snapshot. A group's or user's `managed_policies` are attached (AWS managed ones)."""
        for group in spec.get("groups") or []:
            iam.create_group(GroupName=group["name"])
            for arn in group.get("managed_policies") or []:
                iam.attach_group_policy(GroupName=group["name"], PolicyArn=arn)
            for name, document in (group.get("inline_policies") or {}).items():
                iam.put_group_policy(GroupName=group["name"], PolicyName=name, PolicyDocument=json.dumps(document))
        for user in spec.get("users") or []:
            tags = [{"Key": k, "Value": str(v)} for k, v in (user.get("tags") or {}).items()]
            iam.create_user(UserName=user["name"], Tags=tags)
            for _ in range(int(user.get("access_keys", 0))):
                iam.create_access_key(UserName=user["name"])
            for arn in user.get("managed_policies") or []:
                iam.attach_user_policy(UserName=user["name"], PolicyArn=arn)
            for name, document in (user.get("inline_policies") or {}).items():
                iam.put_user_policy(UserName=user["name"], PolicyName=name, PolicyDocument=json.dumps(document))
            for group_name in user.get("groups") or []:
                iam.add_user_to_group(GroupName=group_name, UserName=user["name"])
        snapshots = RoleSnapshots(self.clients.dynamodb, self.baseline_table)
        for role in spec.get("roles") or []:
            tags = {k: str(v) for k, v in (role.get("tags") or {}).items()}
            snapshot = RoleSnapshot(
                account_id=account_id,
                role_name=role["name"],
                path=role.get("path", "/"),
                arn=f"arn:aws:iam::{account_id}:role{role.get('path', '/')}{role['name']}",
                trust_policy=role.get("trust") or {},
                managed_policies=tuple(role.get("managed_policies") or ()),
                inline_policies=dict(role.get("inline_policies") or {}),
                tags=tags,
                taken_at="2026-11-20T06:00:00+00:00",
            )
            if role.get("snapshot"):
                snapshots.put(snapshot)
            if role.get("exists", True):
                iam.create_role(
                    RoleName=role["name"],
                    Path=snapshot.path,
                    AssumeRolePolicyDocument=json.dumps(snapshot.trust_policy),
                    Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                )
                for name, document in snapshot.inline_policies.items():
                    iam.put_role_policy(RoleName=role["name"], PolicyName=name, PolicyDocument=json.dumps(document))

    def _seed_instance(self, account_id: str, spec: dict[str, Any]) -> None:
        """The instance in the Connect fake now (in memory, no AWS call); its approved state in
        the baseline table when that is first read."""
        seeded = seed_from_spec(self.connect, account_id, spec)
        self.instances.append(seeded)
        triggers = {f"dynamodb:{self.baseline_table}"}
        self._provide(f"baseline {seeded.instance_arn}", triggers, functools.partial(self._approve_instance, seeded))

    def _approve_instance(self, seeded: SeededInstance) -> None:
        baseline = InstanceBaseline(seeded.instance_arn)
        for profile_id, profile in seeded.baseline["profiles"].items():
            access = ProfileAccess.from_stored(profile.get("access") or {})
            baseline.profiles[profile_id] = ProfileBaseline(
                profile_id, profile["name"], frozenset(profile["permissions"]), access
            )
        for user_id, user in seeded.baseline["users"].items():
            baseline.users[user_id] = UserBaseline(
                user_id,
                user["username"],
                frozenset(user["security_profile_ids"]),
                tuple(sorted(user["identity"].items())) if "identity" in user else None,
                user.get("hierarchy_group_id"),
                tuple(sorted(user["tags"].items())) if "tags" in user else None,
            )
        BaselineStore(self.clients.dynamodb, self.baseline_table).approve_instance(baseline, "demo seed")
        if seeded.storage:  # the approved storage configs, as `connect-guard approve-storage` records them
            state = StorageState(seeded.instance_arn, tuple(seeded.storage), "2026-11-20T06:00:00+00:00", "demo seed")
            StorageSnapshots(self.clients.dynamodb, self.baseline_table).put(state)
