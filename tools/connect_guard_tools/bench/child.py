"""One cold start in a fresh interpreter: `python -S child.py SPEC.json` prints one JSON line.

Run by path with `-S` (no site-packages, no editable-install hooks): `sys.path` is exactly the
spec's, the way Lambda lays out /var/task, /opt/python and the runtime's boto3. Every AWS call is
answered locally with a response recorded from the embedded AWS (`answers`: botocore's
`before-send` event name → raw HTTP responses, served in turn), so botocore serialises, signs
and parses as it would against AWS, and nothing leaves the process.

Members: `floor` (`import boto3; boto3.client('sns')`), `handler` (import the function's module
and invoke its handler once) and, with `warm` > 0, that many more invocations, each timed in
process CPU with the time spent inside botocore's API calls measured apart.

This file imports nothing of the project. Before the clock starts it does what Lambda's runtime
does before loading a function (logging, with a root handler); after, every member alike reads
its spec (json, os) and installs the answers.
"""

import logging
import sys
import time

# As Lambda's Python runtime does before it loads the function: a root handler writing to the
# function's log (here stdout, which the bench discards). Custodian logs through it.
_root = logging.StreamHandler(sys.stdout)
_root.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s\t%(message)s"))
logging.getLogger().addHandler(_root)

STARTED = time.perf_counter()
STARTED_CPU = time.process_time()

import json  # noqa: E402
import os  # noqa: E402


class _Raw:
    """The body of a recorded response, as AWSResponse reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object) -> object:
        yield self._body


class _Context:
    """The parts of a Lambda context that handlers read."""

    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def answer_hook(answers: dict[str, list[list[object]]], served: dict[str, int]) -> object:
    """A `before-send` handler that answers each call with its recorded responses, in turn."""
    import base64

    from botocore.awsrequest import AWSResponse

    replies = {
        name: [(int(str(status)), dict(headers), base64.b64decode(str(body))) for status, headers, body in items]  # type: ignore[call-overload]
        for name, items in answers.items()
    }

    def answer(request: object, event_name: str, **_: object) -> object:
        recorded = replies.get(event_name)
        if not recorded:
            raise RuntimeError(f"bench: no recorded answer for {event_name}")
        turn = served.get(event_name, 0)
        served[event_name] = turn + 1
        status, headers, body = recorded[turn % len(recorded)]
        return AWSResponse(getattr(request, "url", ""), status, headers, _Raw(body))

    return answer


def _install_answers(answers: dict[str, list[list[object]]], served: dict[str, int]) -> None:
    from botocore import handlers

    # Every botocore session made from now on registers it (as moto's own stub does).
    handlers.BUILTIN_HANDLERS.append(("before-send", answer_hook(answers, served)))


def _botocore_timer() -> list[float]:
    """Process CPU spent inside botocore's API calls (serialise, sign, answer, parse), in seconds."""
    from botocore.client import BaseClient

    spent = [0.0]
    original = BaseClient._make_api_call

    def timed(self: object, operation_name: str, api_params: object) -> object:
        start = time.process_time()
        try:
            return original(self, operation_name, api_params)  # type: ignore[arg-type]
        finally:
            spent[0] += time.process_time() - start

    BaseClient._make_api_call = timed  # type: ignore[method-assign]
    return spent


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        spec = json.load(file)
    del sys.path[0]  # this file's folder: the bench's own modules are no part of a Lambda
    sys.path[:0] = spec["path"]
    served: dict[str, int] = {}
    _install_answers(spec.get("answers") or {}, served)
    result: dict[str, object] = {}
    if spec["member"] == "floor":
        import boto3

        boto3.client("sns")
    else:
        os.chdir(spec["cwd"])  # /var/task: Custodian reads its config.json from there
        module = __import__(spec["module"])
        result["import_ms"] = (time.perf_counter() - STARTED) * 1000
        handler = getattr(module, spec["handler"])
        response = handler(spec["event"], _Context())
        result["response"] = response if isinstance(response, dict | list | str | bool | None) else repr(response)
    result["ms"] = (time.perf_counter() - STARTED) * 1000
    result["cpu_ms"] = (time.process_time() - STARTED_CPU) * 1000
    result["calls"] = dict(served)
    warm: dict[str, dict[str, list[float]]] = {}
    if spec.get("warm"):
        inside = _botocore_timer()
        for label, run in spec["warm"].items():
            totals, outside = [], []
            for _ in range(int(run["count"])):
                before_inside = inside[0]
                start = time.process_time()
                handler(run["event"], _Context())
                total = time.process_time() - start
                totals.append(total * 1000)
                outside.append((total - (inside[0] - before_inside)) * 1000)
            warm[label] = {"total_ms": totals, "outside_botocore_ms": outside}
        result["warm"] = warm
        result["calls"] = dict(served)
    with open(spec["result"], "w", encoding="utf-8") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
