"""Detective control: alert the SOC when IAM policies are attached or changed.

Decision (pure): what changed, on whom, what the policy grants, how severe. Actions: read the
policy document when the event lacks it, publish one finding. Denied attempts are reported as
attempts; allowlisted actors at INFO; the suite's own changes are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from connect_guard.clients import AwsClients
from connect_guard.errors import DocumentUnavailableError, PoisonEventError
from connect_guard.events import CloudTrailEvent, CloudTrailRecord
from connect_guard.findings import Attempt, EventRef, Finding, PolicyRef, Target
from connect_guard.iam import PolicyReader
from connect_guard.observability import logger
from connect_guard.outcome import Alert, Outcome
from connect_guard.policy import Analysis, Severity, analyse, known_aws_managed, parse_document
from connect_guard.principals import CLOUDFORMATION, Actor, allowlist_match, is_suite_principal, suite_role
from connect_guard.publisher import SnsPublisher, fit
from connect_guard.responders.iam_escalation import IamEscalationGuard
from connect_guard.responders.permission_sets import PermissionSetAlerts
from connect_guard.settings import Settings

NAME = "policy_alerts"
KIND = "iam.policy_change"

# eventName → (change kind, target kind, request parameter naming the target)
EVENTS: dict[str, tuple[str, str, str]] = {
    "AttachUserPolicy": ("attach", "user", "userName"),
    "AttachRolePolicy": ("attach", "role", "roleName"),
    "AttachGroupPolicy": ("attach", "group", "groupName"),
    "PutUserPolicy": ("inline", "user", "userName"),
    "PutRolePolicy": ("inline", "role", "roleName"),
    "PutGroupPolicy": ("inline", "group", "groupName"),
    "CreatePolicyVersion": ("new_version", "policy", "policyArn"),
    "SetDefaultPolicyVersion": ("set_default", "policy", "policyArn"),
}


class SubControl(Protocol):
    """Other IAM events that change what a principal can do: decided and published by itself, on the
    responder's settings, readers and publisher (as logging_guard's sub-controls)."""

    def handles(self, event: CloudTrailEvent) -> bool: ...

    def handle(self, event: CloudTrailEvent) -> Outcome: ...

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None: ...


@dataclass(frozen=True)
class PolicyChange:
    """What the request asked for, from the CloudTrail record alone."""

    change: str  # attach | inline | new_version | set_default
    target: Target
    policy_arn: str | None
    policy_name: str | None
    document: str | dict[str, Any] | None
    version_id: str | None
    set_as_default: bool | None

    @property
    def policy_kind(self) -> str:
        if self.change == "inline":
            return "inline"
        return "aws_managed" if self.policy_arn and ":iam::aws:policy/" in self.policy_arn else "customer_managed"


def describe_change(record: CloudTrailRecord) -> PolicyChange | None:
    """The requested change, or None when the record carries no parameters (denied calls)."""
    if record.event_name not in EVENTS:
        raise PoisonEventError(f"unsupported event {record.event_name!r} for {NAME}")
    if not record.request_parameters:
        return None
    change, target_kind, target_param = EVENTS[record.event_name]
    policy_arn = record.param("policyArn")
    policy_name = record.param("policyName") or (policy_arn.rsplit("/", 1)[-1] if policy_arn else None)
    target_name = record.param(target_param)
    target = Target("policy", policy_name, policy_arn) if target_kind == "policy" else Target(target_kind, target_name)
    version_id = record.param("versionId")
    if change == "new_version":
        created = (record.response_elements or {}).get("policyVersion") or {}
        version_id = created.get("versionId")
    set_as_default = record.param("setAsDefault")
    if change == "set_default":
        set_as_default = True
    return PolicyChange(
        change=change,
        target=target,
        policy_arn=policy_arn,
        policy_name=policy_name,
        document=record.param("policyDocument"),
        version_id=version_id,
        set_as_default=set_as_default,
    )


def assess_document(document: str | dict[str, Any]) -> Analysis:
    """Analysis of a document; an unreadable one is HIGH until a human has looked at it."""
    try:
        return analyse(parse_document(document))
    except ValueError as error:
        return Analysis(Severity.HIGH, [f"policy could not be analysed ({error}); review it by hand"])


def title_for(record: CloudTrailRecord, change: PolicyChange | None, actor: Actor) -> str:
    attempt = "Denied attempt: " if record.denied else ""
    if change is None:
        return f"{attempt}{record.event_name} by {actor.display} in {record.recipient_account_id}"
    target = f"{change.target.kind} {change.target.name}"
    where = f" in {record.recipient_account_id}"
    if change.change == "attach":
        return f"{attempt}{change.policy_name} attached to {target}{where}"
    if change.change == "inline":
        return f"{attempt}inline policy {change.policy_name} put on {target}{where}"
    if change.change == "new_version":
        default = " (set as default)" if change.set_as_default else ""
        return f"{attempt}new version of policy {change.policy_name}{default}{where}"
    return f"{attempt}policy {change.policy_name} default version set to {change.version_id}{where}"


class PolicyAlertResponder:
    name = NAME

    def __init__(
        self, settings: Settings, publisher: SnsPublisher, policies: PolicyReader, clients: AwsClients | None = None
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.policies = policies
        self.clients = clients
        # Other policy-like events (groups, credentials, boundaries, trust; Identity Center's
        # permission sets), each decided and published by its own sub-control.
        self.sub_controls: tuple[SubControl, ...] = (IamEscalationGuard(self), PermissionSetAlerts(self))

    def _sub_control(self, event: CloudTrailEvent) -> SubControl | None:
        return next((sub for sub in self.sub_controls if sub.handles(event)), None)

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed: a sub-control says so; a policy change alone ends in the DLQ."""
        sub = self._sub_control(event)
        if sub is not None:
            sub.give_up(event, error)

    def _resolve(self, record: CloudTrailRecord, change: PolicyChange) -> tuple[Analysis, str, str | None]:
        """(analysis, document source, version id) for the policy the change is about."""
        if change.document is not None:
            return assess_document(change.document), "event", change.version_id
        if change.policy_arn is None:
            return (
                Analysis(Severity.HIGH, ["the event names no policy; review the change by hand"]),
                "unavailable",
                None,
            )
        known = known_aws_managed(change.policy_arn)
        if known:
            return Analysis(known[0], [known[1]], [known[1]]), "known", change.version_id
        if record.denied:
            # The call did not happen: don't spend API calls on a policy that was not applied.
            return Analysis(Severity.MEDIUM, ["denied attempt; policy not analysed"]), "unavailable", None
        try:
            document, version_id = self.policies.document(change.policy_arn, change.version_id)
        except DocumentUnavailableError as error:
            reason = f"policy document unavailable ({error}); treated as high until reviewed"
            return Analysis(Severity.HIGH, [reason]), "unavailable", change.version_id
        return assess_document(document), "api", version_id

    def handle(self, event: CloudTrailEvent) -> Outcome:
        sub = self._sub_control(event)
        if sub is not None:
            return sub.handle(event)
        record = event.detail
        actor = Actor.from_record(record)
        change = describe_change(record)
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        own = is_suite_principal(actor, self.settings)
        if own and self._is_quarantine(record, change):
            # The handler's "event processed" line says so (outcome and reason): no line of its own.
            outcome.reason = "change made by connect-guard itself (quarantine policy attached)"
            return outcome

        if change is None:
            analysis = Analysis(Severity.MEDIUM, ["denied attempt without request parameters: target unknown"])
            source, version_id = "unavailable", None
        else:
            analysis, source, version_id = self._resolve(record, change)
        if record.denied:
            analysis.reasons.insert(0, f"the call was denied ({record.error_code}): an attempt, not a change")

        allowlisted = allowlist_match(actor, self.settings.allowlisted_principals)
        severity = analysis.severity
        if allowlisted:
            analysis.reasons.insert(0, f"actor is allowlisted ({allowlisted}); would otherwise be {severity}")
            severity = Severity.INFO
        guarded = self._guards_the_suite(record, change, actor, own)
        if guarded:
            # Never softened by the allowlist: the suite's own roles and policy are not exempt.
            severity, reason = guarded
            analysis.reasons.insert(0, reason)

        finding = Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=title_for(record, change, actor),
            summary=self._summary(record, change, actor, severity),
            event=EventRef.of(event),
            actor=actor,
            attempt=Attempt.of(record),
            allowlisted=allowlisted is not None,
            reasons=tuple(analysis.reasons),
            runbook_url=self.settings.runbook_url(NAME),
            environment=self.settings.environment,
            mode=self.settings.response_mode,
            target=change.target if change else None,
            policy=PolicyRef(
                kind=change.policy_kind,
                arn=change.policy_arn,
                name=change.policy_name,
                version_id=version_id,
                set_as_default=change.set_as_default,
                document_source=source,
                grants=tuple(analysis.grants),
                grants_total=analysis.grants_total,
            )
            if change
            else None,
        )
        message_id = self.publisher.publish(finding)
        logger.info(
            "finding published",
            extra={
                "finding_id": finding.finding_id,
                "severity": str(severity),
                "account": finding.event.account_id,
            },
        )
        outcome.outcome = "alerted"
        outcome.severity = str(severity)
        outcome.alerts.append(Alert(finding.subject, str(severity), finding.finding_id, message_id))
        outcome.finding = fit(finding).to_dict()  # as published
        return outcome

    def _is_quarantine(self, record: CloudTrailRecord, change: PolicyChange | None) -> bool:
        """The one IAM write the suite makes: attaching its quarantine policy."""
        return (
            change is not None
            and change.change == "attach"
            and change.policy_arn == self.settings.quarantine_policy_arn(str(record.recipient_account_id))
        )

    def _guards_the_suite(
        self, record: CloudTrailRecord, change: PolicyChange | None, actor: Actor, own: bool
    ) -> tuple[Severity, str] | None:
        """A change aimed at the suite itself, or one its own role should never make."""
        account = record.recipient_account_id
        if own:
            return Severity.CRITICAL, (
                f"made by connect-guard's own role ({actor.session_issuer_arn}), which never makes this change: "
                "treat the role as compromised"
            )
        if change is None:
            return None
        if change.change in ("new_version", "set_default") and change.policy_arn == self.settings.quarantine_policy_arn(
            str(account)
        ):
            return Severity.CRITICAL, "the suite's quarantine policy changed: quarantines may no longer deny"
        if change.target.kind == "role" and suite_role(account, change.target.name, self.settings):
            if actor.invoked_by == CLOUDFORMATION:
                return Severity.HIGH, (
                    f"{change.target.name} is one of connect-guard's own roles; changed through CloudFormation: "
                    "confirm it was a deployment of the connect-guard stacks"
                )
            return Severity.CRITICAL, (
                f"{change.target.name} is one of connect-guard's own roles: "
                "a change to it can blind or subvert the suite"
            )
        return None

    @staticmethod
    def _summary(record: CloudTrailRecord, change: PolicyChange | None, actor: Actor, severity: Severity) -> str:
        happened = "tried to change" if record.denied else "changed"
        what = f"{change.target.kind} {change.target.name}" if change else "an IAM principal's permissions"
        return (
            f"{actor.display} {happened} the permissions of {what} with {record.event_name} "
            f"in account {record.recipient_account_id} ({record.aws_region}). Severity {severity}."
        )


def build(settings: Settings, clients: AwsClients) -> PolicyAlertResponder:
    return PolicyAlertResponder(
        settings,
        SnsPublisher(clients.sns, settings.alert_topic_arn),
        PolicyReader(clients, settings),
        clients,
    )
