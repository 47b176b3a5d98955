"""Principal ARN patterns (allowlist, baseline approvers) that cannot fail open.

An entry names one IAM role or user in exactly one 12-digit account: `*` may stand for part of a
name or path segment, never for the account, and never crosses `:` or `/`. A session ARN
(`arn:aws:sts::...:assumed-role/...`) is not an entry: whoever assumes a role picks the session
name, so sessions match through their role's ARN only. Matching is case-insensitive (IAM names
are unique regardless of case).
"""

from __future__ import annotations

import re
from functools import cache

_SEGMENT = r"[\w+=,.@*-]+"  # IAM name characters, plus `*`
PATTERN_RE = rf"arn:aws(?:-cn|-us-gov)?:iam::\d{{12}}:(?:role|user)(?:/{_SEGMENT})+"
# The same rule for template.yaml's AllowedPattern (comma-separated, no spaces): tests keep them equal.
LIST_PATTERN = rf"^$|^{PATTERN_RE}(,{PATTERN_RE})*$"


def problem(entry: str) -> str | None:
    """Why `entry` is not a valid pattern, or None."""
    if re.fullmatch(PATTERN_RE, entry):
        return None
    parts = entry.split(":")
    if len(parts) >= 5 and ("*" in parts[4] or not re.fullmatch(r"\d{12}", parts[4])):
        return "the account must be exactly one 12-digit account ID"
    if len(parts) >= 3 and parts[2] == "sts":
        return "a session ARN never allowlists: name the role (arn:aws:iam::ACCOUNT:role/NAME)"
    return "must be arn:aws:iam::ACCOUNT:role/NAME or user/NAME (`*` only within a name or path segment)"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # `*` stays within one segment: it never spans the `:` or `/` separators.
    return re.compile("[^:/]*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def matches(pattern: str, arn: str) -> bool:
    """Whether a validated pattern names `arn` (an IAM role or user ARN)."""
    return problem(pattern) is None and _compiled(pattern).fullmatch(arn) is not None
