"""What a security profile reaches besides its permissions: its access-control restrictions
(tag- and hierarchy-based access control) and its applications. Pure: no AWS here.

Access-control restrictions narrow what a profile's users reach, so removing or changing one
widens it: a removed or changed `AllowedAccessControlTags` entry, a resource dropped from
`TagRestrictedResources` or `HierarchyRestrictedResources`, a removed or changed
`AllowedAccessControlHierarchyGroupId`. Adding any of them narrows access. Applications grant:
an added application, or an added permission on one, widens access; removing them narrows it.
A restore puts back only what was loosened and keeps every narrowing made since the approval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_TAGS, MAX_RESTRICTED = 4, 10  # AllowedAccessControlTags, TagRestrictedResources (the API's maxima)


@dataclass(frozen=True)
class ProfileAccess:
    tags: tuple[tuple[str, str], ...] = ()  # AllowedAccessControlTags, sorted by key
    tag_restricted: frozenset[str] = frozenset()  # TagRestrictedResources
    hierarchy_restricted: frozenset[str] = frozenset()  # HierarchyRestrictedResources
    hierarchy_group: str = ""  # AllowedAccessControlHierarchyGroupId; "" when none
    # One entry per application permission: (Namespace, Type or "", permission).
    applications: frozenset[tuple[str, str, str]] = frozenset()

    @classmethod
    def from_api(cls, described: Mapping[str, Any], applications: Iterable[Mapping[str, Any]]) -> ProfileAccess:
        """From DescribeSecurityProfile's SecurityProfile and ListSecurityProfileApplications' Applications."""
        return cls(
            tuple(sorted((str(k), str(v)) for k, v in (described.get("AllowedAccessControlTags") or {}).items())),
            frozenset(described.get("TagRestrictedResources") or ()),
            frozenset(described.get("HierarchyRestrictedResources") or ()),
            str(described.get("AllowedAccessControlHierarchyGroupId") or ""),
            frozenset(
                (str(app["Namespace"]), str(app.get("Type") or ""), str(permission))
                for app in applications
                for permission in app.get("ApplicationPermissions") or ()
            ),
        )

    def to_api(self) -> dict[str, Any]:
        """The profile's access as UpdateSecurityProfile takes it (and the baseline stores it)."""
        return {
            "AllowedAccessControlTags": dict(self.tags),
            "TagRestrictedResources": sorted(self.tag_restricted),
            "HierarchyRestrictedResources": sorted(self.hierarchy_restricted),
            "AllowedAccessControlHierarchyGroupId": self.hierarchy_group,
            "Applications": self.applications_api(),
        }

    def applications_api(self) -> list[dict[str, Any]]:
        grouped: dict[tuple[str, str], list[str]] = {}
        for namespace, kind, permission in sorted(self.applications):
            grouped.setdefault((namespace, kind), []).append(permission)
        return [
            {"Namespace": ns, "ApplicationPermissions": perms, **({"Type": kind} if kind else {})}
            for (ns, kind), perms in grouped.items()
        ]

    @classmethod
    def from_stored(cls, body: Mapping[str, Any]) -> ProfileAccess:
        """From `to_api`'s shape (the baseline item, the journal)."""
        return cls.from_api(body, body.get("Applications") or ())

    def markers(self) -> frozenset[str]:
        """The access as comparable strings, for drift lists and digests."""
        return frozenset(
            {f"tag:{k}={v}" for k, v in self.tags}
            | {f"tag-restricted:{r}" for r in self.tag_restricted}
            | {f"hierarchy-restricted:{r}" for r in self.hierarchy_restricted}
            | ({f"hierarchy-group:{self.hierarchy_group}"} if self.hierarchy_group else set())
            | {f"application:{ns}{'/' + kind if kind else ''}:{p}" for ns, kind, p in self.applications}
        )


def loosened(current: ProfileAccess, approved: ProfileAccess) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What widened since the approval: (restrictions loosened, applications gained), each as the
    SOC reads it. Narrowing changes are not listed: they are kept."""
    restrictions: list[str] = []
    now_tags = dict(current.tags)
    for key, value in approved.tags:
        if key not in now_tags:
            restrictions.append(f"AllowedAccessControlTags: {key}={value} removed")
        elif now_tags[key] != value:
            restrictions.append(f"AllowedAccessControlTags: {key}={value} changed to {key}={now_tags[key]}")
    restrictions += [
        f"TagRestrictedResources: {r} removed" for r in sorted(approved.tag_restricted - current.tag_restricted)
    ]
    restrictions += [
        f"HierarchyRestrictedResources: {r} removed"
        for r in sorted(approved.hierarchy_restricted - current.hierarchy_restricted)
    ]
    if approved.hierarchy_group and current.hierarchy_group != approved.hierarchy_group:
        restrictions.append(
            f"AllowedAccessControlHierarchyGroupId: {approved.hierarchy_group} "
            + (f"changed to {current.hierarchy_group}" if current.hierarchy_group else "removed")
        )
    approved_apps = {(ns, kind) for ns, kind, _ in approved.applications}
    gained: dict[tuple[str, str], list[str]] = {}
    for namespace, kind, permission in sorted(current.applications - approved.applications):
        gained.setdefault((namespace, kind), []).append(permission)
    applications = [
        f"Applications: {ns} {'gained' if (ns, kind) in approved_apps else 'added with'} {', '.join(perms)}"
        for (ns, kind), perms in gained.items()
    ]
    return tuple(restrictions), tuple(applications)


def restored(current: ProfileAccess, approved: ProfileAccess) -> ProfileAccess:
    """`current` with what loosened put back as approved; every narrowing since is kept. Where
    the union would pass an API maximum, the approved value (valid, and already judged) is used."""
    tags = dict(current.tags) | dict(approved.tags)
    if len(tags) > MAX_TAGS:
        tags = dict(approved.tags)
    tag_restricted = current.tag_restricted | approved.tag_restricted
    if len(tag_restricted) > MAX_RESTRICTED:
        tag_restricted = approved.tag_restricted
    return ProfileAccess(
        tuple(sorted(tags.items())),
        tag_restricted,
        current.hierarchy_restricted | approved.hierarchy_restricted,
        approved.hierarchy_group or current.hierarchy_group,
        current.applications & approved.applications,
    )


def update_fields(before: ProfileAccess, target: ProfileAccess) -> dict[str, Any]:
    """The UpdateSecurityProfile fields that take `before` to `target`: only those that change,
    each in full (Connect replaces a field it is given, it does not merge)."""
    old, new = before.to_api(), target.to_api()
    return {key: value for key, value in new.items() if value != old[key]}
