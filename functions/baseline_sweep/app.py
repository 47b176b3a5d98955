"""Scheduled baseline snapshot and drift sweep of the configured Connect instances."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard import scheduled
from connect_guard.observability import logger, metrics
from connect_guard.sweep import build


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    results = scheduled.invoke(
        scheduled.BASELINE_SWEEP, context.aws_request_id, lambda settings, clients: build(settings, clients).run()
    )
    summary = [
        {"instance": r.instance_arn, "bootstrapped": r.bootstrapped, "drift": len(r.drift), "rollbacks": len(r.plans)}
        for r in results
    ]
    logger.info("sweep finished", extra={"instances": summary})
    return {"instances": summary}
