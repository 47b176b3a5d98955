"""Logging guard: SQS batches of CloudTrail trail changes → restore the approved trail; the
schedule's drift check → trails and flow logs re-read without an event (responders.logging_drift).

One function for both (as liveness): the same role holds exactly the reads and restoring writes
either needs, and the drift check restores through the same journal and audit log.
"""

# The runtime first: see functions/policy_alerts/app.py.
from connect_guard.runtime import lambda_handler_for  # noqa: I001
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard import scheduled
from connect_guard.observability import logger
from connect_guard.responders import logging_drift, logging_guard

DRIFT_CHECK = {"check": "logging-drift"}  # the schedule's Input (template.yaml, LoggingDriftSchedule)

_records = lambda_handler_for(logging_guard.build)


@logger.inject_lambda_context(clear_state=True)
def _drift(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    found = scheduled.invoke(scheduled.LOGGING_DRIFT, context.aws_request_id, logging_drift.run)
    logger.info("drift check finished", extra={"findings": [f.title for f in found]})
    return {"findings": [f.finding_id for f in found]}


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if event == DRIFT_CHECK:
        return _drift(event, context)
    return _records(event, context)  # SQS batches; anything else is refused there
