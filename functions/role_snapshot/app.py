"""Scheduled snapshot of protected roles: what a restore recreates after a deletion."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard import scheduled
from connect_guard.clients import SCHEDULED_RETRY_CONFIG, AwsClients
from connect_guard.observability import logger
from connect_guard.responders.role_quarantine import build, snapshot_protected_roles
from connect_guard.settings import Settings


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    clients = AwsClients(settings.region, account_id=settings.own_account_id, config=SCHEDULED_RETRY_CONFIG)
    # A failed run is final (no Lambda retries): it is alerted, then raised for the errors alarm.
    taken = scheduled.run(
        scheduled.ROLE_SNAPSHOT,
        settings,
        clients.sns,
        context.aws_request_id,
        lambda: snapshot_protected_roles(build(settings, clients)),
    )
    logger.info("protected roles snapshotted", extra={"roles": taken})
    return {"roles": taken}
