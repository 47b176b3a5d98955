"""Argument checks for the CLI: a malformed ARN, account, stack or region name is refused by the
parser, in one line, before any AWS call."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import NoReturn

_PARTITION = r"arn:aws(?:-cn|-us-gov|-iso[a-z]*)?"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_ACCOUNT = r"\d{12}"


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (`connect-guard replay: ...; see --help`) instead of
    the usage block, and exit 2 as argparse does."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {' '.join(message.split())}; see {self.prog} --help\n")
        raise SystemExit(2)


def _checked(name: str, pattern: str, example: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        value = text.strip()
        if not compiled.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {name} (e.g. {example})")
        return value

    check.__name__ = name
    return check


account_id = _checked("a 12-digit account ID", _ACCOUNT, "111122223333")
region_name = _checked("a region name", _REGION, "us-east-1")
# A stack name (CloudFormation: a letter, then letters, digits and hyphens, 128 at most) or its ID.
stack_name = _checked(
    "a stack name or ID",
    rf"[A-Za-z][A-Za-z0-9-]{{0,127}}|{_PARTITION}:cloudformation:{_REGION}:{_ACCOUNT}:stack/[A-Za-z][A-Za-z0-9-]*/[\w-]+",
    "connect-guard-prod",
)
connect_instance_arn = _checked(
    "a Connect instance ARN",
    rf"{_PARTITION}:connect:{_REGION}:{_ACCOUNT}:instance/[0-9a-f]{{8}}(?:-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}",
    "arn:aws:connect:us-east-1:111122223333:instance/0d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6",
)
trail_arn = _checked(
    "a CloudTrail trail ARN",
    rf"{_PARTITION}:cloudtrail:{_REGION}:{_ACCOUNT}:trail/[\w.-]{{1,128}}",
    "arn:aws:cloudtrail:us-east-1:111122223333:trail/org-trail",
)
# An alias ARN is well formed: approve-key itself says why it approves only the key behind it.
kms_key_arn = _checked(
    "a KMS key ARN",
    rf"{_PARTITION}:kms:{_REGION}:{_ACCOUNT}:(?:key/[\w-]+|alias/[\w/-]+)",
    "arn:aws:kms:us-east-1:111122223333:key/0c4e5a1b-7d2f-4e8a-9b3c-5f6a7d8e9f01",
)
role_arn = _checked(
    "an IAM role ARN",
    rf"{_PARTITION}:iam::{_ACCOUNT}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{{1,64}}",
    "arn:aws:iam::111122223333:role/SecurityOperator",
)
iam_name = _checked("an IAM user or role name", r"[\w+=,.@-]{1,64}", "ConnectAgentFederation")


def https_url(text: str) -> str:
    if not re.fullmatch(r"https://[^\s/]+/\S*", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not an https:// URL")
    return text.strip()


def utc_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-20T12:30:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (e.g. 2026-11-20)") from None
