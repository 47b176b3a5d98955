"""Liveness: SQS batches of canary events → arrivals recorded; the schedule's check → silences alerted.

One function for both halves: they read and write the same items (the canary partitions of the
baseline table) and publish to the same topic, so one role holds exactly what either needs.
"""

# The runtime comes first on purpose (see policy_alerts/app.py): pydantic import order.
from connect_guard.runtime import lambda_handler_for  # noqa: I001

from connect_guard import liveness, scheduled

CHECK = {"check": "canary-silence"}  # the schedule's Input (template.yaml, LivenessSchedule)


lambda_handler = scheduled.check_or_records(
    CHECK,
    scheduled.LIVENESS_CHECK,
    lambda settings, clients: liveness.run_check(settings, clients),  # looked up per run: tests replace it
    lambda_handler_for(liveness.build),  # SQS batches; anything else is refused there
    finished="canary check finished",
    key="silent",
)
