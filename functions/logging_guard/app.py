"""Logging guard: SQS batches of CloudTrail trail changes → restore the approved trail."""

# The runtime first: see functions/policy_alerts/app.py.
from connect_guard.runtime import lambda_handler_for  # noqa: I001
from connect_guard.responders import logging_guard

lambda_handler = lambda_handler_for(logging_guard.build)
