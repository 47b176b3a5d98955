"""Security Hub import: every finding from the alert topic as an ASFF finding (updated by Id)."""

import json
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from connect_guard.clients import RETRY_CONFIG
from connect_guard.findings import SCHEMA_ID as FINDING_SCHEMA
from connect_guard.integrations import to_asff
from connect_guard.observability import logger
from connect_guard.settings import Settings

_clients: list[Any] = []
_loaded: list[Settings] = []


def _settings() -> Settings:
    if not _loaded:
        _loaded.append(Settings.from_env())
    return _loaded[0]


def _securityhub(region: str) -> Any:
    if not _clients:
        _clients.append(boto3.session.Session().client("securityhub", region_name=region, config=RETRY_CONFIG))
    return _clients[0]


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A refused import raises: Lambda retries, then the DLQ keeps the notification."""
    settings = _settings()
    findings = []
    for record in event["Records"]:
        message = json.loads(record["Sns"]["Message"])
        if not isinstance(message, dict) or message.get("schema") != FINDING_SCHEMA:
            # CloudWatch alarms share the topic: they are not findings and stay out of Security Hub.
            logger.info("not a finding: skipped", extra={"subject": record["Sns"].get("Subject")})
            continue
        findings.append(to_asff(message, settings.own_account_id, settings.region))
    if not findings:
        return {"imported": 0}
    response = _securityhub(settings.region).batch_import_findings(Findings=findings)
    if response.get("FailedCount"):
        raise RuntimeError(f"Security Hub refused findings: {response.get('FailedFindings')}")
    logger.info("imported into Security Hub", extra={"ids": [f["Id"] for f in findings]})
    return {"imported": response.get("SuccessCount", 0)}
