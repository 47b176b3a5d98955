"""Baseline snapshot and drift sweep: the safety net for changes CloudTrail did not deliver.

For each configured instance: snapshot profiles (permissions, access-control restrictions,
applications) and users (profile assignments) within Connect's quotas, compare with the approved
baseline, report drift, and in enforce mode roll back privileged drift (and loosened restrictions
and gained applications) exactly as the event-driven responder would.

The first sweep of an instance never baselined records its state as the baseline (the first
deployment, said at INFO). A baseline that was recorded and is now missing or partial is never
re-recorded: the sweep alerts CRITICAL and does nothing until `connect-guard approve-baseline`.

Each run then lists the instances of the configured accounts and regions and reports those not
configured (connect_guard.discovery).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connect_guard.baseline import InstanceBaseline, ProfileBaseline, UserBaseline, incomplete
from connect_guard.clients import AwsClients
from connect_guard.connect import ConnectGateway, ConnectUser, InstanceRef
from connect_guard.discovery import DiscoveryResult, DiscoveryState, InstanceDiscovery
from connect_guard.findings import Action, Attempt, ConnectRef, EventRef, Finding, finding_id_of
from connect_guard.observability import logger
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from connect_guard.responders.connect_user_guard import IDENTITY_FIELDS
from connect_guard.responders.profile_deletion import deleted_severity
from connect_guard.responders.profile_rollback import (
    UNCHECKED_ACCESS,
    ConnectControl,
    Plan,
    Rules,
    plan_profile,
    plan_user,
)
from connect_guard.settings import Settings

NAME = "baseline_sweep"
KIND = "connect.baseline_drift"


def snapshot(gateway: ConnectGateway, rules: Rules | None = None) -> InstanceBaseline:
    """The instance as it is now: ListSecurityProfiles, three calls per profile, SearchUsers by 100
    (names, hierarchy group, tags), and with `rules` a DescribeUser per privileged user for the
    emails SearchUsers does not return (one call per user for all users would not fit the quota)."""
    current = InstanceBaseline(gateway.instance.arn)
    for profile_id, name in gateway.profile_names().items():
        current.profiles[profile_id] = ProfileBaseline(
            profile_id, name, gateway.permissions(profile_id), gateway.access(profile_id)
        )
    privileged = privileged_profiles(current, rules) if rules else frozenset()
    for user in gateway.users():
        if user.security_profile_ids & privileged:
            user = gateway.user(user.id)
            identity = tuple((f, dict(user.identity).get(f, "")) for f in IDENTITY_FIELDS)
        else:
            identity = tuple((k, v) for k, v in user.identity if k in IDENTITY_FIELDS)
        current.users[user.id] = UserBaseline(
            user.id, user.username, user.security_profile_ids, identity, user.hierarchy_group_id, user.tags
        )
    return current


def privileged_profiles(baseline: InstanceBaseline, rules: Rules) -> frozenset[str]:
    """The profiles privileged by name or by a privileged permission they carry (pure)."""
    return frozenset(
        p.id
        for p in baseline.profiles.values()
        if p.name.casefold() in rules.privileged_profiles or p.permissions & rules.privileged_permissions
    )


def user_attributes(user: UserBaseline, known: UserBaseline) -> tuple[frozenset[str], frozenset[str]]:
    """Identity fields, hierarchy group and tags as `field=value` strings, now and approved,
    compared only where both sides recorded them (pure)."""
    now: set[str] = set()
    before: set[str] = set()
    if user.identity is not None and known.identity is not None:
        approved = dict(known.identity)
        for field_name, value in user.identity:
            if field_name in approved:
                now.add(f"{field_name}={value}")
                before.add(f"{field_name}={approved[field_name]}")
    if user.hierarchy_group_id is not None and known.hierarchy_group_id is not None:
        now.add(f"hierarchy={user.hierarchy_group_id or '(none)'}")
        before.add(f"hierarchy={known.hierarchy_group_id or '(none)'}")
    if user.tags is not None and known.tags is not None:
        now |= {f"tag:{k}={v}" for k, v in user.tags}
        before |= {f"tag:{k}={v}" for k, v in known.tags}
    return frozenset(now), frozenset(before)


@dataclass(frozen=True)
class Drift:
    kind: str  # security_profile | connect_user
    id: str
    name: str
    added: frozenset[str]
    removed: frozenset[str]
    new: bool  # not in the baseline at all
    unchecked: bool = False  # a profile whose baseline item predates its access-control fields
    deleted: bool = False  # an approved profile that is gone (a DeleteSecurityProfile CloudTrail missed)


def diff(current: InstanceBaseline, approved: InstanceBaseline) -> list[Drift]:
    """Every difference between now and the approved baseline (pure)."""
    drift: list[Drift] = []
    for profile in current.profiles.values():
        known = approved.profiles.get(profile.id)
        # Restrictions and applications drift too, shown next to the permissions (tag:key=value,
        # tag-restricted:User, application:namespace:permission, ...). An approved item without
        # them can't be compared on them: its drift says so, whatever the permissions do.
        unchecked = known is not None and known.access is None
        now = _profile_state(profile, with_access=not unchecked)
        before = _profile_state(known, with_access=not unchecked) if known else frozenset()
        if known is None or now != before or unchecked:
            added, removed = now - before, before - now
            drift.append(Drift("security_profile", profile.id, profile.name, added, removed, known is None, unchecked))
    for known in approved.profiles.values():
        if known.id not in current.profiles:
            gone = _profile_state(known)
            drift.append(Drift("security_profile", known.id, known.name, frozenset(), gone, False, deleted=True))
    for user in current.users.values():
        known_user = approved.users.get(user.id)
        ids = known_user.security_profile_ids if known_user else frozenset()
        # Identity, hierarchy group and tags drift too (connect_user_guard's takeover paths).
        now, before = user_attributes(user, known_user) if known_user else (frozenset(), frozenset())
        if known_user is None or user.security_profile_ids != ids or now != before:
            drift.append(
                Drift(
                    "connect_user",
                    user.id,
                    user.username,
                    (user.security_profile_ids - ids) | (now - before),
                    (ids - user.security_profile_ids) | (before - now),
                    known_user is None,
                )
            )
    return drift


@dataclass
class SweepResult:
    instance_arn: str
    bootstrapped: bool = False
    incomplete: str | None = None  # why the stored baseline could not be used
    drift: list[Drift] = field(default_factory=list)
    plans: list[tuple[Drift, Plan, str]] = field(default_factory=list)  # (drift, plan, status)
    finding_id: str | None = None
    # The run's finding, named before it is published: its audit records carry the same ID.
    event_id: str = ""

    def __post_init__(self) -> None:
        if not self.event_id:
            # To the microsecond: two runs in one second (a manual one beside the schedule) are
            # two findings, and the journal tells one run's rollbacks from the next's.
            now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            self.event_id = f"sweep:{self.instance_arn.rsplit('/', 1)[-1]}:{now}"


class BaselineSweep(ConnectControl):
    discovery: DiscoveryResult | None = None  # the last run's instance discovery

    def run(self) -> list[SweepResult]:
        results = []
        for arn in self.settings.connect_instance_arns:
            instance = InstanceRef.parse(arn, self.settings.own_account_id, self.settings.region)
            results.append(self.sweep(instance))
        # After the configured instances: a failure here does not cost them their drift check.
        self.discovery = self.discover()
        return results

    def discover(self) -> DiscoveryResult:
        """The instances of the configured accounts and regions that nothing watches (discovery)."""
        assert self.settings.baseline_table_name
        state = DiscoveryState(self.clients.dynamodb, self.settings.baseline_table_name)
        return InstanceDiscovery(self.settings, self.clients, self.publisher, state).run()

    def sweep(self, instance: InstanceRef) -> SweepResult:
        result = SweepResult(instance.arn)
        approved = self.baselines.instance(instance.arn)
        problem = incomplete(approved.meta, len(approved.profiles), len(approved.users))
        if problem and not (approved.empty and not self.baselines.recorded(instance.arn)):
            # Lost or shrunk: re-approving the current state would launder whatever changed.
            result.finding_id = self._publish(
                instance,
                result,
                Severity.CRITICAL,
                f"Connect baseline missing or partial for {instance.instance_id}: nothing checked",
                (
                    f"{problem}; no drift check and no rollback until a reviewed state is approved",
                    "approve with `connect-guard approve-baseline` after review; the sweep never re-records it",
                ),
            )
            result.incomplete = problem
            return result
        gateway = self.gateway(instance)
        current = snapshot(gateway, self.rules)
        if problem:  # never baselined: the first deployment
            self.baselines.approve_instance(current, "connect-guard bootstrap")
            result.bootstrapped = True
            result.finding_id = self._publish(
                instance,
                result,
                Severity.INFO,
                f"Baseline recorded for Connect instance {instance.instance_id}",
                (
                    f"first sweep: {len(current.profiles)} profiles and {len(current.users)} users recorded "
                    "as the approved baseline; approve later changes with `connect-guard approve-baseline`",
                ),
            )
            return result
        mode = self.settings.mode_for("baseline_sweep", instance.account_id)
        if mode.enforces:
            self._earlier_run(instance, current)
        result.drift = diff(current, approved)
        if not result.drift:
            logger.info("no drift", extra={"instance": instance.arn})
            return result
        names = {p.id: p.name for p in (*approved.profiles.values(), *current.profiles.values())}
        permissions = {p.id: p.permissions for p in approved.profiles.values()}
        permissions.update({p.id: p.permissions for p in current.profiles.values() if p.id not in permissions})
        planned = [
            (item, plan) for item in result.drift if (plan := self._plan(item, current, approved, names, permissions))
        ]
        enforce = mode.enforces
        pending = None
        if enforce and planned:
            # Journaled before the first rollback: should this run die before its finding and its
            # audit records, the next run finds them in place and reports them (_earlier_run).
            # Small whatever the drift: a digest of each target, not the permission lists.
            pending = self.journal.begin(
                self._journal_key(instance),
                responder=NAME,
                event_id=result.event_id,
                records=[],
                payload={"steps": [_step(item, plan) for item, plan in planned]},
            )
        for item, plan in planned:
            status = "proposed"
            if enforce:
                if item.kind == "connect_user":
                    gateway.set_user_profiles(item.id, plan.target)
                elif plan.fields:
                    gateway.restore_profile(item.id, plan.target, plan.fields)
                else:
                    gateway.set_permissions(item.id, plan.target)
                status = "taken"
            result.plans.append((item, plan, status))
        gained = tuple(g for _, plan, _ in result.plans for g in plan.gained)
        severity = max((self.rules.severity_of(plan) for _, plan, _ in result.plans), default=Severity.LOW)
        severity = max(severity, self._user_drift_severity(result.drift, current, approved))
        reasons = [self.describe(item, names) for item in result.drift][:50]
        for item in result.drift:
            if item.deleted:  # nothing to roll back: HIGH, CRITICAL when it was privileged (profile_deletion)
                privileged, admin_names = self.rules.privileged_permissions, self.rules.privileged_profiles
                severity = max(severity, deleted_severity(approved.profiles[item.id], privileged, admin_names))
        if any(item.deleted for item in result.drift):
            reasons.append(
                "deleted profiles: recreate them from their approved state in the baseline (runbook), then "
                "approve the instance again"
            )
        if any(item.unchecked for item in result.drift):
            severity = max(severity, Severity.MEDIUM)  # not checked: it may have loosened
            reasons.append(f"profiles marked (unchecked): {UNCHECKED_ACCESS}")
        if gained and not enforce:
            reasons.append(f"detect mode: the actions show the calls enforce mode makes (detect: {mode.reason})")
        title = f"Connect baseline drift in {instance.instance_id}: {len(result.drift)} change(s)"
        if gained:
            title += f", privileged: {', '.join(sorted(set(gained)))}"
        result.finding_id = self._publish(instance, result, severity, title, tuple(reasons))
        if pending is not None:
            records = [self._audit_entry(instance, item, plan, current, result.event_id) for item, plan in planned]
            self.journal.complete(pending, records, "taken", keep=False)  # the records may be large
        return result

    def _user_drift_severity(
        self, drift: list[Drift], current: InstanceBaseline, approved: InstanceBaseline
    ) -> Severity:
        """A privileged user's identity drift is CRITICAL (a takeover), its hierarchy group or tags
        HIGH; an unprivileged user's MEDIUM. Reported, not restored: the event path restores."""
        privileged = privileged_profiles(current, self.rules) | privileged_profiles(approved, self.rules)
        worst = Severity.INFO
        for item in drift:
            if item.kind != "connect_user" or item.new:
                continue
            fields = {value.split("=", 1)[0] for value in item.added | item.removed if "=" in value}
            if not fields:
                continue
            known = approved.users[item.id].security_profile_ids | current.users[item.id].security_profile_ids
            if not known & privileged:
                worst = max(worst, Severity.MEDIUM)
            elif fields & set(IDENTITY_FIELDS):
                worst = max(worst, Severity.CRITICAL)
            else:
                worst = max(worst, Severity.HIGH)
        return worst

    @staticmethod
    def _journal_key(instance: InstanceRef) -> str:
        """One journal item per instance: the next run reads the last run's."""
        return f"{NAME}:{instance.arn}"

    def _audit_entry(
        self,
        instance: InstanceRef,
        item: Drift,
        plan: Plan,
        current: InstanceBaseline | None,
        event_id: str,
        note: str = "",
    ) -> dict[str, Any]:
        """The rollback's audit record; `current` None: the state before it is no longer known."""
        before: Any = None
        if current is not None:
            before = sorted(
                current.users[item.id].security_profile_ids
                if item.kind == "connect_user"
                else _profile_state(current.profiles[item.id], with_access=plan.access is not None)
            )
        return self.audit.entry(
            responder=NAME,
            action=plan.operation,
            status="taken",
            actor=None,
            target=f"{instance.arn}/{item.kind}/{item.id}",
            reason=f"drift: gained {', '.join(plan.gained)}{note}",
            before=before,
            after=sorted(plan.target | plan.access.markers() if plan.access else plan.target),
            event_id=None,
            finding_id=finding_id_of(NAME, event_id),  # the finding _publish sends
            mode="enforce",
        )

    def _earlier_run(self, instance: InstanceRef, current: InstanceBaseline) -> SweepResult | None:
        """The rollbacks a previous run journaled and did not live to report and audit (its
        timeout, out of memory): those found in place now are reported under that run's finding
        ID and audited; any still drifting is this run's to roll back."""
        pending = self.journal.get(self._journal_key(instance))
        if pending is None or pending.audited or pending.responder != NAME:
            return None
        earlier = SweepResult(instance.arn, event_id=pending.event_id)
        records = []
        note = f" (made by the sweep of {pending.started_at}, which stopped before reporting it; confirmed by the next)"
        for step in pending.payload.get("steps", []):
            found = (current.users if step["kind"] == "connect_user" else current.profiles).get(step["id"])
            now = (
                found.security_profile_ids
                if isinstance(found, UserBaseline)
                else found.permissions
                if isinstance(found, ProfileBaseline)
                else None
            )
            state = _profile_state(found) if isinstance(found, ProfileBaseline) and step.get("access") else now
            if now is None or state is None or _digest(state) != step["target_digest"]:
                continue  # not in place: if it still drifts, this run rolls it back
            item = Drift(step["kind"], step["id"], step["name"], frozenset(), frozenset(), False)
            plan = Plan(step["operation"], now, tuple(step["gained"]), step["baseline"], ())
            earlier.plans.append((item, plan, "taken"))
            records.append(self._audit_entry(instance, item, plan, None, pending.event_id, note))
        if earlier.plans:
            gained = sorted({g for _, plan, _ in earlier.plans for g in plan.gained})
            reasons = (
                f"rolled back by the sweep of {pending.started_at}, which stopped before reporting it; re-read by "
                "this sweep, the rollbacks listed are in place",
                *(
                    f"{item.kind.replace('_', ' ')} {item.name}: gained {', '.join(plan.gained)}"
                    for item, plan, _ in earlier.plans
                ),
            )
            title = (
                f"Connect baseline drift in {instance.instance_id} rolled back by an earlier sweep, "
                f"privileged: {', '.join(gained)}"
            )
            earlier.finding_id = self._publish(instance, earlier, self.rules.severity(tuple(gained)), title, reasons)
        self.journal.complete(pending, records, "taken", keep=False)
        return earlier

    def approve(self, gateway: ConnectGateway, approved_by: str, reason: str = "reviewed") -> SweepResult:
        """The explicit approval (`connect-guard approve-baseline`): the instance's current state
        becomes its complete baseline; audited, and alerted HIGH when it approves privileged gains."""
        instance = gateway.instance
        current = snapshot(gateway, self.rules)
        approved = self.baselines.instance(instance.arn)
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        result = SweepResult(
            instance.arn, drift=diff(current, approved), event_id=f"approve:{instance.instance_id}:{now}"
        )
        names = {p.id: p.name for p in (*approved.profiles.values(), *current.profiles.values())}
        permissions = {p.id: p.permissions for p in current.profiles.values()}
        permissions.update({p.id: p.permissions for p in approved.profiles.values()})
        plans = [self._plan(item, current, approved, names, permissions) for item in result.drift]
        gained = sorted({g for plan in plans if plan for g in plan.gained})
        self.baselines.approve_instance(current, approved_by)
        self.audit.record(
            responder=NAME,
            action="ApproveBaseline",
            status="taken",
            actor=approved_by,
            target=instance.arn,
            reason=f"baseline approved by {approved_by}: {reason}",
            before=sorted(self.describe(item, names) for item in result.drift),
            after=[f"{len(current.profiles)} profiles", f"{len(current.users)} users"],
            event_id=None,
            finding_id=finding_id_of(NAME, result.event_id),  # the finding _publish sends
            mode=self.settings.response_mode,
        )
        reasons = [
            f"{len(current.profiles)} profiles and {len(current.users)} users approved as the complete baseline"
            f" by {approved_by}: {reason}",
            *((f"approved privileged gain: {', '.join(gained)}",) if gained else ()),
            *[self.describe(item, names) for item in result.drift][:50],
        ]
        result.finding_id = self._publish(
            instance,
            result,
            Severity.HIGH if gained else Severity.INFO,
            f"Baseline approved by {approved_by} for Connect instance {instance.instance_id}",
            tuple(reasons),
        )
        return result

    def _plan(
        self,
        item: Drift,
        current: InstanceBaseline,
        approved: InstanceBaseline,
        names: dict[str, str],
        permissions: dict[str, frozenset[str]],
    ) -> Plan | None:
        if item.deleted:
            return None  # a deleted profile can't be put back under its ID: alerted, never acted on
        if item.kind == "connect_user":
            user = current.users[item.id]
            return plan_user(
                ConnectUser(user.id, user.username, user.security_profile_ids),
                approved.users.get(item.id),
                names,
                permissions,
                self.rules,
            )
        profile = current.profiles[item.id]
        return plan_profile(profile.permissions, approved.profiles.get(item.id), self.rules, profile.access)

    @staticmethod
    def describe(item: Drift, names: dict[str, str]) -> str:
        def show(values: frozenset[str]) -> str:
            shown = (names.get(v, v) for v in values) if item.kind == "connect_user" else values
            return ", ".join(sorted(shown))

        what = "user" if item.kind == "connect_user" else "profile"
        changes = " ".join(
            part
            for part in (
                f"+[{show(item.added)}]" if item.added else "",
                f"-[{show(item.removed)}]" if item.removed else "",
            )
            if part
        )
        unchecked = " (unchecked: access-control restrictions and applications)" if item.unchecked else ""
        state = "new " if item.new else "deleted " if item.deleted else ""
        return f"{state}{what} {item.name}: {changes or 'no permissions'}{unchecked}"

    def _publish(
        self, instance: InstanceRef, result: SweepResult, severity: Severity, title: str, reasons: tuple[str, ...]
    ) -> str:
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        actions = tuple(
            Action(
                "connect",
                plan.operation,
                {
                    "InstanceId": instance.instance_id,
                    **(
                        {"UserId": item.id, "SecurityProfileIds": sorted(plan.target)}
                        if item.kind == "connect_user"
                        else {"SecurityProfileId": item.id, "Permissions": sorted(plan.target), **plan.fields}
                    ),
                },
                status,
            )
            for item, plan, status in result.plans
        )
        mode = self.settings.mode_for("baseline_sweep", instance.account_id)
        finding = Finding(
            responder=NAME,
            kind=KIND,
            severity=severity,
            title=title,
            summary=f"The scheduled sweep compared Connect instance {instance.arn} with its approved baseline.",
            event=EventRef(
                result.event_id,
                "BaselineSweep",
                "connect-guard",
                now,
                instance.account_id,
                instance.region,
                f"https://{instance.region}.console.aws.amazon.com/connect/v2/app/instances/{instance.instance_id}",
            ),
            actor=Actor.system("connect-guard baseline sweep"),
            attempt=Attempt("succeeded"),
            allowlisted=False,
            reasons=reasons,
            runbook_url=self.settings.runbook_url(NAME),
            environment=self.settings.environment,
            mode=mode.mode,
            mode_reason=mode.reason,
            connect=ConnectRef(instance.instance_id, instance.arn),
            actions=actions,
        )
        self.publisher.publish(finding)
        return finding.finding_id


def _profile_state(profile: ProfileBaseline, with_access: bool = True) -> frozenset[str]:
    """A profile's permissions and, when recorded, its access as markers: what drift compares."""
    if with_access and profile.access is not None:
        return profile.permissions | profile.access.markers()
    return profile.permissions


def _digest(values: frozenset[str]) -> str:
    return hashlib.sha256("\n".join(sorted(values)).encode()).hexdigest()


def _step(item: Drift, plan: Plan) -> dict[str, Any]:
    """A journaled rollback: what the next run needs to confirm it (the state it sets, as a
    digest: a profile's 500 permissions times many profiles would not fit one item) and report it."""
    return {
        "kind": item.kind,
        "id": item.id,
        "name": item.name,
        "operation": plan.operation,
        # With restrictions restored, their markers are in the digest: a run that died before the
        # call must not find its permissions-only digest "in place".
        "target_digest": _digest(plan.target | plan.access.markers() if plan.access else plan.target),
        "access": plan.access is not None,
        "gained": list(plan.gained),
        "baseline": plan.baseline,
    }


def build(settings: Settings, clients: AwsClients) -> BaselineSweep:
    return BaselineSweep.from_settings(settings, clients)
