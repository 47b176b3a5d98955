"""Liveness: SQS batches of canary events → arrivals recorded; the schedule's check → silences alerted.

One function for both halves: they read and write the same items (the canary partitions of the
baseline table) and publish to the same topic, so one role holds exactly what either needs.
"""

# The runtime comes first on purpose (see policy_alerts/app.py): pydantic import order.
from connect_guard.runtime import lambda_handler_for  # noqa: I001
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard import liveness, scheduled
from connect_guard.clients import SCHEDULED_RETRY_CONFIG, AwsClients
from connect_guard.observability import logger
from connect_guard.settings import Settings

CHECK = {"check": "canary-silence"}  # the schedule's Input (template.yaml, LivenessSchedule)

_records = lambda_handler_for(liveness.build)


@logger.inject_lambda_context(clear_state=True)
def _check(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    clients = AwsClients(settings.region, account_id=settings.own_account_id, config=SCHEDULED_RETRY_CONFIG)
    # A failed run is final (no Lambda retries): it is alerted, then raised for the errors alarm.
    silent = scheduled.run(
        scheduled.LIVENESS_CHECK,
        settings,
        clients.sns,
        context.aws_request_id,
        lambda: liveness.run_check(settings, clients),
    )
    logger.info("canary check finished", extra={"silent": [f.title for f in silent]})
    return {"silent": [f.finding_id for f in silent]}


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if event == CHECK:
        return _check(event, context)
    return _records(event, context)  # SQS batches; anything else is refused there
