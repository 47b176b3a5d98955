"""IAM adapter: reads policy documents, in the security account or through the member read role."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.clients import AwsClients
from connect_guard.errors import DocumentUnavailableError, MemberAccessError
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
