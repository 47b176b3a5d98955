"""Role-deletion quarantine: CloudTrail IAM/Connect deletion events → quarantine the actor."""

from connect_guard.responders import role_quarantine
from connect_guard.runtime import init_in_lambda, lambda_handler_for

lambda_handler = lambda_handler_for(role_quarantine.build)
init_in_lambda(lambda_handler)  # deployed: settings, clients and pipeline built in INIT (runtime.py)
