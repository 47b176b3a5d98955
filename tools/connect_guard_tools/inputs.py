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
from pathlib import Path
from typing import IO, Any

import orjson

SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".zip")
_LINE_SUFFIXES = (".jsonl", ".ndjson")
_SPACE = re.compile(r"[ \t\r\n]*")  # JSON's whitespace
_WHITESPACE = " \t\r\n"
# How a CloudTrail S3 log file begins: the replay then reads its records one by one.
_RECORDS = re.compile(r'[ \t\r\n]*\{[ \t\r\n]*"Records"[ \t\r\n]*:[ \t\r\n]*\[')
_CHUNK = 1 << 20  # characters of text read at a time from a CloudTrail log file
_HEAD = 4096  # characters read to tell a CloudTrail log file by its opening
_FAST_TRIES = 8  # "},{" and "}]" inside one record tried before json reads it
_FAST_MISSES = 64
_AHEAD = 1 << 16  # characters kept ahead of a record's start: more than CloudTrail writes in one record
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


class InputItem:
    """One thing read: an event to route, an error, or a skip.

    A raw CloudTrail record keeps its record and becomes its EventBridge envelope only when `event`
    is asked for: the replay routes records on their own fields first, so noise never pays for one.
    """

    __slots__ = ("_event", "_text", "detail_type", "error", "record", "skipped", "source")

    def __init__(
        self, source: str, event: dict[str, Any] | None, error: str | None = None, skipped: str | None = None
    ) -> None:
        self.source = source  # file, with ":line" or "#index" inside multi-record files, "!member" in a zip
        self._event = event
        self.error = error
        # A readable record that is not an API call: what kind ("Insights", "service events", ...).
        # Its event, when it has an EventBridge form, is still routed: a rule that wants it gets it.
        self.skipped = skipped
        self.record: dict[str, Any] | None = None  # the raw CloudTrail record, when the input was one
        self.detail_type = event.get("detail-type") if isinstance(event, dict) else None
        self._text: str | None = None  # the record's text, when `record` is orjson's reading of it

    @classmethod
    def of_record(cls, source: str, record: dict[str, Any], detail_type: str, skipped: str | None = None) -> InputItem:
        item = cls.__new__(cls)  # one per record of a log file: the fields set here, not in __init__
        item.source, item._event, item.error, item.skipped, item._text = source, None, None, skipped, None
        item.record, item.detail_type = record, detail_type
        return item

    @property
    def event(self) -> dict[str, Any] | None:
        """The EventBridge event to route and replay (built from the record on first use)."""
        if self._event is None and self.record is not None:
            if self._text is not None:  # read by orjson to be routed: what is replayed is json's reading
                self.record, self._text = json.loads(self._text), None
            self._event = envelope_from_record(self.record, self.detail_type or API_CALL)
        return self._event

    @property
    def detail(self) -> dict[str, Any]:
        """The CloudTrail record: the raw one, or the event's detail ({} when it has none)."""
        if self.record is not None:
            return self.record
        detail = self._event.get("detail") if isinstance(self._event, dict) else None
        return detail if isinstance(detail, dict) else {}

    @property
    def readable(self) -> bool:
        return self._event is not None or self.record is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputItem):
            return NotImplemented
        mine = (self.source, self.event, self.error, self.skipped)
        return mine == (other.source, other.event, other.error, other.skipped)

    __hash__ = None  # type: ignore[assignment]  # mutable contents, as the dataclass it replaces

    def __repr__(self) -> str:
        return f"InputItem({self.source!r}, {self.event!r}, error={self.error!r}, skipped={self.skipped!r})"


class _TooLarge(Exception):
    pass


def record_source(record: dict[str, Any]) -> str:
    """The EventBridge `source` CloudTrail delivers a record with ("aws.iam" for iam.amazonaws.com)."""
    event_source = str(record.get("eventSource") or "")
    if not event_source and isinstance(record.get("insightDetails"), dict):
        event_source = "cloudtrail.amazonaws.com"  # an Insights event is CloudTrail's own
    service = event_source.split(".", 1)[0]
    return f"aws.{service}" if service else "aws.unknown"


def envelope_from_record(record: dict[str, Any], detail_type: str = API_CALL) -> dict[str, Any]:
    """The EventBridge event CloudTrail would have delivered for a raw record."""
    event_id = str(record.get("eventID", ""))
    return {
        "version": "0",
        "id": str(uuid.uuid5(_ID_NAMESPACE, event_id or json.dumps(record, sort_keys=True))),
        "detail-type": detail_type,
        "source": record_source(record),
        "account": record.get("recipientAccountId") or (record.get("userIdentity") or {}).get("accountId"),
        "time": record.get("eventTime"),
        "region": record.get("awsRegion"),
        "resources": [],
        "detail": record,
    }


def _record_item(record: dict[str, Any], source: str) -> InputItem | None:
    """A raw CloudTrail record as an item, or None when the object is not a CloudTrail record."""
    event_type = record.get("eventType")
    if event_type == "AwsApiCall" and "eventSource" in record and "eventName" in record:
        return InputItem.of_record(source, record, API_CALL)  # most records: the rest below
    if isinstance(event_type, str) and event_type not in ("AwsApiCall", "AwsConsoleSignIn"):
        known = _RECORD_TYPES.get(event_type)
        if known is not None:
            return InputItem.of_record(source, record, known[0], skipped=known[1])
        if event_type == "AwsVpceEvent":  # network activity: a call's path through a VPC endpoint
            return InputItem(source, None, skipped="network activity events")
        if "eventID" in record and "eventVersion" in record:
            return InputItem(source, None, skipped=f"other records ({event_type[:40]})")
    if "eventSource" in record and "eventName" in record:
        detail_type = _RECORD_TYPES.get(event_type or "AwsApiCall", (API_CALL, None))[0]
        return InputItem.of_record(source, record, detail_type)
    if record.get("eventCategory") == "Insight" or isinstance(record.get("insightDetails"), dict):
        return InputItem.of_record(source, record, "AWS Insight via CloudTrail", skipped="Insights")
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


def _single(value: Any, source: str) -> InputItem | None:
    """The one item a JSON value is, or None when it holds several (a list, a log file, a page):
    `_items` without a generator, for the 200,000 records of a streamed log file."""
    if not isinstance(value, dict):
        return None if isinstance(value, list) else _items_error(value, source)
    if "Records" in value or "Events" in value or "QueryResultRows" in value:
        return None  # `_items` tells a container from a record that merely has such a key
    if "detail-type" in value:
        return _eventbridge_item(value, source)
    item = _record_item(value, source)
    if item is not None:
        return item
    if "digestStartTime" in value and "logFiles" in value:
        return InputItem(source, None, skipped="CloudTrail digest files")
    return _items_error(value, source)


def _items_error(value: Any, source: str) -> InputItem:
    kind = type(value).__name__
    return InputItem(source, None, error=f"not an EventBridge event or CloudTrail record (a JSON {kind})")


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
        yield _items_error(value, source)


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
    if name.lower().removesuffix(".gz").endswith(_LINE_SUFFIXES):
        lines: _Rejoined | io.TextIOWrapper = text
    else:
        head = text.read(_HEAD)
        if _RECORDS.match(head):  # a CloudTrail log file: its records are read one at a time
            yield from _Chunks(text, head).documents(label)
            return
        lines = _Rejoined(head + text.readline(), text)  # the line the chunk ends inside, whole
    numbered = ((n, line) for n, line in enumerate(lines, start=1) if line.strip())
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
        yield from _whole(first, lines.read(), label)
        return
    second = next(numbered, None)
    if second is None:  # one document on one line, as CloudTrail writes its log files
        yield from _items(value, label)
        return
    # A whole JSON value on the first line and more after it: JSON Lines, whatever the name.
    yield from _items(value, f"{label}:{first[0]}")
    for number, line in itertools.chain((second,), numbered):
        yield from _parse(line.strip(), f"{label}:{number}")


class _Rejoined:
    """A text stream whose first chunk was read to look at it: its lines, then the rest."""

    def __init__(self, head: str, text: io.TextIOWrapper) -> None:
        self.head, self.text = io.StringIO(head), text

    def __iter__(self) -> Iterator[str]:
        yield from self.head
        yield from self.text

    def read(self) -> str:
        return self.head.read() + self.text.read()


class _Broken(Exception):
    """Text that is not JSON, where it breaks: the message json gives for a whole-document parse."""

    def __init__(self, msg: str, line: int, column: int) -> None:
        super().__init__(f"invalid JSON: {msg} at line {line} column {column}")


class _Chunks:
    """JSON documents read from a text stream a chunk at a time, records of a `{"Records": [...]}`
    document one by one: a 200,000-record CloudTrail file never sits in memory whole (as text it is
    ~250 MB, as Python objects over 1 GiB). Positions in errors are the file's lines and columns."""

    def __init__(self, text: IO[str], head: str) -> None:
        self.text, self.buffer, self.at, self.eof = text, head, 0, False
        self.lines_before = 0  # newlines before buffer[0]
        self.column_before = 0  # characters between the last of them and buffer[0]
        self.scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner
        self.reading = ""  # the label of what is being read: an error is labelled with it
        self.misses = 0  # records orjson did not read: a file where it often misses is json's alone

    def _more(self) -> bool:
        """Read on: keep buffer[at:], add at least as much again (a record longer than a chunk
        is re-parsed a logarithmic number of times, not once per chunk)."""
        if self.eof:
            return False
        data = self.text.read(max(_CHUNK, len(self.buffer) - self.at))
        if not data:
            self.eof = True
            return False
        # find (memchr) first: a CloudTrail file is one line, and counting is ten times slower.
        newlines = self.buffer.count("\n", 0, self.at) if self.buffer.find("\n", 0, self.at) >= 0 else 0
        if newlines:
            self.lines_before += newlines
            self.column_before = self.at - self.buffer.rfind("\n", 0, self.at) - 1
        else:
            self.column_before += self.at
        self.buffer, self.at = self.buffer[self.at :] + data, 0
        return True

    def where(self, at: int) -> tuple[int, int]:
        """The file's line and column (both from 1, as json counts them) of buffer[at]."""
        newlines = self.buffer.count("\n", 0, at)
        if newlines:
            return self.lines_before + newlines + 1, at - self.buffer.rfind("\n", 0, at)
        return self.lines_before + 1, self.column_before + at + 1

    def _peek(self) -> str:
        """The next character that is not whitespace ("" at the end), read up to."""
        while True:
            self.at = _SPACE.match(self.buffer, self.at).end()  # type: ignore[union-attr]
            if self.at < len(self.buffer) or not self._more():
                return self.buffer[self.at : self.at + 1]

    def _value(self) -> Any:
        if len(self.buffer) - self.at < _AHEAD and not self.eof:
            self._more()  # read on before a record is cut: a cut one costs an exception and a re-parse
        if self.buffer[self.at : self.at + 1] in _WHITESPACE:  # also "": the chunk's end
            self._peek()
        while True:
            try:
                try:
                    value, end = self.scan(self.buffer, self.at)
                except StopIteration as stop:  # what JSONDecoder.raw_decode says, without its frame
                    raise json.JSONDecodeError("Expecting value", self.buffer, stop.value) from None
            except json.JSONDecodeError as error:
                # Cut off by the chunk's end, or broken? Only the former reads on.
                cut = error.pos >= len(self.buffer) - 16 or error.msg.startswith("Unterminated string")
                if cut and self._more():
                    continue
                raise _Broken(error.msg, *self.where(error.pos)) from None
            if end >= len(self.buffer) and self._more():  # a number may go on in the next chunk
                continue
            self.at = end
            return value

    def _record(self) -> tuple[Any, str | None]:
        """The next record of a log file, and its text when orjson read it. CloudTrail writes its
        records compact, one after another: the text up to a "},{" (or "}]") that orjson reads
        whole is the record (an object ends at its own closing brace), read in half json's time.
        Anything else, or anything orjson refuses, is read by `_value` as before: its errors and
        positions are json's. orjson reads integers past 64 bits as floats, so its reading serves
        routing only (strings and structure are the same): a routed record is read again by json."""
        if len(self.buffer) - self.at < _AHEAD and not self.eof:
            self._more()
        buffer, start = self.buffer, self.at
        if self.misses < _FAST_MISSES and buffer.startswith("{", start):
            at = start
            for _ in range(_FAST_TRIES):
                end = buffer.find("},{", at, start + _AHEAD)
                if end < 0:  # the last record
                    end = buffer.find("}]", at, start + _AHEAD)
                if end < 0:
                    break
                text = buffer[start : end + 1]
                try:
                    value = orjson.loads(text)
                except orjson.JSONDecodeError:  # cut inside the record (a nested array, a string)
                    at = end + 1
                    continue
                self.at = end + 1
                return value, text
            self.misses += 1
        return self._value(), None

    def _expect(self, char: str, msg: str) -> None:
        if self._peek() != char:
            raise _Broken(msg, *self.where(self.at))
        self.at += 1

    def _records(self, label: str) -> Iterator[InputItem]:
        """The records of a `{"Records": [` document (the opening read), then the rest of it."""
        index = 0
        if self._peek() == "]":
            self.at += 1
        else:
            while True:
                self.reading = source = f"{label}#{index}"  # an error is the record's
                try:
                    value, text = self._record()
                except _Broken:
                    if index and self._peek() == "]":  # at the bracket (json says at the comma)
                        raise _Broken("Illegal trailing comma before end of array", *self.where(self.at)) from None
                    raise
                item = _single(value, source)
                if text is not None and (item is None or item.record is not value):
                    value = json.loads(text)  # not a raw record (a container, an event): json's reading
                    item = _single(value, source)
                elif item is not None and text is not None:
                    item._text = text
                if item is None:
                    yield from _items(value, source)
                else:
                    yield item
                index += 1
                char = self.buffer[self.at : self.at + 1]
                if char != ",":
                    char = self._peek()
                    if char == "]":
                        self.at += 1
                        break
                    if char != ",":
                        self.reading = f"{label}#{index}"  # where the next record should have begun
                        raise _Broken("Expecting ',' delimiter", *self.where(self.at))
                self.at += 1
        self.reading = label
        while self._peek() == ",":  # other members of the document: read, not replayed
            self.at += 1
            if not isinstance(self._value(), str):
                raise _Broken("Expecting property name enclosed in double quotes", *self.where(self.at))
            self._expect(":", "Expecting ':' delimiter")
            self._value()
        self._expect("}", "Expecting ',' delimiter")

    def documents(self, label: str) -> Iterator[InputItem]:
        """Every document of the text, the first a `{"Records": [` one; more after it (files
        appended to one another) are each labelled with the line they start on."""
        self.reading = label
        try:
            while self._peek():
                if self.reading != label:
                    self.reading = f"{label}:{self.where(self.at)[0]}"
                source = self.reading
                while len(self.buffer) - self.at < 64 and self._more():
                    pass  # enough to see the opening of a CloudTrail log file
                opening = _RECORDS.match(self.buffer, self.at)
                if opening:
                    self.at = opening.end()
                    yield from self._records(source)
                else:
                    yield from _items(self._value(), source)
                self.reading = ""  # the next document, if any, is labelled with its line
        except _Broken as error:  # nothing after it can be told apart from the break: stop here
            yield InputItem(self.reading, None, str(error))


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
