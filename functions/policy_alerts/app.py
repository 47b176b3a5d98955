"""Policy-attachment alerts: SQS batches of CloudTrail IAM events → SOC findings on SNS."""

from connect_guard.responders import policy_alerts
from connect_guard.runtime import lambda_handler_for

lambda_handler = lambda_handler_for(policy_alerts.build)
