"""Role-deletion quarantine: CloudTrail IAM/Connect deletion events → quarantine the actor."""

# The runtime first: see functions/policy_alerts/app.py.
from connect_guard.runtime import lambda_handler_for  # noqa: I001
from connect_guard.responders import role_quarantine

lambda_handler = lambda_handler_for(role_quarantine.build)
