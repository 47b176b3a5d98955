"""Security-profile rollback: SQS batches of CloudTrail Connect events → restore the baseline."""

from connect_guard.responders import profile_rollback
from connect_guard.runtime import init_in_lambda, lambda_handler_for

lambda_handler = lambda_handler_for(profile_rollback.build)
init_in_lambda(lambda_handler)  # deployed: settings, clients and pipeline built in INIT (runtime.py)
