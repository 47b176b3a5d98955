"""Policy-attachment alerts: SQS batches of CloudTrail IAM events → SOC findings on SNS."""

from connect_guard.responders import policy_alerts
from connect_guard.runtime import init_in_lambda, lambda_handler_for

lambda_handler = lambda_handler_for(policy_alerts.build)
init_in_lambda(lambda_handler)  # deployed: settings, clients and pipeline built in INIT (runtime.py)
