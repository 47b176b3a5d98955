"""Responsive control: roll back Amazon Connect security-profile escalations.

An escalation is a change, by an actor who is not allowlisted, that gives a user or a security
profile a privileged permission (or a privileged profile) it did not have in the approved
baseline. The responder acts only on instances in ConnectInstanceArns with a complete baseline,
re-reads the current state (CloudTrail parameters may be redacted, truncated or URL-encoded),
acts only while it still differs from the baseline, and removes the privileged gain (other
changes stay): in enforce mode it calls Connect, in detect mode it reports the exact call.
A rollback is journaled before Connect is called (connect_guard.audit), so a retry that finds it
made still reports it; the last attempt's give_up decides again from the state before it says
FAILED.

A profile is judged whole: beyond its permissions, its access-control restrictions and its
applications (connect_guard.profile_access). Their loosening is an escalation too: a removed or
changed AllowedAccessControlTags entry, a resource dropped from TagRestrictedResources or
HierarchyRestrictedResources, a removed or changed AllowedAccessControlHierarchyGroupId, an added
application or application permission. Severity: a loosened restriction on a profile that holds
a privileged permission is CRITICAL (a scoped administrator becomes an instance-wide one);
any other loosened restriction, and any application gained, is HIGH (or the permissions' own
severity when higher). The restore puts back only what loosened; narrowing changes stay. A
baselined profile whose baseline item predates these fields is never restored from them: the
change is alerted and the baseline must be re-approved. DeleteSecurityProfile is alerted with the
approved snapshot (responders.profile_deletion).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Self

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from connect_guard.audit import ActionJournal, AuditLog
from connect_guard.baseline import BaselineStore, InstanceBaseline, ProfileBaseline, UserBaseline, incomplete
from connect_guard.clients import AwsClients, reread
from connect_guard.connect import ConnectGateway, ConnectUser, InstanceRef
from connect_guard.errors import ConnectResourceNotFoundError, MemberAccessError, PoisonEventError
from connect_guard.events import CloudTrailEvent, CloudTrailRecord
from connect_guard.findings import Action, Attempt, Change, ConnectRef, EventRef, Finding, Target, finding_id_of
from connect_guard.observability import logger
from connect_guard.outcome import Outcome
from connect_guard.policy import Severity
from connect_guard.principals import CONNECT_REPLICATION, Actor, allowlist_match, exempt_service, is_suite_principal
from connect_guard.profile_access import ProfileAccess, loosened, restored, update_fields
from connect_guard.publisher import SnsPublisher, publish_outcome
from connect_guard.responders.connect_user_guard import ConnectUserGuard
from connect_guard.responders.profile_deletion import ProfileDeletion
from connect_guard.settings import MemberPurpose, ModeDecision, Settings

NAME = "profile_rollback"
KIND = "connect.security_profile_change"
USER_EVENTS = {"UpdateUserSecurityProfiles": "UserId", "CreateUser": "UserId"}
PROFILE_EVENTS = {"UpdateSecurityProfile": "SecurityProfileId", "CreateSecurityProfile": "SecurityProfileId"}
REPLICATION_SERVICE = "synchronization.connect.amazonaws.com"  # Global Resiliency
SUITE_WRITES = {"UpdateUserSecurityProfiles", "UpdateSecurityProfile"}  # what a rollback calls
CONNECT_SERVICE_ROLE = "AWSServiceRoleForAmazonConnect"  # admin-website changes arrive as this role


@dataclass(frozen=True)
class Rules:
    privileged_permissions: frozenset[str]
    privileged_profiles: frozenset[str]  # case-folded names
    fallback_profile: str

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(
            frozenset(settings.privileged_permissions),
            frozenset(n.casefold() for n in settings.privileged_profile_names),
            settings.fallback_security_profile_name,
        )

    def severity(self, gained: tuple[str, ...]) -> Severity:
        """Identity and privilege control (or an admin profile) is CRITICAL; recordings and live calls HIGH."""
        identity = any(
            g.startswith(("Users.", "SecurityProfiles.")) or g.casefold() in self.privileged_profiles for g in gained
        )
        return Severity.CRITICAL if identity else Severity.HIGH

    def severity_of(self, plan: Plan) -> Severity:
        """A plan's severity: its gains', or CRITICAL for a privileged profile's loosened restriction."""
        return Severity.CRITICAL if plan.critical else self.severity(plan.gained)


@dataclass(frozen=True)
class Plan:
    """What the rollback restores: pure output of the decision functions below."""

    operation: str  # UpdateUserSecurityProfiles | UpdateSecurityProfile
    target: frozenset[str]  # profile IDs for a user, permissions for a profile
    gained: tuple[str, ...]
    baseline: str  # approved | none
    reasons: tuple[str, ...]
    # A profile's access-control restrictions and applications to restore (None: left as they are).
    access: ProfileAccess | None = None
    critical: bool = False  # a restriction loosened on a profile holding a privileged permission
    # The UpdateSecurityProfile fields besides Permissions that restore `access` (changed ones only).
    fields: dict[str, Any] = field(default_factory=dict)


# A profile's access fields an event may set, listed as claims when the profile can't be read.
ACCESS_CLAIMS = (
    "AllowedAccessControlTags",
    "TagRestrictedResources",
    "HierarchyRestrictedResources",
    "AllowedAccessControlHierarchyGroupId",
    "Applications",
)
UNCHECKED_ACCESS = (
    "the profile's approved baseline predates access-control restrictions and applications (an older "
    "baseline item): they were not checked and nothing of them is restored; re-approve the baseline "
    "(connect-guard approve-baseline) after review"
)


def plan_user(
    user: ConnectUser,
    baseline: UserBaseline | None,
    names: dict[str, str],
    permissions: dict[str, frozenset[str]],
    rules: Rules,
) -> Plan | None:
    """Remove the privileged profiles a user gained beyond the approved ones.

    A gained profile is privileged by its name (e.g. Admin) or by the privileged permissions it
    carries that the user's approved profiles did not already give.
    """
    approved = baseline.security_profile_ids if baseline else frozenset()
    had = frozenset().union(*(permissions.get(p, frozenset()) for p in approved)) & rules.privileged_permissions
    gained: set[str] = set()
    privileged_profiles: set[str] = set()
    for profile_id in user.security_profile_ids - approved:
        name = names.get(profile_id, profile_id)
        if name.casefold() in rules.privileged_profiles:
            gained.add(name)
            privileged_profiles.add(profile_id)
            continue
        extra = (permissions.get(profile_id, frozenset()) & rules.privileged_permissions) - had
        if extra:
            gained.update(extra)
            privileged_profiles.add(profile_id)
    if not gained:
        return None
    # Undo what was escalated, nothing else: other changes since the approval stay.
    target = user.security_profile_ids - privileged_profiles
    reasons: tuple[str, ...] = (
        ("removes the privileged profiles gained beyond the approved baseline; other changes are kept",)
        if baseline
        else ("user not in the baseline: removes the privileged profiles",)
    )
    if not target and approved:
        # Connect needs one profile: the approved ones (already judged) rather than a guess.
        target = approved
        reasons += ("no profile would remain: restores the user's approved profiles",)
    elif not target:
        fallback = next((i for i, n in names.items() if n == rules.fallback_profile), None)
        if fallback is None:
            raise NoFallbackProfileError(f"fallback security profile {rules.fallback_profile!r} not found")
        target = frozenset({fallback})
        reasons += (f"no profile would remain: assigns the fallback profile {rules.fallback_profile}",)
    if target == user.security_profile_ids:
        return None
    return Plan(
        "UpdateUserSecurityProfiles", target, tuple(sorted(gained)), "approved" if baseline else "none", reasons
    )


def plan_profile(
    current: frozenset[str],
    baseline: ProfileBaseline | None,
    rules: Rules,
    access: ProfileAccess | None = None,
) -> Plan | None:
    """Strip the privileged permissions gained beyond the approved set, keeping every other
    permission as it is now (the update replaces the whole set, so the rest is sent as is); with
    the profile's `access` now and an approved one, put back what of it loosened as well."""
    approved = baseline.permissions if baseline else frozenset()
    gained = tuple(sorted((current & rules.privileged_permissions) - approved))
    restrictions: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()
    target_access = None
    fields: dict[str, Any] = {}
    if access is not None and baseline is not None and baseline.access is not None:
        restrictions, applications = loosened(access, baseline.access)
        if restrictions or applications:
            target_access = restored(access, baseline.access)
            fields = update_fields(access, target_access)
    if not gained and target_access is None:
        return None
    target = current - frozenset(gained)
    reasons: tuple[str, ...] = ()
    if gained:
        reasons = (
            ("removes the privileged permissions gained beyond the approved baseline; other changes are kept",)
            if baseline
            else ("profile not in the baseline: strips its privileged permissions",)
        )
    if restrictions:
        reasons += ("puts back the access-control restrictions loosened since the approval; narrowings are kept",)
    if applications:
        reasons += ("removes the applications and application permissions gained beyond the approved baseline",)
    held = sorted(current & rules.privileged_permissions)
    critical = bool(restrictions) and bool(held)
    if critical:
        reasons += (
            f"CRITICAL: the profile holds {', '.join(held)}: without its restriction that reaches the whole "
            "instance, not the scope approved",
        )
    return Plan(
        "UpdateSecurityProfile",
        target,
        gained + restrictions + applications,
        "approved" if baseline else "none",
        reasons,
        target_access,
        critical,
        fields,
    )


@dataclass
class _Subject:
    """The user or profile an event is about, as it is now."""

    kind: str  # connect_user | security_profile
    id: str
    name: str
    arn: str
    before: frozenset[str]  # profile IDs or permissions now
    plan: Plan | None
    names: dict[str, str]  # profile ID → name, for display
    access: ProfileAccess | None = None  # a profile's restrictions and applications now
    unchecked: bool = False  # a baselined profile whose baseline item lacks them

    def to_dict(self) -> dict[str, Any]:
        """What the action journal keeps: enough to report the rollback once `before` is gone."""
        plan = self.plan
        shown = self.before | (plan.target if plan else frozenset())
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "arn": self.arn,
            "before": sorted(self.before),
            "names": {k: v for k, v in self.names.items() if k in shown},
            "access": self.access.to_api() if self.access else None,
            "plan": None
            if plan is None
            else {
                "operation": plan.operation,
                "target": sorted(plan.target),
                "gained": list(plan.gained),
                "baseline": plan.baseline,
                "reasons": list(plan.reasons),
                "access": plan.access.to_api() if plan.access else None,
                "critical": plan.critical,
                "fields": plan.fields,
            },
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> _Subject:
        raw = body.get("plan")
        plan = None
        if raw:
            access = ProfileAccess.from_stored(raw["access"]) if raw.get("access") else None
            plan = Plan(
                raw["operation"],
                frozenset(raw["target"]),
                tuple(raw["gained"]),
                raw["baseline"],
                tuple(raw["reasons"]),
                access,
                bool(raw.get("critical")),
                dict(raw.get("fields") or {}),
            )
        before = ProfileAccess.from_stored(body["access"]) if body.get("access") else None
        return cls(
            body["kind"],
            body["id"],
            body["name"],
            body["arn"],
            frozenset(body["before"]),
            plan,
            dict(body["names"]),
            before,
        )


@dataclass
class _Decision:
    """What an event calls for, from the state re-read now. Nothing is written in deciding:
    the last attempt's give_up decides again to tell whether a rollback was due."""

    actor: Actor
    outcome: Outcome
    report: Callable[[], Outcome] | None = None  # alert only: no rollback is due
    gateway: ConnectGateway | None = None
    subject: _Subject | None = None
    connect: ConnectRef | None = None


class NoFallbackProfileError(ConnectResourceNotFoundError):
    """A user would be left without a profile and the fallback profile does not exist."""


class ConnectControl:
    """What the Connect controls (event-driven rollback, scheduled sweep) share: configuration,
    the baseline, the audit log, the alert topic and a client per instance account and region."""

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        publisher: SnsPublisher,
        baselines: BaselineStore,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.publisher = publisher
        self.baselines = baselines
        self.audit = audit
        self.journal = ActionJournal(audit)
        self.rules = Rules.of(settings)

    @classmethod
    def from_settings(cls, settings: Settings, clients: AwsClients) -> Self:
        settings.require("baseline_table_name", "audit_table_name")
        assert settings.baseline_table_name and settings.audit_table_name
        return cls(
            settings,
            clients,
            SnsPublisher(clients.sns, settings.alert_topic_arn),
            BaselineStore(clients.dynamodb, settings.baseline_table_name),
            AuditLog(clients.dynamodb, settings.audit_table_name),
        )

    def gateway(self, instance: InstanceRef) -> ConnectGateway:
        def client(purpose: MemberPurpose) -> Any:
            return self.clients.for_account("connect", instance.account_id, instance.region, self.settings, purpose)

        # Reads through the read role; the write role (enforce deployments only) on the first write.
        return ConnectGateway(client("read"), instance, writer=lambda: client("rollback"))

    def configured(self, instance: InstanceRef) -> bool:
        """Only the instances in ConnectInstanceArns are acted on (compared as parsed ARNs)."""
        own, region = self.settings.own_account_id, self.settings.region
        return instance.arn in {InstanceRef.parse(a, own, region).arn for a in self.settings.connect_instance_arns}


class ProfileRollbackResponder(ConnectControl):
    name = NAME
    # The last event's mode, by the identity of the event and of the settings it was decided with.
    _last_mode: tuple[CloudTrailEvent, Settings, ModeDecision] | None = None

    @staticmethod
    def _profiles(
        gateway: ConnectGateway, ids: frozenset[str], approved: dict[str, ProfileBaseline]
    ) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
        """Names and permissions of profiles: the baseline's, then the API for unknown ones."""
        names = {p.id: p.name for p in approved.values()}
        permissions = {p.id: p.permissions for p in approved.values()}
        unknown = [i for i in ids if i not in approved]
        if unknown:
            names.update(gateway.profile_names())
            for profile_id in unknown:
                permissions[profile_id] = gateway.permissions(profile_id)
        return names, permissions

    def _subject(
        self,
        gateway: ConnectGateway,
        kind: str,
        subject_id: str,
        approved: InstanceBaseline,
        described: dict[str, ConnectUser],
    ) -> _Subject:
        """The user or profile as it is now, judged against the instance's baseline (read once
        per event); `described`: the users this event read already (DescribeUser once per user)."""
        instance = gateway.instance
        if kind == "connect_user":
            user = described.get(subject_id) or gateway.user(subject_id)
            baseline = approved.users.get(user.id)
            ids = user.security_profile_ids | (baseline.security_profile_ids if baseline else frozenset())
            names, permissions = self._profiles(gateway, ids, approved.profiles)
            plan = plan_user(user, baseline, names, permissions, self.rules)
            return _Subject(
                kind, user.id, user.username, f"{instance.arn}/agent/{user.id}", user.security_profile_ids, plan, names
            )
        current = gateway.permissions(subject_id)
        view = gateway.describe_profile(subject_id)  # its restrictions (and its name)
        access = gateway.access(subject_id, view)
        baseline_profile = approved.profiles.get(subject_id)
        name = baseline_profile.name if baseline_profile else view.get("SecurityProfileName", "")
        plan = plan_profile(current, baseline_profile, self.rules, access)
        arn = f"{instance.arn}/security-profile/{subject_id}"
        unchecked = baseline_profile is not None and baseline_profile.access is None
        return _Subject(kind, subject_id, name, arn, current, plan, {}, access, unchecked)

    # -- act ------------------------------------------------------------------------------
    def _execute(self, gateway: ConnectGateway, subject: _Subject) -> str:
        """Apply the plan; 'taken', or 'failed: reason' when Connect refuses for good."""
        assert subject.plan is not None
        try:
            plan = subject.plan
            if subject.kind == "connect_user":
                gateway.set_user_profiles(subject.id, plan.target)
            elif plan.fields:
                gateway.restore_profile(subject.id, plan.target, plan.fields)
            else:
                gateway.set_permissions(subject.id, plan.target)
        except (ConnectResourceNotFoundError, MemberAccessError) as error:
            return f"failed: {error}"
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("InvalidParameterException", "InvalidRequestException", "AccessDeniedException"):
                return f"failed: {code}: {error.response['Error']['Message']}"
            raise  # throttling, 5xx: SQS retries; the last attempt alerts that nothing happened
        return "taken"

    def _approved(
        self,
        event: CloudTrailEvent,
        actor: Actor,
        outcome: Outcome,
        gateway: ConnectGateway,
        subject: _Subject,
        connect: ConnectRef,
        approver: str,
        allowlisted: bool,
    ) -> Outcome:
        """A baseline approver's change becomes the known-good state: audited and alerted (HIGH
        when it approves a privileged gain, INFO otherwise)."""
        instance, by = gateway.instance.arn, actor.arn or approver
        if subject.kind == "connect_user":
            # Only the profiles are approved here: the user's approved identity, group and tags stay.
            known = self.baselines.user(instance, subject.id) or UserBaseline(subject.id, subject.name, frozenset())
            self.baselines.approve_user(
                instance, replace(known, username=subject.name, security_profile_ids=subject.before), by
            )
        else:
            approved = ProfileBaseline(subject.id, subject.name, subject.before, subject.access)
            self.baselines.approve_profile(instance, approved, by)
        gained = subject.plan.gained if subject.plan else ()
        reasons = (
            f"actor is a baseline approver ({approver}): the change is now the approved baseline",
            *((f"approved privileged gain: {', '.join(gained)}",) if gained else ()),
        )
        severity = Severity.HIGH if gained else Severity.INFO
        finding = self._finding(
            event, actor, severity, subject, connect, (), reasons, allowlisted=allowlisted, verdict="approved"
        )
        approval = self._audit_entry("ApproveBaseline", "taken", actor, subject, f"baseline approved by {by}", event)
        self.audit.write(approval)
        return self._publish(finding, outcome, "alerted")

    # -- the event ------------------------------------------------------------------------
    @cached_property
    def sub_controls(self) -> tuple[ConnectUserGuard | ProfileDeletion, ...]:
        """Connect changes beside profile and user-profile updates, each with its own events: one line each."""
        return (ConnectUserGuard(self), ProfileDeletion(self))

    def _sub_control(self, event: CloudTrailEvent) -> ConnectUserGuard | ProfileDeletion | None:
        return next((sub for sub in self.sub_controls if sub.handles(event)), None)

    def handle(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        if (sub := self._sub_control(event)) is not None:
            return sub.handle(event)
        if record.event_name not in USER_EVENTS and record.event_name not in PROFILE_EVENTS:
            raise PoisonEventError(f"unsupported event {record.event_name!r} for {NAME}")
        decision = self._decide(event)
        if decision.report is not None:
            return decision.report()
        subject, outcome = decision.subject, decision.outcome
        if subject is None:
            return outcome  # never acted on: the reason says why
        if subject.plan is None:
            recovered = self._recovered(event, decision)
            if recovered is not None:
                return recovered
            if subject.unchecked and decision.gateway is not None:  # fail closed: alerted, nothing restored
                instance = decision.gateway.instance
                return self._report_only(
                    event, decision.actor, outcome, instance, subject.kind, subject.id, UNCHECKED_ACCESS
                )
            outcome.reason = "no privileged gain over the approved baseline (or already restored)"
            return outcome
        return self._roll_back(event, decision)

    def _decide(self, event: CloudTrailEvent) -> _Decision:
        """What the event calls for, from the state re-read now (reads only)."""
        self.settings.require("baseline_table_name", "audit_table_name")
        record = event.detail
        actor = Actor.from_record(record)
        outcome = Outcome(NAME, record.event_id, record.event_name, "ignored")
        decision = _Decision(actor, outcome)
        # Exempt only the two updates a rollback makes: anything else by a suite role is judged
        # (and rolled back) like anyone's, since the suite never creates users or profiles.
        if record.event_name in SUITE_WRITES and is_suite_principal(actor, self.settings):
            outcome.reason = "change made by connect-guard itself"
            return decision
        # Replication arrives as the service itself; the same invokedBy on anyone else exempts nothing.
        if actor.type == "AWSService" and exempt_service(actor, (CONNECT_REPLICATION,)):
            outcome.reason = "Global Resiliency replication of a change already assessed in its source region"
            return decision

        kind, subject_id, instance = self._target(event)

        def report(problem: str | None = None, severity: Severity = Severity.HIGH, claims: bool = False) -> _Decision:
            shown = self._claims(record) if claims else ()
            decision.report = lambda: self._report_only(
                event, actor, outcome, instance, kind, subject_id, problem, severity, shown
            )
            return decision

        if record.denied or instance is None or subject_id is None:
            return report()
        # Act only on complete, in-scope state: without it "not in the baseline" can't be told
        # from "baseline lost", and a rollback would strip what it should keep.
        if not self.configured(instance):
            return report("the instance is not in ConnectInstanceArns")
        # One Query reads the whole baseline: its completeness, the user or profile, and the
        # names and permissions of the approved profiles.
        approved = self.baselines.instance(instance.arn)
        problem = incomplete(approved.meta, len(approved.profiles), len(approved.users))
        if problem:
            return report(problem, Severity.CRITICAL)

        what = "user" if kind == "connect_user" else "security profile"
        try:
            gateway = self.gateway(instance)
            described: dict[str, ConnectUser] = {}
            actor_user = self._admin_website_user(gateway, actor, approved, described)
            subject = self._subject(gateway, kind, subject_id, approved, described)
        except NoFallbackProfileError as error:
            return report(
                f"the {what} gained privileged profiles and would be left with none, but {error}: "
                "the escalation is NOT rolled back",
                Severity.CRITICAL,
                claims=True,
            )
        except ConnectResourceNotFoundError as error:
            # Deleted since, or never there (a forged or mistyped event): either way, say what
            # the event claimed; nothing can be checked or restored.
            return report(
                f"the Connect {what} {subject_id} (instance {instance.instance_id}) named by the event could "
                f"not be read ({error}): whether it gained a privilege cannot be checked",
                claims=True,
            )
        except MemberAccessError as error:  # fail closed: alert, don't act; the suite is blind there
            return report(f"cannot reach the instance (member account unreachable): {error}", Severity.CRITICAL)
        connect = ConnectRef(instance.instance_id, instance.arn)
        if actor_user:
            connect = ConnectRef(
                instance.instance_id, instance.arn, actor_user_id=actor_user.id, actor_username=actor_user.username
            )
        connect = self._with_subject(connect, subject)
        decision.gateway, decision.subject, decision.connect = gateway, subject, connect

        allowlisted = allowlist_match(actor, self.settings.allowlisted_principals)
        approver = allowlist_match(actor, self.settings.baseline_approvers)
        if approver:
            decision.report = lambda: self._approved(
                event, actor, outcome, gateway, subject, connect, approver, allowlisted is not None
            )
        elif allowlisted:
            decision.report = lambda: self._allowlisted(event, actor, outcome, subject, connect, allowlisted)
        return decision

    def _allowlisted(
        self, event: CloudTrailEvent, actor: Actor, outcome: Outcome, subject: _Subject, connect: ConnectRef, match: str
    ) -> Outcome:
        """Not acted on, and not approved either: the baseline changes only by an approver or
        approve-baseline, so an escalation stays visible to the next sweep and rollback."""
        notes = [f"actor is allowlisted ({match}): not acted on"]
        if subject.plan:
            would = self.rules.severity_of(subject.plan)
            notes.append(f"would otherwise be {would}: gained {', '.join(subject.plan.gained)}")
        notes.append("not approved into the baseline (BaselineApprovers or connect-guard approve-baseline)")
        finding = self._finding(
            event, actor, Severity.INFO, subject, connect, (), tuple(notes), allowlisted=True, verdict="allowlisted"
        )
        return self._publish(finding, outcome, "alerted")

    def _roll_back(self, event: CloudTrailEvent, decision: _Decision) -> Outcome:
        """Journal, act, audit, report (enforce); report the exact call (detect)."""
        gateway, subject, connect, actor = decision.gateway, decision.subject, decision.connect, decision.actor
        assert gateway is not None and subject is not None and subject.plan is not None and connect is not None
        plan, record = subject.plan, event.detail
        reasons: tuple[str, ...] = (f"gained {', '.join(plan.gained)} not in the approved baseline", *plan.reasons)
        if subject.unchecked:
            reasons += (UNCHECKED_ACCESS,)
        status, pending = "proposed", None
        mode = self._mode(event)
        if mode.enforces:
            # Journaled before the call: if this attempt dies after it, the retry reports it.
            pending = self.journal.begin(
                finding_id_of(NAME, record.event_id),
                responder=NAME,
                event_id=record.event_id,
                records=[self._audit_entry(plan.operation, "taken", actor, subject, reasons[0], event)],
                payload={"subject": subject.to_dict(), "connect": asdict(connect)},
            )
            status = self._execute(gateway, subject)
        action = Action("connect", plan.operation, self._parameters(gateway.instance, subject), status.split(":")[0])
        if status.startswith("failed"):
            reasons = (f"ROLLBACK DID NOT HAPPEN: {status.removeprefix('failed: ')}", *reasons)
        elif status == "proposed":
            reasons = (
                *reasons,
                "detect mode: no change made; the action shows the exact call enforce mode makes "
                f"(detect: {mode.reason})",
            )
        finding = self._finding(event, actor, self.rules.severity_of(plan), subject, connect, (action,), reasons)
        if pending is not None:
            audit = self._audit_entry(plan.operation, action.status, actor, subject, reasons[0], event)
            self.journal.complete(pending, [audit], action.status)
        return self._publish(finding, decision.outcome, "rolled_back" if status == "taken" else "alerted")

    def _recovered(self, event: CloudTrailEvent, decision: _Decision, final: bool = False) -> Outcome | None:
        """The rollback an earlier attempt of this event journaled, found made: reported now.

        That attempt stopped (timeout, out of memory, a failed write or publish) after the
        rollback and before telling the SOC; this attempt re-read the state and found nothing
        left to restore. Without the journal it would ack in silence. On the `final` attempt an
        audit write that still fails does not stop the finding (the journal keeps the record).
        """
        if not self._mode(event).enforces or decision.subject is None or decision.gateway is None:
            return None
        record = event.detail
        pending = self.journal.get(finding_id_of(NAME, record.event_id))
        if pending is None or pending.responder != NAME or "subject" not in pending.payload:
            return None
        subject = _Subject.from_dict(pending.payload["subject"])
        if subject.plan is None:
            return None
        plan, now = subject.plan, decision.subject.before
        note = (
            "completed by an earlier attempt of this event: it recorded the rollback, made it and stopped "
            "before reporting it; re-read now, the state shows it in place"
        )
        if now != plan.target:
            note += f" (changed since: now {', '.join(self._display(subject, now)) or '(none)'})"
        reasons = (f"gained {', '.join(plan.gained)} not in the approved baseline", *plan.reasons, note)
        if not pending.audited:
            audit = self._audit_entry(plan.operation, "taken", decision.actor, subject, f"{reasons[0]}; {note}", event)
            try:
                self.journal.complete(pending, [audit], "taken")
            except (ClientError, BotoCoreError) as error:
                if not final:
                    raise  # retried: the audit record is written before the finding
                logger.warning("audit record not written; the journal keeps it", extra={"error": str(error)})
        action = Action("connect", plan.operation, self._parameters(decision.gateway.instance, subject), "taken")
        connect = ConnectRef(**pending.payload["connect"])
        severity = self.rules.severity_of(plan)
        finding = self._finding(event, decision.actor, severity, subject, connect, (action,), reasons)
        logger.warning("rollback made by an earlier attempt, reported now", extra={"finding_id": finding.finding_id})
        return self._publish(finding, decision.outcome, "rolled_back")

    def give_up(self, event: CloudTrailEvent, error: Exception) -> None:
        """The last delivery attempt failed: decide again from the state as it is now.

        A rollback an earlier attempt made is reported as made (its finding, not a FAILED one);
        a rollback that was due and is not in place is a CRITICAL `Rollback FAILED`; an event
        that called for no rollback alerts nothing here (the DLQ and its alarm keep it).
        """
        record = event.detail
        if (sub := self._sub_control(event)) is not None:
            sub.give_up(event, error)
            return
        if record.event_name not in USER_EVENTS and record.event_name not in PROFILE_EVENTS:
            return  # not an event this responder acts on: no rollback was ever due
        try:
            decision = reread(lambda: self._decide(event))
        except ParamValidationError:
            return  # the event names nothing Connect could hold: no rollback could be due
        except Exception as failure:  # the state can't be read either: the escalation may stand
            self._publish_failed(
                event,
                error,
                f"the state could not be re-read ({type(failure).__name__}: {failure}): the escalation may "
                "still be in place, or an earlier attempt may have rolled it back",
                unconfirmed=True,
            )
            return
        subject = decision.subject
        if decision.report is not None or subject is None:
            logger.info("last attempt failed; no rollback was due: no FAILED alert")
            return
        if subject.plan is None:
            if self._recovered(event, decision, final=True) is None:
                logger.info("last attempt failed; nothing left to roll back: no FAILED alert")
            return
        what = "user" if subject.kind == "connect_user" else "security profile"
        self._publish_failed(
            event,
            error,
            f"re-read now, the escalation is still in place: {what} {subject.name} has "
            f"{', '.join(subject.plan.gained)} beyond the approved baseline",
            decision,
        )

    def _publish_failed(
        self,
        event: CloudTrailEvent,
        error: Exception,
        state: str,
        decision: _Decision | None = None,
        *,
        unconfirmed: bool = False,
    ) -> None:
        """The last attempt's CRITICAL alert: FAILED (re-read, still in place), or UNCONFIRMED (the
        state could not be re-read: the rollback may or may not have been made)."""
        record = event.detail
        actor = Actor.from_record(record)
        kind, subject_id, instance = self._target(event)
        # Detect mode rolls nothing back: what failed is the alert, not a rollback.
        enforces = self._mode(event).enforces
        outcome = "the escalation is NOT rolled back" if enforces else "the event was NOT evaluated (detect mode)"
        verdict, first = "FAILED", f"ROLLBACK DID NOT HAPPEN: {type(error).__name__}: {error}"
        if unconfirmed and enforces:
            verdict, outcome = "UNCONFIRMED", "whether the escalation is rolled back is unknown"
            first = f"ROLLBACK NOT CONFIRMED: {type(error).__name__}: {error}"
        subject = decision.subject if decision else None
        target = Target(kind, subject.name, subject.arn) if subject else Target(kind, subject_id)
        finding = self._event_finding(
            event,
            actor,
            Severity.CRITICAL,
            f"Rollback {verdict} for {record.event_name} in {record.recipient_account_id}: {outcome}",
            f"connect-guard could not complete the rollback after repeated attempts "
            f"({type(error).__name__}: {error}). The event goes to the DLQ.",
            allowlisted=False,
            reasons=(first, state, "compare with the approved baseline and restore it by hand (runbook)"),
            target=target,
            connect=(decision.connect if decision and decision.connect else None)
            or (ConnectRef(instance.instance_id, instance.arn) if instance else None),
        )
        self.publisher.publish(finding)

    # -- helpers ----------------------------------------------------------------------------
    def _mode(self, event: CloudTrailEvent) -> ModeDecision:
        """The mode for the account a rollback would write to: the instance's (decided once per
        event: the journal, the audit records and the finding all ask)."""
        last = self._last_mode
        if last is not None and last[0] is event and last[1] is self.settings:
            return last[2]
        try:
            _, _, instance = self._target(event)
        except (KeyError, IndexError):  # an event this responder does not act on: no account to write to
            return self.settings.mode_for("profile_rollback", None)
        account = instance.account_id if instance else (event.detail.recipient_account_id or event.account)
        mode = self.settings.mode_for("profile_rollback", account)
        self._last_mode = (event, self.settings, mode)
        return mode

    def _target(self, event: CloudTrailEvent) -> tuple[str, str | None, InstanceRef | None]:
        record = event.detail
        if record.event_name in USER_EVENTS:
            kind, key = "connect_user", USER_EVENTS[record.event_name]
        else:
            kind, key = "security_profile", PROFILE_EVENTS[record.event_name]
        subject_id = record.param(key) or (record.response_elements or {}).get(key)
        # An ARN where an ID was expected: keep the ID. "***" is a redaction, not an ID.
        subject_id = subject_id.rsplit("/", 1)[-1] if isinstance(subject_id, str) and subject_id != "***" else None
        raw_instance = record.param("InstanceId")
        instance = None
        if isinstance(raw_instance, str) and raw_instance not in ("", "***"):
            instance = InstanceRef.parse(raw_instance, record.recipient_account_id or event.account, record.aws_region)
        return kind, subject_id, instance

    def _admin_website_user(
        self, gateway: ConnectGateway, actor: Actor, approved: InstanceBaseline, described: dict[str, ConnectUser]
    ) -> ConnectUser | None:
        """Admin-website changes carry the Connect user's ID as the service-linked role's session name.

        Only the name is shown: an approved user's comes from the baseline already read (no
        DescribeUser); any other is described, and kept in `described` for the subject."""
        if not (actor.session_issuer_arn and CONNECT_SERVICE_ROLE in actor.session_issuer_arn and actor.session_name):
            return None
        known = approved.users.get(actor.session_name)
        if known is not None and known.username:
            return ConnectUser(known.id, known.username, frozenset())  # for its name only: profiles unread
        try:
            user = described[actor.session_name] = gateway.user(actor.session_name)
            return user
        except (ConnectResourceNotFoundError, ClientError):
            return ConnectUser(actor.session_name, "", frozenset())

    @staticmethod
    def _with_subject(connect: ConnectRef, subject: _Subject) -> ConnectRef:
        fields: dict[str, Any] = dict(connect.__dict__)
        if subject.kind == "connect_user":
            fields.update(user_id=subject.id, username=subject.name)
        else:
            fields.update(security_profile_id=subject.id, security_profile_name=subject.name)
        return ConnectRef(**fields)

    @staticmethod
    def _parameters(instance: InstanceRef, subject: _Subject) -> dict[str, Any]:
        assert subject.plan is not None
        if subject.kind == "connect_user":
            return {
                "InstanceId": instance.instance_id,
                "UserId": subject.id,
                "SecurityProfileIds": sorted(subject.plan.target),
            }
        return {
            "InstanceId": instance.instance_id,
            "SecurityProfileId": subject.id,
            "Permissions": sorted(subject.plan.target),
            **subject.plan.fields,
        }

    def _display(self, subject: _Subject, values: frozenset[str]) -> tuple[str, ...]:
        return tuple(sorted(subject.names.get(v, v) for v in values))

    def _event_finding(
        self, event: CloudTrailEvent, actor: Actor, severity: Severity, title: str, summary: str, **details: Any
    ) -> Finding:
        """A finding about one CloudTrail event; `details` adds the Connect-specific parts."""
        mode = self._mode(event)
        return Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=title,
            summary=summary,
            event=EventRef.of(event),
            actor=actor,
            attempt=Attempt.of(event.detail),
            runbook_url=self.settings.runbook_url(NAME),
            environment=self.settings.environment,
            mode=mode.mode,
            mode_reason=mode.reason,
            **details,
        )

    def _finding(
        self,
        event: CloudTrailEvent,
        actor: Actor,
        severity: Severity,
        subject: _Subject,
        connect: ConnectRef,
        actions: tuple[Action, ...],
        reasons: tuple[str, ...],
        allowlisted: bool = False,
        verdict: str | None = None,  # approved | allowlisted: not acted on
    ) -> Finding:
        record = event.detail
        plan = subject.plan
        what = "user" if subject.kind == "connect_user" else "security profile"
        by = (connect.actor_username and f"{connect.actor_username} (admin website)") or actor.display
        if verdict == "approved":
            title = f"Baseline approved by {by}: Connect {what} {subject.name} in {record.recipient_account_id}"
        elif verdict == "allowlisted":
            title = f"Allowlisted change to Connect {what} {subject.name} in {record.recipient_account_id}"
        elif actions and actions[0].status == "taken":
            title = f"Rolled back: Connect {what} {subject.name} gained {', '.join(plan.gained) if plan else '?'}"
        else:
            title = f"Escalation: Connect {what} {subject.name} gained {', '.join(plan.gained) if plan else '?'}"
        change = None
        if plan and verdict is None:  # an approved or allowlisted change is kept, not restored
            before, after = self._display(subject, subject.before), self._display(subject, plan.target)
            if plan.access is not None and subject.access is not None:  # restrictions and applications too
                before += tuple(sorted(subject.access.markers()))
                after += tuple(sorted(plan.access.markers()))
            change = Change(before, after, plan.gained, plan.baseline)
        return self._event_finding(
            event,
            actor,
            severity,
            title,
            f"{by} ran {record.event_name} on Connect {what} {subject.name} in instance {connect.instance_id} "
            f"(account {record.recipient_account_id}, {record.aws_region}). Severity {severity}.",
            allowlisted=allowlisted,
            reasons=reasons,
            target=Target(subject.kind, subject.name, subject.arn),
            connect=connect,
            change=change,
            actions=actions,
        )

    def _report_only(
        self,
        event: CloudTrailEvent,
        actor: Actor,
        outcome: Outcome,
        instance: InstanceRef | None,
        kind: str,
        subject_id: str | None,
        problem: str | None = None,
        severity: Severity = Severity.HIGH,
        claims: tuple[str, ...] = (),
    ) -> Outcome:
        """Denied attempts, instances out of scope, unreachable or without a complete baseline,
        users or profiles that can't be read, events too redacted to act on: alert, never act."""
        record = event.detail
        if problem:
            reasons: tuple[str, ...] = (f"{problem}; no rollback attempted, review by hand", *claims)
            title = f"Connect change not assessed: {record.event_name} by {actor.display}"
        elif record.denied:
            severity = Severity.MEDIUM
            reasons = (f"the call was denied ({record.error_code}): an attempt, not a change",)
            title = f"Denied attempt: {record.event_name} by {actor.display} in {record.recipient_account_id}"
        else:
            severity = Severity.HIGH
            reasons = ("the event does not say which instance, user or profile changed; review by hand",)
            title = f"Unidentified Connect change: {record.event_name} by {actor.display}"
        finding = self._event_finding(
            event,
            actor,
            severity,
            title,
            f"{actor.display} called {record.event_name} in account {record.recipient_account_id} "
            f"({record.aws_region}).",
            allowlisted=allowlist_match(actor, self.settings.allowlisted_principals) is not None,
            reasons=reasons,
            target=Target(kind, subject_id) if subject_id else None,
            connect=ConnectRef(instance.instance_id, instance.arn) if instance else None,
        )
        return self._publish(finding, outcome, "alerted")

    def _audit_entry(
        self, action: str, status: str, actor: Actor, subject: _Subject, reason: str, event: CloudTrailEvent
    ) -> dict[str, Any]:
        plan = subject.plan
        approval = action == "ApproveBaseline"
        before, after = subject.before, plan.target if plan and not approval else subject.before
        if plan and plan.access is not None and subject.access is not None:  # the restrictions restored too
            before = before | subject.access.markers()
            after = after | (subject.access if approval else plan.access).markers()
        return self.audit.entry(
            responder=NAME,
            action=action,
            status=status,
            actor=actor.arn,
            target=subject.arn,
            reason=reason,
            before=sorted(before),
            after=sorted(after),
            event_id=event.detail.event_id,
            finding_id=finding_id_of(NAME, event.detail.event_id),
            mode=self._mode(event).mode,
        )

    @staticmethod
    def _claims(record: CloudTrailRecord, limit: int = 20) -> tuple[str, ...]:
        """What the event says was set (bounded), for a finding that could not check it."""
        claims = []
        for key in ("Username", "SecurityProfileName", "SecurityProfileIds", "Permissions", *ACCESS_CLAIMS):
            value = record.param(key)
            if value is None:
                continue
            if value == "***":
                claims.append(f"the event claims {key}: (redacted in CloudTrail)")
                continue
            values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
            shown = ", ".join(v[:128] for v in values[:limit])
            more = f" … and {len(values) - limit} more" if len(values) > limit else ""
            claims.append(f"the event claims {key}: {shown or '(none)'}{more}")
        return tuple(claims)

    def _publish(self, finding: Finding, outcome: Outcome, result: str) -> Outcome:
        return publish_outcome(self.publisher, finding, outcome, result)


def build(settings: Settings, clients: AwsClients) -> ProfileRollbackResponder:
    return ProfileRollbackResponder.from_settings(settings, clients)
