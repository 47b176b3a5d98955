"""Policy-attachment alerts: SQS batches of CloudTrail IAM events → SOC findings on SNS."""

# The runtime comes first on purpose: Powertools' batch utility loads every one of its pydantic
# models when pydantic is already imported, which costs ~100 ms of cold start.
from connect_guard.runtime import lambda_handler_for  # noqa: I001
from connect_guard.responders import policy_alerts

lambda_handler = lambda_handler_for(policy_alerts.build)
