"""Audit records: who, what, why, before, after and the triggering eventID of every automated
action (and every approval), one DynamoDB item each, partitioned by day; the actions a
quarantine makes for one event share one item, which lists them in its `steps`.

The same table holds the action journal: an item per finding that reports an action
(`pk = finding#<finding ID>`), written before the action is made. A function can die between
acting and publishing (a timeout, out of memory); its retry re-reads the state and finds nothing
left to do. The journal tells it that this event's earlier attempt set out to make the action, so
the retry still reports it (and writes its audit records, if the earlier attempt did not get that
far) instead of acking in silence. The day partitions, which the archive exports, never hold
journal items; the functions read the journal only (`dynamodb:LeadingKeys` `finding#*`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from connect_guard.findings import Action

# Longer than a message can come back: the queues' DLQs keep it 14 days, and a redrive from
# there must still find the journal of an action an earlier attempt made.
JOURNAL_RETENTION_SECONDS = 15 * 24 * 3600
JOURNAL_PREFIX = "finding#"
TRANSACTION_MAX_ITEMS = 100  # DynamoDB TransactWriteItems
_deserializer = TypeDeserializer()
# json.dumps(value, sort_keys=True, default=sorted), its encoder built once (not on every call).
_sorted_json = json.JSONEncoder(sort_keys=True, default=sorted).encode
_records_json = json.JSONEncoder(sort_keys=True).encode  # audit records: JSON-native already


def _now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    def __init__(self, dynamodb: Any, table_name: str, clock: Callable[[], datetime] = _now) -> None:
        self._db = dynamodb
        self._table = table_name
        self._clock = clock

    @property
    def table(self) -> str:
        return self._table

    @property
    def db(self) -> Any:
        return self._db

    def entry(
        self,
        *,
        responder: str,
        action: str,
        status: str,
        actor: str | None,
        target: str,
        reason: str,
        before: Any,
        after: Any,
        event_id: str | None,
        finding_id: str | None,
        mode: str,
    ) -> dict[str, Any]:
        """An audit record's fields, not written yet: `stamp` keys it when it is written."""
        return {
            "responder": responder,
            "action": action,
            "status": status,
            "actor": actor or "unknown",
            "target": target,
            "reason": reason,
            "before": _sorted_json(before),
            "after": _sorted_json(after),
            "event_id": event_id or "",
            "finding_id": finding_id or "",
            "mode": mode,
        }

    def stamp(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The record keyed by the time it is written: the archive exports each day's records in
        key order from a checkpoint, so a record keyed earlier than its write could be skipped."""
        now = self._clock()
        fields = {k: v for k, v in entry.items() if k not in ("pk", "sk", "service")}
        key = fields["finding_id"] or fields["event_id"] or fields["action"]
        return {"pk": f"audit#{now:%Y-%m-%d}", "sk": f"{now.isoformat(timespec='microseconds')}#{key}", **fields}

    def record(self, **fields: Any) -> dict[str, Any]:
        return self.write(self.entry(**fields))

    def write(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Write one record built by `entry` (one PutItem)."""
        stamped = self.stamp(entry)
        self._db.put_item(TableName=self._table, Item=self.item(stamped))
        return stamped

    @staticmethod
    def item(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: {"S": str(v)} for k, v in entry.items()}


@dataclass(frozen=True)
class PendingAction:
    """A journal item: the action a finding reports, as recorded before it was made."""

    finding_id: str
    responder: str
    event_id: str
    status: str  # started (the action may or may not have been made) | taken | failed (audited)
    records: tuple[dict[str, Any], ...]  # the audit records of the action, as planned
    payload: dict[str, Any]  # what the responder needs to report it again
    started_at: str

    @property
    def audited(self) -> bool:
        return self.status != "started"

    def actions(self) -> list[Action]:
        """The recorded actions (operation, status and parameters), as the finding lists them."""
        found = []
        for r in self.records:
            if r.get("steps"):  # one record for the actions of one event (actions_record)
                found += [Action(**step) for step in json.loads(r["steps"])]
            elif r.get("service"):
                found.append(Action(r["service"], r["action"], json.loads(r["after"]) or {}, r["status"]))
        return found


class ActionJournal:
    """Actions recorded before they are made, under the ID of the finding that reports them."""

    def __init__(self, audit: AuditLog, clock: Callable[[], datetime] = _now) -> None:
        self.audit = audit
        self._db = audit.db
        self._table = audit.table
        self._clock = clock

    @staticmethod
    def _key(finding_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{JOURNAL_PREFIX}{finding_id}"}, "sk": {"S": "action"}}

    def _item(self, pending: PendingAction) -> dict[str, Any]:
        expires = int(self._clock().timestamp()) + JOURNAL_RETENTION_SECONDS
        body = {
            "responder": pending.responder,
            "event_id": pending.event_id,
            "status": pending.status,
            "records": _records_json(list(pending.records)),
            "payload": _sorted_json(pending.payload),
            "started_at": pending.started_at,
        }
        return {
            **self._key(pending.finding_id),
            **{k: {"S": v} for k, v in body.items()},  # strings, all of them (TypeSerializer's S)
            "expires_at": {"N": str(expires)},
        }

    def begin(
        self,
        finding_id: str,
        *,
        responder: str,
        event_id: str,
        records: list[dict[str, Any]],
        payload: dict[str, Any] | None = None,
    ) -> PendingAction:
        """Record the action about to be made (one PutItem). Call it right before acting."""
        pending = PendingAction(
            finding_id,
            responder,
            event_id,
            "started",
            tuple(records),
            payload or {},
            self._clock().isoformat(timespec="seconds"),
        )
        self._db.put_item(TableName=self._table, Item=self._item(pending))
        return pending

    def get(self, finding_id: str) -> PendingAction | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(finding_id), ConsistentRead=True).get("Item")
        if not item:
            return None
        plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
        return PendingAction(
            finding_id,
            str(plain.get("responder", "")),
            str(plain.get("event_id", "")),
            str(plain.get("status", "started")),
            tuple(json.loads(str(plain.get("records") or "[]"))),
            json.loads(str(plain.get("payload") or "{}")),
            str(plain.get("started_at", "")),
        )

    def complete(
        self, pending: PendingAction, records: list[dict[str, Any]], status: str, keep: bool = True
    ) -> PendingAction:
        """Write the action's audit records and mark the journal item audited, in one transaction:
        a retry either finds both or neither, so it never writes an audit record twice. `keep`:
        the journal item keeps the records (a retry rebuilds the finding's actions from them)."""
        done = PendingAction(
            pending.finding_id,
            pending.responder,
            pending.event_id,
            status,
            tuple(records) if keep else (),
            pending.payload,
            pending.started_at,
        )
        # Distinct keys within one transaction: the same microsecond would name one item twice.
        stamped = [self.audit.stamp(r) for r in records]
        for i, entry in enumerate(stamped):
            entry["sk"] = f"{entry['sk']}#{i}" if len(stamped) > 1 else entry["sk"]
        items = [{"Put": {"TableName": self._table, "Item": AuditLog.item(e)}} for e in stamped]
        items.append({"Put": {"TableName": self._table, "Item": self._item(done)}})
        # A transaction holds at most 100 writes: a large sweep's records go in several, the
        # journal's mark in the last (a crash in between may write the first ones twice, never none).
        for start in range(0, len(items), TRANSACTION_MAX_ITEMS):
            self._db.transact_write_items(TransactItems=items[start : start + TRANSACTION_MAX_ITEMS])
        return done


def actions_record(audit: AuditLog, actions: list[Action], **fields: Any) -> dict[str, Any]:
    """One audit record for the actions of one event (a quarantine's attach, tags and key
    deactivations): one item to write and to read. The first action, the one that decides,
    names it (`action`, `status`, `after`, as a one-action record); `steps` lists every action
    as made, which the journal's retry rebuilds and the archive exports."""
    first = actions[0]
    steps = [
        {"service": a.service, "operation": a.operation, "parameters": a.parameters, "status": a.status}
        for a in actions
    ]
    return {
        **action_record(audit, first, **fields),
        "steps": _sorted_json(steps),
    }


def action_record(audit: AuditLog, action: Action, **fields: Any) -> dict[str, Any]:
    """The audit record of one responder action; `service` lets the journal rebuild the Action."""
    return {
        **audit.entry(action=action.operation, status=action.status, after=action.parameters, **fields),
        "service": action.service,
    }
