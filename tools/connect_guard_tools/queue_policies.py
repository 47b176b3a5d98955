"""A queue policy's explicit Deny of sqs:SendMessage, which moto does not evaluate: a SendMessage
(or SendMessageBatch, or a message-move task's send) that a Deny statement of the destination
queue's policy applies to fails with AccessDenied, as in SQS.

Only what the suite's queue policies use is modelled: Deny statements for every principal
(`Principal: "*"`), their Action and Resource patterns, and the condition operators
String(Not)Equals, String(Not)Like, Arn(Not)Equals, Arn(Not)Like and Bool over the keys a call
by an IAM principal carries: aws:userid (a role session: `<RoleId>:<session name>`, the role's
ID as IAM has it now), aws:PrincipalArn and aws:SecureTransport (always true here). Such a call
has no aws:SourceArn, and a negated operator on a missing key holds, as in IAM. Allow statements
are not evaluated: the caller's own identity policies are not either (moto grants everything).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any
from unittest import mock

from moto.sqs.exceptions import SQSException
from moto.sqs.models import Queue
from moto.sqs.responses import SQSResponse
from moto.sts.models import sts_backends

from connect_guard_tools.backend_patches import BackendPatches


class AccessDenied(SQSException):
    def __init__(self, message: str) -> None:
        super().__init__("AccessDenied", message)


@dataclass(frozen=True)
class Caller:
    user_id: str  # aws:userid
    arn: str  # the role's ARN for a role session (aws:PrincipalArn), else the principal's

    @classmethod
    def of(cls, response: SQSResponse) -> Caller:
        account = response.current_account
        backend = sts_backends[account]["aws"]
        assumed = backend.get_assumed_role_from_access_key(response.get_access_key())
        if assumed is not None:
            return cls(assumed.user_id, assumed.role_arn)
        user_id, arn, _ = backend.get_caller_identity(response.get_access_key(), response.region)
        return cls(user_id, arn)

    def context(self) -> dict[str, str]:
        return {"aws:userid": self.user_id, "aws:PrincipalArn": self.arn, "aws:SecureTransport": "true"}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    base = operator.removesuffix("IfExists")
    negated = "Not" in base
    if key not in context:
        return negated or operator.endswith("IfExists")
    actual, values = context[key], [str(v).lower() if isinstance(v, bool) else str(v) for v in _list(expected)]
    if base in ("StringEquals", "StringNotEquals", "Bool"):
        hit = actual in values
    elif base in ("StringLike", "StringNotLike", "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike"):
        hit = any(fnmatch.fnmatchcase(actual, v) for v in values)
    else:
        raise NotImplementedError(f"condition operator {operator} is not modelled")
    return hit != negated


def denied(queue: Queue, context: dict[str, str], action: str = "sqs:SendMessage") -> str | None:
    """The Sid of the queue policy's Deny that applies to `action` by this caller, if any."""
    if not queue.policy:
        return None
    document = json.loads(queue.policy) if isinstance(queue.policy, str) else queue.policy
    for statement in _list(document.get("Statement", [])):
        if statement.get("Effect") != "Deny" or statement.get("Principal") not in ("*", {"AWS": "*"}):
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in _list(statement.get("Action", []))):
            continue
        if not any(fnmatch.fnmatchcase(queue.queue_arn, str(r)) for r in _list(statement.get("Resource", "*"))):
            continue
        conditions = statement.get("Condition") or {}
        if all(_holds(op, key, value, context) for op, keys in conditions.items() for key, value in keys.items()):
            return str(statement.get("Sid", "(no Sid)"))
    return None


def refuse(queue: Queue, caller: Caller) -> None:
    sid = denied(queue, caller.context())
    if sid:
        raise AccessDenied(
            f"User: {caller.arn} is not authorized to perform: sqs:sendmessage on resource: {queue.queue_arn} "
            f"with an explicit deny in a resource-based policy ({sid})"
        )


class QueuePolicySends(BackendPatches):
    """Started and stopped with the mock, like the other strictness patches."""

    def patches(self) -> list[Any]:
        def checked(send: Any) -> Any:
            def send_if_allowed(response: SQSResponse) -> Any:
                refuse(response.sqs_backend.get_queue(response._get_queue_name()), Caller.of(response))
                return send(response)

            return send_if_allowed

        return [
            mock.patch.object(SQSResponse, "send_message", checked(SQSResponse.send_message)),
            mock.patch.object(SQSResponse, "send_message_batch", checked(SQSResponse.send_message_batch)),
        ]
