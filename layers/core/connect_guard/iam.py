"""IAM adapter: reads policy documents, in the security account or through the member read role."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.clients import AwsClients
from connect_guard.errors import DocumentUnavailableError, MemberAccessError
from connect_guard.settings import Settings

# Errors that will not go away on retry: report them in the finding instead of failing.
_FINAL = {"AccessDenied", "AccessDeniedException", "NoSuchEntity", "InvalidInput", "ValidationError"}


class PolicyReader:
    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._clients = clients
        self._settings = settings

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
        try:
            if version_id is None:
                version_id = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
            version = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version_id)["PolicyVersion"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in _FINAL:
                raise DocumentUnavailableError(f"IAM {code} reading {policy_arn}") from error
            raise  # throttling, 5xx: let SQS retry the event
        except BotoCoreError:
            raise
        # boto3 decodes the URL-encoded document into a dict already.
        return version["Document"], str(version_id)
