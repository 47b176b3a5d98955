"""The action journal in the audit table: written before an action, completed with its audit
records in one transaction, kept out of the day partitions the archive exports."""

from __future__ import annotations

from connect_guard.audit import JOURNAL_RETENTION_SECONDS, ActionJournal, AuditLog, action_record
from connect_guard.findings import Action


def journal(aws) -> ActionJournal:
    return ActionJournal(AuditLog(aws.clients.dynamodb, aws.audit_table))


def record(j: ActionJournal, n: int) -> dict:
    action = Action("connect", "UpdateSecurityProfile", {"SecurityProfileId": f"p-{n}"}, "taken")
    return action_record(
        j.audit,
        action,
        responder="baseline_sweep",
        actor=None,
        target=f"profile/p-{n}",
        reason="drift",
        before=["a"],
        event_id=None,
        finding_id="cg-1",
        mode="enforce",
    )


def test_a_started_action_is_found_by_its_finding_and_completed_once(aws):
    j = journal(aws)
    pending = j.begin("cg-1", responder="profile_rollback", event_id="e-1", records=[record(j, 0)], payload={"k": 1})
    found = j.get("cg-1")
    assert found is not None and not found.audited and found.payload == {"k": 1} and found.event_id == "e-1"
    assert aws.audit_records() == []  # nothing audited before the action is made
    j.complete(pending, [record(j, 0)], "taken")
    done = j.get("cg-1")
    assert done is not None and done.audited
    assert [(a.operation, a.status) for a in done.actions()] == [("UpdateSecurityProfile", "taken")]
    (audit,) = aws.audit_records()
    assert audit["pk"]["S"].startswith("audit#") and audit["finding_id"]["S"] == "cg-1"
    assert "service" not in audit  # the journal's helper key stays out of the audit record
    (item,) = aws.journal()
    assert item["pk"]["S"] == "finding#cg-1" and int(item["expires_at"]["N"]) > JOURNAL_RETENTION_SECONDS


def test_more_records_than_one_transaction_holds_are_all_written(aws):
    j = journal(aws)
    pending = j.begin("cg-1", responder="baseline_sweep", event_id="e-1", records=[])
    j.complete(pending, [record(j, n) for n in range(250)], "taken", keep=False)
    audits = aws.audit_records()
    assert len(audits) == 250 and len({a["sk"]["S"] for a in audits}) == 250
    done = j.get("cg-1")
    assert done is not None and done.audited and done.records == ()
