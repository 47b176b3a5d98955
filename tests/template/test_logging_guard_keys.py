"""template.yaml and member/template.yaml for logging_guard's key guard (connect_guard.responders.key_guard)."""

from __future__ import annotations

from typing import Any

from connect_guard_tools.template import PROJECT_ROOT, load_template
from tests.template.stack import (
    KEY_GRANT_FOR_SERVICES,
    KEY_READS,
    KEY_WRITES,
    OWN_KEYS,
    RULES,
    T,
    as_list,
    parameters,
    props,
    queue_policy_statements,
    resolve,
    role_statements,
)

MEMBER = load_template(PROJECT_ROOT / "member" / "template.yaml")
KEY_EVENTS = ["DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy", "DisableKeyRotation"]


def _kms_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in role_statements(role["Properties"]) if any(a.startswith("kms:") for a in as_list(s["Action"]))]


def test_the_key_rule_sends_succeeded_and_denied_key_changes_to_the_logging_guard_queue():
    rule = RULES["LoggingGuardKeyRule"]["Properties"]
    # No errorCode filter: a denied attempt on a guarded key is itself a signal.
    assert rule["EventPattern"] == {
        "source": ["aws.kms"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["kms.amazonaws.com"], "eventName": KEY_EVENTS},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["LoggingGuardQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EventDeliveryDLQ", "Arn"]}
    # The queue admits it, and only the logging guard's rules.
    allow, deny = (s for s in queue_policy_statements("LoggingGuardQueue") if s["Sid"] != "DenyInsecureTransport")
    rule_arn = {"Fn::GetAtt": ["LoggingGuardKeyRule", "Arn"]}
    assert rule_arn in allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert rule_arn in deny["Condition"]["ArnNotEquals"]["aws:SourceArn"]


def test_every_key_of_the_stack_is_a_suite_key_of_the_logging_guard():
    keys = {name for name, r in T["Resources"].items() if r["Type"] == "AWS::KMS::Key"}
    delimiter, listed = props("LoggingGuardFunction")["Environment"]["Variables"]["SUITE_KEY_ARNS"]["Fn::Join"]
    assert delimiter == "," and all(set(item) == {"Fn::GetAtt"} and item["Fn::GetAtt"][1] == "Arn" for item in listed)
    assert {item["Fn::GetAtt"][0] for item in listed} == keys
    assert keys == {"SuiteKey", "ArchiveKey", "OperationsKey", "ArchiveSigningKey"}


def test_the_function_reads_this_accounts_keys_and_restores_them_only_in_enforce_mode():
    role = T["Resources"]["LoggingGuardFunctionRole"]
    statements = _kms_statements(role)
    reads = [s for s in statements if set(as_list(s["Action"])) == KEY_READS]
    writes = [s for s in statements if set(as_list(s["Action"])) == KEY_WRITES]
    assert len(reads) == 1 and len(writes) == 1
    assert reads[0]["Resource"] == writes[0]["Resource"] == OWN_KEYS
    for mode, granted in (("detect", set()), ("enforce", KEY_WRITES)):
        policies = resolve(role["Properties"]["Policies"], parameters(ResponseMode=mode))
        actions = {a for p in policies for s in as_list(p["PolicyDocument"]["Statement"]) for a in as_list(s["Action"])}
        assert actions & KEY_WRITES == granted, mode


def test_no_suite_role_may_write_a_key_policy_or_grant_a_key():
    # A key policy or a grant gives access: the suite never holds either right, in either stack.
    # The one grant: Connect's own, which Connect creates for itself when a storage config names a
    # key (kms:GrantIsForAWSResource: only an AWS service acting for the caller can use it).
    forbidden = {"kms:PutKeyPolicy", "kms:CreateGrant", "kms:*", "*"}
    for template in (T, MEMBER):
        for name, resource in template["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            for statement in role_statements(resource["Properties"]):
                if statement["Effect"] != "Allow":
                    continue
                actions = set(as_list(statement["Action"]))
                if actions == {"kms:CreateGrant"} and statement.get("Condition") == KEY_GRANT_FOR_SERVICES:
                    continue
                assert not actions & forbidden, f"{name}: {statement.get('Sid')}"


def test_snapshots_are_read_by_key_and_never_written_by_the_function():
    (snapshots,) = [s for s in role_statements(props("LoggingGuardFunctionRole")) if s.get("Sid") == "TrailSnapshots"]
    assert snapshots["Action"] == "dynamodb:GetItem"
    assert "key#*" in snapshots["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]


def test_the_drift_check_lists_approved_keys_by_their_index_only_and_in_every_mode():
    (index,) = [s for s in role_statements(props("LoggingGuardFunctionRole")) if s.get("Sid") == "KeySnapshotIndex"]
    assert (index["Effect"], index["Action"]) == ("Allow", "dynamodb:Query")
    assert index["Resource"] == {"Fn::GetAtt": ["BaselineTable", "Arn"]}
    # The index partition only (`key#index#<account>`): not the snapshots, nor any other partition.
    assert index["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["key#index#*"]}}
    for mode in ("detect", "enforce"):
        policies = resolve(props("LoggingGuardFunctionRole")["Policies"], parameters(ResponseMode=mode))
        assert "KeySnapshotIndex" in {s.get("Sid") for p in policies for s in as_list(p["PolicyDocument"]["Statement"])}
