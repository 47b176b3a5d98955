"""The in-memory Connect fake: real boto3 clients, botocore's validation, the real API shapes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import validate_parameters
from moto import mock_aws

from connect_guard_tools.connect_fake import ConnectFake, seed_from_spec

ACCOUNT, REGION = "111122223333", "us-east-1"
INSTANCE = "7c1d5a8e-2f4b-4c3a-9e61-0a1b2c3d4e5f"
ARN = f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{INSTANCE}"
NO_RETRIES = Config(retries={"max_attempts": 1})


@pytest.fixture(scope="module")
def session() -> Iterator[boto3.session.Session]:
    with mock_aws():
        yield boto3.session.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def fake() -> ConnectFake:
    fake = ConnectFake()
    fake.add_instance(ACCOUNT, REGION, INSTANCE, "acme")
    fake.add_security_profile(INSTANCE, "Agent", ["OutboundCallAccess", "BasicAgentAccess"], profile_id="p-agent")
    fake.add_security_profile(INSTANCE, "Admin", ["Users.Edit", "SecurityProfiles.Edit"], profile_id="p-admin")
    fake.add_user(INSTANCE, "j.doe", ["p-agent"], user_id="u-jdoe", first_name="Jane", last_name="Doe", email="j@x")
    return fake


@pytest.fixture
def client(session: boto3.session.Session, fake: ConnectFake) -> Any:
    """A client of the shared moto session, with this test's fake on its own emitter."""
    client = session.client("connect", config=NO_RETRIES)
    fake.install(client.meta.events)
    return client


def assert_model_shape(client: Any, operation: str, response: dict[str, Any]) -> None:
    """As Stubber checks its canned responses: the response fits the operation's output shape."""
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    validate_parameters(body, client.meta.service_model.operation_model(operation).output_shape)


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def test_botocore_rejects_invalid_params_before_the_fake(client: Any, fake: ConnectFake) -> None:
    with pytest.raises(ParamValidationError):
        client.describe_user(InstanceId=INSTANCE)
    with pytest.raises(ParamValidationError):  # below the model's minimum of one profile
        client.update_user_security_profiles(InstanceId=INSTANCE, UserId="u-jdoe", SecurityProfileIds=[])
    assert fake.calls == []


def test_describe_user_has_the_real_shape(client: Any) -> None:
    response = client.describe_user(InstanceId=INSTANCE, UserId="u-jdoe")
    assert_model_shape(client, "DescribeUser", response)
    user = response["User"]
    assert user["Arn"] == f"{ARN}/agent/u-jdoe"
    assert user["Username"] == "j.doe" and user["SecurityProfileIds"] == ["p-agent"]
    assert user["IdentityInfo"] == {"FirstName": "Jane", "LastName": "Doe", "Email": "j@x"}
    assert user["PhoneConfig"] == {"PhoneType": "SOFT_PHONE", "AutoAccept": False, "AfterContactWorkTimeLimit": 0}
    assert user["RoutingProfileId"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_the_instance_arn_is_accepted_as_instance_id(client: Any) -> None:
    assert client.describe_user(InstanceId=ARN, UserId="u-jdoe")["User"]["Id"] == "u-jdoe"
    other_account = ARN.replace(ACCOUNT, "999999999999")
    with pytest.raises(ClientError) as excinfo:
        client.describe_user(InstanceId=other_account, UserId="u-jdoe")
    assert error_code(excinfo) == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("instance_id", "user_id"),
    [(INSTANCE, "nobody"), ("00000000-0000-4000-8000-000000000000", "u-jdoe")],
    ids=["unknown-user", "unknown-instance"],
)
def test_unknown_resources_are_resource_not_found(client: Any, instance_id: str, user_id: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.describe_user(InstanceId=instance_id, UserId=user_id)
    assert error_code(excinfo) == "ResourceNotFoundException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_an_instance_is_found_only_in_its_region(session: boto3.session.Session, fake: ConnectFake) -> None:
    client = session.client("connect", region_name="eu-west-2", config=NO_RETRIES)
    fake.install(client.meta.events)
    with pytest.raises(ClientError) as excinfo:
        client.describe_user(InstanceId=INSTANCE, UserId="u-jdoe")
    assert error_code(excinfo) == "ResourceNotFoundException"


def test_search_users_pages_through_every_user(client: Any, fake: ConnectFake) -> None:
    for n in range(4):
        fake.add_user(INSTANCE, f"agent{n}", ["p-agent"])
    first = client.search_users(InstanceId=INSTANCE, MaxResults=2)
    assert_model_shape(client, "SearchUsers", first)
    assert len(first["Users"]) == 2 and first["ApproximateTotalCount"] == 5 and first["NextToken"]
    assert set(first["Users"][0]) == {
        "Id", "Arn", "Username", "SecurityProfileIds", "RoutingProfileId", "IdentityInfo", "PhoneConfig", "Tags"
    }  # fmt: skip
    assert first["Users"][0]["IdentityInfo"] == {"FirstName": "Jane", "LastName": "Doe"}  # no Email in search
    pages = client.get_paginator("search_users").paginate(InstanceId=INSTANCE, PaginationConfig={"PageSize": 2})
    usernames = [u["Username"] for page in pages for u in page["Users"]]
    assert usernames == ["j.doe", "agent0", "agent1", "agent2", "agent3"]
    assert [op for op, _ in fake.calls].count("SearchUsers") == 4  # 1 + three pages of 2, 2, 1


def test_search_users_matches_a_username_exactly(client: Any, fake: ConnectFake) -> None:
    fake.add_user(INSTANCE, "j.doe2", ["p-agent"])
    criteria = {"StringCondition": {"FieldName": "Username", "Value": "j.doe", "ComparisonType": "EXACT"}}
    response = client.search_users(InstanceId=INSTANCE, SearchCriteria=criteria)
    assert [u["Username"] for u in response["Users"]] == ["j.doe"] and "NextToken" not in response


def test_model_maximums_botocore_leaves_to_the_service_are_invalid_parameters(client: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.search_users(InstanceId=INSTANCE, MaxResults=501)
    assert error_code(excinfo) == "InvalidParameterException"
    with pytest.raises(ClientError) as excinfo:
        client.list_security_profile_permissions(InstanceId=INSTANCE, SecurityProfileId="p-agent", NextToken="junk")
    assert error_code(excinfo) == "InvalidParameterException"


def test_list_users_summaries(client: Any) -> None:
    response = client.list_users(InstanceId=INSTANCE)
    assert_model_shape(client, "ListUsers", response)
    (summary,) = response["UserSummaryList"]
    assert (summary["Id"], summary["Arn"], summary["Username"]) == ("u-jdoe", f"{ARN}/agent/u-jdoe", "j.doe")


def test_update_user_security_profiles_replaces_the_assignment(client: Any, fake: ConnectFake) -> None:
    client.update_user_security_profiles(InstanceId=INSTANCE, UserId="u-jdoe", SecurityProfileIds=["p-admin"])
    assert fake.user(INSTANCE, "u-jdoe")["SecurityProfileIds"] == ["p-admin"]
    client.update_user_security_profiles(
        InstanceId=ARN, UserId="u-jdoe", SecurityProfileIds=["p-agent", "p-admin", "p-agent"]
    )
    assert fake.user(INSTANCE, "u-jdoe")["SecurityProfileIds"] == ["p-admin", "p-agent"]


def test_update_user_security_profiles_rejects_unknown_or_too_many_profiles(client: Any, fake: ConnectFake) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.update_user_security_profiles(InstanceId=INSTANCE, UserId="u-jdoe", SecurityProfileIds=["p-gone"])
    assert error_code(excinfo) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as excinfo:
        client.update_user_security_profiles(
            InstanceId=INSTANCE, UserId="u-jdoe", SecurityProfileIds=[f"p{n}" for n in range(11)]
        )
    assert error_code(excinfo) == "InvalidParameterException"
    assert fake.user(INSTANCE, "u-jdoe")["SecurityProfileIds"] == ["p-agent"]


def test_security_profile_reads_have_the_real_shapes(client: Any) -> None:
    listed = client.list_security_profiles(InstanceId=INSTANCE)
    assert_model_shape(client, "ListSecurityProfiles", listed)
    assert [(p["Id"], p["Name"]) for p in listed["SecurityProfileSummaryList"]] == [
        ("p-agent", "Agent"),
        ("p-admin", "Admin"),
    ]
    described = client.describe_security_profile(InstanceId=INSTANCE, SecurityProfileId="p-agent")
    assert_model_shape(client, "DescribeSecurityProfile", described)
    assert described["SecurityProfile"]["OrganizationResourceId"] == INSTANCE
    assert described["SecurityProfile"]["Arn"] == f"{ARN}/security-profile/p-agent"
    permissions = client.list_security_profile_permissions(InstanceId=INSTANCE, SecurityProfileId="p-agent")
    assert_model_shape(client, "ListSecurityProfilePermissions", permissions)
    assert permissions["Permissions"] == ["BasicAgentAccess", "OutboundCallAccess"]
    applications = client.list_security_profile_applications(InstanceId=INSTANCE, SecurityProfileId="p-agent")
    assert_model_shape(client, "ListSecurityProfileApplications", applications)
    assert applications["Applications"] == []


def test_permissions_page_in_sorted_order(client: Any, fake: ConnectFake) -> None:
    many = [f"Perm{n:03}" for n in range(250)]
    profile_id = fake.add_security_profile(INSTANCE, "Big", reversed(many))
    paginator = client.get_paginator("list_security_profile_permissions")
    pages = list(paginator.paginate(InstanceId=INSTANCE, SecurityProfileId=profile_id))
    assert [len(page["Permissions"]) for page in pages] == [100, 100, 50]  # the API's default page is 100
    assert [p for page in pages for p in page["Permissions"]] == many


def test_update_security_profile_replaces_what_is_given(client: Any, fake: ConnectFake) -> None:
    before = fake.profile(INSTANCE, "p-agent")
    apps = [{"Namespace": "Salesforce", "ApplicationPermissions": ["Read"]}]
    client.update_security_profile(
        InstanceId=INSTANCE, SecurityProfileId="p-agent", Permissions=["Users.View"], Applications=apps
    )
    after = fake.profile(INSTANCE, "p-agent")
    assert after["Permissions"] == ["Users.View"] and after["Applications"] == apps
    assert after["LastModifiedTime"] >= before["LastModifiedTime"]
    client.update_security_profile(InstanceId=INSTANCE, SecurityProfileId="p-agent", Description="agents")
    assert fake.profile(INSTANCE, "p-agent")["Permissions"] == ["Users.View"]  # not given: unchanged
    client.update_security_profile(InstanceId=INSTANCE, SecurityProfileId="p-agent", Permissions=[])
    assert fake.profile(INSTANCE, "p-agent")["Permissions"] == []


def test_update_security_profile_refuses_more_than_500_permissions(client: Any, fake: ConnectFake) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.update_security_profile(
            InstanceId=INSTANCE, SecurityProfileId="p-agent", Permissions=[f"P{n}" for n in range(501)]
        )
    assert error_code(excinfo) == "InvalidParameterException"
    assert fake.profile(INSTANCE, "p-agent")["Permissions"] == ["BasicAgentAccess", "OutboundCallAccess"]


def test_a_profiles_hierarchy_restriction_must_name_one_of_the_instances_groups(client: Any, fake: ConnectFake) -> None:
    for call in (
        lambda: client.update_security_profile(
            InstanceId=INSTANCE, SecurityProfileId="p-agent", AllowedAccessControlHierarchyGroupId="g-unknown"
        ),
        lambda: client.create_security_profile(
            InstanceId=INSTANCE, SecurityProfileName="X", AllowedAccessControlHierarchyGroupId="g-unknown"
        ),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == "ResourceNotFoundException"
    assert "AllowedAccessControlHierarchyGroupId" not in fake.profile(INSTANCE, "p-agent")
    with pytest.raises(KeyError):
        fake.profile_id(INSTANCE, "X")  # the refused create made nothing
    group = fake.add_hierarchy_group(INSTANCE, "EMEA", "g-emea")
    client.update_security_profile(
        InstanceId=INSTANCE, SecurityProfileId="p-agent", AllowedAccessControlHierarchyGroupId=group
    )
    assert fake.profile(INSTANCE, "p-agent")["AllowedAccessControlHierarchyGroupId"] == "g-emea"


def test_create_security_profile_and_user(client: Any, fake: ConnectFake) -> None:
    created = client.create_security_profile(
        InstanceId=INSTANCE, SecurityProfileName="Supervisor", Permissions=["AccessMetrics"]
    )
    assert_model_shape(client, "CreateSecurityProfile", created)
    profile_id = created["SecurityProfileId"]
    assert created["SecurityProfileArn"] == f"{ARN}/security-profile/{profile_id}"
    assert fake.profile_id(INSTANCE, "Supervisor") == profile_id
    with pytest.raises(ClientError) as excinfo:
        client.create_security_profile(InstanceId=INSTANCE, SecurityProfileName="Supervisor")
    assert error_code(excinfo) == "DuplicateResourceException"

    user = client.create_user(
        InstanceId=INSTANCE,
        Username="s.lee",
        SecurityProfileIds=[profile_id],
        RoutingProfileId="rp-1",
        PhoneConfig={"PhoneType": "SOFT_PHONE"},
    )
    assert_model_shape(client, "CreateUser", user)
    assert fake.user_id(INSTANCE, "s.lee") == user["UserId"]
    assert client.describe_user(InstanceId=INSTANCE, UserId=user["UserId"])["User"]["SecurityProfileIds"] == [
        profile_id
    ]


def test_fail_next_raises_the_code_then_recovers(client: Any, fake: ConnectFake) -> None:
    fake.fail_next("UpdateUserSecurityProfiles", times=2)
    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            client.update_user_security_profiles(InstanceId=INSTANCE, UserId="u-jdoe", SecurityProfileIds=["p-admin"])
        assert error_code(excinfo) == "ThrottlingException"
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert fake.user(INSTANCE, "u-jdoe")["SecurityProfileIds"] == ["p-agent"]  # the failed calls changed nothing
    client.update_user_security_profiles(InstanceId=INSTANCE, UserId="u-jdoe", SecurityProfileIds=["p-admin"])
    assert fake.user(INSTANCE, "u-jdoe")["SecurityProfileIds"] == ["p-admin"]

    fake.fail_next("describe_user", code="InternalServiceException")  # the client method name works too
    with pytest.raises(ClientError) as excinfo:
        client.describe_user(InstanceId=INSTANCE, UserId="u-jdoe")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    with pytest.raises(ValueError, match="no operation"):
        fake.fail_next("DescribeUsers")


def test_the_call_log_records_every_answered_call(client: Any, fake: ConnectFake) -> None:
    client.describe_user(InstanceId=INSTANCE, UserId="u-jdoe")
    with pytest.raises(ClientError):
        client.describe_user(InstanceId=INSTANCE, UserId="nobody")
    client.update_user_security_profiles(InstanceId=INSTANCE, UserId="u-jdoe", SecurityProfileIds=["p-admin"])
    assert fake.calls == [
        ("DescribeUser", {"InstanceId": INSTANCE, "UserId": "u-jdoe"}),
        ("DescribeUser", {"InstanceId": INSTANCE, "UserId": "nobody"}),
        ("UpdateUserSecurityProfiles", {"InstanceId": INSTANCE, "UserId": "u-jdoe", "SecurityProfileIds": ["p-admin"]}),
    ]


def test_responses_and_inspection_are_copies(client: Any, fake: ConnectFake) -> None:
    client.describe_user(InstanceId=INSTANCE, UserId="u-jdoe")["User"]["SecurityProfileIds"].append("p-admin")
    fake.profile(INSTANCE, "p-agent")["Permissions"].append("Users.Edit")
    assert fake.user(INSTANCE, "u-jdoe")["SecurityProfileIds"] == ["p-agent"]
    assert "Users.Edit" not in fake.profile(INSTANCE, "p-agent")["Permissions"]


def test_other_operations_fall_through_to_moto(session: boto3.session.Session) -> None:
    fake = ConnectFake()
    fake.install(session.events)  # session-wide: only clients created from now on get the hooks
    try:
        client = session.client("connect", config=NO_RETRIES)
        created = client.create_instance(IdentityManagementType="CONNECT_MANAGED", InboundCallsEnabled=True,
                                         OutboundCallsEnabled=True)  # fmt: skip
        # ListInstances is the fake's (its instances, the caller's account's): DeleteInstance is not.
        client.delete_instance(InstanceId=created["Id"])
        with pytest.raises(ClientError, match="ResourceNotFound"):
            client.delete_instance(InstanceId=created["Id"])  # moto deleted it
        assert fake.calls == []
    finally:
        fake.uninstall(session.events)


SPEC: dict[str, Any] = {
    "id": INSTANCE,
    "alias": "acme-contact-centre",
    "security_profiles": [
        {"id": "p-agent", "name": "Agent", "permissions": ["OutboundCallAccess", "BasicAgentAccess"]},
        {"name": "Admin", "permissions": ["Users.Edit"]},
        {
            "name": "Manager",
            "permissions": ["AccessMetrics"],
            "current_permissions": ["AccessMetrics", "DownloadCallRecordings"],
        },
        {"name": "Shadow", "permissions": ["Users.Edit"], "in_baseline": False},
    ],
    "users": [
        {
            "id": "u-jdoe",
            "username": "j.doe",
            "first_name": "Jane",
            "security_profiles": ["Agent"],
            "current_security_profiles": ["Agent", "Admin"],
        },
        {"username": "it.admin", "security_profiles": ["Admin"]},
        {"username": "ghost", "security_profiles": ["Shadow"], "in_baseline": False},
    ],
}


def test_seed_from_spec_creates_the_current_state_and_returns_the_baseline() -> None:
    fake = ConnectFake()
    seeded = seed_from_spec(fake, ACCOUNT, copy.deepcopy(SPEC))
    assert (seeded.instance_id, seeded.instance_arn, seeded.region) == (INSTANCE, ARN, REGION)
    assert (seeded.account_id, seeded.alias) == (ACCOUNT, "acme-contact-centre")
    admin, manager, shadow = (fake.profile_id(INSTANCE, n) for n in ("Admin", "Manager", "Shadow"))

    # The fake holds the state now: the drifted values.
    assert fake.profile(INSTANCE, manager)["Permissions"] == ["AccessMetrics", "DownloadCallRecordings"]
    assert fake.user(INSTANCE, "u-jdoe")["SecurityProfileIds"] == sorted(["p-agent", admin])
    assert fake.user(INSTANCE, "u-jdoe")["IdentityInfo"]["FirstName"] == "Jane"

    # The baseline holds the approved values, and no in_baseline: false entries.
    profiles, users = seeded.baseline["profiles"], seeded.baseline["users"]
    assert set(profiles) == {"p-agent", admin, manager}
    assert profiles["p-agent"] == {
        "name": "Agent",
        "permissions": ["BasicAgentAccess", "OutboundCallAccess"],
        "access": {},
    }
    assert profiles[manager]["permissions"] == ["AccessMetrics"]
    assert set(users) == {"u-jdoe", fake.user_id(INSTANCE, "it.admin")}
    assert users["u-jdoe"] == {
        "username": "j.doe",
        "security_profile_ids": ["p-agent"],
        "identity": {"FirstName": "Jane", "LastName": "", "Email": "", "SecondaryEmail": ""},
        "hierarchy_group_id": "",
        "tags": {},
    }
    assert fake.user(INSTANCE, fake.user_id(INSTANCE, "ghost"))["SecurityProfileIds"] == [shadow]


def test_seed_from_spec_refuses_unknown_profiles_and_keys() -> None:
    spec = copy.deepcopy(SPEC)
    spec["users"][1]["security_profiles"] = ["Supervisor"]
    with pytest.raises(ValueError, match="Supervisor"):
        seed_from_spec(ConnectFake(), ACCOUNT, spec)
    spec = copy.deepcopy(SPEC)
    spec["security_profiles"][0]["current_permission"] = []  # misspelt: would seed no drift
    with pytest.raises(ValueError, match="current_permission"):
        seed_from_spec(ConnectFake(), ACCOUNT, spec)


def test_a_seeded_instance_in_another_region_is_served_there(session: boto3.session.Session) -> None:
    fake = ConnectFake()
    seeded = seed_from_spec(fake, ACCOUNT, {**SPEC, "id": "eu-instance", "region": "eu-west-2"})
    assert seeded.instance_arn == f"arn:aws:connect:eu-west-2:{ACCOUNT}:instance/eu-instance"
    client = session.client("connect", region_name="eu-west-2", config=NO_RETRIES)
    fake.install(client.meta.events)
    response = client.describe_user(InstanceId=seeded.instance_arn, UserId="u-jdoe")
    assert response["User"]["LastModifiedRegion"] == "eu-west-2"


# ---- storage configs (logging_guard) -------------------------------------------------------------
RECORDINGS = {
    "StorageType": "S3",
    "S3Config": {
        "BucketName": "acme-recordings",
        "BucketPrefix": "CallRecordings",
        "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": "arn:aws:kms:us-east-1:111122223333:key/k1"},
    },
}
CTR_STREAM = {
    "StorageType": "KINESIS_STREAM",
    "KinesisStreamConfig": {"StreamArn": "arn:aws:kinesis:us-east-1:1:stream/c"},
}


def test_storage_configs_are_associated_listed_described_updated_and_disassociated(client: Any) -> None:
    created = client.associate_instance_storage_config(
        InstanceId=INSTANCE, ResourceType="CALL_RECORDINGS", StorageConfig=RECORDINGS
    )
    assert_model_shape(client, "AssociateInstanceStorageConfig", created)
    association = created["AssociationId"]
    assert len(association) == 64
    listed = client.list_instance_storage_configs(InstanceId=INSTANCE, ResourceType="CALL_RECORDINGS")
    assert_model_shape(client, "ListInstanceStorageConfigs", listed)
    assert listed["StorageConfigs"] == [{"AssociationId": association, **RECORDINGS}]
    assert client.list_instance_storage_configs(InstanceId=ARN, ResourceType="CHAT_TRANSCRIPTS")["StorageConfigs"] == []
    moved = {"StorageType": "S3", "S3Config": {"BucketName": "elsewhere", "BucketPrefix": "x"}}
    client.update_instance_storage_config(
        InstanceId=INSTANCE, AssociationId=association, ResourceType="CALL_RECORDINGS", StorageConfig=moved
    )
    described = client.describe_instance_storage_config(
        InstanceId=INSTANCE, AssociationId=association, ResourceType="CALL_RECORDINGS"
    )
    assert_model_shape(client, "DescribeInstanceStorageConfig", described)
    assert described["StorageConfig"] == {"AssociationId": association, **moved}  # encryption gone, as sent
    client.disassociate_instance_storage_config(
        InstanceId=INSTANCE, AssociationId=association, ResourceType="CALL_RECORDINGS"
    )
    assert (
        client.list_instance_storage_configs(InstanceId=INSTANCE, ResourceType="CALL_RECORDINGS")["StorageConfigs"]
        == []
    )


@pytest.mark.parametrize(
    ("resource_type", "config", "code"),
    [
        # The storage type must fit the resource type.
        ("CALL_RECORDINGS", CTR_STREAM, "InvalidRequestException"),
        ("CONTACT_TRACE_RECORDS", RECORDINGS, "InvalidRequestException"),
        # The config of the storage type, and only it.
        ("CALL_RECORDINGS", {"StorageType": "S3"}, "InvalidParameterException"),
        ("CALL_RECORDINGS", {**RECORDINGS, **CTR_STREAM, "StorageType": "S3"}, "InvalidParameterException"),
        (
            "CONTACT_TRACE_RECORDS",
            {**CTR_STREAM, "KinesisStreamConfig": {"StreamArn": "acme"}},
            "InvalidParameterException",
        ),
        # botocore checks no enum values: the service does.
        ("FUTURE_RECORDINGS", RECORDINGS, "InvalidParameterException"),
    ],
)
def test_storage_configs_connect_refuses(client: Any, resource_type: str, config: dict[str, Any], code: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.associate_instance_storage_config(InstanceId=INSTANCE, ResourceType=resource_type, StorageConfig=config)
    assert error_code(excinfo) == code


def test_one_association_per_type_and_unknown_associations_are_not_found(client: Any) -> None:
    first = client.associate_instance_storage_config(
        InstanceId=INSTANCE, ResourceType="CONTACT_TRACE_RECORDS", StorageConfig=CTR_STREAM
    )["AssociationId"]
    with pytest.raises(ClientError) as excinfo:
        client.associate_instance_storage_config(
            InstanceId=INSTANCE, ResourceType="CONTACT_TRACE_RECORDS", StorageConfig=CTR_STREAM
        )
    assert error_code(excinfo) == "ResourceConflictException"
    for association, kind in (("0" * 64, "CONTACT_TRACE_RECORDS"), (first, "AGENT_EVENTS")):  # another type's ID too
        with pytest.raises(ClientError) as excinfo:
            client.disassociate_instance_storage_config(
                InstanceId=INSTANCE, AssociationId=association, ResourceType=kind
            )
        assert error_code(excinfo) == "ResourceNotFoundException"
    firehose = {
        "StorageType": "KINESIS_FIREHOSE",
        "KinesisFirehoseConfig": {"FirehoseArn": "arn:aws:firehose:us-east-1:1:deliverystream/f"},
    }
    with pytest.raises(ClientError) as excinfo:  # an update keeps the storage type
        client.update_instance_storage_config(
            InstanceId=INSTANCE, AssociationId=first, ResourceType="CONTACT_TRACE_RECORDS", StorageConfig=firehose
        )
    assert error_code(excinfo) == "InvalidRequestException"


def test_seeded_storage_is_approved_then_tampered_as_the_spec_says(fake: ConnectFake) -> None:
    spec = {
        "id": "0f0e0d0c-0b0a-4909-8807-060504030201",
        "storage": [
            {
                "resource_type": "CALL_RECORDINGS",
                "storage_type": "S3",
                "bucket": "b",
                "prefix": "p",
                "current": {"bucket": "x"},
            },
            {
                "resource_type": "SCHEDULED_REPORTS",
                "storage_type": "S3",
                "bucket": "r",
                "prefix": "p",
                "current": "disassociated",
            },
            {
                "resource_type": "AGENT_EVENTS",
                "storage_type": "KINESIS_STREAM",
                "stream_arn": "arn:aws:kinesis:us-east-1:1:stream/a",
                "in_baseline": False,
            },
        ],
    }
    seeded = seed_from_spec(fake, ACCOUNT, spec)
    assert [(c.resource_type, c.bucket) for c in seeded.storage] == [
        ("CALL_RECORDINGS", "b"),
        ("SCHEDULED_REPORTS", "r"),
    ]
    assert fake.storage_configs(spec["id"], "CALL_RECORDINGS")[0]["S3Config"]["BucketName"] == "x"
    assert fake.storage_configs(spec["id"], "SCHEDULED_REPORTS") == []
    assert len(fake.storage_configs(spec["id"], "AGENT_EVENTS")) == 1
    with pytest.raises(ValueError, match="unknown keys"):
        seed_from_spec(fake, ACCOUNT, {"id": "other", "storage": [{"resource_type": "CALL_RECORDINGS", "bukket": "b"}]})


# ---- users' identity info, hierarchy group and tags (connect_user_guard) --------------------------
def test_update_user_identity_info_replaces_the_identity_and_checks_emails(client: Any, fake: ConnectFake) -> None:
    client.update_user_identity_info(
        InstanceId=INSTANCE, UserId="u-jdoe", IdentityInfo={"FirstName": "Jane", "Email": "jane@example.com"}
    )
    assert fake.user(INSTANCE, "u-jdoe")["IdentityInfo"] == {"FirstName": "Jane", "Email": "jane@example.com"}
    for bad in ({"Email": "not-an-email"}, {"SecondaryEmail": "a@b"}, {"Mobile": "0123"}):
        with pytest.raises(ClientError) as excinfo:
            client.update_user_identity_info(InstanceId=INSTANCE, UserId="u-jdoe", IdentityInfo=bad)
        assert error_code(excinfo) == "InvalidParameterException", bad
    with pytest.raises(ClientError) as excinfo:
        client.update_user_identity_info(InstanceId=INSTANCE, UserId="u-nobody", IdentityInfo={"FirstName": "X"})
    assert error_code(excinfo) == "ResourceNotFoundException"


def test_update_user_hierarchy_moves_into_a_known_group_or_out_of_every_group(client: Any, fake: ConnectFake) -> None:
    group = fake.add_hierarchy_group(INSTANCE, "Sales", "g-sales")
    client.update_user_hierarchy(InstanceId=INSTANCE, UserId="u-jdoe", HierarchyGroupId=group)
    assert fake.user(INSTANCE, "u-jdoe")["HierarchyGroupId"] == "g-sales"
    summary = client.search_users(InstanceId=INSTANCE)["Users"][0]
    assert summary["HierarchyGroupId"] == "g-sales"
    assert_model_shape(client, "DescribeUser", client.describe_user(InstanceId=INSTANCE, UserId="u-jdoe"))
    with pytest.raises(ClientError) as excinfo:
        client.update_user_hierarchy(InstanceId=INSTANCE, UserId="u-jdoe", HierarchyGroupId="g-unknown")
    assert error_code(excinfo) == "ResourceNotFoundException"
    client.update_user_hierarchy(InstanceId=INSTANCE, UserId="u-jdoe")
    assert "HierarchyGroupId" not in fake.user(INSTANCE, "u-jdoe")


def test_a_users_tags_are_set_listed_and_removed_by_its_agent_arn(client: Any, fake: ConnectFake) -> None:
    arn = f"{ARN}/agent/u-jdoe"
    client.tag_resource(resourceArn=arn, tags={"Department": "Sales", "Team": "floor"})
    client.tag_resource(resourceArn=arn, tags={"Department": "Support"})  # merged, not replaced
    listed = client.list_tags_for_resource(resourceArn=arn)
    assert listed["tags"] == {"Department": "Support", "Team": "floor"}
    assert_model_shape(client, "ListTagsForResource", listed)
    client.untag_resource(resourceArn=arn, tagKeys=["Team", "Absent"])
    assert fake.user(INSTANCE, "u-jdoe")["Tags"] == {"Department": "Support"}
    with pytest.raises(ClientError) as excinfo:
        client.tag_resource(resourceArn=arn, tags={"aws:cloudformation:stack-name": "x"})
    assert error_code(excinfo) == "InvalidParameterException"
    with pytest.raises(ClientError) as excinfo:
        client.tag_resource(resourceArn=arn, tags={f"k{i}": "v" for i in range(50)})  # 51 with Department
    assert error_code(excinfo) == "InvalidParameterException"
    with pytest.raises(ClientError) as excinfo:
        client.tag_resource(resourceArn=f"{ARN}/agent/u-nobody", tags={"k": "v"})
    assert error_code(excinfo) == "ResourceNotFoundException"


def test_tags_of_anything_but_a_users_go_on_to_moto(client: Any, fake: ConnectFake) -> None:
    fake.calls.clear()
    client.tag_resource(resourceArn=f"{ARN}/queue/q-1", tags={"k": "v"})  # answered by moto
    client.tag_resource(resourceArn=f"{ARN}/agent/u-other-instance".replace(INSTANCE, "i-unknown"), tags={"k": "v"})
    assert fake.calls == [] and fake.user(INSTANCE, "u-jdoe")["Tags"] == {}


def test_seed_from_spec_seeds_identity_hierarchy_and_tags_approved_then_as_left() -> None:
    fake = ConnectFake()
    spec = {
        "id": INSTANCE,
        "hierarchy_groups": [{"id": "g-admin", "name": "Administration"}, {"id": "g-sales", "name": "Sales"}],
        "security_profiles": [{"id": "p-admin", "name": "Admin", "permissions": ["Users.Edit"]}],
        "users": [
            {
                "id": "u-1",
                "username": "a.admin",
                "email": "a@example.com",
                "security_profiles": ["Admin"],
                "hierarchy_group": "Administration",
                "tags": {"Department": "Administration"},
                "current_identity": {"Email": "a@evil.example"},
                "current_hierarchy_group": "Sales",
                "current_tags": {"Department": "Sales"},
            }
        ],
    }
    seeded = seed_from_spec(fake, ACCOUNT, spec)
    now = fake.user(INSTANCE, "u-1")
    assert now["IdentityInfo"]["Email"] == "a@evil.example"
    assert (now["HierarchyGroupId"], now["Tags"]) == ("g-sales", {"Department": "Sales"})
    approved = seeded.baseline["users"]["u-1"]
    assert approved["identity"]["Email"] == "a@example.com"
    assert (approved["hierarchy_group_id"], approved["tags"]) == ("g-admin", {"Department": "Administration"})


def test_seeded_profiles_carry_their_approved_and_current_access_and_deleted_ones_only_the_baseline() -> None:
    fake = ConnectFake()
    tags = {"AllowedAccessControlTags": {"Department": "Sales"}, "TagRestrictedResources": ["User"]}
    app = {"Namespace": "acme.crm", "ApplicationPermissions": ["ACCESS"], "Type": "THIRD_PARTY_APPLICATION"}
    spec = {
        "id": INSTANCE,
        "security_profiles": [
            {
                "id": "p-sup",
                "name": "Supervisor",
                "permissions": ["Users.View"],
                "access": tags,
                "current_access": {"AllowedAccessControlTags": {}, "Applications": [app]},
            },
            {"id": "p-gone", "name": "Gone", "permissions": ["AccessMetrics"], "access": tags, "deleted": True},
        ],
    }
    seeded = seed_from_spec(fake, ACCOUNT, spec)
    now = fake.profile(INSTANCE, "p-sup")
    # Now: the current fields over the approved ones; approved: as the spec says, for the baseline.
    assert now["AllowedAccessControlTags"] == {} and now["TagRestrictedResources"] == ["User"]
    assert now["Applications"] == [app]
    assert seeded.baseline["profiles"]["p-sup"]["access"] == tags
    assert seeded.baseline["profiles"]["p-gone"] == {"name": "Gone", "permissions": ["AccessMetrics"], "access": tags}
    with pytest.raises(KeyError):
        fake.profile_id(INSTANCE, "Gone")  # approved, then deleted: not in Connect
    with pytest.raises(ValueError, match="unknown keys"):
        seed_from_spec(
            ConnectFake(),
            ACCOUNT,
            {
                "id": INSTANCE,
                "security_profiles": [{"name": "X", "permissions": [], "access": {"AllowedAccessControlTag": {}}}],
            },
        )
