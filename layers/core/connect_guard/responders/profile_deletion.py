"""DeleteSecurityProfile: alerted with the profile's approved snapshot, never acted on.

A deleted profile can't be put back under its ID, and Connect refuses to delete a profile that
users still hold, so there is nothing to roll back: the finding carries what the baseline
approved (permissions, access-control restrictions, applications) for the SOC to recreate it.
Severity: a baselined profile is HIGH, CRITICAL when it held a privileged permission (or has a
privileged profile's name); a profile never approved is MEDIUM; a denied call is an attempt
(MEDIUM); an allowlisted actor or a baseline approver is INFO. A sub-control of the profile
rollback (its rule, queue and state); it reads only the baseline, no Connect API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connect_guard.baseline import ProfileBaseline, incomplete
from connect_guard.connect import InstanceRef
from connect_guard.events import CloudTrailEvent
from connect_guard.findings import ConnectRef, Target
from connect_guard.outcome import Outcome
from connect_guard.policy import Severity
from connect_guard.principals import CONNECT_REPLICATION, Actor, allowlist_match, exempt_service, is_suite_principal

if TYPE_CHECKING:
    from connect_guard.responders.profile_rollback import ProfileRollbackResponder

EVENT = "DeleteSecurityProfile"


def deleted_severity(
    profile: ProfileBaseline | None, privileged: frozenset[str], admin_names: frozenset[str]
) -> Severity:
    """Pure: HIGH for an approved profile, CRITICAL when it was privileged, MEDIUM when never approved."""
    if profile is None:
        return Severity.MEDIUM
    if profile.permissions & privileged or profile.name.casefold() in admin_names:
        return Severity.CRITICAL
    return Severity.HIGH


def snapshot_of(profile: ProfileBaseline, approved_at: str | None) -> dict[str, Any]:
    """What the baseline approved, in UpdateSecurityProfile's terms (what recreating it takes)."""
    body: dict[str, Any] = {
        "SecurityProfileId": profile.id,
        "SecurityProfileName": profile.name,
        "Permissions": sorted(profile.permissions),
        "baseline_approved_at": approved_at,
    }
    if profile.access is None:
        body["access"] = "not recorded (an older baseline item): re-approve the baseline"
    else:
        body |= profile.access.to_api()
    return body


class ProfileDeletion:
    def __init__(self, control: ProfileRollbackResponder) -> None:
        self.control = control

    def handles(self, event: CloudTrailEvent) -> bool:
        return event.detail.event_name == EVENT

    @staticmethod
    def _target(event: CloudTrailEvent) -> tuple[str | None, InstanceRef | None]:
        record = event.detail
        raw = record.param("SecurityProfileId")
        # An ARN where an ID was expected: keep the ID. "***" is a redaction, not an ID.
        profile_id = raw.rsplit("/", 1)[-1] if isinstance(raw, str) and raw not in ("", "***") else None
        raw_instance = record.param("InstanceId")
        instance = None
        if isinstance(raw_instance, str) and raw_instance not in ("", "***"):
            instance = InstanceRef.parse(raw_instance, record.recipient_account_id or event.account, record.aws_region)
        return profile_id, instance

    def handle(self, event: CloudTrailEvent) -> Outcome:
        control, record = self.control, event.detail
        actor = Actor.from_record(record)
        outcome = Outcome(control.name, record.event_id, record.event_name, "ignored")
        if actor.type == "AWSService" and exempt_service(actor, (CONNECT_REPLICATION,)):
            outcome.reason = "Global Resiliency replication of a change already assessed in its source region"
            return outcome
        profile_id, instance = self._target(event)
        kind = "security_profile"
        if record.denied or instance is None or profile_id is None:
            return control._report_only(event, actor, outcome, instance, kind, profile_id)
        if not control.configured(instance):
            return control._report_only(
                event, actor, outcome, instance, kind, profile_id, "the instance is not in ConnectInstanceArns"
            )
        approved = control.baselines.instance(instance.arn)
        problem = incomplete(approved.meta, len(approved.profiles), len(approved.users))
        if problem:
            return control._report_only(event, actor, outcome, instance, kind, profile_id, problem, Severity.CRITICAL)
        profile = approved.profiles.get(profile_id)
        rules = control.rules
        severity = deleted_severity(profile, rules.privileged_permissions, rules.privileged_profiles)
        name = profile.name if profile else profile_id
        arn = f"{instance.arn}/security-profile/{profile_id}"
        if profile is None:
            reasons: tuple[str, ...] = ("the profile is not in the approved baseline: no snapshot to recreate it from",)
        else:
            privileged = sorted(profile.permissions & rules.privileged_permissions)
            reasons = (
                "an approved security profile was deleted; its approved snapshot is in the finding (snapshot) "
                "to recreate it, then reassign its users (runbook)",
                *((f"it held privileged permissions: {', '.join(privileged)}",) if privileged else ()),
                *(
                    ("its access-control restrictions and applications are not in the baseline (an older item)",)
                    if profile.access is None
                    else ()
                ),
            )
        exempt = allowlist_match(actor, control.settings.allowlisted_principals)
        approver = allowlist_match(actor, control.settings.baseline_approvers)
        if exempt or approver:
            match = approver or exempt
            reasons = (
                f"actor is {'a baseline approver' if approver else 'allowlisted'} ({match}): not acted on, "
                f"would otherwise be {severity}",
                *reasons,
                "the baseline still holds the profile: approve its deletion with connect-guard approve-baseline",
            )
            severity = Severity.INFO
        if is_suite_principal(actor, control.settings):
            # Never softened by the allowlist: no suite role deletes a security profile.
            severity = Severity.CRITICAL
            reasons = (
                f"made by connect-guard's own role ({actor.session_issuer_arn}), which never deletes a security "
                "profile: treat the role as compromised",
                *reasons,
            )
        finding = control._event_finding(
            event,
            actor,
            severity,
            f"Connect security profile {name} deleted by {actor.display} in {record.recipient_account_id}",
            f"{actor.display} ran {EVENT} on security profile {name} in instance {instance.instance_id} "
            f"(account {record.recipient_account_id}, {record.aws_region}). Severity {severity}.",
            allowlisted=exempt is not None,
            reasons=reasons,
            target=Target(kind, name, arn),
            connect=ConnectRef(
                instance.instance_id, instance.arn, security_profile_id=profile_id, security_profile_name=name
            ),
            snapshot=snapshot_of(profile, approved.approved_at) if profile else None,
        )
        return control._publish(finding, outcome, "alerted")

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last attempt failed (the baseline read, or the publish): nothing was due to be undone,
        but the SOC still hears of the deletion, without its snapshot, before the event ends in the DLQ."""
        control, record = self.control, event.detail
        profile_id, instance = self._target(event)
        control._report_only(
            event,
            Actor.from_record(record),
            Outcome(control.name, record.event_id, record.event_name, "ignored"),
            instance,
            "security_profile",
            profile_id,
            f"NOT ASSESSED: {type(error).__name__}: {error}; the approved snapshot was not read "
            "(the baseline table still holds it)",
        )
