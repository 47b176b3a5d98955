"""Findings for other consoles: AWS Security Hub (ASFF) and Amazon Q Developer in chat
applications (its custom-notification format). Both are pure mappings of the finding JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

ASFF_SCHEMA = "2018-10-08"
# What each kind of finding means in Security Hub's type taxonomy.
ASFF_TYPES = {
    "iam.policy_change": "TTPs/Privilege Escalation",
    "connect.security_profile_change": "TTPs/Privilege Escalation",
    "connect.baseline_drift": "Software and Configuration Checks/Industry and Regulatory Standards/Baseline Drift",
    "iam.protected_role_deletion": "Effects/Resource Consumption/Destruction of protected resources",
    "iam.protected_role_tampering": "TTPs/Defense Evasion",
    "connect.instance_deletion": "Effects/Resource Consumption/Destruction of protected resources",
    "iam.quarantine_release": "Software and Configuration Checks/Quarantine Release",
    "archive.export_problem": "Software and Configuration Checks/Logging",
}
_RESOURCE_TYPES = {"user": "AwsIamUser", "role": "AwsIamRole", "group": "AwsIamGroup", "policy": "AwsIamPolicy"}


def to_asff(finding: dict[str, Any], account_id: str, region: str, partition: str = "aws") -> dict[str, Any]:
    """One ASFF finding. Its Id is the finding ID, so a redelivery updates instead of duplicating."""
    event, target = finding.get("event") or {}, finding.get("target") or {}
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    created = str(finding.get("created_at") or now).replace("+00:00", "Z")
    resource_id = (
        target.get("arn") or f"{target.get('kind', 'account')}/{target.get('name') or event.get('account_id')}"
    )
    description = "; ".join([finding.get("summary", ""), *(finding.get("reasons") or [])])
    return {
        "SchemaVersion": ASFF_SCHEMA,
        "Id": finding["finding_id"],
        "ProductArn": f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default",
        "GeneratorId": f"connect-guard/{finding.get('responder')}",
        "AwsAccountId": account_id,
        "Types": [ASFF_TYPES.get(str(finding.get("kind")), "Unusual Behaviors/User")],
        "CreatedAt": created,
        "UpdatedAt": now,
        "Severity": {"Label": finding.get("severity", "INFORMATIONAL").replace("INFO", "INFORMATIONAL")},
        "Title": str(finding.get("title", ""))[:256],
        "Description": description[:1024],
        "SourceUrl": event.get("console_url") or finding.get("runbook_url"),
        "Remediation": {
            "Recommendation": {"Text": "Follow the connect-guard runbook", "Url": finding.get("runbook_url")}
        },
        "Resources": [
            {
                "Type": _RESOURCE_TYPES.get(str(target.get("kind")), "Other"),
                "Id": str(resource_id),
                "Partition": partition,
                "Region": event.get("region") or region,
            }
        ],
        "ProductFields": {
            "connect-guard/EventId": str(event.get("event_id", "")),
            "connect-guard/EventName": str(event.get("event_name", "")),
            "connect-guard/SourceAccount": str(event.get("account_id", "")),
            "connect-guard/Actor": str((finding.get("actor") or {}).get("arn") or ""),
            "connect-guard/Mode": str(finding.get("mode", "")),
        },
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }


def chat_text(value: object) -> str:
    """A value from the event, inert in the chat platform's markdown (client-markdown renders
    Slack's mrkdwn in Slack, Markdown in Teams): no `<!channel>`, `<@U…>` or `<url|label>`, no HTML,
    no `[label](url)` link, no line of its own (a heading, a quote, a link definition)."""
    text = " ".join(str(value).split())
    # Angle quotation marks read as the brackets did but parse as nothing on either platform;
    # a zero-width space after `]` breaks `](`.
    return text.replace("<", "\u2039").replace(">", "\u203a").replace("]", "]\u200b")


def to_chat_notification(finding: dict[str, Any]) -> dict[str, Any]:
    """Amazon Q Developer in chat applications' custom-notification JSON."""
    event, actor = finding.get("event") or {}, finding.get("actor") or {}
    reasons = finding.get("reasons") or []
    actions = [chat_text(f"{a['status']}: {a['service']}:{a['operation']}") for a in (finding.get("actions") or [])[:3]]
    who = chat_text(actor.get("display") or actor.get("arn") or "unknown")
    where = chat_text(f"account {event.get('account_id')}, {event.get('region')} at {event.get('event_time')}")
    description = "\n".join([f"*Who* {who}", f"*Where* {where}", *[f"• {chat_text(r)}" for r in reasons[:5]]])
    # The suite's own links: the runbook from its settings, the console URL quoted when built.
    next_steps = [*actions, f"Runbook: {finding.get('runbook_url')}", f"CloudTrail: {event.get('console_url')}"]
    title = chat_text(finding.get("title", ""))
    return {
        "version": "1.0",
        "source": "custom",
        "id": finding.get("finding_id"),
        "content": {
            "textType": "client-markdown",
            "title": f"[{finding.get('severity')}] {title}"[:250],
            "description": description[:3000],
            # Bounded like the rest, so the chat topic's message stays far below SNS's 256 KB.
            "nextSteps": [s[:1000] for s in next_steps if s and not s.endswith("None")],
            "keywords": [
                chat_text(k)[:100] for k in (finding.get("severity"), finding.get("responder"), event.get("account_id"))
            ],
        },
        "metadata": {
            "threadId": finding.get("finding_id"),
            "summary": title[:250],
            "eventType": chat_text(finding.get("kind"))[:100],
        },
    }
