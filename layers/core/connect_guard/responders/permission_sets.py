"""Detective control: IAM Identity Center permission sets are policies too (policy_alerts' sub-control).

A permission set becomes an IAM role in every account it is assigned to, so a policy attached
to it, an inline policy put on it, a customer managed policy it names, its permissions boundary,
its assignment to a user or group and its provisioning are IAM escalations. Severity comes from
what the set grants: the event's own document first (an inline policy in the request, an AWS
managed policy known by name or read from IAM), then, where the Identity Center integration is
configured (IdentityCenterAccountId), the set itself read through sso-admin in that account.
A customer managed policy is resolved per target account: read there (the member read role)
when the event names the account, else HIGH for review by hand. Not configured, or the read
fails: HIGH "could not read the permission set", never lower than the event's own document.
Denied calls are attempts (nothing is read); allowlisted actors INFO; the suite never makes
these calls, so its own role making one is CRITICAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connect_guard.errors import DocumentUnavailableError, MemberAccessError
from connect_guard.events import CloudTrailEvent, CloudTrailRecord
from connect_guard.findings import Attempt, EventRef, Finding, PolicyRef, Target
from connect_guard.identity_center import (
    PermissionSetContents,
    PermissionSetReader,
    PermissionSetUnreadableError,
    PolicyReference,
)
from connect_guard.observability import logger
from connect_guard.outcome import Outcome
from connect_guard.policy import Analysis, Severity, known_aws_managed
from connect_guard.principals import Actor, allowlist_match, is_suite_principal
from connect_guard.publisher import publish_outcome

if TYPE_CHECKING:
    from connect_guard.responders.policy_alerts import PolicyAlertResponder

SSO = "sso.amazonaws.com"
KIND = "sso.permission_set_change"

# eventName → what it changes (the set's policies, or who holds the set where)
EVENTS: dict[str, str] = {
    "AttachManagedPolicyToPermissionSet": "attach",
    "PutInlinePolicyToPermissionSet": "inline",
    "AttachCustomerManagedPolicyReferenceToPermissionSet": "customer_managed",
    "PutPermissionsBoundaryToPermissionSet": "boundary",
    "CreateAccountAssignment": "assignment",
    "ProvisionPermissionSet": "provision",
}


@dataclass(frozen=True)
class PermissionSetChange:
    """What the request asked for, from the CloudTrail record alone."""

    change: str  # as EVENTS
    instance_arn: str | None
    permission_set_arn: str | None
    policy_arn: str | None  # attach, or a boundary that is an AWS/customer managed policy by ARN
    reference: PolicyReference | None  # customer managed reference (or boundary by reference)
    document: str | dict[str, Any] | None  # inline policy
    target_account: str | None  # assignment, or provisioning to one account
    principal: str | None  # assignment: "GROUP 3488..." / "USER ..."

    @property
    def set_id(self) -> str | None:
        return self.permission_set_arn.rsplit("/", 1)[-1] if self.permission_set_arn else None


def _reference(value: Any) -> PolicyReference | None:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    path = value.get("path")
    return PolicyReference(value["name"], path if isinstance(path, str) and path else "/")


def describe_change(record: CloudTrailRecord) -> PermissionSetChange | None:
    """The requested change, or None when the record carries no parameters (denied calls)."""
    if not record.request_parameters:
        return None
    change = EVENTS[record.event_name]
    boundary = record.param("permissionsBoundary") if change == "boundary" else None
    boundary = boundary if isinstance(boundary, dict) else {}
    policy_arn = record.param("managedPolicyArn") or boundary.get("managedPolicyArn")
    reference = _reference(
        record.param("customerManagedPolicyReference") or boundary.get("customerManagedPolicyReference")
    )
    target = record.param("targetId") if record.param("targetType") == "AWS_ACCOUNT" else None
    principal_type, principal_id = record.param("principalType"), record.param("principalId")
    return PermissionSetChange(
        change=change,
        instance_arn=_text(record.param("instanceArn")),
        permission_set_arn=_text(record.param("permissionSetArn")),
        policy_arn=_text(policy_arn),
        reference=reference,
        document=record.param("inlinePolicy") if change == "inline" else None,
        target_account=_text(target),
        principal=f"{principal_type} {principal_id}" if principal_type and principal_id else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _assess_document(document: str | dict[str, Any]) -> Analysis:
    # policy_alerts selects this module at import: its helper is looked up when first needed.
    from connect_guard.responders.policy_alerts import assess_document

    return assess_document(document)


def _worst(parts: list[tuple[str, Analysis]]) -> Analysis:
    """One analysis of several policies: the highest severity, its reasons first, each said by source."""
    ranked = sorted(parts, key=lambda part: -part[1].severity)
    severity = ranked[0][1].severity
    reasons = [f"{label}: {reason}" for label, a in ranked if a.severity == severity for reason in a.reasons]
    grants = [grant for _, a in ranked for grant in a.grants][:20]
    return Analysis(severity, list(dict.fromkeys(reasons)), grants, sum(a.grants_total or 0 for _, a in ranked) or None)


class PermissionSetAlerts:
    """The permission-set events, decided and published on policy_alerts' publisher and policy reader."""

    def __init__(self, responder: PolicyAlertResponder) -> None:
        self.responder = responder
        self.settings = responder.settings

    def handles(self, event: CloudTrailEvent) -> bool:
        return event.detail.event_source == SSO and event.detail.event_name in EVENTS

    # ---- what the policies grant --------------------------------------------------------------
    def _managed(self, policy_arn: str) -> tuple[Analysis, str]:
        """An AWS managed policy known by name, or its document read from IAM (the AWS account's)."""
        known = known_aws_managed(policy_arn)
        if known:
            return Analysis(known[0], [known[1]], [known[1]]), "known"
        try:
            document, _ = self.responder.policies.document(policy_arn)
        except DocumentUnavailableError as error:
            return Analysis(
                Severity.HIGH, [f"policy document unavailable ({error}); treated as high until reviewed"]
            ), ("unavailable")
        return _assess_document(document), "api"

    def _customer_managed(self, reference: PolicyReference, account: str | None) -> Analysis:
        """A customer managed policy is the one of that path and name in each target account."""
        if account is None:
            return Analysis(
                Severity.HIGH,
                [
                    f"customer managed policy {reference.shown} is resolved in each account the set is "
                    "provisioned to, and may differ between them: review it there by hand"
                ],
            )
        analysis, _ = self._managed(reference.arn(self.settings.partition, account))
        analysis.reasons = [f"as {reference.shown} reads in account {account}: {r}" for r in analysis.reasons]
        return analysis

    def _event_analysis(self, record: CloudTrailRecord, change: PermissionSetChange) -> tuple[Analysis, str] | None:
        """What the event's own document shows (None: the event names no policy)."""
        if change.change == "inline" and change.document is not None:
            return _assess_document(change.document), "event"
        if change.change in ("attach", "boundary") and change.policy_arn:
            known = known_aws_managed(change.policy_arn)
            if known:
                analysis, source = Analysis(known[0], [known[1]], [known[1]]), "known"
            elif record.denied:  # the call did not happen: don't spend API calls on it
                return Analysis(Severity.MEDIUM, ["denied attempt; policy not analysed"]), "unavailable"
            else:
                analysis, source = self._managed(change.policy_arn)
            if change.change == "boundary":
                # A boundary only limits: one that grants as much as this limits nothing.
                return Analysis(
                    Severity.MEDIUM,
                    [
                        f"the set's permissions boundary is now {change.policy_arn}, which allows "
                        f"{analysis.severity}-grade access: it limits the set no further than that"
                    ],
                    analysis.grants,
                    analysis.grants_total,
                ), source
            return analysis, source
        if change.change in ("customer_managed", "boundary") and change.reference:
            if change.change == "boundary":
                return Analysis(
                    Severity.MEDIUM,
                    [
                        f"the set's permissions boundary is now customer managed policy {change.reference.shown}, "
                        "resolved in each account the set is provisioned to"
                    ],
                ), "unavailable"
            return self._customer_managed(change.reference, None), "unavailable"
        return None

    def _set_analysis(self, record: CloudTrailRecord, change: PermissionSetChange) -> Analysis:
        """What the permission set grants now, read in the account that administers Identity Center."""
        home = self.settings.identity_center_home
        if home is None:
            raise PermissionSetUnreadableError(
                "the Identity Center integration is not configured (IdentityCenterAccountId)"
            )
        account, region = home
        if record.recipient_account_id != account or record.aws_region != region:
            raise PermissionSetUnreadableError(
                f"the event is from {record.recipient_account_id} ({record.aws_region}); permission sets are read "
                f"in {account} ({region}), the IdentityCenterAccountId and IdentityCenterRegion"
            )
        if not change.instance_arn or not change.permission_set_arn:
            raise PermissionSetUnreadableError("the event names no instance or permission set")
        clients = self.responder.clients
        if clients is None:
            raise PermissionSetUnreadableError("no AWS clients to read it with")
        try:
            sso_admin = clients.for_account("sso-admin", account, region, self.settings, "read")
        except MemberAccessError as error:
            raise PermissionSetUnreadableError(str(error)) from error
        contents = PermissionSetReader(sso_admin).read(change.instance_arn, change.permission_set_arn)
        return self._grants_of(contents, change.target_account)

    def _grants_of(self, contents: PermissionSetContents, account: str | None) -> Analysis:
        parts: list[tuple[str, Analysis]] = []
        for arn in contents.managed_policy_arns:
            parts.append((f"the set's {arn.rsplit('/', 1)[-1]}", self._managed(arn)[0]))
        if contents.inline_policy:
            parts.append(("the set's inline policy", _assess_document(contents.inline_policy)))
        for reference in contents.customer_managed:
            parts.append((f"the set's {reference.shown}", self._customer_managed(reference, account)))
        if not parts:
            return Analysis(Severity.MEDIUM, ["the permission set holds no policy"])
        return _worst(parts)

    def _assess(self, record: CloudTrailRecord, change: PermissionSetChange) -> tuple[Analysis, str]:
        """(analysis, document source): the event's own document, then the set as it is now."""
        own = self._event_analysis(record, change)
        if record.denied:  # an attempt: the set did not change, nothing is read
            return own or (Analysis(Severity.MEDIUM, ["denied attempt; permission set not read"]), "unavailable")
        if own and own[0].severity == Severity.CRITICAL:
            return own  # nothing the set holds besides can make it worse
        try:
            whole = self._set_analysis(record, change)
        except PermissionSetUnreadableError as error:
            floor = own[0].severity if own else Severity.HIGH
            reasons = [f"could not read the permission set ({error}); treated as high until reviewed"]
            return Analysis(
                max(Severity.HIGH, floor), reasons + (own[0].reasons if own else []), own[0].grants if own else []
            ), own[1] if own else "unavailable"
        whole.reasons = [f"the permission set grants {whole.severity}-grade access", *whole.reasons]
        if own is None:
            return whole, "api"
        event_analysis, source = own
        # The event's reasons first; the set's, unless they repeat one (a reference it now holds).
        reasons = [*event_analysis.reasons]
        reasons += [r for r in whole.reasons if not any(said in r for said in event_analysis.reasons)]
        grants = [*event_analysis.grants, *whole.grants][:20]
        return Analysis(max(event_analysis.severity, whole.severity), reasons, grants, whole.grants_total), source

    # ---- the finding ----------------------------------------------------------------------------
    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        actor = Actor.from_record(record)
        change = describe_change(record)
        if change is None:
            analysis = Analysis(Severity.MEDIUM, ["denied attempt without request parameters: permission set unknown"])
            source = "unavailable"
        else:
            analysis, source = self._assess(record, change)
        return self._alert(event, actor, change, analysis, source)

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed (a read of the set, or the publish): one finding without the
        reads, so the SOC still hears of the change before the event ends in the DLQ."""
        record = event.detail
        change = describe_change(record)
        own = self._event_analysis(record, change) if change else None
        reasons = [f"NOT ASSESSED: {type(error).__name__}: {error}; the permission set was not read: review by hand"]
        analysis = Analysis(max(Severity.HIGH, own[0].severity) if own else Severity.HIGH, reasons)
        self._alert(event, Actor.from_record(record), change, analysis, "unavailable")

    def _alert(
        self,
        event: CloudTrailEvent,
        actor: Actor,
        change: PermissionSetChange | None,
        analysis: Analysis,
        source: str,
    ) -> Outcome:
        record = event.detail
        outcome = Outcome(self.responder.name, record.event_id, record.event_name, "ignored")
        if record.denied:
            analysis.reasons.insert(0, f"the call was denied ({record.error_code}): an attempt, not a change")
        if change and change.change == "assignment":
            analysis.reasons.insert(0, f"assigned to {change.principal} in account {change.target_account}")
        severity = analysis.severity
        allowlisted = allowlist_match(actor, self.settings.allowlisted_principals)
        if allowlisted:
            analysis.reasons.insert(0, f"actor is allowlisted ({allowlisted}); would otherwise be {severity}")
            severity = Severity.INFO
        if is_suite_principal(actor, self.settings):
            # Never softened by the allowlist: no suite role makes an Identity Center change.
            severity = Severity.CRITICAL
            analysis.reasons.insert(
                0,
                f"made by connect-guard's own role ({actor.session_issuer_arn}), which never changes IAM Identity "
                "Center: treat the role as compromised",
            )
        finding = Finding(
            responder=self.responder.name,
            kind=KIND,
            severity=severity,
            title=self._title(record, change, actor),
            summary=self._summary(record, change, actor, severity),
            event=EventRef.of(event),
            actor=actor,
            attempt=Attempt.of(record),
            allowlisted=allowlisted is not None,
            reasons=tuple(analysis.reasons),
            runbook_url=self.settings.runbook_url(self.responder.name),
            environment=self.settings.environment,
            mode=self.settings.response_mode,
            target=Target("permission_set", change.set_id, change.permission_set_arn) if change else None,
            policy=self._policy_ref(change, source, analysis) if change else None,
        )
        publish_outcome(self.responder.publisher, finding, outcome, "alerted")
        logger.info(
            "finding published",
            extra={"finding_id": finding.finding_id, "severity": str(severity), "account": finding.event.account_id},
        )
        return outcome

    @staticmethod
    def _policy_ref(change: PermissionSetChange, source: str, analysis: Analysis) -> PolicyRef:
        if change.change == "inline":
            kind, arn, name = "inline", None, None
        elif change.policy_arn:
            kind = "aws_managed" if ":iam::aws:policy/" in change.policy_arn else "customer_managed"
            arn, name = change.policy_arn, change.policy_arn.rsplit("/", 1)[-1]
        elif change.reference:
            kind, arn, name = "customer_managed", None, change.reference.shown
        else:  # assignment, provisioning: the set's policies, as read
            kind, arn, name = "permission_set", change.permission_set_arn, change.set_id
        return PolicyRef(
            kind=kind,
            arn=arn,
            name=name,
            document_source=source,
            grants=tuple(analysis.grants),
            grants_total=analysis.grants_total,
        )

    @staticmethod
    def _title(record: CloudTrailRecord, change: PermissionSetChange | None, actor: Actor) -> str:
        attempt = "Denied attempt: " if record.denied else ""
        where = f" in {record.recipient_account_id}"
        if change is None:
            return f"{attempt}{record.event_name} by {actor.display}{where}"
        ps = f"permission set {change.set_id}"
        if change.change == "attach":
            return f"{attempt}{(change.policy_arn or '?').rsplit('/', 1)[-1]} attached to {ps}{where}"
        if change.change == "inline":
            return f"{attempt}inline policy put on {ps}{where}"
        if change.change == "customer_managed":
            return f"{attempt}customer managed policy {change.reference.shown if change.reference else '?'} on {ps}"
        if change.change == "boundary":
            return f"{attempt}permissions boundary of {ps} changed{where}"
        if change.change == "assignment":
            return f"{attempt}{ps} assigned to {change.principal} in account {change.target_account}"
        return f"{attempt}{ps} provisioned to {change.target_account or 'all its accounts'}"

    @staticmethod
    def _summary(record: CloudTrailRecord, change: PermissionSetChange | None, actor: Actor, severity: Severity) -> str:
        happened = "tried to" if record.denied else "did"
        what = f"permission set {change.permission_set_arn}" if change else "an IAM Identity Center permission set"
        return (
            f"{actor.display} {happened} {record.event_name} on {what} in account {record.recipient_account_id} "
            f"({record.aws_region}). Severity {severity}."
        )
