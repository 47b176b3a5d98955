"""The quarantine policy's document must be exactly the deny-all before the suite attaches it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connect_guard.quarantine import VerifiedPolicies, deny_all_deviation


def doc(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


DENY_ALL = {"Effect": "Deny", "Action": "*", "Resource": "*"}


@pytest.mark.parametrize(
    "document",
    [
        doc(DENY_ALL),
        doc({**DENY_ALL, "Sid": "QuarantineDeniesEverything"}),
        doc({**DENY_ALL, "Action": ["*"], "Resource": ["*"]}),
        {"Version": "2012-10-17", "Statement": DENY_ALL},  # a single statement, not in a list
        json.dumps(doc(DENY_ALL)),  # as IAM may return it: JSON text, URL-encoded or not
        "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Deny%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D",
    ],
)
def test_the_deny_all_passes_in_each_of_its_spellings(document: Any) -> None:
    assert deny_all_deviation(document) is None


@pytest.mark.parametrize(
    ("document", "said"),
    [
        (doc({"Effect": "Allow", "Action": "*", "Resource": "*"}), "allows * on *"),
        (doc(DENY_ALL, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::x/*"}), "allows s3:"),
        (doc({**DENY_ALL, "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}), "no longer denies"),
        (doc({"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}), "every action except iam:*"),
        (doc({"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:s3:::x"}), "no longer denies"),
        (doc({"Effect": "Deny", "Action": "connect:*", "Resource": "*"}), "Deny connect:* on *"),
        (doc(DENY_ALL, DENY_ALL), "no longer denies"),
        (doc(), "no longer denies"),
        ("not json", "is not a JSON policy document"),
    ],
)
def test_anything_else_is_tampering_and_says_what_it_now_is(document: Any, said: str) -> None:
    deviation = deny_all_deviation(document)
    assert deviation is not None and said in deviation


def test_a_verification_is_trusted_for_a_few_minutes_only() -> None:
    now = [1000.0]
    verified = VerifiedPolicies(ttl_seconds=300, clock=lambda: now[0])
    key = ("111122223333", "ANPAEXAMPLE", "v1")
    verified.remember(key)
    assert verified.fresh(key) and not verified.fresh(("111122223333", "ANPAEXAMPLE", "v2"))
    now[0] += 301
    assert not verified.fresh(key)
