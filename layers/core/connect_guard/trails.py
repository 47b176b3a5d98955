"""CloudTrail trails: the approved snapshot, the current state, and what differs between them.

A snapshot (baseline table, `trail#<trail ARN>`) is the approved configuration of one trail:
logging on or off, where it delivers (bucket, prefix, KMS key), its scope (multi-region,
global service events, log file validation) and its event and Insights selectors. The
logging_guard responder restores a weakened trail to it; a trail with no snapshot is alerted,
never changed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from connect_guard.snapshots import IndexedSnapshots

# AWS's selectors when none were ever put: every management event, read and write. moto (and a
# trail created without selectors) answers an empty list; both mean this.
DEFAULT_EVENT_SELECTORS: tuple[dict[str, Any], ...] = (
    {"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": [], "ExcludeManagementEventSources": []},
)
TRAIL_GONE = {"TrailNotFoundException", "InvalidTrailNameException", "CloudTrailARNInvalidException"}
SETTINGS = ("s3_bucket", "s3_prefix", "kms_key_id", "multi_region", "global_events", "log_validation")


def trail_arn(reference: str, account_id: str, region: str, partition: str = "aws") -> str:
    """A trail named by ARN or by name (CloudTrail records carry either) as its ARN."""
    if reference.startswith("arn:"):
        return reference
    return f"arn:{partition}:cloudtrail:{region}:{account_id}:trail/{reference}"


def home_region(arn: str) -> str:
    """A trail's home region, from its ARN: CloudTrail changes a multi-region trail only there
    (its shadow copies in other regions refuse StartLogging and UpdateTrail)."""
    return arn.split(":")[3]


def trail_account(arn: str) -> str:
    return arn.split(":")[4]


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _selectors(response: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    basic = [_drop_empty(s) for s in response.get("EventSelectors") or []]
    advanced = list(response.get("AdvancedEventSelectors") or [])
    if not basic and not advanced:
        basic = [_drop_empty(s) for s in DEFAULT_EVENT_SELECTORS]
    return basic, advanced


def _drop_empty(selector: dict[str, Any]) -> dict[str, Any]:
    """Optional empty lists are left out: AWS and moto differ on whether they echo them."""
    return {k: v for k, v in selector.items() if v not in ([], None)}


@dataclass(frozen=True)
class TrailState:
    arn: str
    name: str
    is_logging: bool
    s3_bucket: str | None
    s3_prefix: str | None
    kms_key_id: str | None
    multi_region: bool
    global_events: bool
    log_validation: bool
    event_selectors: list[dict[str, Any]] = field(default_factory=list)
    advanced_event_selectors: list[dict[str, Any]] = field(default_factory=list)
    insight_selectors: list[dict[str, Any]] = field(default_factory=list)
    taken_at: str | None = None  # snapshots only

    @property
    def records_management_writes(self) -> bool:
        """Whether the trail (logging) records write management events, the calls the suite acts on."""
        if not self.is_logging:
            return False
        if self.advanced_event_selectors:
            return any(_advanced_management_writes(s) for s in self.advanced_event_selectors)
        return any(
            s.get("IncludeManagementEvents", True) and s.get("ReadWriteType", "All") in ("All", "WriteOnly")
            for s in self.event_selectors
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> TrailState:
        fields: dict[str, Any] = {k: body[k] for k in cls.__dataclass_fields__ if k in body}
        return cls(**fields)


def _advanced_management_writes(selector: dict[str, Any]) -> bool:
    fields = {f.get("Field"): f for f in selector.get("FieldSelectors") or []}
    category = fields.get("eventCategory", {})
    if "Management" not in (category.get("Equals") or []):
        return False
    read_only = fields.get("readOnly", {})
    return "true" not in (read_only.get("Equals") or [])


@dataclass(frozen=True)
class Drift:
    """One way the current trail differs from its snapshot."""

    setting: str
    approved: Any
    now: Any

    def describe(self) -> str:
        return f"{self.setting}: approved {canonical(self.approved)}, now {canonical(self.now)}"


def drift(snapshot: TrailState, current: TrailState) -> tuple[Drift, ...]:
    found: list[Drift] = []
    if snapshot.is_logging and not current.is_logging:
        found.append(Drift("is_logging", True, False))
    for setting in SETTINGS:
        if getattr(snapshot, setting) != getattr(current, setting):
            found.append(Drift(setting, getattr(snapshot, setting), getattr(current, setting)))
    for setting in ("event_selectors", "advanced_event_selectors", "insight_selectors"):
        if canonical(getattr(snapshot, setting)) != canonical(getattr(current, setting)):
            found.append(Drift(setting, getattr(snapshot, setting), getattr(current, setting)))
    return tuple(found)


class TrailGateway:
    """CloudTrail reads and the restoring writes, for one account and region."""

    def __init__(self, cloudtrail: Any) -> None:
        self._ct = cloudtrail

    def state(self, arn: str) -> TrailState | None:
        """The trail as it is now; None when it no longer exists."""
        try:
            trail = self._ct.get_trail(Name=arn)["Trail"]
            status = self._ct.get_trail_status(Name=arn)
            basic, advanced = _selectors(self._ct.get_event_selectors(TrailName=arn))
            insights = self._insights(arn)
        except ClientError as error:
            if error.response["Error"]["Code"] in TRAIL_GONE:
                return None
            raise
        return TrailState(
            arn=trail.get("TrailARN") or arn,
            name=trail["Name"],
            is_logging=bool(status.get("IsLogging")),
            s3_bucket=trail.get("S3BucketName") or None,
            s3_prefix=trail.get("S3KeyPrefix") or None,
            kms_key_id=trail.get("KmsKeyId") or None,
            multi_region=bool(trail.get("IsMultiRegionTrail")),
            global_events=bool(trail.get("IncludeGlobalServiceEvents")),
            log_validation=bool(trail.get("LogFileValidationEnabled")),
            event_selectors=basic,
            advanced_event_selectors=advanced,
            insight_selectors=insights,
        )

    def _insights(self, arn: str) -> list[dict[str, Any]]:
        """Asked even when GetTrail's HasInsightSelectors says none: a trail's own answer is the one
        that counts (and moto never sets the flag)."""
        try:
            return list(self._ct.get_insight_selectors(TrailName=arn).get("InsightSelectors") or [])
        except ClientError as error:
            if error.response["Error"]["Code"] == "InsightNotEnabledException":
                return []
            raise

    @staticmethod
    def restore_calls(snapshot: TrailState, found: tuple[Drift, ...]) -> list[tuple[str, dict[str, Any]]]:
        """The CloudTrail calls (operation, parameters) that put the snapshot back, in order:
        delivery settings first, then selectors, then logging on (it then logs what it should)."""
        settings = {d.setting for d in found}
        calls: list[tuple[str, dict[str, Any]]] = []
        if settings & set(SETTINGS):
            calls.append(
                (
                    "UpdateTrail",
                    {
                        "Name": snapshot.arn,
                        "S3BucketName": snapshot.s3_bucket or "",
                        "S3KeyPrefix": snapshot.s3_prefix or "",
                        "KmsKeyId": snapshot.kms_key_id or "",  # empty: no SSE-KMS, as approved
                        "IsMultiRegionTrail": snapshot.multi_region,
                        "IncludeGlobalServiceEvents": snapshot.global_events,
                        "EnableLogFileValidation": snapshot.log_validation,
                    },
                )
            )
        if settings & {"event_selectors", "advanced_event_selectors"}:
            if snapshot.advanced_event_selectors:
                selectors: dict[str, Any] = {"AdvancedEventSelectors": snapshot.advanced_event_selectors}
            else:
                selectors = {"EventSelectors": snapshot.event_selectors or list(DEFAULT_EVENT_SELECTORS)}
            calls.append(("PutEventSelectors", {"TrailName": snapshot.arn, **selectors}))
        if "insight_selectors" in settings:
            calls.append(
                ("PutInsightSelectors", {"TrailName": snapshot.arn, "InsightSelectors": snapshot.insight_selectors})
            )
        if "is_logging" in settings:
            calls.append(("StartLogging", {"Name": snapshot.arn}))
        return calls

    def home_trails(self, region: str, account: str) -> list[str]:
        """ARNs of the account's trails whose home is `region` (DescribeTrails without shadow
        trails: a multi-region trail once, in its home region; an organization trail of another
        account is left to that account's own check)."""
        trails = self._ct.describe_trails(includeShadowTrails=False).get("trailList") or []
        return [
            arn
            for t in trails
            if (arn := t.get("TrailARN"))
            and (t.get("HomeRegion") or home_region(arn)) == region
            and trail_account(arn) == account
        ]

    def call(self, operation: str, parameters: dict[str, Any]) -> None:
        method = {
            "UpdateTrail": self._ct.update_trail,
            "PutEventSelectors": self._ct.put_event_selectors,
            "PutInsightSelectors": self._ct.put_insight_selectors,
            "StartLogging": self._ct.start_logging,
        }[operation]
        method(**parameters)


INDEX_PREFIX = "trail#index#"  # `trail#index#<account>`, sk the ARN: the approved trails of an account
SEEN_PREFIX = "trail#seen#"  # `trail#seen#<ARN>`: an unapproved trail the drift check reported once


class TrailSnapshots(IndexedSnapshots[TrailState]):
    """The approved state of each trail, in the baseline table (`trail#<ARN>`, `snapshot`), and
    an index of the approved trails per account (`trail#index#<account>`, one item per ARN), so
    the drift check finds a snapshot whose trail no longer exists. Both are written only by
    `connect-guard approve-trail` (and the demo's seed): the functions read them."""

    kind = "trail"
    index_prefix = INDEX_PREFIX

    def _load(self, body: dict[str, Any]) -> TrailState:
        return TrailState.from_dict(body)

    def first_sighting(self, arn: str, at: str) -> bool:
        """Whether an unapproved trail is seen for the first time (then marked): reported once."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={"pk": {"S": f"{SEEN_PREFIX}{arn}"}, "sk": {"S": "unapproved"}, "seen_at": {"S": at}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
