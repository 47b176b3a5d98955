"""Audit records: who, what, why, before, after and the triggering eventID of every automated
action (and every approval), one DynamoDB item each, partitioned by day."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


class AuditLog:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def record(
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
        now = datetime.now(UTC)
        entry = {
            "pk": f"audit#{now:%Y-%m-%d}",
            "sk": f"{now.isoformat(timespec='microseconds')}#{finding_id or event_id or action}",
            "responder": responder,
            "action": action,
            "status": status,
            "actor": actor or "unknown",
            "target": target,
            "reason": reason,
            "before": json.dumps(before, sort_keys=True, default=sorted),
            "after": json.dumps(after, sort_keys=True, default=sorted),
            "event_id": event_id or "",
            "finding_id": finding_id or "",
            "mode": mode,
        }
        self._db.put_item(TableName=self._table, Item={k: {"S": str(v)} for k, v in entry.items()})
        return entry
