"""Slack notifier: findings from the alert topic → Block Kit messages on a Slack webhook."""

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard.clients import AwsClients
from connect_guard.observability import logger
from connect_guard.settings import Settings
from connect_guard.slack import SlackNotifier, notifier_from_settings

_notifiers: list[SlackNotifier] = []  # built on the first invocation, kept while the container lives


def _notifier() -> SlackNotifier:
    if not _notifiers:
        settings = Settings.from_env()
        _notifiers.append(
            notifier_from_settings(settings, AwsClients(settings.region, account_id=settings.own_account_id))
        )
    return _notifiers[0]


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One SNS notification per invocation; a failed post raises: Lambda retries, then the DLQ."""
    results = []
    for record in event["Records"]:
        finding = json.loads(record["Sns"]["Message"])
        result = _notifier().deliver(finding)
        logger.info("slack delivery", extra={"finding_id": finding.get("finding_id"), "result": result})
        results.append(result)
    return {"results": results}
