"""Noise for the replay benchmark: a CloudTrail S3 log file of API calls no rule of the suite matches.

The calls are those a busy account's trail holds (KMS and STS calls from workloads, EC2 and S3
reads, IAM and Connect reads by people and pipelines), spread over the file, each record about the
size CloudTrail writes (~1.3 KB). The file is written one record at a time, as CloudTrail writes
it (one line, gzipped when the name ends in `.gz`), so a large one needs no more memory than a
small one.
"""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ACCOUNT = "111122223333"
# (eventSource, eventName, readOnly). Services the rules watch (iam, connect, kms, cloudtrail, s3,
# logs, events) appear with calls no rule names: routing them takes the narrowing, not one look-up.
CALLS = (
    ("kms.amazonaws.com", "Decrypt", True),
    ("kms.amazonaws.com", "GenerateDataKey", True),
    ("sts.amazonaws.com", "AssumeRole", True),
    ("s3.amazonaws.com", "GetObject", True),
    ("ec2.amazonaws.com", "DescribeInstances", True),
    ("s3.amazonaws.com", "PutObject", False),
    ("logs.amazonaws.com", "CreateLogStream", False),
    ("iam.amazonaws.com", "GetRole", True),
    ("iam.amazonaws.com", "ListAttachedRolePolicies", True),
    ("connect.amazonaws.com", "DescribeUser", True),
    ("connect.amazonaws.com", "ListSecurityProfiles", True),
    ("cloudtrail.amazonaws.com", "LookupEvents", True),
    ("events.amazonaws.com", "DescribeRule", True),
    ("lambda.amazonaws.com", "GetFunction", True),
    ("dynamodb.amazonaws.com", "DescribeTable", True),
    ("sqs.amazonaws.com", "GetQueueAttributes", True),
)
_START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def noise_record(index: int) -> dict[str, object]:
    """The `index`th record of the noise: deterministic, its eventID unique."""
    source, name, read_only = CALLS[(index * index + index // 7) % len(CALLS)]
    session = f"worker-{index % 97}"
    role = f"app-{index % 13}-task"
    when = (_START + timedelta(milliseconds=index * 37)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "eventVersion": "1.10",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE{index % 13:04d}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
            "accountId": ACCOUNT,
            "accessKeyId": f"ASIAEXAMPLE{index % 10007:08d}",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": f"AROAEXAMPLE{index % 13:04d}",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                    "accountId": ACCOUNT,
                    "userName": role,
                },
                "attributes": {"creationDate": when, "mfaAuthenticated": "false"},
            },
        },
        "eventTime": when,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": f"10.0.{index % 251}.{index % 241}",
        "userAgent": "aws-sdk-java/2.29.1 Linux/6.1 OpenJDK_64-Bit_Server_VM/21.0.5 Java/21.0.5 md/io#sync",
        "requestParameters": {"resource": f"{name.lower()}-{index % 1009}", "maxResults": 50},
        "responseElements": None,
        "requestID": str(uuid.UUID(int=(index << 1) | 1)),
        "eventID": str(uuid.UUID(int=index << 1)),
        "readOnly": read_only,
        "resources": [{"accountId": ACCOUNT, "type": "AWS::Example::Resource", "ARN": f"arn:aws:example::{index}"}],
        "eventType": "AwsApiCall",
        "managementEvent": not source.startswith("s3"),
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management" if not source.startswith("s3") else "Data",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.us-east-1.amazonaws.com",
        },
    }


def write_noise_file(path: Path, count: int) -> Path:
    """A CloudTrail S3 log file of `count` noise records at `path` (gzipped if it ends in `.gz`)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write('{"Records":[')
        for index in range(count):
            out.write(("," if index else "") + json.dumps(noise_record(index), separators=(",", ":")))
        out.write("]}")
    return path
