"""Record the AWS answers of Cloud Custodian's Lambda on the bench's event, against moto.

`python peer_record.py TASK_DIR EVENT.json ANSWERS.json` (the project's virtualenv: moto); the
task directory is Custodian's extracted Lambda archive, imported from there as Lambda would.
"""

import json
import os
import sys

from moto import mock_aws

from connect_guard_tools.bench.calls import AnswerRecorder, install
from connect_guard_tools.bench.peer_build import PEER_TOPIC_ARN


class _Context:
    function_name = "custodian-connect-guard-peer"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:custodian-connect-guard-peer"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main() -> None:
    task, event_file, out = sys.argv[1:4]
    with open(event_file, encoding="utf-8") as file:
        event = json.load(file)
    recorder = AnswerRecorder()
    install(recorder=recorder)
    with mock_aws():
        import boto3

        boto3.client("iam").create_user(UserName=event["detail"]["requestParameters"]["userName"])
        boto3.client("sns").create_topic(Name=PEER_TOPIC_ARN.rsplit(":", 1)[1])
        sys.path.insert(0, task)
        os.chdir(task)
        recorder.active = True
        import custodian_policy  # type: ignore[import-not-found]

        custodian_policy.run(event, _Context())
        recorder.active = False
    answers = recorder.take()
    if "before-send.sns.Publish" not in answers:
        raise SystemExit(f"bench: Custodian's policy did not notify: it called {sorted(answers)}")
    with open(out, "w", encoding="utf-8") as file:
        json.dump(answers, file)


if __name__ == "__main__":
    main()
