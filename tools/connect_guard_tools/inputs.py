"""Read replay inputs: EventBridge envelopes, raw CloudTrail records, CloudTrail S3 log files
(`{"Records": [...]}`, plain or gzipped), JSON Lines, and directories of any of these.

A record that cannot be read becomes an `InputItem` with an error, so one bad line never
stops a replay.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson")
_ID_NAMESPACE = uuid.UUID("5b0a3f4e-8f6c-4c55-9a53-0c6e1e0f3a11")


@dataclass(frozen=True)
class InputItem:
    source: str  # file, with ":line" or "#index" inside multi-record files
    event: dict[str, Any] | None
    error: str | None = None


def envelope_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event CloudTrail would have delivered for a raw record."""
    event_source = str(record.get("eventSource", ""))
    service = event_source.split(".", 1)[0]
    event_id = str(record.get("eventID", ""))
    return {
        "version": "0",
        "id": str(uuid.uuid5(_ID_NAMESPACE, event_id or json.dumps(record, sort_keys=True))),
        "detail-type": "AWS API Call via CloudTrail",
        "source": f"aws.{service}" if service else "aws.unknown",
        "account": record.get("recipientAccountId") or (record.get("userIdentity") or {}).get("accountId"),
        "time": record.get("eventTime"),
        "region": record.get("awsRegion"),
        "resources": [],
        "detail": record,
    }


def _items(value: Any, source: str) -> Iterator[InputItem]:
    if isinstance(value, dict) and isinstance(value.get("Records"), list):
        for index, record in enumerate(value["Records"]):
            yield from _items(record, f"{source}#{index}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _items(item, f"{source}#{index}")
    elif isinstance(value, dict) and "detail-type" in value:
        if isinstance(value.get("detail"), dict):
            yield InputItem(source, value)
        else:
            kind = type(value.get("detail")).__name__
            yield InputItem(source, None, f"EventBridge event whose detail is a {kind}, not a JSON object")
    elif isinstance(value, dict) and "eventSource" in value and "eventName" in value:
        yield InputItem(source, envelope_from_record(value))
    else:
        kind = type(value).__name__
        yield InputItem(source, None, f"not an EventBridge event or CloudTrail record (a JSON {kind})")


def _read_text(path: Path) -> str:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8")


def read_file(path: Path, label: str | None = None) -> Iterator[InputItem]:
    label = label or str(path)
    try:
        text = _read_text(path)
    except (OSError, UnicodeDecodeError, EOFError) as error:
        yield InputItem(label, None, f"cannot read file: {error}")
        return
    if path.name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield from _parse(line, f"{label}:{number}")
    else:
        yield from _parse(text, label)


def _parse(text: str, source: str) -> Iterator[InputItem]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        yield InputItem(source, None, f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}")
        return
    yield from _items(value, source)


def iter_inputs(paths: Iterable[Path], root: Path | None = None) -> Iterator[InputItem]:
    """Every item under `paths`; directories are walked in sorted order."""
    for path in paths:
        files = (
            sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES)) if path.is_dir() else [path]
        )
        for file in files:
            label = str(file.relative_to(root)) if root and file.is_relative_to(root) else str(file)
            yield from read_file(file, label)
