"""Data at rest: the keys and whom they serve, the tables, the alert topic, and what happens to
every stateful resource's data."""

from __future__ import annotations

import pytest

from tests.template.stack import (
    RESOURCES,
    TABLES,
    as_list,
    props,
    references_suite_key,
)


def test_key_rotates_and_is_kept() -> None:
    key = RESOURCES["SuiteKey"]
    assert key["Properties"]["EnableKeyRotation"] is True
    # The table is retained: the key that encrypts it must be too.
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert props("SuiteKeyAlias")["AliasName"] == {"Fn::Sub": "alias/connect-guard-${Environment}"}


# Services that encrypt for our own resources only; the queue and topic policies restrict who
# can make them do so (EventBridge: our rules; CloudWatch: our alarms; SNS: our topic). Any other
# service principal must be conditioned.
UNCONDITIONED_KEY_SERVICES = {"events.amazonaws.com", "cloudwatch.amazonaws.com", "sns.amazonaws.com"}


@pytest.mark.parametrize("key", ["SuiteKey", "ArchiveKey", "OperationsKey"])
def test_key_policy_grants_services_only_data_key_use(key: str) -> None:
    for statement in props(key)["KeyPolicy"]["Statement"]:
        principal = statement["Principal"]
        assert principal != "*" and principal != {"AWS": "*"}, statement["Sid"]
        if "Service" in principal:
            assert statement["Effect"] == "Allow", statement["Sid"]
            assert set(as_list(statement["Action"])) <= {
                "kms:GenerateDataKey",
                "kms:GenerateDataKey*",
                "kms:Decrypt",
                "kms:Decrypt*",
                "kms:Encrypt*",
                "kms:ReEncrypt*",
                "kms:Describe*",
            }, statement["Sid"]
            if not (isinstance(principal["Service"], str) and principal["Service"] in UNCONDITIONED_KEY_SERVICES):
                assert statement.get("Condition"), statement["Sid"]
        else:
            assert principal == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}


def test_topic_and_tables_use_the_suite_key() -> None:
    assert references_suite_key(props("AlertTopic")["KmsMasterKeyId"])
    assert {"DedupTable", "BaselineTable", "AuditTable"} <= set(TABLES)
    for name in TABLES:
        sse = props(name)["SSESpecification"]
        assert sse["SSEEnabled"] is True and sse["SSEType"] == "KMS", name
        assert references_suite_key(sse["KMSMasterKeyId"]), name


def test_every_table_is_retained_with_point_in_time_recovery() -> None:
    for name, table in TABLES.items():
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain", name
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST", name


@pytest.mark.parametrize("name", ["BaselineTable", "AuditTable"])
def test_connect_state_tables_have_the_pk_sk_schema(name: str) -> None:
    p = props(name)
    assert p["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert p["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]


def test_audit_records_may_expire_and_nothing_streams_them() -> None:
    p = props("AuditTable")
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "StreamSpecification" not in p
    assert "TimeToLiveSpecification" not in props("BaselineTable")  # approved state never expires


def test_dedup_table_matches_powertools_idempotency_defaults() -> None:
    table = RESOURCES["DedupTable"]
    p = table["Properties"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_alert_topic_refuses_publishing_without_tls() -> None:
    statements = props("AlertTopicPolicy")["PolicyDocument"]["Statement"]
    tls_only = {"Bool": {"aws:SecureTransport": "false"}}
    assert any(s["Effect"] == "Deny" and s["Condition"] == tls_only for s in statements)
    for s in statements:
        if s["Effect"] == "Allow" and "Service" in s["Principal"]:
            assert s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


STATEFUL = ("AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::KMS::Key", "AWS::S3::Bucket")


def test_stateful_resources_say_what_happens_to_their_data() -> None:
    for name, resource in RESOURCES.items():
        if resource["Type"] in STATEFUL:
            assert resource.get("DeletionPolicy") in ("Delete", "Retain"), name
            assert resource.get("UpdateReplacePolicy") == resource["DeletionPolicy"], name
