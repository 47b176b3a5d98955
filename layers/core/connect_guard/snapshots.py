"""Approved snapshots kept per resource ARN in the baseline table, with an index per account.

A snapshot is one item (`<kind>#<ARN>`, `snapshot`) holding the approved state as JSON; the index
(`<kind>#index#<account>`, one item per ARN) lets a drift check find a snapshot whose resource no
longer exists, by a Query on the account, never a Scan. TrailSnapshots and KeySnapshots are this
store for trails and KMS keys.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Generic, Protocol, TypeVar


class Snapshot(Protocol):
    @property
    def arn(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=Snapshot)


class IndexedSnapshots(Generic[S]):
    """The store; a subclass names its `kind` (the key prefix) and how a snapshot is read back."""

    kind: ClassVar[str]  # snapshot items are `<kind>#<ARN>`
    index_prefix: ClassVar[str]  # index items are `<index_prefix><account>`

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def _key(self, arn: str) -> dict[str, Any]:
        return {"pk": {"S": f"{self.kind}#{arn}"}, "sk": {"S": "snapshot"}}

    def _load(self, body: dict[str, Any]) -> S:
        raise NotImplementedError

    def put(self, snapshot: S) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={**self._key(snapshot.arn), "snapshot": {"S": json.dumps(snapshot.to_dict(), default=str)}},
        )
        account = snapshot.arn.split(":")[4]
        index = {"pk": {"S": f"{self.index_prefix}{account}"}, "sk": {"S": snapshot.arn}}
        self._db.put_item(TableName=self._table, Item=index)

    def approved(self, account: str) -> list[str]:
        """ARNs of the account's approved resources (the index; Query, by key, never a Scan)."""
        arns: list[str] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{self.index_prefix}{account}"}},
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**query)
            arns += [item["sk"]["S"] for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return arns
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, arn: str) -> S | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(arn), ConsistentRead=True).get("Item")
        if not item:
            return None
        return self._load(json.loads(item["snapshot"]["S"]))
