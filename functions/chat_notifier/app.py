"""Chat notifier: findings → Amazon Q Developer custom notifications on the chat topic."""

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard.clients import AwsClients
from connect_guard.integrations import to_chat_notification
from connect_guard.observability import logger
from connect_guard.settings import Settings

_state: list[tuple[Settings, Any]] = []  # built on the first invocation, kept while the container lives


def _setup() -> tuple[Settings, Any]:
    if not _state:
        settings = Settings.from_env()
        settings.require("chat_topic_arn")
        _state.append((settings, AwsClients(settings.region, account_id=settings.own_account_id).sns))
    return _state[0]


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, sns = _setup()
    for record in event["Records"]:
        notification = to_chat_notification(json.loads(record["Sns"]["Message"]))
        sns.publish(TopicArn=settings.chat_topic_arn, Message=json.dumps(notification))
        logger.info("chat notification published", extra={"finding_id": notification["id"]})
    return {"published": len(event["Records"])}
