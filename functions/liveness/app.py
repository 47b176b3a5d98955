"""Liveness: SQS batches of canary events → arrivals recorded; the schedule's check → silences alerted.

One function for both halves: they read and write the same items (the canary partitions of the
baseline table) and publish to the same topic, so one role holds exactly what either needs.
"""

# The runtime comes first on purpose (see policy_alerts/app.py): pydantic import order.
from connect_guard.runtime import lambda_handler_for  # noqa: I001
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard import liveness, scheduled
from connect_guard.observability import logger, metrics

CHECK = {"check": "canary-silence"}  # the schedule's Input (template.yaml, LivenessSchedule)

_records = lambda_handler_for(liveness.build)


@metrics.log_metrics  # the canary age (liveness.CANARY_AGE_METRIC)
@logger.inject_lambda_context(clear_state=True)
def _check(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    silent = scheduled.invoke(scheduled.LIVENESS_CHECK, context.aws_request_id, liveness.run_check)
    logger.info("canary check finished", extra={"silent": [f.title for f in silent]})
    return {"silent": [f.finding_id for f in silent]}


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if event == CHECK:
        return _check(event, context)
    return _records(event, context)  # SQS batches; anything else is refused there
