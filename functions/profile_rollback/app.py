"""Security-profile rollback: SQS batches of CloudTrail Connect events → restore the baseline."""

# The runtime first: see functions/policy_alerts/app.py.
from connect_guard.runtime import lambda_handler_for  # noqa: I001
from connect_guard.responders import profile_rollback

lambda_handler = lambda_handler_for(profile_rollback.build)
