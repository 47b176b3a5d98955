"""Slack delivery against a real HTTP server on 127.0.0.1 standing in for Slack's webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connect_guard.events import CloudTrailEvent
from connect_guard.responders import policy_alerts, role_quarantine
from connect_guard.slack import (
    TRUNCATED,
    FloodGate,
    SlackDeliveryError,
    SlackNotifier,
    notifier_from_settings,
    render_text,
    within_limits,
)
from tests.conftest import load_event, with_new_event_id

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


class FakeSlack:
    """Records posted payloads; answers from a script of status codes (then 200 'ok')."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, headers = fake.script.pop(0) if fake.script else (200, {})
                if status == 200:
                    fake.posts.append(body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"rate_limited")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXXX"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.server.shutdown()


def finding(aws, relative: str, responder=policy_alerts, **settings: Any) -> dict[str, Any]:
    event = CloudTrailEvent.model_validate(with_new_event_id(load_event(relative)))
    outcome = responder.build(aws.settings(**settings), aws.clients).handle(event)
    assert outcome.finding is not None
    return outcome.finding


def test_critical_alert_renders_severity_who_what_where_when_and_links(aws, slack):
    alert = finding(aws, "iam/attach-user-policy-administratoraccess.json")
    assert SlackNotifier(slack.url).deliver(alert) == "posted"
    (payload,) = slack.posts
    assert payload["text"] == ":rotating_light: [CRITICAL] AdministratorAccess attached to user alice in 111122223333"
    attachment = payload["attachments"][0]
    assert attachment["color"] == "#b00020"
    text = json.dumps(attachment["blocks"])
    for expected in (
        "*Who*",
        "*What*",
        "AttachUserPolicy on user *alice*",
        "account 111122223333",
        "*When*",
        "cloudtrailv2/home?region=us-east-1#/events/",
        "policy-alerts.md|Runbook",
    ):
        assert expected in text, expected


def test_quarantine_alert_shows_the_action_and_detect_mode_says_proposed(aws, slack):
    alert = finding(
        aws, "quarantine/delete-role-connect-slr-denied-iam-user.json", role_quarantine, response_mode="detect"
    )
    SlackNotifier(slack.url).deliver(alert)
    rendered = render_text(slack.posts[0])
    assert "Proposed (detect mode): `iam:AttachUserPolicy`" in rendered
    assert "(DENIED)" in rendered


def test_429_with_retry_after_and_5xx_are_retried(aws, slack):
    slack.script = [(429, {"Retry-After": "1"}), (503, {})]
    assert SlackNotifier(slack.url).deliver(finding(aws, "iam/put-role-policy-passrole-star.json")) == "posted"
    assert len(slack.posts) == 1


def test_repeated_failure_raises_so_lambda_retries_and_the_dlq_keeps_it(aws, slack):
    slack.script = [(500, {})] * 10
    with pytest.raises(SlackDeliveryError, match="500"):
        SlackNotifier(slack.url, max_retries=2).deliver(finding(aws, "iam/put-role-policy-passrole-star.json"))
    assert slack.posts == []


def test_a_burst_of_similar_findings_becomes_one_digest(aws, slack):
    gate = FloodGate(aws.clients.dynamodb, aws.table_name, window_seconds=300, threshold=2, clock=lambda: 1_000_000.0)
    notifier = SlackNotifier(slack.url, gate)
    results = [notifier.deliver(finding(aws, "iam/attach-user-policy-administratoraccess.json")) for _ in range(5)]
    assert results == ["posted", "posted", "digest", "suppressed", "suppressed"]
    assert len(slack.posts) == 3 and slack.posts[2]["text"].startswith(":rotating_light: Flood control: 3 similar")
    other = finding(aws, "iam/put-user-policy-inline-notaction.json")  # another actor: not in that burst
    assert notifier.deliver(other) == "posted"


def test_webhook_url_comes_from_secrets_manager(aws, slack):
    secret = aws.session.client("secretsmanager").create_secret(Name="connect-guard/slack", SecretString=slack.url)
    settings = aws.settings(slack_webhook_secret_arn=secret["ARN"])
    notifier = notifier_from_settings(settings, aws.clients)
    assert notifier.deliver(finding(aws, "iam/attach-role-policy-root.json")) == "posted"


def test_admin_website_changes_name_the_connect_user_in_slack(aws, slack):
    from connect_guard.responders import profile_rollback

    alert = finding(aws, "connect/update-user-security-profiles-admin-website.json", profile_rollback)
    SlackNotifier(slack.url).deliver(alert)
    assert "*Who*: r.osei (Connect admin website)" in render_text(slack.posts[0])


@pytest.mark.parametrize(
    ("relative", "severity", "colour"),
    [
        ("iam/attach-user-policy-administratoraccess.json", "CRITICAL", "#b00020"),
        ("iam/put-user-policy-inline-notaction.json", "HIGH", "#e8590c"),
        ("iam/put-group-policy-connect-read-only.json", "MEDIUM", "#f2c744"),
        ("iam/attach-role-policy-allowlisted-pipeline.json", "INFO", "#868e96"),
    ],
)
def test_each_severity_has_its_colour_and_emoji(aws, slack, relative, severity, colour):
    alert = finding(aws, relative, allowlisted_principals=("arn:aws:iam::111122223333:role/ConnectChangePipeline",))
    SlackNotifier(slack.url).deliver(alert)
    (payload,) = slack.posts
    assert payload["attachments"][0]["color"] == colour
    assert f"[{severity}]" in payload["text"]


EVIL = "<!channel> <https://evil.example|AWS console> <@U0123ABCD> <#C0123ABCD> & <!here>"
EVIL_ESCAPED = (
    "&lt;!channel&gt; &lt;https://evil.example|AWS console&gt; "
    "&lt;@U0123ABCD&gt; &lt;#C0123ABCD&gt; &amp; &lt;!here&gt;"
)


def block_kit_violations(payload: dict[str, Any]) -> list[str]:
    """What Slack would refuse in a payload: Block Kit's documented limits."""
    problems = []
    for attachment in payload["attachments"]:
        blocks = attachment["blocks"]
        if len(blocks) > 50:
            problems.append(f"{len(blocks)} blocks")
        for block in blocks:
            if block["type"] == "header" and len(block["text"]["text"]) > 150:
                problems.append("header over 150")
            if block["type"] == "section":
                if len(block.get("text", {}).get("text", "")) > 3000:
                    problems.append("section text over 3000")
                fields = block.get("fields", [])
                if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                    problems.append("fields over 10 or over 2000")
            if block["type"] == "context" and any(len(e.get("text", "")) > 3000 for e in block["elements"]):
                problems.append("context over 3000")
    return problems


def adversarial(alert: dict[str, Any]) -> dict[str, Any]:
    """A finding whose every event-supplied value is hostile, as a forged or crafted event makes it."""
    alert = json.loads(json.dumps(alert))
    alert["title"] = f"inline policy {EVIL} put on role {EVIL}"
    alert["actor"].update(display=f"{EVIL} via role {EVIL}", arn=f"arn:aws:sts::1:assumed-role/{EVIL}/{EVIL}")
    alert["target"] = {"kind": "role", "name": EVIL}
    alert["event"].update(event_name=EVIL, region=EVIL, account_id=EVIL)
    alert["event"]["console_url"] = "https://us-east-1.console.aws.amazon.com/cloudtrailv2/#/events/x|evil>"
    alert["reasons"] = [f"policy {EVIL} grants iam:*"]
    alert["change"] = {"gained": [EVIL], "before": [EVIL], "after": [], "baseline": "none"}
    alert["actions"] = [{"service": EVIL, "operation": EVIL, "parameters": {}, "status": EVIL}]
    return alert


def test_every_value_from_the_event_is_escaped_and_the_suites_links_still_work(aws, slack):
    alert = adversarial(finding(aws, "iam/put-role-policy-passrole-star.json"))
    SlackNotifier(slack.url).deliver(alert)
    (payload,) = slack.posts
    # No raw control sequence survives anywhere Slack parses mrkdwn (all but the plain_text header).
    mrkdwn = json.dumps([payload["text"], payload["attachments"][0]["blocks"][1:]], ensure_ascii=False)
    for raw in ("<!channel>", "<!here>", "<@U0123ABCD>", "<#C0123ABCD>", "<https://evil.example|"):
        assert raw not in mrkdwn, raw
    assert payload["text"].endswith(f"inline policy {EVIL_ESCAPED} put on role {EVIL_ESCAPED}")
    rendered = render_text(payload)
    for expected in (
        f"*Who*: {EVIL_ESCAPED} via role {EVIL_ESCAPED}",
        f"on role *{EVIL_ESCAPED}*",
        f"• policy {EVIL_ESCAPED} grants iam:*",
        f"*Gained* {EVIL_ESCAPED}",
        f"`{EVIL_ESCAPED}:{EVIL_ESCAPED}`",
        "<https://us-east-1.console.aws.amazon.com/cloudtrailv2/#/events/x%7Cevil%3E|CloudTrail event>",
        "/docs/runbooks/policy-alerts.md|Runbook>",
    ):
        assert expected in rendered, expected
    # The header is plain_text: Slack parses nothing there, so it stays readable as the event said.
    assert payload["attachments"][0]["blocks"][0]["text"]["type"] == "plain_text"


def test_the_digest_escapes_the_actor(aws, slack):
    gate = FloodGate(aws.clients.dynamodb, aws.table_name, window_seconds=300, threshold=0, clock=lambda: 1_000_000.0)
    alert = adversarial(finding(aws, "iam/put-role-policy-passrole-star.json"))
    assert SlackNotifier(slack.url, gate).deliver(alert) == "digest"
    assert f"from {EVIL_ESCAPED} via role {EVIL_ESCAPED} within" in slack.posts[0]["text"]


def test_oversized_content_is_cut_to_block_kit_limits_with_a_visible_marker(aws, slack):
    alert = finding(aws, "iam/put-role-policy-passrole-star.json")
    alert["title"] = "t" * 500
    alert["actor"]["display"] = "<" * 3_000  # escaping quadruples it: the field limit applies after
    alert["reasons"] = ["r" * 2_000] * 8
    alert["change"] = {"gained": [f"Permission.{i}" for i in range(2_000)], "before": [], "after": []}
    SlackNotifier(slack.url).deliver(alert)
    (payload,) = slack.posts
    assert block_kit_violations(payload) == []
    blocks = payload["attachments"][0]["blocks"]
    who, why, change = blocks[1]["fields"][0]["text"], blocks[2]["text"]["text"], blocks[3]["text"]["text"]
    for text in (who, why, change):
        assert text.endswith("… [truncated: the email and the archive have the whole finding]")
    assert who.count("&lt;") > 400 and not who.removesuffix(TRUNCATED).endswith(("&", "&l", "&lt"))
    assert blocks[0]["text"]["text"].endswith("…") and len(blocks[0]["text"]["text"]) == 150


def test_block_limits_hold_for_any_blocks():
    many = [{"type": "section", "text": {"type": "mrkdwn", "text": "&amp;" * 1_000}}] * 60
    many.append({"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 5_000}] * 12})
    fitted = within_limits(many)
    assert len(fitted) == 50 and fitted[-1]["text"]["text"].startswith("… and 12 more blocks")
    assert block_kit_violations({"attachments": [{"blocks": fitted}]}) == []
    assert fitted[0]["text"]["text"].endswith("&amp;" + TRUNCATED)
