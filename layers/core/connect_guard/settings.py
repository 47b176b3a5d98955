"""Settings, validated once from the environment (template.yaml sets every variable)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connect_guard import arn_patterns
from connect_guard.errors import ConfigurationError


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


# Identity and privilege control, and access to recordings and live calls.
DEFAULT_PRIVILEGED_PERMISSIONS = (
    "Users.Create",
    "Users.Edit",
    "Users.EditPermission",
    "Users.Delete",
    "SecurityProfiles.Create",
    "SecurityProfiles.Edit",
    "SecurityProfiles.Delete",
    "ListenCallRecordings",
    "DownloadCallRecordings",
    "DeleteCallRecordings",
    "ManagerListenIn",
)


# The member stack's roles (member/template.yaml): one that reads, one per responsive control
# that writes (created only in enforce mode), and the one its forwarding rules use.
MEMBER_ROLE_PATH = "/connect-guard/"
MemberPurpose = Literal["read", "rollback", "quarantine", "forward", "sso", "canary", "logs"]
# "canary": the scheduler role whose harmless tag writes prove the event path (liveness).
# "logs": reads the account's Connect flow logs (and the groups its stack lists) for the archive.
# "sso": the deny-list SCP's role, in the account that administers IAM Identity Center.
WRITE_PURPOSES: tuple[MemberPurpose, ...] = ("rollback", "quarantine", "sso")


# The security stack's function roles that write (template.yaml names them): own changes.
SUITE_WRITER_ROLES = ("profile-rollback", "baseline-sweep", "role-quarantine", "logging-guard")
# Every role the security stack creates (connect-guard-<env>-<control>): protected like Connect's.
SUITE_ROLES = (
    *SUITE_WRITER_ROLES,
    *("policy-alerts", "role-snapshot", "log-export", "scheduler"),
    *("slack-notifier", "securityhub-import", "chat-notifier", "liveness"),
    "redrive",  # RedriveRole: the one sender the responder queues admit besides their rules
)
MEMBER_PURPOSES: tuple[MemberPurpose, ...] = ("read", "rollback", "quarantine", "forward", "sso", "canary", "logs")

DEDUP_TTL_SECONDS = 20 * 86_400

# Response modes (README "Response modes"): each responsive control has its own template
# parameter; `inherit` follows ResponseMode. DetectOnlyAccountIds keeps accounts in detect.
Mode = Literal["detect", "enforce"]
ControlMode = Literal["inherit", "detect", "enforce"]
Control = Literal["profile_rollback", "baseline_sweep", "quarantine", "logging_guard"]
CONTROL_MODE_PARAMETERS: dict[Control, str] = {
    "profile_rollback": "ProfileRollbackMode",
    "baseline_sweep": "BaselineSweepMode",
    "quarantine": "QuarantineMode",
    "logging_guard": "LoggingGuardMode",
}


@dataclass(frozen=True)
class ModeDecision:
    """Whether a control acts on one account, and why (the finding's `mode` and `mode_reason`)."""

    mode: Mode
    reason: str

    @property
    def enforces(self) -> bool:
        return self.mode == "enforce"


def member_role_name(environment: str, purpose: MemberPurpose) -> str:
    return f"connect-guard-{environment}-member-{purpose}"


def member_export_parameter(environment: str) -> str:
    """The SSM parameter each member stack publishes per region: the log groups it lists for the archive."""
    return f"/connect-guard/{environment}/member/export"


def suite_role_name(environment: str, control: str) -> str:
    return f"connect-guard-{environment}-{control}"


class Settings(BaseModel):
    # The patterns spell out AWS's ASCII character sets ([A-Za-z0-9_-], [0-9]), never Unicode
    # `\w`/`\d`: they are what AWS allows, and pydantic-core compiles Unicode classes slowly
    # (`[\w-]{1,80}` alone cost ~20 ms of every cold start).
    model_config = ConfigDict(frozen=True)

    environment: str = "dev"
    response_mode: Literal["detect", "enforce"] = "detect"
    # Per control (template.yaml ProfileRollbackMode, ...): a function gets its own control's
    # and RESPONSE_MODE already resolved; the replay gets all of them and resolves here.
    profile_rollback_mode: ControlMode = "inherit"
    baseline_sweep_mode: ControlMode = "inherit"
    quarantine_mode: ControlMode = "inherit"
    logging_guard_mode: ControlMode = "inherit"
    # Accounts where no control writes, whatever its mode (pilot accounts).
    detect_only_account_ids: tuple[str, ...] = ()
    alert_topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$")
    dedup_table_name: str = Field(min_length=3)
    # Principal patterns (connect_guard.arn_patterns, validated below): the allowlist's changes
    # are never acted on; only the approvers' Connect changes become the approved baseline.
    allowlisted_principals: tuple[str, ...] = ()
    baseline_approvers: tuple[str, ...] = ()
    # Enrolled source accounts (the member stack is deployed there); the security account is
    # always in scope and is reached with the functions' own roles.
    member_account_ids: tuple[str, ...] = ()
    # The suite's own identity: exact ARNs (and unique IDs, AROA...) of the security stack's
    # roles that write. Never a path or a name pattern: anyone with iam:CreateRole picks those.
    suite_role_arns: tuple[str, ...] = ()
    suite_role_ids: tuple[str, ...] = ()
    runbook_base_url: str = "https://github.com/connect-guard/connect-guard/blob/main/docs/runbooks"
    # As long as a message can come back (README, "Error classification and delivery guarantees"):
    # EventBridge's retries (24 h), then the DLQ keeps it 14 days from its first enqueue, then a
    # redriven copy is a new message the source queue keeps up to 4 days: 19 days, and a day more.
    dedup_ttl_seconds: int = Field(default=DEDUP_TTL_SECONDS, ge=3_600)
    # Amazon Connect controls (profile rollback, baseline sweep).
    baseline_table_name: str | None = None
    audit_table_name: str | None = None
    privileged_permissions: tuple[str, ...] = DEFAULT_PRIVILEGED_PERMISSIONS
    privileged_profile_names: tuple[str, ...] = ("Admin",)
    fallback_security_profile_name: str = "Agent"
    # The organization's email domains (case-folded): a Connect user's email moved outside them is
    # CRITICAL (connect_user_guard). Empty: no domain check.
    organization_email_domains: tuple[str, ...] = ()
    connect_instance_arns: tuple[str, ...] = ()
    # The suite's own KMS keys (template.yaml's AWS::KMS::Key resources): logging_guard keeps them usable.
    suite_key_arns: tuple[str, ...] = ()
    # Role-deletion quarantine.
    protected_role_names: tuple[str, ...] = ("AWSServiceRoleForAmazonConnect*",)
    protected_role_tag_key: str = "connect-guard:protected"
    quarantine_on_tampering: bool = False
    deactivate_access_keys: bool = False
    quarantine_policy_name: str = "connect-guard-quarantine"
    snapshot_account_ids: tuple[str, ...] = ()
    # The organization (template.yaml OrganizationId): a trust policy bound to it by
    # aws:PrincipalOrgID admits no outsider (policy alerts, UpdateAssumeRolePolicy).
    organization_id: str | None = Field(default=None, pattern=r"^o-[a-z0-9]{10,32}$")
    # IAM Identity Center (connect_guard.identity_center), in the account that administers it:
    # the account (and region) alone lets policy_alerts read permission sets; sessions are
    # revoked through a prepared deny-list SCP when the identity store and the SCP are given too.
    identity_center_account_id: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    identity_center_region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    identity_store_id: str | None = Field(
        default=None, pattern=r"^d-[0-9a-f]{10}$|^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$"
    )
    sso_deny_list_policy_id: str | None = Field(default=None, pattern=r"^p-[0-9a-zA-Z_]{8,128}$")
    # Log archive.
    archive_bucket_name: str | None = None
    export_log_groups: tuple[str, ...] = ()
    export_lag_hours: int = Field(default=12, ge=0)
    export_max_window_hours: int = Field(default=24, ge=1)
    archive_behind_alert_hours: int = Field(default=48, ge=1)
    checkpoint_table_name: str | None = None
    findings_archive_queue_url: str | None = None
    archive_signing_key_arn: str | None = None  # signs each sealed day's manifest (connect_guard.manifests)
    # Slack delivery.
    slack_webhook_secret_arn: str | None = None
    slack_digest_window_seconds: int = Field(default=300, ge=10)
    slack_digest_threshold: int = Field(default=3, ge=1)
    chat_topic_arn: str | None = None
    # Inputs (connect_guard.scope, runtime.lambda_handler_for). The queue this function consumes:
    # a record from any other queue is refused.
    source_queue_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+$"
    )
    # That queue's DLQ: a poison record is sent there on its first receive, with its reason.
    dead_letter_queue_url: str | None = Field(
        default=None, pattern=r"^https://sqs\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[0-9]{12}/[A-Za-z0-9_-]{1,80}$"
    )
    # A direct invocation (no SQS batch) is refused unless the run is local: `sam local invoke`
    # sets AWS_SAM_LOCAL; CONNECT_GUARD_ALLOW_DIRECT_INVOCATION says so explicitly.
    sam_local: bool = False
    allow_direct_invocation: bool = False
    # EventBridge retries a target for 24 h: an older event was not delivered by it (margin for
    # CloudTrail's delivery and the queue's retries). None: no limit, for replays of history.
    max_event_age_hours: int | None = Field(default=48, ge=1)
    # Liveness: an expected canary silent longer than this is alerted (the canary runs every 15 min).
    canary_silence_minutes: int = Field(default=90, ge=20)
    # The security stack's own canary role (template.yaml CanaryRole): its unique ID, so that a
    # role deleted and re-created under its name does not count as the security account's canary.
    canary_role_id: str | None = Field(default=None, pattern=r"^AROA[A-Z0-9]{12,128}$")
    # The suite's own plumbing as the stack deployed it (connect_guard.plumbing): an SSM parameter name.
    plumbing_state_parameter: str | None = None
    # The CloudFormation service role that deploys the suite, exactly (ARN and unique ID): both or none.
    suite_deploy_role_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$"
    )
    suite_deploy_role_id: str | None = Field(default=None, pattern=r"^AROA[A-Z0-9]{12,124}$")

    _split = field_validator(
        "member_account_ids",
        "detect_only_account_ids",
        "suite_role_arns",
        "suite_role_ids",
        "allowlisted_principals",
        "baseline_approvers",
        "privileged_permissions",
        "privileged_profile_names",
        "organization_email_domains",
        "connect_instance_arns",
        "suite_key_arns",
        "protected_role_names",
        "snapshot_account_ids",
        "export_log_groups",
        mode="before",
    )(_split_list)

    @field_validator("member_account_ids", "snapshot_account_ids", "detect_only_account_ids")
    @classmethod
    def _account_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not (len(v) == 12 and v.isdigit())]
        if bad:
            raise ValueError(f"not 12-digit account IDs: {', '.join(bad)}")
        return value

    @field_validator("organization_email_domains")
    @classmethod
    def _email_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = tuple(v.removeprefix("@").casefold() for v in value)
        bad = [d for d in domains if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", d)]
        if bad:
            raise ValueError(f"not email domains: {', '.join(bad)}")
        return domains

    @field_validator("suite_role_arns")
    @classmethod
    def _role_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not re.fullmatch(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+", v)]
        if bad:
            raise ValueError(f"not IAM role ARNs: {', '.join(bad)}")
        return value

    @field_validator("suite_key_arns")
    @classmethod
    def _key_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not re.fullmatch(r"arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:key/[\w-]+", v)]
        if bad:
            raise ValueError(f"not KMS key ARNs: {', '.join(bad)}")
        return value

    @field_validator("allowlisted_principals", "baseline_approvers")
    @classmethod
    def _principal_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Fail loudly at start: a pattern that could match more than one account's principal
        # (or any session name) must never be silently accepted.
        bad = [f"{entry!r}: {reason}" for entry in value if (reason := arn_patterns.problem(entry))]
        if bad:
            raise ValueError("; ".join(bad))
        return value

    @field_validator(
        "baseline_table_name",
        "audit_table_name",
        "archive_bucket_name",
        "checkpoint_table_name",
        "findings_archive_queue_url",
        "archive_signing_key_arn",
        "slack_webhook_secret_arn",
        "chat_topic_arn",
        "source_queue_arn",
        "dead_letter_queue_url",
        "identity_center_account_id",
        "identity_center_region",
        "identity_store_id",
        "sso_deny_list_policy_id",
        "organization_id",
        "plumbing_state_parameter",
        "suite_deploy_role_arn",
        "suite_deploy_role_id",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None

    @model_validator(mode="after")
    def _identity_center_all_or_none(self) -> Settings:
        revocation = [self.identity_store_id, self.sso_deny_list_policy_id]
        if any(revocation) and not (all(revocation) and self.identity_center_account_id):
            raise ValueError(
                "IDENTITY_CENTER_ACCOUNT_ID, IDENTITY_STORE_ID and SSO_DENY_LIST_POLICY_ID go together: "
                "set all three (Identity Center revocation), IDENTITY_CENTER_ACCOUNT_ID alone "
                "(permission sets read only), or none"
            )
        return self

    @model_validator(mode="after")
    def _deploy_role_both_or_none(self) -> Settings:
        if (self.suite_deploy_role_arn is None) != (self.suite_deploy_role_id is None):
            raise ValueError("SUITE_DEPLOY_ROLE_ARN and SUITE_DEPLOY_ROLE_ID go together: set both or none")
        return self

    @property
    def identity_center(self) -> bool:
        """Identity Center sessions are revoked through the deny-list SCP (see identity_center)."""
        return self.sso_deny_list_policy_id is not None

    @property
    def identity_center_home(self) -> tuple[str, str] | None:
        """Where IAM Identity Center is administered (account, region), for reading permission sets."""
        if self.identity_center_account_id is None:
            return None
        return self.identity_center_account_id, self.identity_center_region or self.region

    def require(self, *fields: str) -> None:
        """Fail closed when a responder's own configuration is missing."""
        missing = [f.upper() for f in fields if not getattr(self, f)]
        if missing:
            raise ConfigurationError(f"missing configuration: {', '.join(missing)}")

    @property
    def own_account_id(self) -> str:
        """The security account: the alert topic lives there, so no STS call is needed."""
        return self.alert_topic_arn.split(":")[4]

    @property
    def region(self) -> str:
        return self.alert_topic_arn.split(":")[3]

    @property
    def partition(self) -> str:
        return self.alert_topic_arn.split(":")[1]

    @property
    def local_run(self) -> bool:
        """A run outside the deployed trigger path, where direct invocations are accepted."""
        return self.sam_local or self.allow_direct_invocation

    def mode_for(self, control: Control, account_id: str | None) -> ModeDecision:
        """Does `control` act on `account_id` (the account the write would touch), and why.

        Fail closed: an account in DetectOnlyAccountIds, or one the event does not name, is
        detect whatever the control's mode."""
        parameter = CONTROL_MODE_PARAMETERS[control]
        own: ControlMode = getattr(self, f"{control}_mode")
        if own == "inherit":
            mode: Mode = self.response_mode
            why = f"ResponseMode={mode} ({parameter} inherits)"
        else:
            mode, why = own, f"{parameter}={own}"
        if mode == "enforce" and not account_id:
            return ModeDecision("detect", f"the account is not known; {why}")
        if mode == "enforce" and account_id in self.detect_only_account_ids:
            return ModeDecision("detect", f"account {account_id} is in DetectOnlyAccountIds; {why}")
        return ModeDecision(mode, why)

    def enrolled(self, account_id: str) -> bool:
        """The security account, or a source account with the member stack."""
        return account_id == self.own_account_id or account_id in self.member_account_ids

    def member_role_arn(self, account_id: str, purpose: MemberPurpose) -> str:
        """The member stack's role for one purpose in a source account (member/template.yaml)."""
        name = member_role_name(self.environment, purpose)
        return f"arn:{self.partition}:iam::{account_id}:role{MEMBER_ROLE_PATH}{name}"

    def quarantine_policy_arn(self, account_id: str) -> str:
        return f"arn:{self.partition}:iam::{account_id}:policy/connect-guard/{self.quarantine_policy_name}"

    def runbook_url(self, responder: str) -> str:
        return f"{self.runbook_base_url.rstrip('/')}/{responder.replace('_', '-')}.md"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        names = {
            "environment": "ENVIRONMENT",
            "response_mode": "RESPONSE_MODE",
            "profile_rollback_mode": "PROFILE_ROLLBACK_MODE",
            "baseline_sweep_mode": "BASELINE_SWEEP_MODE",
            "quarantine_mode": "QUARANTINE_MODE",
            "logging_guard_mode": "LOGGING_GUARD_MODE",
            "detect_only_account_ids": "DETECT_ONLY_ACCOUNT_IDS",
            "alert_topic_arn": "ALERT_TOPIC_ARN",
            "dedup_table_name": "DEDUP_TABLE_NAME",
            "allowlisted_principals": "ALLOWLISTED_PRINCIPALS",
            "baseline_approvers": "BASELINE_APPROVERS",
            "member_account_ids": "MEMBER_ACCOUNT_IDS",
            "suite_role_arns": "SUITE_ROLE_ARNS",
            "suite_role_ids": "SUITE_ROLE_IDS",
            "runbook_base_url": "RUNBOOK_BASE_URL",
            "dedup_ttl_seconds": "DEDUP_TTL_SECONDS",
            "baseline_table_name": "BASELINE_TABLE_NAME",
            "audit_table_name": "AUDIT_TABLE_NAME",
            "privileged_permissions": "PRIVILEGED_PERMISSIONS",
            "privileged_profile_names": "PRIVILEGED_PROFILE_NAMES",
            "fallback_security_profile_name": "FALLBACK_SECURITY_PROFILE_NAME",
            "organization_email_domains": "ORGANIZATION_EMAIL_DOMAINS",
            "connect_instance_arns": "CONNECT_INSTANCE_ARNS",
            "suite_key_arns": "SUITE_KEY_ARNS",
            "protected_role_names": "PROTECTED_ROLE_NAMES",
            "protected_role_tag_key": "PROTECTED_ROLE_TAG_KEY",
            "quarantine_on_tampering": "QUARANTINE_ON_TAMPERING",
            "deactivate_access_keys": "DEACTIVATE_ACCESS_KEYS",
            "quarantine_policy_name": "QUARANTINE_POLICY_NAME",
            "snapshot_account_ids": "SNAPSHOT_ACCOUNT_IDS",
            "organization_id": "ORGANIZATION_ID",
            "identity_center_account_id": "IDENTITY_CENTER_ACCOUNT_ID",
            "identity_center_region": "IDENTITY_CENTER_REGION",
            "identity_store_id": "IDENTITY_STORE_ID",
            "sso_deny_list_policy_id": "SSO_DENY_LIST_POLICY_ID",
            "archive_bucket_name": "ARCHIVE_BUCKET_NAME",
            "export_log_groups": "EXPORT_LOG_GROUPS",
            "export_lag_hours": "EXPORT_LAG_HOURS",
            "export_max_window_hours": "EXPORT_MAX_WINDOW_HOURS",
            "archive_behind_alert_hours": "ARCHIVE_BEHIND_ALERT_HOURS",
            "checkpoint_table_name": "CHECKPOINT_TABLE_NAME",
            "findings_archive_queue_url": "FINDINGS_ARCHIVE_QUEUE_URL",
            "archive_signing_key_arn": "ARCHIVE_SIGNING_KEY_ARN",
            "slack_webhook_secret_arn": "SLACK_WEBHOOK_SECRET_ARN",
            "slack_digest_window_seconds": "SLACK_DIGEST_WINDOW_SECONDS",
            "slack_digest_threshold": "SLACK_DIGEST_THRESHOLD",
            "chat_topic_arn": "CHAT_TOPIC_ARN",
            "source_queue_arn": "SOURCE_QUEUE_ARN",
            "dead_letter_queue_url": "DEAD_LETTER_QUEUE_URL",
            "sam_local": "AWS_SAM_LOCAL",
            "allow_direct_invocation": "CONNECT_GUARD_ALLOW_DIRECT_INVOCATION",
            "max_event_age_hours": "MAX_EVENT_AGE_HOURS",
            "canary_silence_minutes": "CANARY_SILENCE_MINUTES",
            "canary_role_id": "CANARY_ROLE_ID",
            "plumbing_state_parameter": "PLUMBING_STATE_PARAMETER",
            "suite_deploy_role_arn": "SUITE_DEPLOY_ROLE_ARN",
            "suite_deploy_role_id": "SUITE_DEPLOY_ROLE_ID",
        }
        values = {field: env[var] for field, var in names.items() if var in env and env[var] != ""}
        try:
            settings = cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" if e["loc"] else e["msg"]
                for e in error.errors()
            )
            raise ConfigurationError(f"invalid configuration: {problems}") from error
        if settings.sam_local and "max_event_age_hours" not in values:
            # `sam local invoke -e events/...` runs the sample corpus, which is history.
            settings = settings.model_copy(update={"max_event_age_hours": None})
        return settings
