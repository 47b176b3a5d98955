"""IAM adapter: reads policy documents, in the security account or through the member role."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from connect_guard.clients import AwsClients
from connect_guard.errors import DocumentUnavailableError

# Errors that will not go away on retry: report them in the finding instead of failing.
_FINAL = {"AccessDenied", "AccessDeniedException", "NoSuchEntity", "InvalidInput", "ValidationError"}


class PolicyReader:
    def __init__(self, clients: AwsClients, own_account_id: str, member_role_name: str | None) -> None:
        self._clients = clients
        self._own_account = own_account_id
        self._member_role = member_role_name

    def _iam_for(self, policy_arn: str) -> Any:
        account = policy_arn.split(":")[4]
        if account in ("aws", self._own_account):
            return self._clients.iam
        if not self._member_role:
            raise DocumentUnavailableError(
                f"policy is in account {account} and no member role is configured (MemberRoleName)"
            )
        try:
            return self._clients.member_client("iam", account, self._member_role, "connect-guard-read")
        except ClientError as error:
            raise DocumentUnavailableError(
                f"cannot assume {self._member_role} in {account}: {error.response['Error']['Code']}"
            ) from error

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
