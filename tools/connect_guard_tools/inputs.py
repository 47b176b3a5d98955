"""Read replay inputs, whatever people have at hand:

- EventBridge events and raw CloudTrail records, alone, in a JSON array or as JSON Lines;
- CloudTrail S3 log files (`{"Records": [...]}`), plain or gzipped, and zip archives of them;
- `aws cloudtrail lookup-events` output (`{"Events": [{"CloudTrailEvent": "<json>"}]}`);
- CloudTrail Lake query results (`aws cloudtrail get-query-results`) of `SELECT eventJson ...`;
- directories of any of these (`.json`, `.jsonl`, `.ndjson`, each optionally `.gz`, and `.zip`,
  in any letter case).

The format is told by content where that is cheap: gzip and zip by their magic bytes, JSON Lines
by a first line that is a whole JSON value with more after it (`.jsonl` and `.ndjson` are always
read line by line, so one broken line never hides the others), documents one after another (pages
appended to one file) each from the line it starts on; UTF-8 or UTF-16 byte-order marks are
honoured.

Each record becomes an `InputItem`: an event to route, an error (a record or file that cannot be
read, so one bad line never stops a replay), or a skip (a readable record that is not an API call:
Insights, service events, console actions, other EventBridge detail types, CloudTrail digest
files), counted by the replay rather than reported as an error.

Everything is a generator: files, gzip streams and zip members are read as they are consumed, and
what one gzip stream or zip member may inflate to is capped (`MAX_INFLATED_BYTES`).
"""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import json
import re
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".zip")
_LINE_SUFFIXES = (".jsonl", ".ndjson")
_SPACE = re.compile(r"[ \t\r\n]*")  # JSON's whitespace
_ID_NAMESPACE = uuid.UUID("5b0a3f4e-8f6c-4c55-9a53-0c6e1e0f3a11")
# What one gzip stream or zip member may inflate to: far above any CloudTrail log file (they hold
# minutes of events), low enough that a zip or gzip bomb ends as an error, not an exhausted host.
MAX_INFLATED_BYTES = 512 * 1024 * 1024

API_CALL = "AWS API Call via CloudTrail"
SIGN_IN = "AWS Console Sign In via CloudTrail"
# CloudTrail's record eventType -> the EventBridge detail-type it is delivered as, and why the
# replay skips it (None: an API call, or API-like: a console sign-in is routed like one, and no
# rule of the suite matches it today).
_RECORD_TYPES: dict[str, tuple[str, str | None]] = {
    "AwsApiCall": (API_CALL, None),
    "AwsConsoleSignIn": (SIGN_IN, None),
    "AwsServiceEvent": ("AWS Service Event via CloudTrail", "service events"),
    "AwsConsoleAction": ("AWS Console Action via CloudTrail", "console actions"),
    "AwsCloudTrailInsight": ("AWS Insight via CloudTrail", "Insights"),
}
# EventBridge detail-types that are not API calls (EventBridge's documentation spells the sign-in
# type "Signin"; delivered events say "Sign In": both are routed).
_SKIPPED_DETAIL_TYPES = {detail_type: why for detail_type, why in _RECORD_TYPES.values() if why is not None}
_ROUTED_DETAIL_TYPES = {API_CALL, SIGN_IN, "AWS Console Signin via CloudTrail"}


@dataclass(frozen=True)
class InputItem:
    source: str  # file, with ":line" or "#index" inside multi-record files, "!member" inside a zip
    event: dict[str, Any] | None
    error: str | None = None
    # A readable record that is not an API call: what kind ("Insights", "service events", ...).
    # Its event, when it has an EventBridge form, is still routed: a rule that wants it gets it.
    skipped: str | None = None


class _TooLarge(Exception):
    pass


def envelope_from_record(record: dict[str, Any], detail_type: str = API_CALL) -> dict[str, Any]:
    """The EventBridge event CloudTrail would have delivered for a raw record."""
    event_source = str(record.get("eventSource") or "")
    if not event_source and isinstance(record.get("insightDetails"), dict):
        event_source = "cloudtrail.amazonaws.com"  # an Insights event is CloudTrail's own
    service = event_source.split(".", 1)[0]
    event_id = str(record.get("eventID", ""))
    return {
        "version": "0",
        "id": str(uuid.uuid5(_ID_NAMESPACE, event_id or json.dumps(record, sort_keys=True))),
        "detail-type": detail_type,
        "source": f"aws.{service}" if service else "aws.unknown",
        "account": record.get("recipientAccountId") or (record.get("userIdentity") or {}).get("accountId"),
        "time": record.get("eventTime"),
        "region": record.get("awsRegion"),
        "resources": [],
        "detail": record,
    }


def _record_item(record: dict[str, Any], source: str) -> InputItem | None:
    """A raw CloudTrail record as an item, or None when the object is not a CloudTrail record."""
    event_type = record.get("eventType")
    if isinstance(event_type, str) and event_type not in ("AwsApiCall", "AwsConsoleSignIn"):
        known = _RECORD_TYPES.get(event_type)
        if known is not None:
            return InputItem(source, envelope_from_record(record, known[0]), skipped=known[1])
        if event_type == "AwsVpceEvent":  # network activity: a call's path through a VPC endpoint
            return InputItem(source, None, skipped="network activity events")
        if "eventID" in record and "eventVersion" in record:
            return InputItem(source, None, skipped=f"other records ({event_type[:40]})")
    if "eventSource" in record and "eventName" in record:
        detail_type = _RECORD_TYPES.get(event_type or "AwsApiCall", (API_CALL, None))[0]
        return InputItem(source, envelope_from_record(record, detail_type))
    if record.get("eventCategory") == "Insight" or isinstance(record.get("insightDetails"), dict):
        return InputItem(source, envelope_from_record(record, "AWS Insight via CloudTrail"), skipped="Insights")
    return None


def _lookup_event(entry: Any, source: str) -> Iterator[InputItem]:
    """One entry of `aws cloudtrail lookup-events` output: the record is a JSON string in it."""
    text = entry.get("CloudTrailEvent") if isinstance(entry, dict) else None
    if not isinstance(text, str):
        yield InputItem(source, None, "lookup-events entry without a CloudTrailEvent string")
        return
    yield from _parse(text, source, what="CloudTrailEvent")


# SELECT * flattens the record's structures (userIdentity, requestParameters) into strings that
# cannot be turned back into the record faithfully: the replay asks for the record itself.
_LAKE_HINT = "query SELECT eventJson FROM <event data store> to replay whole records"


def _lake_row(row: Any, source: str) -> Iterator[InputItem]:
    """One row of CloudTrail Lake query results: a list of one-column objects."""
    columns: dict[str, Any] = {}
    for cell in row if isinstance(row, list) else ():
        if isinstance(cell, dict):
            columns.update(cell)
    text = next((v for k, v in columns.items() if k.lower() == "eventjson"), None)
    if isinstance(text, str):
        yield from _parse(text, source, what="eventJson")
        return
    names = ", ".join(sorted(columns)[:6]) or "none"
    yield InputItem(source, None, f"CloudTrail Lake row without an eventJson column (columns: {names}): {_LAKE_HINT}")


def _items(value: Any, source: str) -> Iterator[InputItem]:
    if isinstance(value, dict) and isinstance(value.get("Records"), list):
        for index, record in enumerate(value["Records"]):
            yield from _items(record, f"{source}#{index}")
    elif isinstance(value, dict) and isinstance(value.get("Events"), list):
        for index, entry in enumerate(value["Events"]):
            yield from _lookup_event(entry, f"{source}#{index}")
    elif isinstance(value, dict) and isinstance(value.get("QueryResultRows"), list):
        for index, row in enumerate(value["QueryResultRows"]):
            yield from _lake_row(row, f"{source}#{index}")
        if not value["QueryResultRows"] and value.get("QueryStatus") not in (None, "FINISHED"):
            why = f": {value['ErrorMessage']}" if value.get("ErrorMessage") else ""
            yield InputItem(source, None, f"CloudTrail Lake query {value['QueryStatus']}, no rows{why}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _items(item, f"{source}#{index}")
    elif isinstance(value, dict) and "detail-type" in value:
        yield _eventbridge_item(value, source)
    elif isinstance(value, dict) and (item := _record_item(value, source)) is not None:
        yield item
    elif isinstance(value, dict) and "digestStartTime" in value and "logFiles" in value:
        yield InputItem(source, None, skipped="CloudTrail digest files")
    else:
        kind = type(value).__name__
        yield InputItem(source, None, error=f"not an EventBridge event or CloudTrail record (a JSON {kind})")


def _eventbridge_item(event: dict[str, Any], source: str) -> InputItem:
    if not isinstance(event.get("detail"), dict):
        kind = type(event.get("detail")).__name__
        return InputItem(source, None, f"EventBridge event whose detail is a {kind}, not a JSON object")
    detail_type = event.get("detail-type")
    if detail_type in _ROUTED_DETAIL_TYPES:
        return InputItem(source, event)
    why = _SKIPPED_DETAIL_TYPES.get(detail_type) if isinstance(detail_type, str) else None
    return InputItem(source, event, skipped=why or "other EventBridge events")


def _parse(text: str, source: str, what: str = "") -> Iterator[InputItem]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"{what} is " if what else ""
        yield InputItem(source, None, f"{where}invalid JSON: {error.msg} at line {error.lineno} column {error.colno}")
        return
    yield from _items(value, source)


class _Capped(io.RawIOBase):
    """A binary stream that fails once more than `limit` bytes have come out of it."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner, self.left = inner, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(min(len(buffer), self.left + 1))
        if len(data) > self.left:
            raise _TooLarge
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _text(raw: IO[bytes], inflated: bool) -> io.TextIOWrapper:
    """Text from a binary stream: gunzipped when it is gzip, its encoding from its byte-order mark."""
    stream = io.BufferedReader(raw)  # type: ignore[arg-type]  # any binary stream: peek for its magic
    if stream.peek(2)[:2] == b"\x1f\x8b":
        stream = io.BufferedReader(_Capped(gzip.GzipFile(fileobj=stream), MAX_INFLATED_BYTES))
    elif inflated:
        stream = io.BufferedReader(_Capped(stream, MAX_INFLATED_BYTES))
    head = stream.peek(3)[:3]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    return io.TextIOWrapper(stream, encoding=encoding)


def _documents(text: io.TextIOWrapper, label: str, name: str) -> Iterator[InputItem]:
    """The items of one file's text: one JSON document, or JSON Lines."""
    numbered = ((n, line) for n, line in enumerate(text, start=1) if line.strip())
    if name.lower().removesuffix(".gz").endswith(_LINE_SUFFIXES):
        for number, line in numbered:
            yield from _parse(line.strip(), f"{label}:{number}")
        return
    first = next(numbered, None)
    if first is None:
        yield InputItem(label, None, "empty file")
        return
    try:
        value = json.loads(first[1])
    except json.JSONDecodeError:  # a document over many lines (pretty-printed): read it whole
        yield from _whole(first, text.read(), label)
        return
    second = next(numbered, None)
    if second is None:  # one document on one line, as CloudTrail writes its log files
        yield from _items(value, label)
        return
    # A whole JSON value on the first line and more after it: JSON Lines, whatever the name.
    yield from _items(value, f"{label}:{first[0]}")
    for number, line in itertools.chain((second,), numbered):
        yield from _parse(line.strip(), f"{label}:{number}")


def _whole(first: tuple[int, str], rest: str, label: str) -> Iterator[InputItem]:
    whole = first[1] + rest
    try:
        value = json.loads(whole)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # documents one after another: pages saved with `>>`
            yield from _concatenated(whole, label, first[0])
            return
        lines = [(n, line) for n, line in enumerate(whole.splitlines(), start=first[0]) if line.strip()]
        if len(lines) > 1 and _is_object(lines[1][1]):  # JSON Lines whose first line is the broken one
            for number, line in lines:
                yield from _parse(line.strip(), f"{label}:{number}")
            return
        yield from _parse(whole, label)  # the error, with its position
        return
    yield from _items(value, label)


def _concatenated(whole: str, label: str, first_line: int) -> Iterator[InputItem]:
    """Several JSON documents in one file, each labelled with the line it starts on."""
    decoder, at, line = json.JSONDecoder(), 0, first_line
    while (start := _SPACE.match(whole, at).end()) < len(whole):  # type: ignore[union-attr]
        line += whole.count("\n", at, start)
        try:
            value, at = decoder.raw_decode(whole, start)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno + first_line - 1} column {error.colno}"
            yield InputItem(f"{label}:{line}", None, f"invalid JSON: {error.msg} at {where}")
            return
        yield from _items(value, f"{label}:{line}")
        line += whole.count("\n", start, at)


def _is_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


_READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error, zipfile.BadZipFile, _TooLarge)


def _read_error(error: Exception) -> str:
    if isinstance(error, _TooLarge):
        return f"inflates past the replay's cap of {MAX_INFLATED_BYTES / 2**20:g} MiB: not read further"
    return f"cannot read: {error}"


def _stream_items(raw: IO[bytes], label: str, name: str, inflated: bool = False) -> Iterator[InputItem]:
    try:
        yield from _documents(_text(raw, inflated), label, name)
    except _READ_ERRORS as error:
        yield InputItem(label, None, _read_error(error))


def _member_wanted(info: zipfile.ZipInfo) -> bool:
    base = info.filename.rsplit("/", 1)[-1]
    if info.is_dir() or info.filename.startswith("__MACOSX/") or base.startswith("._"):
        return False  # macOS's resource forks ride along in zips made in the Finder
    return base.lower().endswith(SUFFIXES)


def _printable(name: str) -> str:
    """A member name as a label: whoever made the archive chose it, escape codes and newlines too."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)


def _zip_items(handle: IO[bytes], label: str) -> Iterator[InputItem]:
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        yield InputItem(label, None, f"cannot read zip archive: {error}")
        return
    with archive:
        members = sorted((i for i in archive.infolist() if _member_wanted(i)), key=lambda i: i.filename)
        if not members:
            count = len(archive.infolist())
            yield InputItem(label, None, f"zip archive with no JSON member ({count} member(s) of other kinds)")
        for info in members:
            source = f"{label}!{_printable(info.filename)}"
            if info.filename.lower().endswith(".zip"):
                yield InputItem(source, None, "zip archive inside a zip archive: not read (unzip the outer one)")
            elif info.file_size > MAX_INFLATED_BYTES:
                yield InputItem(source, None, _read_error(_TooLarge()))
            else:
                try:
                    member = archive.open(info)
                except RuntimeError:  # zipfile's word for an encrypted member
                    yield InputItem(source, None, "cannot read member: encrypted (the replay takes no password)")
                    continue
                except (NotImplementedError, *_READ_ERRORS) as error:  # a compression method zipfile lacks
                    yield InputItem(source, None, f"cannot read member: {error}")
                    continue
                with member:
                    yield from _stream_items(member, source, info.filename, inflated=True)


def read_file(path: Path, label: str | None = None) -> Iterator[InputItem]:
    label = label or str(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        yield InputItem(label, None, f"cannot read file: {error}")
        return
    with handle:
        if handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip (or an empty one)
            handle.seek(0)
            yield from _zip_items(handle, label)
            return
        handle.seek(0)
        yield from _stream_items(handle, label, path.name)


def _wanted(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SUFFIXES)


def iter_inputs(paths: Iterable[Path], root: Path | None = None) -> Iterator[InputItem]:
    """Every item under `paths`; directories are walked in sorted order."""
    for path in paths:
        files = sorted(p for p in path.rglob("*") if _wanted(p)) if path.is_dir() else [path]
        for file in files:
            label = str(file.relative_to(root)) if root and file.is_relative_to(root) else str(file)
            yield from read_file(file, label)
