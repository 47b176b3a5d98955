"""Logging guard: SQS batches of CloudTrail trail changes → restore the approved trail; the
schedule's drift check → trails and flow logs re-read without an event (responders.logging_drift).

One function for both (as liveness): the same role holds exactly the reads and restoring writes
either needs, and the drift check restores through the same journal and audit log.
"""

from connect_guard import scheduled
from connect_guard.responders import logging_drift, logging_guard
from connect_guard.runtime import init_in_lambda, lambda_handler_for

DRIFT_CHECK = {"check": "logging-drift"}  # the schedule's Input (template.yaml, LoggingDriftSchedule)

records = lambda_handler_for(logging_guard.build)  # SQS batches; anything else is refused there
init_in_lambda(records)  # deployed: the pipeline is built in INIT (runtime.py)

lambda_handler = scheduled.check_or_records(
    DRIFT_CHECK,
    scheduled.LOGGING_DRIFT,
    lambda settings, clients: logging_drift.run(settings, clients),  # looked up per run: tests replace it
    records,
    finished="drift check finished",
    key="findings",
)
