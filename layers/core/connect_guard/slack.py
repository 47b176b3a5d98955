"""Slack delivery of findings: Block Kit messages through an incoming webhook, with flood control.

The webhook URL lives in Secrets Manager (read through Powertools parameters, cached). slack_sdk's
retry handlers absorb 429s (honouring Retry-After), connection errors and 5xx; a post that still
fails raises, so Lambda retries the SNS invocation and finally sends it to the DLQ: no alert is
lost. A burst of similar findings (same responder, actor and kind within a window) becomes one
digest message in Slack, while SNS still carries every finding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from connect_guard.clients import AwsClients
from connect_guard.settings import Settings

STYLE = {  # severity → (emoji, attachment colour)
    "CRITICAL": (":rotating_light:", "#b00020"),
    "HIGH": (":red_circle:", "#e8590c"),
    "MEDIUM": (":large_orange_diamond:", "#f2c744"),
    "LOW": (":large_blue_circle:", "#1c7ed6"),
    "INFO": (":information_source:", "#868e96"),
}
# Block Kit's limits: Slack refuses a message over any of them.
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FIELDS_MAX = 10
HEADER_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
BLOCKS_MAX = 50
TRUNCATED = "… [truncated: the email and the archive have the whole finding]"


class SlackDeliveryError(Exception):
    """Slack refused the message after the retries: Lambda retries, then the DLQ keeps it."""


def escape(value: object) -> str:
    """Slack's three control characters as entities: a value from an event (a role named
    `<!channel>`, a disguised link `<https://evil|AWS console>`) then shows as text."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """One of the suite's own links; what the URL holds from an event cannot end it early."""
    for raw, encoded in (("|", "%7C"), ("<", "%3C"), (">", "%3E"), (" ", "%20")):
        url = url.replace(raw, encoded)
    return f"<{url.replace('&', '&amp;')}|{escape(label)}>"


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, with a visible marker, never ending in half an entity."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(TRUNCATED)]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head + TRUNCATED


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def within_limits(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks cut to Block Kit's limits: every message passes through here before posting."""
    if len(blocks) > BLOCKS_MAX:
        more = len(blocks) - BLOCKS_MAX + 1
        blocks = [*blocks[: BLOCKS_MAX - 1], _section(f"… and {more} more blocks {TRUNCATED}")]
    fitted = []
    for block in blocks:
        block = dict(block)
        if block["type"] == "header":
            text = block["text"]["text"]
            block["text"] = {**block["text"], "text": text if len(text) <= HEADER_MAX else text[: HEADER_MAX - 1] + "…"}
        elif block["type"] == "section":
            if "text" in block:
                block["text"] = {**block["text"], "text": cut(block["text"]["text"], SECTION_TEXT_MAX)}
            if "fields" in block:
                block["fields"] = [{**f, "text": cut(f["text"], FIELD_TEXT_MAX)} for f in block["fields"][:FIELDS_MAX]]
        elif block["type"] == "context":
            elements = block["elements"][:CONTEXT_ELEMENTS_MAX]
            block["elements"] = [
                {**e, "text": cut(e["text"], SECTION_TEXT_MAX)} if "text" in e else e for e in elements
            ]
        fitted.append(block)
    return fitted


def _list(values: list[Any] | None) -> str:
    return ", ".join(escape(v) for v in values or []) or "(none)"


def render(finding: dict[str, Any]) -> dict[str, Any]:
    """The webhook payload for one finding: header, who/what/where/when, change, actions, links.

    Every value from the finding is escaped: the finding repeats what the event said."""
    severity = str(finding.get("severity", "INFO"))
    emoji, colour = STYLE.get(severity, STYLE["INFO"])
    actor, event = finding.get("actor") or {}, finding.get("event") or {}
    target = finding.get("target") or {}
    website_user = (finding.get("connect") or {}).get("actor_username")
    who = (
        f"{escape(website_user)} (Connect admin website)" if website_user else escape(actor.get("display") or "unknown")
    )
    fields = [
        f"*Who*\n{who}" + (f"\n`{escape(actor['arn'])}`" if actor.get("arn") else ""),
        f"*What*\n{escape(event.get('event_name', '?'))}"
        + (f" on {escape(target.get('kind'))} *{escape(target.get('name'))}*" if target.get("name") else "")
        + (" (DENIED)" if (finding.get("attempt") or {}).get("status") == "denied" else ""),
        f"*Where*\naccount {escape(event.get('account_id', '?'))}, {escape(event.get('region', '?'))}",
        f"*When*\n{escape(event.get('event_time', '?'))}",
    ]
    blocks: list[dict[str, Any]] = [
        # plain_text: Slack parses no mentions or links there, so the title goes as it is.
        {"type": "header", "text": {"type": "plain_text", "text": f"{severity}: {finding.get('title', '')}"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    reasons = finding.get("reasons") or []
    if reasons:
        blocks.append(_section("*Why*\n" + "\n".join(f"• {escape(r)}" for r in reasons[:8])))
    change = finding.get("change")
    if change:
        blocks.append(
            _section(
                f"*Gained* {_list(change.get('gained'))}\n"
                f"*Before* {_list(change.get('before'))}\n"
                f"*After* {_list(change.get('after'))}"
            )
        )
    actions = finding.get("actions") or []
    if actions:
        verb = {"taken": "Done", "proposed": "Proposed (detect mode)", "failed": "FAILED"}
        lines = [
            f"• {escape(verb.get(a['status'], a['status']))}: `{escape(a['service'])}:{escape(a['operation'])}`"
            for a in actions[:8]
        ]
        blocks.append(_section("*Action*\n" + "\n".join(lines)))
    links = [
        link(url, label)
        for label, url in (("CloudTrail event", event.get("console_url")), ("Runbook", finding.get("runbook_url")))
        if url
    ]
    mode = f"mode {escape(finding.get('mode', '?'))}"
    if finding.get("mode_reason"):
        mode += f" ({escape(finding['mode_reason'])})"
    footer = [*links, f"`{escape(finding.get('finding_id', ''))}`", mode]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(footer)}]})
    text = cut(f"{emoji} [{severity}] {escape(finding.get('title', ''))}", SECTION_TEXT_MAX)
    return {"text": text, "attachments": [{"color": colour, "blocks": within_limits(blocks)}]}


def render_digest(finding: dict[str, Any], count: int, window_seconds: int) -> dict[str, Any]:
    """One message for a burst: what is repeating and where the full record is."""
    severity = str(finding.get("severity", "INFO"))
    emoji, colour = STYLE.get(severity, STYLE["INFO"])
    actor = escape((finding.get("actor") or {}).get("display") or "unknown actor")
    text = (
        f"{emoji} Flood control: {count} similar {escape(finding.get('kind'))} findings from {actor} within "
        f"{window_seconds // 60} min. Further ones in this window are not posted here; every finding "
        "is still on the alert topic, in email and in the archive."
    )
    return {"text": text, "attachments": [{"color": colour, "blocks": within_limits([_section(text)])}]}


def render_text(payload: dict[str, Any]) -> str:
    """Plain-text view of a payload, as the replay shows it."""
    lines = [payload["text"]]
    for attachment in payload.get("attachments", []):
        for block in attachment["blocks"]:
            if block["type"] == "section" and "fields" in block:
                lines += [f["text"].replace("\n", ": ", 1) for f in block["fields"]]
            elif block["type"] == "section":
                lines.append(block["text"]["text"])
            elif block["type"] == "context":
                lines.append(block["elements"][0]["text"])
    return "\n".join(lines)


class FloodGate:
    """Counts similar findings per window in DynamoDB (one atomic ADD per finding)."""

    def __init__(
        self, dynamodb: Any, table: str, window_seconds: int, threshold: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = dynamodb
        self._table = table
        self.window_seconds = window_seconds
        self.threshold = threshold
        self._clock = clock

    def count(self, finding: dict[str, Any]) -> int:
        window = int(self._clock()) // self.window_seconds
        actor = (finding.get("actor") or {}).get("arn") or (finding.get("actor") or {}).get("display") or "?"
        key = f"slack-flood#{finding.get('responder')}#{finding.get('kind')}#{actor}#{window}"
        response = self._db.update_item(
            TableName=self._table,
            Key={"id": {"S": key}},
            UpdateExpression="ADD seen :one SET expiration = :expires",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":expires": {"N": str(int(self._clock()) + 2 * self.window_seconds)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["seen"]["N"])


class SlackNotifier:
    def __init__(self, webhook_url: str, gate: FloodGate | None = None, max_retries: int = 3) -> None:
        self.client = WebhookClient(
            webhook_url,
            timeout=10,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=max_retries),
                RateLimitErrorRetryHandler(max_retry_count=max_retries),
                ServerErrorRetryHandler(max_retry_count=max_retries),
            ],
        )
        self.gate = gate

    def deliver(self, finding: dict[str, Any]) -> str:
        """Post the finding (or its burst's digest); 'posted', 'digest' or 'suppressed'."""
        if self.gate is not None:
            seen = self.gate.count(finding)
            if seen == self.gate.threshold + 1:
                self._post(render_digest(finding, seen, self.gate.window_seconds))
                return "digest"
            if seen > self.gate.threshold + 1:
                return "suppressed"
        self._post(render(finding))
        return "posted"

    def _post(self, payload: dict[str, Any]) -> None:
        response = self.client.send_dict(payload)
        if response.status_code != 200:
            raise SlackDeliveryError(f"Slack answered {response.status_code}: {response.body[:200]}")


def notifier_from_settings(settings: Settings, clients: AwsClients) -> SlackNotifier:
    """The webhook URL from Secrets Manager, cached by Powertools for five minutes."""
    from aws_lambda_powertools.utilities import parameters

    settings.require("slack_webhook_secret_arn")
    assert settings.slack_webhook_secret_arn
    url = parameters.get_secret(settings.slack_webhook_secret_arn, max_age=300)
    gate = FloodGate(
        clients.dynamodb,
        settings.dedup_table_name,
        settings.slack_digest_window_seconds,
        settings.slack_digest_threshold,
    )
    return SlackNotifier(str(url).strip(), gate)
