"""Scheduled log archive: export log windows to S3, archive findings and audit records, seal
complete days in signed manifests."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard.archive import archive_cycle
from connect_guard.clients import SCHEDULED_RETRY_CONFIG, AwsClients
from connect_guard.observability import logger
from connect_guard.settings import Settings


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    clients = AwsClients(settings.region, account_id=settings.own_account_id, config=SCHEDULED_RETRY_CONFIG)
    report = archive_cycle(settings, clients)
    summary = {
        "started": len(report.started),
        "completed": len(report.completed),
        "failed": report.failed,
        "waiting": report.waiting,
        "behind": report.behind,
        "archived_objects": len(report.archived_objects),
        "manifests": report.manifests,
    }
    logger.info("archive cycle finished", extra=summary)
    return summary
