"""Scheduled baseline snapshot and drift sweep of the configured Connect instances."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard import scheduled
from connect_guard.clients import SCHEDULED_RETRY_CONFIG, AwsClients
from connect_guard.observability import logger, metrics
from connect_guard.settings import Settings
from connect_guard.sweep import build


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    clients = AwsClients(settings.region, account_id=settings.own_account_id, config=SCHEDULED_RETRY_CONFIG)
    # A failed run is final (no Lambda retries): it is alerted, then raised for the errors alarm.
    results = scheduled.run(
        scheduled.BASELINE_SWEEP, settings, clients.sns, context.aws_request_id, lambda: build(settings, clients).run()
    )
    summary = [
        {"instance": r.instance_arn, "bootstrapped": r.bootstrapped, "drift": len(r.drift), "rollbacks": len(r.plans)}
        for r in results
    ]
    logger.info("sweep finished", extra={"instances": summary})
    return {"instances": summary}
