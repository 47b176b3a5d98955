"""An outcome's record (what the replay prints, the handler logs and a duplicate reports): every
field in order, its alerts as plain dicts, never the published finding."""

from __future__ import annotations

from connect_guard.outcome import Alert, Outcome


def test_the_record_holds_every_field_but_the_finding_and_is_a_copy():
    outcome = Outcome("policy_alerts", "e-1", "AttachUserPolicy", "alerted", "HIGH", "admin attached")
    outcome.alerts.append(Alert("AttachUserPolicy by alice", "HIGH", "f-1", "m-1"))
    outcome.finding = {"finding_id": "f-1"}
    record = outcome.to_dict()
    assert list(record) == ["responder", "event_id", "event_name", "outcome", "severity", "reason", "alerts"]
    assert record["alerts"] == [
        {"subject": "AttachUserPolicy by alice", "severity": "HIGH", "finding_id": "f-1", "message_id": "m-1"}
    ]
    record["alerts"][0]["severity"] = "LOW"
    record["alerts"].clear()
    assert outcome.alerts == [Alert("AttachUserPolicy by alice", "HIGH", "f-1", "m-1")]
    assert outcome.finding == {"finding_id": "f-1"}
