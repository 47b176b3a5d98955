"""IAM adapter: reads policy documents, and the policies a principal has, in the security account
or through the member read role."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.clients import AwsClients
from connect_guard.errors import DocumentUnavailableError, MemberAccessError
from connect_guard.policy import Severity, known_aws_managed
from connect_guard.settings import Settings

# Documents kept per container (a policy document is at most 6,144 characters).
CACHE_SIZE = 256
# Errors that will not go away on retry: report them in the finding instead of failing.
_FINAL = {"AccessDenied", "AccessDeniedException", "NoSuchEntity", "InvalidInput", "ValidationError"}


class PolicyReader:
    """Managed-policy documents, with a per-container cache of default versions.

    A policy version is immutable, and a policy deleted and re-created under the same ARN gets a
    new PolicyId (its versions restart at v1): a document cached under (ARN, PolicyId, version)
    is the document of that version for good. GetPolicy is read for every event (it names the
    default version, which CreatePolicyVersion or SetDefaultPolicyVersion moves on); what a
    repeat saves is its GetPolicyVersion. A version named by the event is read uncached: the
    event does not give the PolicyId that makes the key safe.
    """

    def __init__(self, clients: AwsClients, settings: Settings, cache_size: int = CACHE_SIZE) -> None:
        self._clients = clients
        self._settings = settings
        self._cache_size = cache_size
        self._documents: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()

    @property
    def clients(self) -> AwsClients:
        return self._clients

    def _iam_for(self, policy_arn: str) -> Any:
        account = policy_arn.split(":")[4]
        if account == "aws":
            return self._clients.iam
        try:
            return self._clients.for_account("iam", account, self._clients.region, self._settings, "read")
        except MemberAccessError as error:
            raise DocumentUnavailableError(str(error)) from error

    def document(self, policy_arn: str, version_id: str | None = None) -> tuple[dict[str, Any], str]:
        """The document of `version_id`, or of the default version: (document, version id)."""
        iam = self._iam_for(policy_arn)
        key = None
        try:
            if version_id is None:
                policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
                version_id = str(policy["DefaultVersionId"])
                key = (policy_arn, str(policy["PolicyId"]), version_id)
                if key in self._documents:
                    self._documents.move_to_end(key)
                    return self._documents[key], version_id
            version = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version_id)["PolicyVersion"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in _FINAL:
                raise DocumentUnavailableError(f"IAM {code} reading {policy_arn}") from error
            raise  # throttling, 5xx: let SQS retry the event
        except BotoCoreError:
            raise
        # boto3 decodes the URL-encoded document into a dict already.
        document: dict[str, Any] = version["Document"]
        if key is not None:
            self._documents[key] = document
            while len(self._documents) > self._cache_size:
                self._documents.popitem(last=False)  # the least recently used
        return document, str(version_id)


@dataclass(frozen=True)
class PrincipalDocument:
    """One policy that applies to a principal: its document, or the grant an AWS managed policy's
    name says (connect_guard.policy.known_aws_managed) when no read is needed."""

    source: str  # e.g. "group ops-admins: AdministratorAccess", "user bob: inline KeyRotation"
    document: dict[str, Any] | None = None
    known: tuple[Severity, str] | None = None


class PrincipalPolicies:
    """What a user, group or role can do now: its attached managed policies, its inline policies
    and, for a user, those of each of its groups; read in the principal's account (the member read
    role in a source account). A user is in at most 10 groups, and each principal has at most 20
    managed policies (IAM's quotas), so a read is bounded."""

    def __init__(self, clients: AwsClients, settings: Settings, policies: PolicyReader) -> None:
        self._clients = clients
        self._settings = settings
        self._policies = policies

    def _iam(self, account: str) -> Any:
        try:
            return self._clients.for_account("iam", account, self._clients.region, self._settings, "read")
        except MemberAccessError as error:
            raise DocumentUnavailableError(str(error)) from error

    def of_group(self, account: str, group: str) -> list[PrincipalDocument]:
        return self._read(account, "group", group)

    def of_role(self, account: str, role: str) -> list[PrincipalDocument]:
        return self._read(account, "role", role)

    def of_user(
        self, account: str, user: str, enough: Callable[[list[PrincipalDocument]], bool] | None = None
    ) -> list[PrincipalDocument]:
        """The user's own policies, then its groups' (not read when `enough` says its own suffice)."""
        documents = self._read(account, "user", user)
        if enough is not None and enough(documents):
            return documents
        iam = self._iam(account)
        groups: list[str] = []
        with _final_as_unavailable(f"the groups of user {user}"):
            for page in iam.get_paginator("list_groups_for_user").paginate(UserName=user):
                groups += [g["GroupName"] for g in page["Groups"]]
        for group in groups:
            documents += self._read(account, "group", group)
        return documents

    def managed(self, source: str, policy_arn: str) -> PrincipalDocument:
        """A managed policy: known by name, else its default version's document."""
        name = policy_arn.rsplit("/", 1)[-1]
        known = known_aws_managed(policy_arn)
        if known:
            return PrincipalDocument(f"{source}: {name}", known=known)
        document, _ = self._policies.document(policy_arn)
        return PrincipalDocument(f"{source}: {name}", document=document)

    def _read(self, account: str, kind: str, name: str) -> list[PrincipalDocument]:
        iam = self._iam(account)
        param = {"user": "UserName", "group": "GroupName", "role": "RoleName"}[kind]
        source = f"{kind} {name}"
        documents: list[PrincipalDocument] = []
        with _final_as_unavailable(f"the policies of {source}"):
            attached: list[str] = []
            for page in iam.get_paginator(f"list_attached_{kind}_policies").paginate(**{param: name}):
                attached += [p["PolicyArn"] for p in page["AttachedPolicies"]]
            inline: list[str] = []
            for page in iam.get_paginator(f"list_{kind}_policies").paginate(**{param: name}):
                inline += page["PolicyNames"]
            for policy_name in inline:
                got = getattr(iam, f"get_{kind}_policy")(**{param: name, "PolicyName": policy_name})
                document = got["PolicyDocument"]
                if isinstance(document, str):  # boto3 decodes it; a raw string is URL-encoded JSON
                    document = json.loads(unquote(document))
                documents.append(PrincipalDocument(f"{source}: inline {policy_name}", document=document))
        return [*(self.managed(source, arn) for arn in attached), *documents]


@contextmanager
def _final_as_unavailable(what: str) -> Iterator[None]:
    """A refusal or a missing principal is said in the finding; throttling and 5xx are retried."""
    try:
        yield
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in _FINAL:
            raise DocumentUnavailableError(f"IAM {code} reading {what}") from error
        raise
