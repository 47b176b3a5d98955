"""Liveness: SQS batches of canary events → arrivals recorded; the schedule's check → silences alerted.

One function for both halves: they read and write the same items (the canary partitions of the
baseline table) and publish to the same topic, so one role holds exactly what either needs.
"""

from connect_guard import liveness, scheduled
from connect_guard.runtime import init_in_lambda, lambda_handler_for

CHECK = {"check": "canary-silence"}  # the schedule's Input (template.yaml, LivenessSchedule)

records = lambda_handler_for(liveness.build)  # SQS batches; anything else is refused there
init_in_lambda(records)  # deployed: the pipeline is built in INIT (runtime.py)

lambda_handler = scheduled.check_or_records(
    CHECK,
    scheduled.LIVENESS_CHECK,
    lambda settings, clients: liveness.run_check(settings, clients),  # looked up per run: tests replace it
    records,
    finished="canary check finished",
    key="silent",
)
