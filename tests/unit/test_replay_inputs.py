"""The replay reads what people have: lookup-events output, CloudTrail Lake results, JSON Lines in
any file, zip archives of CloudTrail logs; records that are not API calls are skipped, not errors."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from connect_guard_tools import inputs
from connect_guard_tools.inputs import API_CALL, SIGN_IN, InputItem, envelope_from_record, iter_inputs, read_file
from tests.conftest import EVENTS, load_event

ATTACH = load_event("iam/attach-user-policy-administratoraccess.json")["detail"]
READ = load_event("negatives/get-user-policy.json")["detail"]
PUT = load_event("iam/put-user-policy-inline-notaction.json")["detail"]
ACCOUNT = "111122223333"

INSIGHT_START = {
    "eventVersion": "1.08",
    "eventTime": "2026-11-20T10:00:00Z",
    "awsRegion": "us-east-1",
    "eventID": "9a2b6f3e-1c4d-4e5f-8a7b-6c5d4e3f2a10",
    "eventType": "AwsCloudTrailInsight",
    "recipientAccountId": ACCOUNT,
    "sharedEventID": "4f1e2d3c-5b6a-4978-8e9f-0a1b2c3d4e5f",
    "insightDetails": {
        "state": "Start",
        "eventSource": "iam.amazonaws.com",
        "eventName": "AttachUserPolicy",
        "insightType": "ApiCallRateInsight",
        "insightContext": {
            "statistics": {
                "baseline": {"average": 0.0138},
                "insight": {"average": 4.0},
                "insightDuration": 1,
                "baselineDuration": 10079,
            },
            "attributions": [],
        },
    },
    "eventCategory": "Insight",
}
INSIGHT_END = {
    **INSIGHT_START,
    "eventID": "0b3c7a4f-2d5e-4f60-9b8c-7d6e5f4a3b21",
    "eventTime": "2026-11-20T10:05:00Z",
    "insightDetails": {**INSIGHT_START["insightDetails"], "state": "End"},
}
SERVICE_EVENT = {
    "eventVersion": "1.10",
    "userIdentity": {"accountId": ACCOUNT, "invokedBy": "kms.amazonaws.com"},
    "eventTime": "2026-11-20T08:47:30Z",
    "eventSource": "kms.amazonaws.com",
    "eventName": "RotateKey",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "kms.amazonaws.com",
    "userAgent": "kms.amazonaws.com",
    "requestParameters": None,
    "responseElements": None,
    "eventID": "5c8e1f2a-3b4d-4c6e-9f70-8a1b2c3d4e5f",
    "readOnly": False,
    "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k"}],
    "eventType": "AwsServiceEvent",
    "managementEvent": True,
    "recipientAccountId": ACCOUNT,
    "serviceEventDetails": {"keyOrigin": "AWS_KMS", "keyType": "CUSTOMER_MANAGED", "keySpec": "SYMMETRIC_DEFAULT"},
    "eventCategory": "Management",
}
CONSOLE_ACTION = {
    **SERVICE_EVENT,
    "eventID": "6d9f2a3b-4c5e-4d7f-a081-9b2c3d4e5f60",
    "eventSource": "health.amazonaws.com",
    "eventName": "DescribeEventAggregates",
    "eventType": "AwsConsoleAction",
}
NETWORK_ACTIVITY = {
    **SERVICE_EVENT,
    "eventID": "7e0a3b4c-5d6f-4e80-b192-0c3d4e5f6a71",
    "eventSource": "kms.amazonaws.com",
    "eventName": "ListKeys",
    "eventType": "AwsVpceEvent",
    "errorCode": "VpceAccessDenied",
    "eventCategory": "NetworkActivity",
}
SIGN_IN_RECORD = {
    "eventVersion": "1.10",
    "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/ops-jmartin", "accountId": ACCOUNT},
    "eventTime": "2026-11-20T09:02:11Z",
    "eventSource": "signin.amazonaws.com",
    "eventName": "ConsoleLogin",
    "awsRegion": "us-east-1",
    "responseElements": {"ConsoleLogin": "Success"},
    "eventID": "8f1b4c5d-6e7a-4f91-c2a3-1d4e5f6a7b82",
    "eventType": "AwsConsoleSignIn",
    "recipientAccountId": ACCOUNT,
    "eventCategory": "Management",
}
DIGEST = {
    "awsAccountId": ACCOUNT,
    "digestStartTime": "2026-11-20T09:15:02Z",
    "digestEndTime": "2026-11-20T10:15:02Z",
    "digestS3Bucket": "org-trail-logs",
    "digestS3Object": f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/20/x.json.gz",
    "digestPublicKeyFingerprint": "6e5a0c3f1b2d4e7a8c9f0b1d2e3f4a5b",
    "digestSignatureAlgorithm": "SHA256withRSA",
    "logFiles": [],
}


def eventbridge(detail_type: str, source: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "3f9d1c2b-7a6e-4b5d-8c4f-2e1d0c9b8a76",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-11-20T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def lookup_events(*records: dict[str, Any], next_token: bool = True) -> dict[str, Any]:
    """`aws cloudtrail lookup-events` output: the record is a JSON string in each entry."""
    events = [
        {
            "EventId": r["eventID"],
            "EventName": r.get("eventName", ""),
            "ReadOnly": "false",
            "EventTime": str(r["eventTime"]).replace("Z", "+00:00"),
            "EventSource": r.get("eventSource", ""),
            "Resources": [],
            "CloudTrailEvent": json.dumps(r, separators=(",", ":")),
        }
        for r in records
    ]
    return {"Events": events, **({"NextToken": "eyJOZXh0VG9rZW4iOiBudWxsfQ=="} if next_token else {})}


def lake_results(*records: dict[str, Any], column: str = "eventjson") -> dict[str, Any]:
    """`aws cloudtrail get-query-results` of `SELECT eventJson FROM <eds>`."""
    return {
        "QueryStatus": "FINISHED",
        "QueryStatistics": {"ResultsCount": len(records), "TotalResultsCount": len(records), "BytesScanned": 81234},
        "QueryResultRows": [[{column: json.dumps(r)}] for r in records],
    }


def items(path: Path) -> list[InputItem]:
    return list(iter_inputs([path], root=path.parent if path.is_file() else path))


def summary(found: list[InputItem]) -> list[tuple[str, str | None, str | None]]:
    """(source, eventID or the error/skip, detail-type) for each item."""
    rows = []
    for item in found:
        detail = (item.event or {}).get("detail") or {}
        what = item.error or (f"skipped: {item.skipped}" if item.skipped else detail.get("eventID"))
        rows.append((item.source, what, (item.event or {}).get("detail-type")))
    return rows


def pretty(value: Any) -> str:
    return json.dumps(value, indent=4)  # as the AWS CLI writes its output


# ---- lookup-events ------------------------------------------------------------------------------


def test_lookup_events_output_yields_each_cloudtrail_event_as_the_envelope_eventbridge_delivers(tmp_path):
    (tmp_path / "lookup.json").write_text(pretty(lookup_events(ATTACH, READ, SERVICE_EVENT)))
    found = items(tmp_path / "lookup.json")
    assert summary(found) == [
        ("lookup.json#0", ATTACH["eventID"], API_CALL),
        ("lookup.json#1", READ["eventID"], API_CALL),
        ("lookup.json#2", "skipped: service events", "AWS Service Event via CloudTrail"),
    ]
    assert found[0].event == envelope_from_record(ATTACH)
    assert found[0].event["source"] == "aws.iam" and found[0].event["account"] == ACCOUNT


def test_lookup_events_entries_without_a_readable_record_are_errors_and_the_rest_is_read(tmp_path):
    document = lookup_events(ATTACH, READ, next_token=False)
    document["Events"][0]["CloudTrailEvent"] = '{"eventVersion": "1.10", "eventID": '  # cut short
    del document["Events"][1]["CloudTrailEvent"]
    document["Events"].append(lookup_events(PUT)["Events"][0])
    (tmp_path / "lookup.json").write_text(pretty(document))
    found = summary(items(tmp_path / "lookup.json"))
    assert found[0][1].startswith("CloudTrailEvent is invalid JSON: Expecting value at line 1")
    assert found[1][1] == "lookup-events entry without a CloudTrailEvent string"
    assert found[2] == ("lookup.json#2", PUT["eventID"], API_CALL)


def test_lookup_events_written_by_windows_powershell_in_utf16_reads(tmp_path):
    text = pretty(lookup_events(ATTACH)).replace("\n", "\r\n")
    (tmp_path / "lookup.json").write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    (tmp_path / "bom.json").write_bytes(
        codecs.BOM_UTF8 + json.dumps(load_event("negatives/get-user-policy.json")).encode()
    )
    found = summary(items(tmp_path))
    assert found == [("bom.json", READ["eventID"], API_CALL), ("lookup.json#0", ATTACH["eventID"], API_CALL)]


# ---- CloudTrail Lake ----------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["eventjson", "eventJson"])
def test_cloudtrail_lake_rows_of_event_json_are_replayed_records(tmp_path, column):
    (tmp_path / "lake.json").write_text(pretty(lake_results(ATTACH, INSIGHT_START, column=column)))
    found = items(tmp_path / "lake.json")
    assert summary(found) == [
        ("lake.json#0", ATTACH["eventID"], API_CALL),
        ("lake.json#1", "skipped: Insights", "AWS Insight via CloudTrail"),
    ]
    assert found[0].event == envelope_from_record(ATTACH)


def test_cloudtrail_lake_select_star_rows_are_errors_that_say_which_query_to_run(tmp_path):
    flattened = [
        {"eventversion": "1.10"},
        {"useridentity": "{type=IAMUser, principalid=AIDA4YSNI2G3IITN5XVKT, arn=arn:aws:iam::111122223333:user/x}"},
        {"eventname": "AttachUserPolicy"},
        {"requestparameters": "{policyArn=arn:aws:iam::aws:policy/AdministratorAccess, userName=alice}"},
    ]
    (tmp_path / "lake.json").write_text(pretty({"QueryStatus": "FINISHED", "QueryResultRows": [flattened]}))
    ((source, error, _),) = summary(items(tmp_path / "lake.json"))
    assert source == "lake.json#0"
    assert error == (
        "CloudTrail Lake row without an eventJson column (columns: eventname, eventversion, requestparameters, "
        "useridentity): query SELECT eventJson FROM <event data store> to replay whole records"
    )


def test_a_failed_cloudtrail_lake_query_says_so(tmp_path):
    failed = {"QueryStatus": "FAILED", "QueryResultRows": [], "ErrorMessage": "Query timed out"}
    (tmp_path / "lake.json").write_text(pretty(failed))
    assert summary(items(tmp_path / "lake.json")) == [
        ("lake.json", "CloudTrail Lake query FAILED, no rows: Query timed out", None)
    ]


# ---- JSON Lines, by content and by name ---------------------------------------------------------


def test_json_lines_in_a_json_file_read_line_by_line_and_a_bad_line_spoils_only_itself(tmp_path):
    lines = [json.dumps(ATTACH), '{"eventVersion": "1.10", "eventID": "cut', "", json.dumps(READ)]
    (tmp_path / "dataset.json").write_text("\n".join(lines) + "\n")
    found = summary(items(tmp_path / "dataset.json"))
    assert found[0] == ("dataset.json:1", ATTACH["eventID"], API_CALL)
    assert found[1][0] == "dataset.json:2" and found[1][1].startswith("invalid JSON: Unterminated string")
    assert found[2] == ("dataset.json:4", READ["eventID"], API_CALL)


def test_json_lines_in_a_json_file_whose_first_line_is_broken_still_read_the_others(tmp_path):
    (tmp_path / "dataset.json").write_text('{"broken": \n' + json.dumps(ATTACH) + "\n" + json.dumps(READ) + "\n")
    found = summary(items(tmp_path / "dataset.json"))
    assert [(s, w) for s, w, _ in found[1:]] == [
        ("dataset.json:2", ATTACH["eventID"]),
        ("dataset.json:3", READ["eventID"]),
    ]
    assert found[0][0] == "dataset.json:1" and found[0][1].startswith("invalid JSON: Expecting value")


def test_a_broken_pretty_printed_document_is_one_error_with_its_position(tmp_path):
    cut = pretty({"Events": [{"CloudTrailEvent": json.dumps(ATTACH)}]})[:-10]
    (tmp_path / "page.json").write_text(cut)
    ((source, error, _),) = summary(items(tmp_path / "page.json"))
    assert source == "page.json" and error.startswith("invalid JSON: ")
    assert f" at line {cut.count(chr(10)) + 1} column " in error  # where the document breaks off


def test_a_cloudtrail_log_file_broken_off_still_replays_the_records_before_the_break(tmp_path):
    # Its records are read one by one (streamed): the break is the last record's error, at the
    # position a whole-document parse gives.
    cut = pretty({"Records": [ATTACH, READ]})[:-40]
    (tmp_path / "log.json").write_text(cut)
    found = summary(items(tmp_path / "log.json"))
    assert found[0] == ("log.json#0", ATTACH["eventID"], API_CALL)
    ((source, error, _),) = found[1:]
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(cut)
    expected = f"invalid JSON: {whole.value.msg} at line {whole.value.lineno} column {whole.value.colno}"
    assert (source, error) == ("log.json#1", expected)
    assert f" at line {cut.count(chr(10)) + 1} column " in error  # where the document breaks off


def test_lookup_events_pages_appended_to_one_file_are_each_read(tmp_path):
    first, second = pretty(lookup_events(ATTACH)), pretty(lookup_events(READ, next_token=False))
    (tmp_path / "pages.json").write_text(first + "\n" + second + "\n" + '{"Events": [\n')
    found = summary(items(tmp_path / "pages.json"))
    start = first.count("\n") + 2  # the line the second page starts on
    assert found[:2] == [
        ("pages.json:1#0", ATTACH["eventID"], API_CALL),
        (f"pages.json:{start}#0", READ["eventID"], API_CALL),
    ]
    end = start + second.count("\n") + 1
    assert found[2][0] == f"pages.json:{end}" and found[2][1].startswith(
        f"invalid JSON: Expecting value at line {end + 1}"
    )


def test_a_cloudtrail_log_file_on_one_line_is_one_document_not_json_lines(tmp_path):
    (tmp_path / "log.json").write_text(json.dumps({"Records": [ATTACH, READ]}))
    assert [i.source for i in items(tmp_path / "log.json")] == ["log.json#0", "log.json#1"]


def test_ndjson_gz_and_upper_case_extensions_are_found_in_a_directory(tmp_path):
    (tmp_path / "a.ndjson").write_text(json.dumps(ATTACH) + "\n" + json.dumps(READ) + "\n")
    (tmp_path / "b.ndjson.gz").write_bytes(gzip.compress((json.dumps(PUT) + "\n").encode()))
    (tmp_path / "C.JSON").write_text(json.dumps(load_event("negatives/iam-get-role.json")))
    (tmp_path / "D.JSON.GZ").write_bytes(gzip.compress(json.dumps({"Records": [SIGN_IN_RECORD]}).encode()))
    (tmp_path / "notes.txt").write_text("not an input")
    assert [(source, what) for source, what, _ in summary(items(tmp_path))] == [
        ("C.JSON", load_event("negatives/iam-get-role.json")["detail"]["eventID"]),
        ("D.JSON.GZ#0", SIGN_IN_RECORD["eventID"]),
        ("a.ndjson:1", ATTACH["eventID"]),
        ("a.ndjson:2", READ["eventID"]),
        ("b.ndjson.gz:1", PUT["eventID"]),
    ]


def test_gzip_is_told_by_its_magic_not_its_name(tmp_path):
    # A browser that unpacked a .json.gz on download keeps the name; a gzip saved as .json is still gzip.
    (tmp_path / "unpacked.json.gz").write_text(json.dumps({"Records": [ATTACH]}))
    (tmp_path / "packed.json").write_bytes(gzip.compress(json.dumps({"Records": [READ]}).encode()))
    assert summary(items(tmp_path)) == [
        ("packed.json#0", READ["eventID"], API_CALL),
        ("unpacked.json.gz#0", ATTACH["eventID"], API_CALL),
    ]


def test_unreadable_files_are_errors_with_their_reason(tmp_path):
    (tmp_path / "empty.json").write_text("  \n\n")
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [ATTACH]}).encode())[:-12])
    (tmp_path / "latin1.json").write_bytes(b'{"eventSource": "iam.amazonaws.com", "eventName": "Caf\xe9"}')
    found = {source: what for source, what, _ in summary(items(tmp_path))}
    assert found["empty.json"] == "empty file"
    assert found["cut.json.gz"].startswith("cannot read: Compressed file ended before")
    assert found["latin1.json"].startswith("cannot read: 'utf-8' codec can't decode byte 0xe9")


# ---- zip archives -------------------------------------------------------------------------------


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def log_file(*records: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps({"Records": list(records)}).encode())


PREFIX = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/20/"


def test_a_zip_of_cloudtrail_logs_reads_every_json_member_in_name_order(tmp_path):
    (tmp_path / "trail.ZIP").write_bytes(
        zipped(
            {
                f"{PREFIX}{ACCOUNT}_CloudTrail_us-east-1_20261120T1020Z_b.json.gz": log_file(READ),
                f"{PREFIX}{ACCOUNT}_CloudTrail_us-east-1_20261120T1015Z_a.json.gz": log_file(ATTACH, PUT),
                f"AWSLogs/{ACCOUNT}/CloudTrail-Insight/us-east-1/2026/11/20/i.json.gz": log_file(
                    INSIGHT_START, INSIGHT_END
                ),
                f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/20/d.json.gz": gzip.compress(
                    json.dumps(DIGEST).encode()
                ),
                "lines.jsonl": (json.dumps(SIGN_IN_RECORD) + "\n").encode(),
                f"__MACOSX/{PREFIX}._{ACCOUNT}_CloudTrail_us-east-1_20261120T1015Z_a.json.gz": b"\x00\x05\x16\x07",
                "README.txt": b"exported for the incident review",
                f"{PREFIX}": b"",
            }
        )
    )
    found = summary(items(tmp_path / "trail.ZIP"))
    a, b = (f"trail.ZIP!{PREFIX}{ACCOUNT}_CloudTrail_us-east-1_20261120T10{t}.json.gz" for t in ("15Z_a", "20Z_b"))
    insight = f"trail.ZIP!AWSLogs/{ACCOUNT}/CloudTrail-Insight/us-east-1/2026/11/20/i.json.gz"
    digest = f"trail.ZIP!AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/20/d.json.gz"
    assert found == [
        (digest, "skipped: CloudTrail digest files", None),
        (insight + "#0", "skipped: Insights", "AWS Insight via CloudTrail"),
        (insight + "#1", "skipped: Insights", "AWS Insight via CloudTrail"),
        (a + "#0", ATTACH["eventID"], API_CALL),
        (a + "#1", PUT["eventID"], API_CALL),
        (b + "#0", READ["eventID"], API_CALL),
        ("trail.ZIP!lines.jsonl:1", SIGN_IN_RECORD["eventID"], SIGN_IN),
    ]


def test_a_bad_zip_member_is_reported_alone_and_the_others_are_read(tmp_path):
    data = bytearray(
        zipped(
            {
                "a-encrypted.json": json.dumps(ATTACH).encode(),
                "b-corrupt.json": json.dumps({"Records": [PUT] * 40}).encode(),
                "c-good.json": json.dumps(READ).encode(),
                "d-nested.zip": zipped({"x.json": b"{}"}),
            }
        )
    )
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1  # the first member claims to be encrypted
    corrupt = data.index(b"b-corrupt.json") + len("b-corrupt.json") + 20  # inside its deflated data
    data[corrupt] ^= 0xFF
    (tmp_path / "logs.zip").write_bytes(bytes(data))
    found = summary(items(tmp_path / "logs.zip"))
    assert found[0] == (
        "logs.zip!a-encrypted.json",
        "cannot read member: encrypted (the replay takes no password)",
        None,
    )
    assert found[1][0] == "logs.zip!b-corrupt.json" and found[1][1].startswith("cannot read: ")
    assert found[2] == ("logs.zip!c-good.json", READ["eventID"], API_CALL)
    assert found[3] == (
        "logs.zip!d-nested.zip",
        "zip archive inside a zip archive: not read (unzip the outer one)",
        None,
    )


def test_a_zip_member_name_cannot_write_to_the_terminal(tmp_path):
    # The archive comes from wherever the incident came from: its names are not trusted.
    (tmp_path / "x.zip").write_bytes(zipped({"\x1b[2J\x1b[1;1H[!] fake\n.json": json.dumps(READ).encode()}))
    (item,) = items(tmp_path / "x.zip")
    assert item.source == "x.zip!\\x1b[2J\\x1b[1;1H[!] fake\\x0a.json" and item.event is not None


def test_a_truncated_or_empty_zip_is_an_error(tmp_path):
    (tmp_path / "cut.zip").write_bytes(zipped({"a.json": json.dumps(ATTACH).encode()})[:-30])
    (tmp_path / "other.zip").write_bytes(zipped({"report.csv": b"a,b\n"}))
    found = {source: what for source, what, _ in summary(items(tmp_path))}
    assert found == {
        "cut.zip": "cannot read zip archive: File is not a zip file",
        "other.zip": "zip archive with no JSON member (1 member(s) of other kinds)",
    }


def test_zip_and_gzip_bombs_stop_at_the_cap_after_what_came_before(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_INFLATED_BYTES", 64 * 1024)
    line = json.dumps(READ) + "\n"
    many = (line * (200 * 1024 // len(line))).encode()  # ~200 KiB inflated, a few KiB deflated
    (tmp_path / "bomb.jsonl.gz").write_bytes(gzip.compress(many))
    (tmp_path / "bomb.zip").write_bytes(
        zipped(
            {"a-big.json": json.dumps({"Records": [READ] * 200}).encode(), "b-small.json": json.dumps(ATTACH).encode()}
        )
    )
    (tmp_path / "gz-in-zip.zip").write_bytes(zipped({"x.jsonl.gz": gzip.compress(many)}))
    found = summary(items(tmp_path))
    cap = "inflates past the replay's cap of 0.0625 MiB: not read further"
    by_file: dict[str, list[tuple[str, str | None]]] = {}
    for source, what, _ in found:
        by_file.setdefault(source.split("!")[0].split(":")[0], []).append((source, what))
    gz = by_file["bomb.jsonl.gz"]
    # Read lazily: the lines before the cap are replayed, then one error says why the rest is not.
    assert len(gz) > 10 and all(what == READ["eventID"] for _, what in gz[:-1])
    assert gz[-1] == ("bomb.jsonl.gz", cap)
    assert by_file["bomb.zip"] == [("bomb.zip!a-big.json", cap), ("bomb.zip!b-small.json", ATTACH["eventID"])]
    assert by_file["gz-in-zip.zip"][-1] == ("gz-in-zip.zip!x.jsonl.gz", cap)


def test_a_zip_member_that_declares_more_than_the_cap_is_not_opened(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_INFLATED_BYTES", 64 * 1024)
    (tmp_path / "big.zip").write_bytes(zipped({"big.json": json.dumps({"Records": [ATTACH] * 100}).encode()}))
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: opened.append(a) or pytest.fail("opened"))
    (item,) = read_file(tmp_path / "big.zip", "big.zip")
    assert (item.source, item.error) == (
        "big.zip!big.json",
        "inflates past the replay's cap of 0.0625 MiB: not read further",
    )
    assert opened == []


# ---- records that are not API calls -------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "skipped", "detail_type"),
    [
        (INSIGHT_START, "Insights", "AWS Insight via CloudTrail"),
        (SERVICE_EVENT, "service events", "AWS Service Event via CloudTrail"),
        (CONSOLE_ACTION, "console actions", "AWS Console Action via CloudTrail"),
        (NETWORK_ACTIVITY, "network activity events", None),
        (
            {**SERVICE_EVENT, "eventType": "ActivityLog", "eventCategory": "ActivityAuditLog"},
            "other records (ActivityLog)",
            None,
        ),
        (DIGEST, "CloudTrail digest files", None),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_raw_records_that_are_not_api_calls_are_skipped_by_kind(tmp_path, record, skipped, detail_type):
    (tmp_path / "r.json").write_text(json.dumps(record))
    (item,) = items(tmp_path / "r.json")
    assert (item.skipped, item.error, (item.event or {}).get("detail-type")) == (skipped, None, detail_type)


def test_a_console_sign_in_is_routed_as_eventbridge_delivers_it(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(SIGN_IN_RECORD))
    (item,) = items(tmp_path / "r.json")
    assert item.skipped is None and item.error is None
    assert (item.event["detail-type"], item.event["source"]) == ("AWS Console Sign In via CloudTrail", "aws.signin")


@pytest.mark.parametrize(
    ("detail_type", "source", "skipped"),
    [
        ("Scheduled Event", "aws.events", "other EventBridge events"),
        ("GuardDuty Finding", "aws.guardduty", "other EventBridge events"),
        ("AWS Insight via CloudTrail", "aws.cloudtrail", "Insights"),
        ("AWS Service Event via CloudTrail", "aws.kms", "service events"),
        ("AWS Console Signin via CloudTrail", "aws.signin", None),  # EventBridge's documented spelling
        (SIGN_IN, "aws.signin", None),
        (API_CALL, "aws.iam", None),
    ],
)
def test_eventbridge_events_are_skipped_by_detail_type(tmp_path, detail_type, source, skipped):
    (tmp_path / "e.json").write_text(json.dumps(eventbridge(detail_type, source, {"id": "x"})))
    (item,) = items(tmp_path / "e.json")
    assert (item.skipped, item.error, item.event is not None) == (skipped, None, True)


def test_an_api_call_event_is_not_skipped_whatever_its_detail_claims():
    # EventBridge's detail-type decides, as for the deployed rules: a record body claiming to be an
    # Insights or service event inside an API-call envelope is still an API call to route.
    for claim in ({"eventType": "AwsServiceEvent"}, {"eventCategory": "Insight", "insightDetails": {}}):
        event = eventbridge(API_CALL, "aws.iam", {**ATTACH, **claim})
        (item,) = inputs._items(event, "e.json")
        assert item.skipped is None and item.event is event


def test_iter_inputs_is_lazy(tmp_path):
    # issue 14 streams large files: the first items come before a later bad byte is read.
    (tmp_path / "a.jsonl").write_bytes((json.dumps(ATTACH) + "\n").encode() * 200 + b"\xff\xfe broken\n")
    stream = iter_inputs([tmp_path])
    assert next(stream).source.endswith("a.jsonl:1") and next(stream).source.endswith("a.jsonl:2")
    rest = list(stream)
    assert 100 < len(rest) < 200 and all(i.event for i in rest[:-1])
    assert rest[-1].error is not None and rest[-1].error.startswith("cannot read: 'utf-8' codec")


def test_the_demo_lookup_events_sample_is_what_the_aws_cli_writes():
    document = json.loads((EVENTS / "history" / "lookup-events-us-east-1.json").read_text())
    assert set(document) == {"Events", "NextToken"}
    for entry in document["Events"]:
        record = json.loads(entry["CloudTrailEvent"])
        assert entry["EventId"] == record["eventID"] and entry["EventName"] == record["eventName"]
        assert entry["ReadOnly"] in ("true", "false") and entry["EventTime"].endswith("+00:00")
    times = [e["EventTime"] for e in document["Events"]]
    assert times == sorted(times, reverse=True)  # newest first, as LookupEvents returns them


# ---- streamed CloudTrail log files (issue 14) ---------------------------------------------------


def _streamed(text: str, label: str = "log.json") -> list[InputItem]:
    """The items of a file's text, read as a CloudTrail log file is (chunk by chunk)."""
    streamed = list(inputs._Chunks(io.StringIO(text), "").documents(label))
    if len(text) > 64:  # as a file: the same, told by its opening
        assert list(inputs._documents(io.TextIOWrapper(io.BytesIO(text.encode())), label, label)) == streamed
    return streamed


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_a_log_file_read_record_by_record_gives_what_a_whole_parse_gives(monkeypatch, chunk, indent):
    # Tiny chunks put a chunk's end inside every token: strings, escapes, numbers, literals.
    monkeypatch.setattr(inputs, "_CHUNK", chunk)
    monkeypatch.setattr(inputs, "_AHEAD", chunk // 2)
    odd = {**READ, "eventID": "x", "n": -12.5e3, "t": True, "f": None, "s": 'q"\\u00e9\n', "a": [1, [2, {}]]}
    document = {"Records": [ATTACH, odd, SERVICE_EVENT, INSIGHT_START, [READ], 42, {}], "Trail": {"x": [1]}}
    text = json.dumps(document, indent=indent)
    assert inputs._RECORDS.match(text)
    assert _streamed(text) == list(inputs._items(json.loads(text), "log.json"))


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_documents_after_a_log_file_are_each_labelled_with_the_line_they_start_on(monkeypatch, chunk):
    monkeypatch.setattr(inputs, "_CHUNK", chunk)
    first, second = json.dumps({"Records": [ATTACH]}), json.dumps({"Records": [READ]}, indent=2)
    found = summary(_streamed(f"{first}{first}\n\n{second}\n{json.dumps(PUT)}\n"))
    start = 3 + second.count("\n") + 1
    assert [(s, w) for s, w, _ in found] == [
        ("log.json#0", ATTACH["eventID"]),
        ("log.json:1#0", ATTACH["eventID"]),
        ("log.json:3#0", READ["eventID"]),
        (f"log.json:{start}", PUT["eventID"]),
    ]


@pytest.mark.parametrize("chunk", [7, 1 << 20])
@pytest.mark.parametrize(
    "text",
    [
        '{"Records": [{"eventID": "a", "eventSource": "iam.amazonaws.com", "eventName": "X"}, {"eventID": }]}',
        '{"Records": [{"eventID": "a", "eventSource": "iam.amazonaws.com", "eventName": "X"}\n  {"b": 1}]}',
        '{"Records": [{"eventID": "a", "eventSource": "iam.amazonaws.com", "eventName": "X"},\n\n  {"b": "\x01"}]}',
        '{"Records": [{"eventID": "a", "eventSource": "iam.amazonaws.com", "eventName": "X"}, {"b": "cut',
        '{"Records": [{"eventID": "a", "eventSource": "iam.amazonaws.com", "eventName": "X"}] ',
        '{"Records": [{"eventID": "a", "eventSource": "iam.amazonaws.com", "eventName": "X"}], "k" 1}',
    ],
)
def test_a_break_in_a_log_file_is_an_error_at_the_position_json_gives_after_the_records_before_it(
    monkeypatch, chunk, text
):
    monkeypatch.setattr(inputs, "_CHUNK", chunk)
    *read, broken = _streamed(text)
    assert [(i.source, i.detail["eventID"]) for i in read] == [("log.json#0", "a")]
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(text)
    error = whole.value
    assert broken.error == f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    assert broken.source in ("log.json#1", "log.json")


def test_a_large_log_file_is_read_a_chunk_at_a_time(tmp_path):
    from connect_guard_tools.noise import write_noise_file

    path = write_noise_file(tmp_path / "big.json.gz", 3000)  # ~4 MB of text: several chunks
    with gzip.open(path, "rt") as handle:
        records = inputs._Chunks(handle, handle.read(inputs._CHUNK)).documents("big.json.gz")
        first = next(records)
        assert first.source == "big.json.gz#0" and first.record is not None
        assert handle.buffer.tell() < 4 * inputs._CHUNK  # what gzip has inflated so far: not the file
        assert sum(1 for _ in records) == 2999


# ---- CloudTrail log files read with orjson ---------------------------------------------------------


def _log_file(tmp_path: Path, records: list[Any], separator: str = ",") -> Path:
    path = tmp_path / "trail.json"
    path.write_text('{"Records":[' + separator.join(json.dumps(r, separators=(",", ":")) for r in records) + "]}")
    return path


def test_records_orjson_cannot_read_as_json_does_are_read_by_json(tmp_path):
    """Integers past 64 bits, NaN, lone surrogates, "},{" inside strings and arrays of objects:
    each item is what json reads, and a routed record is replayed as json reads it."""
    odd = [
        {**READ, "eventID": "big", "requestParameters": {"size": 123456789012345678901234567890}},
        {**READ, "eventID": "nan", "responseElements": {"ratio": float("nan")}},
        {**READ, "eventID": "surrogate", "userAgent": "\ud800"},
        {**READ, "eventID": "string", "requestParameters": {"policyDocument": '[{"a":1},{"b":2}]}],{'}},
        {**READ, "eventID": "tags", "requestParameters": {"tags": [{"k": str(i)} for i in range(12)]}},
        {**ATTACH, "requestParameters": {**ATTACH["requestParameters"], "n": -9223372036854775809}},
    ]
    path = _log_file(tmp_path, [READ, *odd, READ])
    expected = json.loads(path.read_text())["Records"]
    found = list(read_file(path, "trail.json"))
    assert [i.source for i in found] == [f"trail.json#{n}" for n in range(len(expected))]
    assert all(i.error is None for i in found)
    for item, record in zip(found, expected, strict=True):
        assert item.event == envelope_from_record(record)  # json's reading, exactly
        assert json.dumps(item.record) == json.dumps(record)
    big = found[1].event["detail"]["requestParameters"]["size"]
    assert isinstance(big, int) and big == 123456789012345678901234567890


def test_a_noise_record_is_routed_on_orjson_reading_and_read_by_json_only_when_replayed(tmp_path):
    path = _log_file(tmp_path, [READ, {**READ, "requestParameters": {"n": 2**70}}])
    first, second = read_file(path, "trail.json")
    assert first._text is not None and first.record == READ  # orjson's reading: strings and structure alike
    assert isinstance(second.record["requestParameters"]["n"], float)  # orjson's: routing needs none of it
    assert second.event["detail"]["requestParameters"]["n"] == 2**70  # the replay's: json's
    assert second.record["requestParameters"]["n"] == 2**70 and second._text is None


@pytest.mark.parametrize("separator", [", ", ",\n", ","])
def test_records_spaced_or_broken_read_as_json_reads_them(tmp_path, separator):
    records = [READ, ATTACH, PUT] * 30
    path = _log_file(tmp_path, records, separator)
    assert [i.event for i in read_file(path, "t")] == [envelope_from_record(r) for r in records]
    broken = tmp_path / "broken.json"
    broken.write_text(path.read_text().replace('"eventName":', '"eventName" ', 40))
    (*_, last) = read_file(broken, "broken.json")
    with pytest.raises(json.JSONDecodeError) as raised:
        json.loads(broken.read_text())
    error = raised.value
    assert last.error == f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
