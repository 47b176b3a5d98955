"""Scheduled snapshot of protected roles: what a restore recreates after a deletion."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard import scheduled
from connect_guard.observability import logger
from connect_guard.responders.role_quarantine import build, snapshot_protected_roles


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    taken = scheduled.invoke(
        scheduled.ROLE_SNAPSHOT,
        context.aws_request_id,
        lambda settings, clients: snapshot_protected_roles(build(settings, clients)),
    )
    logger.info("protected roles snapshotted", extra={"roles": taken})
    return {"roles": taken}
