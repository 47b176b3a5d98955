"""SNS publisher: one message, readable text for email, the JSON finding for machines.

SNS refuses a Publish over 256 KB (message and attributes together), and a refused publish is
a lost alert. `fit` is the one place that keeps a finding within that budget: first it
summarises large policy grants, then, should that not do, it cuts long strings and lists,
each time saying in `truncated` what was shortened.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass, replace
from typing import Any

from connect_guard.findings import Finding
from connect_guard.outcome import Alert, Outcome
from connect_guard.policy import summarise_grant

SNS_MAX_PUBLISH_BYTES = 262_144  # message + message attributes
# Headroom for the subject and for SNS's own accounting: never meet the limit exactly.
SAFETY_MARGIN = 16_384
BUDGET = SNS_MAX_PUBLISH_BYTES - SAFETY_MARGIN
GRANT_SUMMARY_OVER = 400  # characters: grant lines longer than this are summarised
# (characters per string, items per list or object, levels of nesting) tried in turn after the
# grants summary. Nesting counts within a field (a snapshot's trust policy, an action's
# parameters): items per level alone can't bound what is nested, the levels multiply.
CUTS = ((4096, 50, 8), (1024, 20, 6), (256, 10, 4), (64, 5, 3))


def message_attributes(finding: Finding) -> dict[str, dict[str, str]]:
    """Filterable attributes (SNS filter policies take up to 5 keys)."""
    values = {
        "severity": str(finding.severity),
        "event_name": finding.event.event_name,
        "account": finding.event.account_id,
        "responder": finding.responder,
        "kind": finding.kind,
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def sns_message(finding: Finding) -> str:
    """Per-protocol message: email gets text; every other protocol falls back to `default`."""
    return finding.sns_message  # computed once per finding: fit() sizes it, publish() sends it


def publish_bytes(message: str, attributes: dict[str, dict[str, str]], subject: str = "") -> int:
    """What SNS counts against its limit (the subject too, to be safe)."""
    sizes = [len(k.encode()) + sum(len(v.encode()) for v in a.values()) for k, a in attributes.items()]
    return len(message.encode()) + sum(sizes) + len(subject.encode())


def _size(finding: Finding) -> int:
    return publish_bytes(sns_message(finding), message_attributes(finding), finding.subject)


def fit(finding: Finding) -> Finding:
    """The finding as published: itself when it fits BUDGET, else a deterministic shortening."""
    if _size(finding) <= BUDGET:
        return finding
    finding = _summarise_grants(finding)
    if _size(finding) <= BUDGET:
        return finding
    shortened = finding
    for chars, items, levels in CUTS:
        cut: list[str] = []
        shortened = _cut(finding, chars, items, "", cut, levels)
        shortened = replace(shortened, truncated=tuple(dict.fromkeys([*finding.truncated, *cut])))
        if _size(shortened) <= BUDGET:
            break
    return shortened


def _summarise_grants(finding: Finding) -> Finding:
    policy = finding.policy
    if policy is None or not any(len(g) > GRANT_SUMMARY_OVER for g in policy.grants):
        return finding
    if policy.document_source == "api":
        where = f"aws iam get-policy-version --policy-arn {policy.arn} --version-id {policy.version_id}"
    elif policy.document_source == "event":
        where = f"requestParameters.policyDocument of CloudTrail event {finding.event.event_id}"
    else:
        where = "the policy in IAM"
    grants = tuple(summarise_grant(g, where) if len(g) > GRANT_SUMMARY_OVER else g for g in policy.grants)
    return replace(finding, policy=replace(policy, grants=grants), truncated=(*finding.truncated, "policy.grants"))


def _cut(value: Any, chars: int, items: int, path: str, cut: list[str], levels: int) -> Any:
    """`value` with strings over `chars`, lists or objects over `items` and nesting over `levels`
    (counted within a field of the finding) shortened, visibly."""
    if is_dataclass(value) and not isinstance(value, type):
        prefix = f"{path}." if path else ""
        return replace(
            value,
            **{f.name: _cut(getattr(value, f.name), chars, items, prefix + f.name, cut, levels) for f in fields(value)},
        )
    if isinstance(value, str):
        if len(value) <= chars:
            return value
        cut.append(path)
        return f"{value[:chars]}… [{len(value) - chars:,} characters cut]"
    if isinstance(value, list | tuple | dict) and levels <= 0:
        cut.append(path)
        size = len(json.dumps(value, ensure_ascii=False, default=str))
        return f"… [{type(value).__name__} of {size:,} characters cut: nested too deep]"
    if isinstance(value, list | tuple):
        kept = [_cut(v, chars, items, f"{path}[]", cut, levels - 1) for v in value[:items]]
        if len(value) > items:
            cut.append(path)
            if all(isinstance(v, str) for v in value):
                kept.append(f"… and {len(value) - items:,} more")
        return type(value)(kept)
    if isinstance(value, dict):
        entries = list(value.items())
        kept_dict = {str(k)[:chars]: _cut(v, chars, items, f"{path}.{k}", cut, levels - 1) for k, v in entries[:items]}
        if len(entries) > items:
            cut.append(path)
            kept_dict["…"] = f"{len(entries) - items:,} more"
        return kept_dict
    return value


class SnsPublisher:
    def __init__(self, sns_client: Any, topic_arn: str) -> None:
        self._sns = sns_client
        self._topic_arn = topic_arn

    def publish(self, finding: Finding) -> str:
        finding = fit(finding)
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=finding.subject,
            Message=sns_message(finding),
            MessageStructure="json",
            MessageAttributes=message_attributes(finding),
        )
        return str(response["MessageId"])


def publish_outcome(publisher: Any, finding: Finding, outcome: Outcome, result: str) -> Outcome:
    """Publish `finding` and record it in `outcome` as `result`, with the finding as published."""
    message_id = publisher.publish(finding)  # the runtime's "event processed" line names it
    outcome.outcome = result
    outcome.severity = str(finding.severity)
    outcome.alerts.append(Alert(finding.subject, str(finding.severity), finding.finding_id, message_id))
    outcome.finding = fit(finding).published()
    return outcome
