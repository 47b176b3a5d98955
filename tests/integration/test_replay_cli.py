"""The replay command as a user runs it: mixed inputs, JSON output, errors that don't stop it."""

from __future__ import annotations

import gzip
import io
import json
import re
import time
from collections import Counter

import pytest

from connect_guard_tools import cli
from tests.conftest import EVENTS, load_event, with_new_event_id


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    args = cli._parser().parse_args(["replay", *argv])
    return cli.replay(args, out), out.getvalue()


def test_json_output_has_the_documented_fields_for_every_event(tmp_path):
    raw = with_new_event_id(load_event("iam/put-user-policy-inline-notaction.json"))["detail"]
    (tmp_path / "trail.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [raw]}).encode()))
    (tmp_path / "lines.jsonl").write_text(
        '{"broken": \n' + json.dumps(load_event("negatives/get-user-policy.json")) + "\n"
    )
    code, output = run(str(tmp_path), "--format", "json", "--no-progress")
    *rows, unmatched, summary = [json.loads(line) for line in output.splitlines()]
    assert code == 0
    assert summary["kind"] == "summary" and summary["events"] == 3 and summary["outcomes"]["alerted"] == 1
    assert summary["outcomes"]["ignored"] == 1 and summary["matched"] == 1
    assert [(r["source"].rsplit("/", 1)[-1], r["outcome"]) for r in rows] == [
        ("lines.jsonl:1", "error"),
        ("trail.json.gz#0", "alerted"),
    ]
    # The read no rule matches is counted by its event name, not listed as an event of its own.
    assert unmatched == {
        "kind": "unmatched",
        "events": 1,
        "top": [{"event_source": "iam.amazonaws.com", "event_name": "GetUserPolicy", "events": 1}],
        "others": {"event_names": 0, "events": 0},
    }
    alerted = rows[1]
    assert alerted["matched"] == ["policy_alerts"] and alerted["severity"] == "HIGH"
    assert alerted["alerts"][0]["subject"].startswith("[HIGH] inline policy EverythingButIam")
    assert {"service": "sns", "operation": "Publish"} in alerted["actions"]
    assert rows[0]["reason"].startswith("invalid JSON")
    for row in rows:
        assert {"kind", "event_id", "event_name", "matched", "outcome", "severity", "alerts", "actions"} <= set(row)
        assert row["kind"] == "event"


def test_fail_on_error_and_enforce_override(tmp_path):
    code, output = run(str(EVENTS / "malformed"), "--fail-on-error", "--parameter-overrides", "ResponseMode=enforce")
    assert code == 1
    assert "4 events, 2 matched a rule: 0 alerted" in output and "mode enforce" in output


def test_show_findings_prints_the_email_text(tmp_path):
    code, output = run(str(EVENTS / "iam" / "attach-role-policy-root.json"), "--show-findings")
    assert code == 0
    assert "| WHY THIS SEVERITY" in output and "root user of 111122223333" in output


def test_approve_baseline_records_the_instances_current_state(aws):
    from connect_guard.baseline import BaselineStore
    from tests.integration.test_profile_rollback import INSTANCE, Instance

    instance = Instance(aws)
    instance.escalate_user()  # reviewed and accepted: Agent + Admin becomes the approved state
    args = cli._parser().parse_args(
        [
            "approve-baseline",
            "--instance-arn",
            instance.arn,
            "--stack",
            _stack(aws, (instance.arn,)),
            "--approved-by",
            "soc@example.com",
            "--reason",
            "CHG-42",
        ]
    )
    out = io.StringIO()
    assert cli.approve_baseline(args, out, session=aws.session) == 0
    approved = BaselineStore(aws.clients.dynamodb, aws.baseline_table).instance(instance.arn)
    assert approved.users[instance.user].security_profile_ids == {instance.agent, instance.admin}
    assert f"approved 3 security profiles and 2 users of {instance.arn}" in out.getvalue()
    assert INSTANCE in instance.arn
    # Every approval is audited and alerted: this one approves Admin for m.garcia.
    (alert,) = aws.inbox()
    assert alert["Subject"].startswith("[HIGH] Baseline approved by soc@example.com")
    (audit,) = aws.audit_records()
    assert audit["action"]["S"] == "ApproveBaseline"


def audits(aws, action: str) -> list[dict[str, str]]:
    items = aws.audit_records()
    return [{k: v["S"] for k, v in item.items()} for item in items if item["action"]["S"] == action]


def test_approve_baseline_refuses_an_instance_the_stack_does_not_cover(aws):
    from tests.integration.test_profile_rollback import Instance

    instance = Instance(aws)
    args = cli._parser().parse_args(
        ["approve-baseline", "--instance-arn", instance.arn, "--stack", _stack(aws), "--approved-by", "soc"]
    )
    out = io.StringIO()
    assert cli.approve_baseline(args, out, session=aws.session) == 2
    assert "not in the stack's ConnectInstanceArns" in out.getvalue() and aws.inbox() == []


def _stack(aws, instances: tuple[str, ...] = ()) -> str:
    """A stand-in for the deployed stack: its outputs and parameters locate tables and topic."""
    template = {
        "Parameters": {
            "MemberAccountIds": {"Type": "String", "Default": ",".join(aws.member_accounts)},
            **({"ConnectInstanceArns": {"Type": "String", "Default": ",".join(instances)}} if instances else {}),
        },
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "AlertTopicArn": {"Value": aws.topic_arn},
            "DedupTableName": {"Value": aws.table_name},
            "BaselineTableName": {"Value": aws.baseline_table},
            "AuditTableName": {"Value": aws.audit_table},
        },
    }
    aws.session.client("cloudformation").create_stack(StackName="connect-guard-test", TemplateBody=json.dumps(template))
    return "connect-guard-test"


def test_release_and_restore_role_commands(aws):
    from connect_guard.quarantine import RoleSnapshots, take_snapshot
    from connect_guard.responders import role_quarantine
    from tests.integration.test_role_quarantine import ACCOUNT, DENIED, POLICY_ARN, iam_event, user

    stack = _stack(aws)
    iam = aws.account_session(ACCOUNT).client("iam")
    iam.create_user(UserName="mallory")
    role_quarantine.build(aws.settings(response_mode="enforce"), aws.clients).handle(
        iam_event("DeleteServiceLinkedRole", user("mallory"), None, **DENIED)
    )
    out = io.StringIO()
    args = cli._parser().parse_args(
        ["release", "--stack", stack, "--account", ACCOUNT, "--user", "mallory", "--by", "soc", "--reason", "test"]
    )
    assert cli.release_command(args, out, session=aws.session) == 0
    assert iam.list_attached_user_policies(UserName="mallory")["AttachedPolicies"] == []
    assert "taken: DetachUserPolicy" in out.getvalue()

    iam.create_role(
        RoleName="ConnectAgentFederation",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    snapshot = take_snapshot(iam, ACCOUNT, "ConnectAgentFederation", quarantine_policy_arn=POLICY_ARN)
    RoleSnapshots(aws.clients.dynamodb, aws.baseline_table).put(snapshot)
    iam.delete_role(RoleName="ConnectAgentFederation")
    restore = ["restore-role", "--stack", stack, "--account", ACCOUNT, "--role", "ConnectAgentFederation"]
    out = io.StringIO()  # the security account's credentials cannot create roles in the source account
    assert cli.restore_command(cli._parser().parse_args(restore), out, session=aws.session) == 2
    assert "pass --assume-role-arn" in out.getvalue()
    operator = ["--assume-role-arn", f"arn:aws:iam::{ACCOUNT}:role/operator", "--by", "soc@example.com"]
    aws.inbox()
    out = io.StringIO()
    assert cli.restore_command(cli._parser().parse_args(restore + operator), out, session=aws.session) == 0
    assert iam.get_role(RoleName="ConnectAgentFederation")["Role"]["Path"] == "/"
    assert f"will create:\nrole /ConnectAgentFederation in {ACCOUNT}" in out.getvalue()
    (finding,) = [json.loads(m["Message"]) for m in aws.inbox()]
    assert finding["title"] == f"Role restored: ConnectAgentFederation in {ACCOUNT} by soc@example.com"
    (record,) = audits(aws, "RestoreRole")
    assert record["finding_id"] == finding["finding_id"] and record["actor"] == "soc@example.com"
    released = audits(aws, "DetachUserPolicy")
    assert released and all(r["finding_id"] for r in released)  # the release's finding


def _trusting(principal: object, **condition: object) -> dict[str, object]:
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    return {"Version": "2012-10-17", "Statement": [{**statement, **({"Condition": condition} if condition else {})}]}


@pytest.mark.parametrize(
    ("trust", "refused"),
    [
        (_trusting({"Service": "lambda.amazonaws.com"}), False),
        (_trusting({"AWS": "arn:aws:iam::111122223333:role/ops"}), False),  # the account itself
        (_trusting({"Federated": "arn:aws:iam::111122223333:saml-provider/corp"}), False),
        (_trusting({"AWS": "arn:aws:iam::999988887777:root"}), True),  # an outside account
        (_trusting("*"), True),
        (_trusting({"AWS": "*"}, StringEquals={"aws:PrincipalOrgID": "o-other"}), True),  # not our organization
        (_trusting({"Federated": "accounts.google.com"}), True),
    ],
)
def test_restore_role_refuses_a_trust_policy_open_to_outsiders(aws, trust, refused):
    from connect_guard.quarantine import RoleSnapshot, RoleSnapshots
    from tests.integration.test_role_quarantine import ACCOUNT

    stack = _stack(aws)
    arn = f"arn:aws:iam::{ACCOUNT}:role/Restored"
    RoleSnapshots(aws.clients.dynamodb, aws.baseline_table).put(RoleSnapshot(ACCOUNT, "Restored", "/", arn, trust))
    restore = ["restore-role", "--stack", stack, "--account", ACCOUNT, "--role", "Restored"]
    restore += ["--assume-role-arn", f"arn:aws:iam::{ACCOUNT}:role/operator"]
    out = io.StringIO()
    code = cli.restore_command(cli._parser().parse_args(restore), out, session=aws.session)
    iam = aws.account_session(ACCOUNT).client("iam")
    exists = bool([r for r in iam.list_roles()["Roles"] if r["RoleName"] == "Restored"])
    assert (code, exists) == ((3, False) if refused else (0, True)), out.getvalue()
    if refused:
        assert "refused: the trust policy admits principals outside" in out.getvalue()
        assert aws.inbox() == [] and audits(aws, "RestoreRole") == []
        out = io.StringIO()
        allowed = cli._parser().parse_args([*restore, "--allow-external-trust"])
        assert cli.restore_command(allowed, out, session=aws.session) == 0
        (finding,) = [json.loads(m["Message"]) for m in aws.inbox()]
        assert finding["severity"] == "CRITICAL" and "outside the deployment" in "\n".join(finding["reasons"])


def test_replay_export_shows_what_landed_in_the_archive():
    code, output = run(str(EVENTS / "iam" / "attach-role-policy-root.json"), "--export")
    assert code == 0
    assert "exported /connect-guard/dev/policy-alerts" in output
    assert "s3://connect-guard-archive/findings/" in output  # the replay's alert, as JSON Lines
    # The source account's Connect flow logs, pulled through its member-logs role, land next to
    # the security account's own logs, each under its account and region.
    assert "pulled 111122223333/us-east-1/aws/connect/acme-contact-centre:" in output
    day = r"\d{4}/\d{2}/\d{2}"
    assert re.search(
        rf"s3://connect-guard-archive/logs/111122223333/us-east-1/aws/connect/acme-contact-centre/{day}/ \(1 objects\)",
        output,
    )
    assert re.search(
        rf"s3://connect-guard-archive/logs/123456789012/us-east-1/connect-guard/dev/policy-alerts/{day}/", output
    )
    assert "failed" not in output.split("[export]", 1)[1]
    # The clock is past the end of the day the replay ran: that day is sealed.
    today = time.strftime("%Y/%m/%d", time.gmtime())
    assert f"s3://connect-guard-archive/manifests/{today}.json (day sealed: signed digest manifest)" in output


def test_replay_renders_alerts_as_slack_shows_them():
    code, output = run(str(EVENTS / "iam" / "attach-user-policy-administratoraccess.json"), "--slack")
    assert code == 0
    assert "# :rotating_light: [CRITICAL] AdministratorAccess attached to user alice" in output
    assert "# *Where*: account 111122223333, us-east-1" in output


def test_replay_refuses_an_allowlist_that_could_fail_open(capsys):
    code = cli.main(
        [
            "replay",
            "events/connect",
            "--no-progress",
            "--parameter-overrides",
            "AllowlistedPrincipals=arn:aws:iam::*:role/X",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("connect-guard replay: --parameter-overrides: AllowlistedPrincipals: 'arn:aws:iam::*:role/X'")
    assert "12-digit" in err and len(err.splitlines()) == 1


def test_replay_shows_a_recovered_canary_and_a_silent_one():
    code, output = run(str(EVENTS / "liveness"), "--liveness-check-at", "2026-11-20T12:00:00Z", "--no-progress")
    assert code == 0
    assert "[LOW] Canary heard again: CONNECT canary of 111122223333 in us-east-1" in output
    assert output.count("[MEDIUM] Canary not counted: IAM canary of 111122223333 in us-east-1") == 3
    assert "[liveness] check at 2026-11-20T12:00:00Z: 1 silent canary(ies)" in output
    assert "HIGH     Canary silent: IAM events of 111122223333 in us-east-1" in output
    assert "account 111122223333, region us-east-1: last heard 2026-11-20T10:15:04Z" in output
    # Before its silence the check has nothing to say: at 11:00 the IAM canary is 45 minutes old.
    _, early = run(str(EVENTS / "liveness"), "--liveness-check-at", "2026-11-20T11:00:00Z", "--no-progress")
    assert "0 silent canary(ies)" in early


def test_replay_drift_shows_what_no_event_reported_in_detect_and_restores_it_in_enforce():
    # quiet-trail was redirected with no event: only the drift check finds it.
    code, detect = run(str(EVENTS / "logging"), "--drift", "--no-progress")
    assert code == 0
    assert "[drift] logging drift check: 28 finding(s)" in detect
    # ... and the recordings-bucket key (the approved storage snapshot names it) disabled with no event.
    assert (
        "CRITICAL Key disabled: KMS key 6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b\n               proposed: kms EnableKey"
        in detect
    )
    assert "CRITICAL Connect storage drifted: CALL_RECORDINGS of Connect instance" in detect
    assert (
        "CRITICAL Trail drifted: CloudTrail trail quiet-trail\n               proposed: cloudtrail UpdateTrail"
        in detect
    )
    assert "LOW      Unapproved trail: CloudTrail trail sandbox-trail" in detect
    code, enforce = run(
        str(EVENTS / "logging"), "--drift", "--no-progress", "--parameter-overrides", "ResponseMode=enforce"
    )
    assert code == 0
    # The samples restored the trails and flow logs they name; the drift check restores the rest.
    assert (
        "CRITICAL Trail drift restored: CloudTrail trail quiet-trail\n               taken: cloudtrail UpdateTrail"
        in enforce
    )
    assert "CloudTrail trail org-trail" not in enforce.split("[drift]")[1]
    assert (
        "CRITICAL Key drift restored: KMS key 6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b\n               taken: kms EnableKey"
        in enforce
    )
    # The suite's plumbing, as the samples left it with no event replayed: put back exactly.
    assert (
        "CRITICAL Log group drift restored: log group /connect-guard/dev/logging-guard\n"
        "               taken: logs PutRetentionPolicy"
    ) in enforce


def test_json_output_is_only_json_lines_whatever_the_options(capsys):
    """Every report the options add is a JSON object naming its kind; nothing else is on stdout."""
    code = cli.main(
        [
            "replay",
            *(str(EVENTS / d) for d in ("quarantine", "liveness", "connect")),
            "--format",
            "json",
            "--no-progress",
            *("--sweep", "--drift", "--export", "--release", "--show-findings", "--slack"),
            *("--liveness-check-at", "2026-11-20T12:00:00Z"),
            *("--parameter-overrides", "ResponseMode=enforce", "QuarantineOnTampering=true"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]  # every line, or this fails
    kinds = Counter(row["kind"] for row in rows)
    assert set(kinds) == {"event", "slack", "sweep", "drift", "release", "export", "liveness", "summary"}
    assert rows[-1]["kind"] == "summary" and kinds["summary"] == 1
    summary = rows[-1]
    assert summary["events"] == kinds["event"] and summary["mode"] == "enforce"
    assert summary["outcomes"]["quarantined"] >= 1 and sum(summary["alerts"].values()) >= kinds["slack"]
    slack = next(r for r in rows if r["kind"] == "slack")
    assert slack["text"].startswith(":") and slack["posted"] is False and slack["finding_id"]
    released = [r for r in rows if r["kind"] == "release"]
    assert {r["principal"] for r in released} <= {"user", "role"}
    assert all(a["status"] == "taken" for r in released for a in r["actions"])
    (export,) = [r for r in rows if r["kind"] == "export"]
    assert any(p["prefix"].startswith("s3://connect-guard-archive/findings") for p in export["landed"])
    assert [m.split("/")[3] for m in export["manifests"]] == ["manifests"]
    (liveness,) = [r for r in rows if r["kind"] == "liveness"]
    assert liveness["at"] == "2026-11-20T12:00:00Z" and liveness["silent"][0]["severity"] == "HIGH"
    (drift,) = [r for r in rows if r["kind"] == "drift"]
    assert all({"severity", "title", "actions"} <= set(f) for f in drift["findings"])
    assert all(r["instance_arn"].startswith("arn:aws:connect:") for r in rows if r["kind"] == "sweep")
    emails = [r for r in rows if r["kind"] == "event" and r["alerts"]]
    assert emails and all(r["emails"] and r["finding"] for r in emails)  # --show-findings: inside the object


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["events/nowhere"], "no such file or directory: events/nowhere; check the input paths"),
        (["events/connect", "--seed", "state.yaml"], "--seed state.yaml: no such file; "),
        (["events/connect", "--config-env", "staging"], "unknown config env 'staging' (samconfig.toml has default,"),
        (["events/connect", "--parameter-overrides", "responsemode=enforce"], "(did you mean 'ResponseMode'?)"),
        (["events/connect", "--parameter-overrides", "ResponseMode=enforced"], "'enforced' is not one of detect, e"),
        (["events/connect", "--parameter-overrides", "ResponseMode", "enforce"], "'ResponseMode' is not KEY=VALUE"),
        (["events/connect", "--liveness-check-at", "noon"], "'noon' is not an ISO 8601 time"),
        (["events/connect", "--slack-webhook", "hooks.slack.com/x"], "'hooks.slack.com/x' is not an https:// URL"),
        (["events/connect", "--format", "yaml"], "invalid choice: 'yaml'"),
    ],
)
def test_bad_replay_input_is_one_line_exit_2_and_nothing_replayed(args, says, capsys):
    code = cli.main(["replay", "--no-progress", *args])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith("connect-guard replay: ")
    assert says in captured.err and "Traceback" not in captured.err


def test_a_seed_that_is_not_yaml_is_one_line(tmp_path, capsys):
    (tmp_path / "state.yaml").write_text("accounts: [\n")
    code = cli.main(["replay", "events/connect", "--seed", str(tmp_path / "state.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"connect-guard replay: --seed {tmp_path / 'state.yaml'}: not YAML (")
    assert len(err.splitlines()) == 1


# ---- response modes per control and per account (README "Response modes") -----------------------
MIXED_SAMPLES = (
    "quarantine/delete-role-tagged-assumed-role.json",  # in member account 111122223333
    "connect/create-user-with-admin.json",  # an instance of 111122223333
    "logging/stop-logging-member-account.json",  # a trail of 111122223333
    "logging/stop-logging-by-name.json",  # a trail of the security account, 123456789012
)


def _mixed(*overrides: str) -> dict[str, dict]:
    paths = [str(EVENTS / sample) for sample in MIXED_SAMPLES]
    code, output = run(
        *paths, "--format", "json", "--no-progress", "--show-findings", "--parameter-overrides", *overrides
    )
    assert code == 0
    objects = [json.loads(line) for line in output.splitlines()]
    rows = {row["source"].removeprefix("events/"): row for row in objects if row["kind"] == "event"}
    assert set(rows) == set(MIXED_SAMPLES)
    return rows


def test_replay_with_quarantine_enforcing_while_everything_else_detects():
    rows = _mixed("QuarantineMode=enforce")  # ResponseMode stays detect
    quarantine = rows[MIXED_SAMPLES[0]]
    assert quarantine["outcome"] == "quarantined"
    assert (
        quarantine["finding"]["mode"] == "enforce" and quarantine["finding"]["mode_reason"] == "QuarantineMode=enforce"
    )
    rollback = rows[MIXED_SAMPLES[1]]
    assert rollback["outcome"] == "alerted"  # the escalation is reported, not rolled back
    assert rollback["finding"]["mode"] == "detect"
    assert rollback["finding"]["mode_reason"] == "ResponseMode=detect (ProfileRollbackMode inherits)"
    assert [a["status"] for a in rollback["finding"]["actions"]] == ["proposed"]
    for trail in MIXED_SAMPLES[2:]:
        assert rows[trail]["outcome"] == "alerted" and rows[trail]["finding"]["mode"] == "detect"


def test_replay_leaves_a_detect_only_account_alone_whatever_the_controls_modes():
    rows = _mixed("ResponseMode=enforce", "QuarantineMode=enforce", "DetectOnlyAccountIds=111122223333")
    pilot = "account 111122223333 is in DetectOnlyAccountIds"
    for sample in MIXED_SAMPLES[:3]:  # everything in the pilot account: alerted, nothing written
        row = rows[sample]
        assert row["outcome"] == "alerted", sample
        assert row["finding"]["mode"] == "detect" and row["finding"]["mode_reason"].startswith(pilot), sample
        assert all(a["status"] == "proposed" for a in row["finding"]["actions"]), sample
    assert rows[MIXED_SAMPLES[0]]["finding"]["mode_reason"] == f"{pilot}; QuarantineMode=enforce"
    # The email says which mode applied and why.
    assert f"Mode              detect ({pilot}; QuarantineMode=enforce)" in rows[MIXED_SAMPLES[0]]["emails"][0]
    # The security account's own trail is not a pilot: restored.
    own = rows[MIXED_SAMPLES[3]]
    assert own["outcome"] == "restored"
    assert own["finding"]["mode_reason"] == "ResponseMode=enforce (LoggingGuardMode inherits)"


def test_noise_is_counted_by_event_name_the_commonest_first_and_the_rest_in_one_count(tmp_path):
    from connect_guard_tools.noise import noise_record, write_noise_file

    write_noise_file(tmp_path / "trail.json.gz", 200)
    ranked = Counter((r["eventSource"], r["eventName"]) for r in map(noise_record, range(200))).most_common()
    ranked.sort(key=lambda kv: (-kv[1], kv[0]))
    top, rest = ranked[:10], ranked[10:]
    assert rest  # the file has more event names than are shown

    code, text = run(str(tmp_path), "--no-progress")
    assert code == 0 and "no rule  =>" not in text
    width = len(str(max(top[0][1], sum(n for _, n in rest))))
    block = ["[-] 200 event(s) matched no rule (counted, not listed), by event name:"]
    block += [f"      {n:>{width}}  {name} ({source})" for (source, name), n in top]
    block += [f"      {sum(n for _, n in rest):>{width}}  ({len(rest)} more event name(s))"]
    assert "\n".join(block) + "\n\n200 events, 0 matched a rule: 0 alerted, 200 ignored," in text

    _, output = run(str(tmp_path), "--format", "json", "--no-progress")
    unmatched, summary = [json.loads(line) for line in output.splitlines()]
    assert summary["events"] == 200 and summary["outcomes"] == {"ignored": 200}
    assert unmatched["events"] == 200
    assert [(t["event_source"], t["event_name"], t["events"]) for t in unmatched["top"]] == [
        (s, name, n) for (s, name), n in top
    ]
    assert unmatched["others"] == {"event_names": len(rest), "events": sum(n for _, n in rest)}
