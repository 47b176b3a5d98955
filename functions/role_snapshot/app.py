"""Scheduled snapshot of protected roles: what a restore recreates after a deletion."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard.clients import AwsClients
from connect_guard.observability import logger
from connect_guard.responders.role_quarantine import build, snapshot_protected_roles
from connect_guard.settings import Settings


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    taken = snapshot_protected_roles(build(settings, AwsClients(settings.region, account_id=settings.own_account_id)))
    logger.info("protected roles snapshotted", extra={"roles": taken})
    return {"roles": taken}
