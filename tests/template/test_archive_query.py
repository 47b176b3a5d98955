"""Archive queries (stacks/archive-query.yaml, nested as ArchiveQueryStack): Glue tables whose
columns are what the archive holds (a real finding, real audit records), partitions projected
from the archive's key layout, an Athena workgroup whose results never land in the evidence
bucket, and saved queries that name only tables and columns that exist."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from connect_guard.archive import JsonLinesArchiver
from connect_guard.audit import AuditLog, actions_record
from connect_guard.findings import (
    Action,
    Attempt,
    Change,
    ConnectRef,
    EventRef,
    Finding,
    PolicyRef,
    Target,
)
from connect_guard.policy import Severity
from connect_guard.principals import Actor
from tests.archive_tables import BUCKET, FINDING_JSON_TEXT, QUERY_STACK, QUERY_STACK_PATH, TABLES, HiveType, conforms
from tests.template import cfn
from tests.template.stack import RESOURCES, ROOT, T, as_list, condition, parameters, props, walk

STACK = "ArchiveQueryStack"
PASSED: dict[str, Any] = RESOURCES[STACK]["Properties"]["Parameters"]
NESTED = cfn.inline_nested(PASSED, QUERY_STACK)  # as if written in template.yaml
QUERIES = {r["Properties"]["Name"]: r["Properties"] for r in NESTED.values() if r["Type"] == "AWS::Athena::NamedQuery"}


# ---- the nested stack and what the parent passes -------------------------------------------------
def test_the_query_stack_is_nested_on_by_default_and_can_be_left_out() -> None:
    assert RESOURCES[STACK]["Type"] == "AWS::Serverless::Application"
    assert props(STACK)["Location"] == "stacks/archive-query.yaml"
    assert RESOURCES[STACK]["Condition"] == "HasArchiveQuery"
    assert condition("HasArchiveQuery", parameters())
    assert not condition("HasArchiveQuery", parameters(EnableArchiveQuery="false"))
    outputs = [o for o in T["Outputs"].values() if STACK in json.dumps(o["Value"])]
    assert outputs and all(o.get("Condition") == "HasArchiveQuery" for o in outputs)


def test_the_parent_passes_every_required_parameter_and_only_declared_ones() -> None:
    declared = QUERY_STACK["Parameters"]
    required = {name for name, spec in declared.items() if "Default" not in spec}
    assert required <= set(PASSED) <= set(declared)
    assert PASSED["ArchiveBucketName"] == {"Ref": "ArchiveBucket"}
    assert PASSED["ArchiveKeyArn"] == {"Fn::GetAtt": ["ArchiveKey", "Arn"]}


def test_cfn_lint_reports_nothing_on_the_query_stack() -> None:
    matches = lint_file(Path(QUERY_STACK_PATH))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_the_makefile_lints_the_query_stack() -> None:
    assert "stacks/archive-query.yaml" in (ROOT / "Makefile").read_text()


# ---- nothing here writes evidence or grants the suite anything -----------------------------------
def test_it_has_no_role_and_the_suite_gains_no_glue_or_athena_right() -> None:
    iam = {n: r["Type"] for n, r in QUERY_STACK["Resources"].items() if r["Type"].startswith("AWS::IAM::")}
    assert iam == {"ArchiveReaderPolicy": "AWS::IAM::ManagedPolicy"}
    actions = {
        action
        for _, statement in walk(T["Resources"])
        if isinstance(statement, dict) and "Action" in statement and "Effect" in statement
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        if isinstance(action, str)
    }
    assert not {a for a in actions if a.split(":")[0] in {"glue", "athena"}}


READER = NESTED["ArchiveReaderPolicy"]["Properties"]
EVIDENCE = "arn:${AWS::Partition}:s3:::${ArchiveBucket}"
WORKGROUP_ARN = "arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:workgroup/${WorkGroup}"


def _statements() -> list[dict[str, Any]]:
    statements = READER["PolicyDocument"]["Statement"]
    assert all(s["Effect"] == "Allow" for s in statements)
    return [s | {"Action": as_list(s["Action"]), "Resource": as_list(s["Resource"])} for s in statements]


def test_the_reader_policy_is_attached_to_nothing_here() -> None:
    assert not {"Roles", "Users", "Groups"} & set(READER)
    assert READER["ManagedPolicyName"] == {"Fn::Sub": "connect-guard-${Environment}-archive-reader"}
    assert "Path" not in READER  # not one of the suite's own (/connect-guard/) policies


def test_the_reader_reads_the_evidence_and_writes_only_query_results() -> None:
    for statement in _statements():
        for action in statement["Action"]:
            service, verb = action.split(":")
            assert service in {"athena", "glue", "s3", "kms"}, action
            writes = not verb.startswith(("Get", "List", "BatchGet", "Decrypt"))
            for resource in statement["Resource"]:
                text = json.dumps(resource)
                if service == "s3" and "${ArchiveBucket}" in text:
                    assert not writes, f"{action} on the evidence"
                    if verb == "GetObject":
                        assert resource["Fn::Sub"] in {f"{EVIDENCE}/{t}/*" for t in ("findings", "audit", "logs")}
                if service == "s3" and writes:
                    assert resource == {"Fn::Sub": "${QueryResultsBucket.Arn}/results/*"}, action
                if service == "athena":
                    assert resource == {"Fn::Sub": WORKGROUP_ARN}
                if service == "glue":
                    assert writes is False and "${AWS::AccountId}" in text, action
                if service == "kms":
                    assert resource == {"Fn::GetAtt": ["ArchiveKey", "Arn"]}
                    assert statement["Condition"] == {
                        "StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}
                    }
    (listing,) = [
        s for s in _statements() if s["Resource"] == [{"Fn::Sub": EVIDENCE}] and "s3:ListBucket" in s["Action"]
    ]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["findings/*", "audit/*", "logs/*"]}}


def test_the_workgroup_enforces_results_in_their_own_bucket_under_the_archive_key() -> None:
    workgroup = NESTED["WorkGroup"]["Properties"]
    config = workgroup["WorkGroupConfiguration"]
    assert workgroup["Name"] == {"Fn::Sub": "connect-guard-${Environment}"}
    assert config["EnforceWorkGroupConfiguration"] is True  # no query may send results elsewhere
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "QueryBytesScannedCutoff"}
    results = config["ResultConfiguration"]
    assert results["OutputLocation"] == {"Fn::Sub": "s3://${QueryResultsBucket}/results/"}
    assert results["EncryptionConfiguration"] == {
        "EncryptionOption": "SSE_KMS",
        "KmsKey": {"Fn::GetAtt": ["ArchiveKey", "Arn"]},
    }
    assert "ArchiveBucket" not in json.dumps(results)


def test_the_results_bucket_is_private_encrypted_expiring_and_tls_only() -> None:
    bucket = NESTED["QueryResultsBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["ArchiveKey", "Arn"]},
    }
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (lifecycle,) = bucket["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled" and lifecycle["ExpirationInDays"] == {"Ref": "QueryResultsExpirationDays"}
    assert int(QUERY_STACK["Parameters"]["QueryResultsExpirationDays"]["Default"]) <= 30
    (deny,) = NESTED["QueryResultsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [
        {"Fn::GetAtt": ["QueryResultsBucket", "Arn"]},
        {"Fn::Sub": "${QueryResultsBucket.Arn}/*"},
    ]


def test_the_tables_read_the_evidence_bucket_and_are_projected_not_crawled() -> None:
    assert not [
        r for r in QUERY_STACK["Resources"].values() if r["Type"] in ("AWS::Glue::Crawler", "AWS::Glue::Partition")
    ]
    database = NESTED["Database"]["Properties"]["DatabaseInput"]["Name"]
    assert database == {"Fn::Sub": "connect_guard_${Environment}"}  # underscores: no quoting in SQL
    assert set(TABLES) == {"findings", "audit", "logs"}
    for table in TABLES.values():
        assert table.parameters["projection.enabled"] == "true"
        assert table.template.startswith(f"s3://{BUCKET}/{table.name}/") and table.template.endswith("/")
        assert table.partition_keys[-1] == "dt" and table.projection("dt") == "date"
        assert table.parameters["projection.dt.interval.unit"] == "DAYS"
        # Else Athena skips, without a word, every object the lifecycle moved to Glacier.
        assert table.parameters["read_restored_glacier_objects"] == "true"
    assert NESTED["WorkGroup"]["Properties"]["WorkGroupConfiguration"]["EngineVersion"] == {
        "SelectedEngineVersion": "Athena engine version 3"  # what reads restored Glacier objects
    }


# ---- the findings table holds every field a finding has ------------------------------------------
def full_finding() -> Finding:
    """A finding with every optional part filled in, so every member appears in its JSON."""
    return Finding(
        responder="role_quarantine",
        kind="iam.protected_role_deletion",
        severity=Severity.CRITICAL,
        title="Protected role deleted",
        summary="A protected role was deleted.",
        event=EventRef(
            "e-1", "DeleteRole", "iam.amazonaws.com", "2026-11-20T10:00:00Z", "444455556666", "us-east-1", "https://x"
        ),
        actor=Actor(
            "arn:aws:sts::444455556666:assumed-role/Admin/alice",
            "AssumedRole",
            "444455556666",
            "AROAEXAMPLE:alice",
            "arn:aws:iam::444455556666:role/Admin",
            "AROAEXAMPLE",
            "alice",
            "alice@example.com",
            "203.0.113.9",
            "aws-cli/2",
            True,
            "cloudformation.amazonaws.com",
            False,
        ),
        attempt=Attempt("denied", "AccessDenied", "no"),
        allowlisted=False,
        reasons=("a protected role",),
        runbook_url="https://runbooks.example.com/",
        environment="dev",
        mode="enforce",
        mode_reason="QuarantineMode=enforce",
        target=Target("role", "ConnectRole", "arn:aws:iam::444455556666:role/ConnectRole"),
        policy=PolicyRef(
            "customer_managed", "arn:aws:iam::444455556666:policy/p", "p", "v2", True, "api", ("Allow * on *",), 1
        ),
        connect=ConnectRef(
            "i-1", "arn:aws:connect:us-east-1:444455556666:instance/i-1", "u", "un", "sp", "spn", "au", "aun"
        ),
        change=Change(("Agent",), ("Agent",), ("Admin",), "approved"),
        actions=(Action("iam", "AttachRolePolicy", {"RoleName": "x", "Nested": {"a": [1]}}, "taken"),),
        snapshot={"role_name": "ConnectRole", "managed_policies": ["arn:p"], "tags": {"k": "v"}},
        truncated=("policy.grants",),
        created_at="2026-11-20T10:00:01+00:00",
    )


def test_the_findings_columns_are_exactly_a_findings_fields_with_compatible_types() -> None:
    published = json.loads(full_finding().to_json())
    findings = TABLES["findings"]
    data_columns = {n: t for n, t in findings.columns.items() if n not in findings.partition_keys}
    assert set(data_columns) == set(published)
    problems = [
        p for name, hive in data_columns.items() for p in conforms(published[name], hive, name, FINDING_JSON_TEXT)
    ]
    assert problems == []


def test_a_bare_finding_reads_too_its_absent_parts_as_null() -> None:
    bare = json.loads(
        Finding(
            responder="policy_alerts",
            kind="iam.policy_change",
            severity=Severity.HIGH,
            title="t",
            summary="s",
            event=EventRef("e", "AttachRolePolicy", "iam.amazonaws.com", "2026-11-20T10:00:00Z", "1", "us-east-1", ""),
            actor=Actor.system("x"),
            attempt=Attempt("succeeded"),
            allowlisted=False,
            reasons=(),
            runbook_url="",
            environment="dev",
            mode="detect",
        ).to_json()
    )
    columns = TABLES["findings"].columns
    assert {k for k in bare if k not in columns} == set()
    assert [p for k, v in bare.items() for p in conforms(v, columns[k], k, FINDING_JSON_TEXT)] == []


def _documented_fields() -> list[str]:
    """Every field docs/finding-schema.md's table names (`a`, `a.b`), first cell of each row."""
    fields = []
    for line in (ROOT / "docs" / "finding-schema.md").read_text().splitlines():
        if line.startswith("| `"):
            fields += re.findall(r"`([\w.]+)`", line.split("|")[1])
    return fields


def test_every_field_the_finding_schema_documents_is_a_column_or_struct_member() -> None:
    columns = TABLES["findings"].columns
    fields = _documented_fields()
    assert len(fields) > 40
    missing = []
    for field in fields:
        head, *rest = field.split(".")
        hive: HiveType | None = columns.get(head)
        for member in rest:
            hive = hive.members.get(member) if hive and hive.name == "struct" else None
        if hive is None:
            missing.append(field)
    assert missing == []


# ---- the audit table holds every field an audit record has ---------------------------------------
class _Recorder:
    """A DynamoDB client that keeps what AuditLog writes."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def put_item(self, TableName: str, Item: dict[str, Any]) -> None:
        self.items.append(Item)


def archived_audit_lines() -> list[dict[str, Any]]:
    """Audit records written through audit.py, flattened as the archive writes them."""
    db = _Recorder()
    audit = AuditLog(db, "audit", clock=lambda: datetime(2026, 11, 20, 10, tzinfo=UTC))
    audit.record(
        responder="profile_rollback",
        action="UpdateSecurityProfile",
        status="taken",
        actor="arn:aws:iam::444455556666:user/mallory",
        target="arn:aws:connect:us-east-1:444455556666:instance/i/security-profile/sp",
        reason="escalation",
        before={"permissions": ["A"]},
        after={"permissions": []},
        event_id="e-1",
        finding_id="cg-1",
        mode="enforce",
    )
    actions = [
        Action("iam", "AttachUserPolicy", {"UserName": "m"}, "taken"),
        Action("iam", "UpdateAccessKey", {}, "taken"),
    ]
    audit.write(
        actions_record(
            audit,
            actions,
            responder="role_quarantine",
            actor="arn:aws:iam::444455556666:user/mallory",
            target="arn:aws:iam::444455556666:user/mallory",
            reason="deleted a protected role",
            before=None,
            event_id="e-2",
            finding_id="cg-2",
            mode="enforce",
        )
    )
    # JsonLinesArchiver.audit: every attribute as its string (`{k: v.get("S", v)}`).
    return [json.loads(json.dumps({k: v.get("S", v) for k, v in item.items()})) for item in db.items]


def test_the_audit_columns_are_exactly_the_fields_audit_records_have() -> None:
    lines = archived_audit_lines()
    audit = TABLES["audit"]
    data_columns = {n: t for n, t in audit.columns.items() if n not in audit.partition_keys}
    assert set().union(*lines) == set(data_columns)
    assert "steps" in lines[1] and "steps" not in lines[0]  # a quarantine's several actions
    assert [p for line in lines for k, v in line.items() for p in conforms(v, data_columns[k], k)] == []


# ---- the projection finds the objects the archiver writes ----------------------------------------
class _Queue:
    def __init__(self, bodies: list[str]) -> None:
        self.messages = [{"Body": b, "ReceiptHandle": str(i)} for i, b in enumerate(bodies)]

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        batch, self.messages = self.messages[:10], self.messages[10:]
        return {"Messages": batch}

    def delete_message_batch(self, **kwargs: Any) -> None:
        pass


class _Bucket:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def put_object(self, Bucket: str, Key: str, **kwargs: Any) -> dict[str, Any]:
        assert Bucket == BUCKET
        self.keys.append(Key)
        return {}


def test_findings_objects_land_in_the_partition_of_their_day() -> None:
    now = datetime(2026, 11, 20, 23, 59, 30, tzinfo=UTC)
    bucket = _Bucket()
    archiver = JsonLinesArchiver(bucket, BUCKET, clock=now.timestamp)
    archiver.findings(_Queue([full_finding().to_json()] * 12), "queue")
    assert len(bucket.keys) == 1  # one object per drain (up to 500 findings), keyed by the day it is written
    findings = TABLES["findings"]
    for key in bucket.keys:
        assert findings.partition_of(key, date(2026, 11, 20)) == {"dt": "2026/11/20"}, key
        assert TABLES["audit"].partition_of(key, date(2026, 11, 20)) is None  # one table per kind


def test_a_key_outside_the_layout_is_in_no_partition() -> None:
    findings, logs = TABLES["findings"], TABLES["logs"]
    today = date(2026, 11, 20)
    assert findings.partition_of("findings/2026/11/21/x.jsonl", today) is None  # after NOW
    assert findings.partition_of("findings/2023/12/31/x.jsonl", today) is None  # before the range
    assert findings.partition_of("findings/2026-11-20/x.jsonl", today) is None
    assert findings.partition_of("findings/x.jsonl", today) is None
    assert logs.partition_of("logs/444455556666/eu-west-2/aws/connect/acme/0100-0200.log.gz", today) is None  # no day


def test_the_logs_template_reads_the_documented_layout_log_groups_with_slashes_included() -> None:
    # logs/<account>/<region>/<log group without its leading "/">/<yyyy>/<mm>/<dd>/...
    logs = TABLES["logs"]
    key = "logs/444455556666/eu-west-2/aws/connect/acme-contact-centre/2026/11/20/0100-0200.log.gz"
    assert logs.partition_of(key, date(2026, 11, 20)) == {
        "account": "444455556666",
        "region": "eu-west-2",
        "log_group": "aws/connect/acme-contact-centre",
        "dt": "2026/11/20",
    }
    assert {logs.projection(k) for k in ("account", "region", "log_group")} == {"injected"}


def test_the_logs_serde_splits_cloudwatch_export_lines() -> None:
    logs = TABLES["logs"]
    assert logs.serde["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.RegexSerDe"
    regex = re.compile(logs.serde["Parameters"]["input.regex"])
    line = '2026-11-20T01:02:03.456Z {"ContactId": "c-1", "Parameters": {"a": "b c"}}'
    match = regex.fullmatch(line)
    assert match and match.groups() == ("2026-11-20T01:02:03.456Z", '{"ContactId": "c-1", "Parameters": {"a": "b c"}}')
    assert regex.groups == len([c for c in logs.columns if c not in logs.partition_keys])


# ---- the saved queries ---------------------------------------------------------------------------
SQL_WORDS = {
    *("select", "from", "where", "and", "or", "not", "in", "as", "order", "by", "group", "desc", "asc"),
    *("between", "interval", "day", "distinct", "is", "null", "like", "limit", "current_date"),
    *("current_timestamp",),
}


def _sql(query: dict[str, Any]) -> str:
    text = query["QueryString"]
    assert isinstance(text, str)
    return text


def _identifiers(sql: str) -> tuple[str, set[str], set[str]]:
    """(table, identifiers read, aliases defined) of a one-table query; literals and calls left out."""
    without_literals = re.sub(r"'[^']*'", "''", sql)
    (table,) = re.findall(r"\bFROM\s+(\w+)", without_literals, re.IGNORECASE)
    assert not re.search(r"\bJOIN\b", without_literals, re.IGNORECASE)
    aliases = {a.lower() for a in re.findall(r"\bAS\s+(\w+)", without_literals, re.IGNORECASE)}
    names = set()
    for match in re.finditer(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\b(?!\s*\()", without_literals):
        name = match[0].lower()
        if name not in SQL_WORDS and name != table.lower():
            names.add(name)
    return table, names, aliases


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_a_saved_query_names_only_tables_and_columns_that_exist(name: str) -> None:
    table, names, aliases = _identifiers(_sql(QUERIES[name]))
    assert table in TABLES, f"{name}: no table {table}"
    columns = TABLES[table].columns
    unknown = []
    for identifier in names - aliases:
        head, *rest = identifier.split(".")
        hive: HiveType | None = columns.get(head)
        for member in rest:
            hive = hive.members.get(member) if hive and hive.name == "struct" else None
        if hive is None:
            unknown.append(identifier)
    assert unknown == [], f"{name}: {unknown}"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_a_saved_query_filters_on_the_day_and_names_its_placeholders(name: str) -> None:
    query = QUERIES[name]
    sql = _sql(query)
    table, _, _ = _identifiers(sql)
    assert re.search(r"\bdt\s*(>=|BETWEEN)", sql), f"{name}: reads every day (filter on dt)"
    # Athena refuses a query on an injected partition key unless it names its values.
    for key in TABLES[table].partition_keys:
        if TABLES[table].projection(key) == "injected":
            assert re.search(rf"\b{key}\s*(=|IN\b)", sql), f"{name}: must name {key}"
    described = query["Description"]
    placeholders = sql.count("?")
    if placeholders:
        listed = described.split("Parameters:", 1)[1].strip().rstrip(".").split(";")
        assert len(listed) == placeholders, f"{name}: {placeholders} placeholders, described {listed}"
    else:
        assert "No parameters" in described
    assert query["WorkGroup"] == {"Ref": "WorkGroup"} and query["Database"] == {"Ref": "Database"}


def test_the_saved_queries_a_soc_needs_are_there() -> None:
    assert {
        "actions-against-principal",
        "findings-for-account-last-30-days",
        "critical-findings-last-7-days",
        "quarantines-and-rollbacks-by-day",
        "flow-logs-for-contact",
    } <= set(QUERIES)
    assert "INTERVAL '30' DAY" in _sql(QUERIES["findings-for-account-last-30-days"])
    assert "event.account_id = ?" in _sql(QUERIES["findings-for-account-last-30-days"])


def test_the_readme_explains_each_saved_query() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Querying the archive", 1)[1].split("\n## ", 1)[0]
    assert [name for name in QUERIES if f"`{name}`" not in section] == []
