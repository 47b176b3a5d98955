"""The archive's Glue tables (stacks/archive-query.yaml) as Athena reads them: column types,
partition projection, and which partition (if any) an archived key falls in. Shared by the
template tests (columns, saved queries) and the integration test (keys the archive writes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.template import cfn

# Free-form objects of a finding, read as their JSON text (json_extract them).
FINDING_JSON_TEXT = frozenset({"actions[].parameters", "snapshot"})
QUERY_STACK_PATH = PROJECT_ROOT / "stacks" / "archive-query.yaml"
QUERY_STACK = load_template(QUERY_STACK_PATH)
BUCKET = "connect-guard-dev-archive-111122223333-us-east-1"
_RESOLVER = cfn.Resolver(
    QUERY_STACK,
    cfn.parameters(QUERY_STACK, Environment="dev", ArchiveBucketName=BUCKET, ArchiveKeyArn="arn:aws:kms:k"),
    {"AWS::AccountId": "111122223333", "AWS::Region": "us-east-1", "AWS::Partition": "aws"},
)


# ---- Hive types ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HiveType:
    name: str  # string | boolean | int | bigint | double | array | struct | map
    fields: tuple[tuple[str, HiveType], ...] = ()  # struct members, in order
    item: HiveType | None = None  # array element

    @property
    def members(self) -> dict[str, HiveType]:
        return dict(self.fields)


def parse_type(text: str) -> HiveType:
    """`struct<a:string,b:array<int>>` and the like, as Glue stores a column's type."""
    parsed, rest = _parse(text.replace(" ", ""))
    assert not rest, f"trailing {rest!r} in {text!r}"
    return parsed


def _parse(text: str) -> tuple[HiveType, str]:
    match = re.match(r"[a-z]+", text)
    assert match, f"not a type: {text!r}"
    name, rest = match[0], text[match.end() :]
    if name == "array":
        assert rest.startswith("<")
        item, rest = _parse(rest[1:])
        assert rest.startswith(">"), rest
        return HiveType("array", item=item), rest[1:]
    if name == "struct":
        assert rest.startswith("<")
        fields: list[tuple[str, HiveType]] = []
        rest = rest[1:]
        while True:
            field = re.match(r"(\w+):", rest)
            assert field, f"struct member expected at {rest!r}"
            member, rest = _parse(rest[field.end() :])
            fields.append((field[1], member))
            if rest.startswith(","):
                rest = rest[1:]
                continue
            assert rest.startswith(">"), rest
            return HiveType("struct", fields=tuple(fields)), rest[1:]
    assert name in {"string", "boolean", "int", "bigint", "double"}, f"unexpected type {name}"
    return HiveType(name), rest


def conforms(value: Any, hive: HiveType, path: str, json_text: frozenset[str] = frozenset()) -> list[str]:
    """Why `value` (parsed JSON) would not read as `hive` through the JSON SerDe; [] when it does.
    A struct must name exactly the value's members (a member the table lacks is lost to every
    query); `json_text` paths are free-form objects read as their JSON text (a string column)."""
    if value is None:
        return []
    if hive.name == "string":
        if isinstance(value, str) or (path in json_text and isinstance(value, dict | list)):
            return []
        return [f"{path}: {type(value).__name__} {value!r} in a string column"]
    if hive.name == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a boolean"]
    if hive.name in {"int", "bigint"}:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not an integer"]
    if hive.name == "double":
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else [f"{path}: not a number"]
    if hive.name == "array":
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} in an array column"]
        assert hive.item is not None
        return [p for item in value for p in conforms(item, hive.item, f"{path}[]", json_text)]
    if hive.name == "struct":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__} in a struct column"]
        members = hive.members
        problems = [f"{path}.{k}: no such struct member" for k in value if k not in members]
        problems += [f"{path}.{k}: struct member the data never has" for k in members if k not in value]
        for key, member in members.items():
            if key in value:
                problems += conforms(value[key], member, f"{path}.{key}", json_text)
        return problems
    raise AssertionError(f"unexpected type {hive.name}")


# ---- tables and their projection -----------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, HiveType]
    partition_keys: tuple[str, ...]
    parameters: dict[str, str]
    serde: dict[str, Any]

    @property
    def template(self) -> str:
        return self.parameters["storage.location.template"]

    def projection(self, column: str) -> str:
        return self.parameters[f"projection.{column}.type"]

    def day_format(self, column: str) -> str:
        """The projection's Java date format as strftime's (yyyy, MM, dd and separators)."""
        java = self.parameters[f"projection.{column}.format"]
        python = java.replace("yyyy", "%Y").replace("MM", "%m").replace("dd", "%d")
        assert re.fullmatch(r"(%[Ymd]|[/-])+", python), f"unsupported date format {java!r}"
        return python

    def day_range(self, column: str, today: date) -> tuple[date, date]:
        first, last = self.parameters[f"projection.{column}.range"].split(",")
        fmt = self.day_format(column)
        start = datetime.strptime(first, fmt).replace(tzinfo=UTC).date()
        end = today if last == "NOW" else datetime.strptime(last, fmt).replace(tzinfo=UTC).date()
        return start, end

    def location(self, **values: str) -> str:
        """The S3 location Athena reads for one partition (what the projection substitutes)."""
        location = self.template
        for key in self.partition_keys:
            location = location.replace("${" + key + "}", values[key])
        assert "${" not in location, location
        return location

    def partition_of(self, key: str, today: date, bucket: str = BUCKET) -> dict[str, str] | None:
        """The partition values whose location holds `key` (an object key of `bucket`), if any: a
        key in no projected partition is invisible to every query. `today`: the projection's NOW."""
        pattern = re.escape(self.template.replace(f"s3://{BUCKET}/", f"s3://{bucket}/", 1))
        for column in self.partition_keys:
            placeholder = re.escape("${" + column + "}")
            if self.projection(column) == "date":
                shape = re.escape(datetime(2001, 2, 3, tzinfo=UTC).strftime(self.day_format(column)))
                shape = re.sub(r"\d", r"\\d", shape)
                pattern = pattern.replace(placeholder, f"(?P<{column}>{shape})", 1)
            else:
                # An injected value is whatever the query names ("/" included: a log group's);
                # the shortest reading is the one a query naming account and region makes.
                pattern = pattern.replace(placeholder, f"(?P<{column}>.+?)", 1)
        match = re.match(pattern, f"s3://{bucket}/{key}")
        if not match:
            return None
        values = match.groupdict()
        for column in self.partition_keys:
            if self.projection(column) == "date":
                day = datetime.strptime(values[column], self.day_format(column)).replace(tzinfo=UTC).date()
                start, end = self.day_range(column, today)
                if not start <= day <= end:
                    return None
        location = self.location(**values).replace(f"s3://{BUCKET}/", f"s3://{bucket}/", 1)
        assert f"s3://{bucket}/{key}".startswith(location), (key, values)
        return values


def tables() -> dict[str, Table]:
    found = {}
    for resource in QUERY_STACK["Resources"].values():
        if resource["Type"] != "AWS::Glue::Table":
            continue
        table = _RESOLVER.resolve(resource["Properties"]["TableInput"])
        storage = table["StorageDescriptor"]
        found[table["Name"]] = Table(
            name=table["Name"],
            columns={c["Name"]: parse_type(c["Type"]) for c in storage["Columns"] + table["PartitionKeys"]},
            partition_keys=tuple(k["Name"] for k in table["PartitionKeys"]),
            parameters=table["Parameters"],
            serde=storage["SerdeInfo"],
        )
    return found


TABLES = tables()
