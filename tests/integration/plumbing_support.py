"""The suite's plumbing as the embedded AWS holds it now, for the plumbing tests (event path and
drift check alike): a rule's state and targets, a log group."""

from __future__ import annotations

from typing import Any

from connect_guard_tools.plumbing import rule_name


def rule(aws, logical: str) -> tuple[str, list[dict[str, Any]]]:
    events = aws.session.client("events")
    name = rule_name(logical)
    return events.describe_rule(Name=name)["State"], events.list_targets_by_rule(Rule=name)["Targets"]


def group(aws, name: str) -> dict[str, Any] | None:
    groups = aws.session.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next((g for g in groups if g["logGroupName"] == name), None)
