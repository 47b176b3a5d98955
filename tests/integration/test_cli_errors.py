"""Every command, as an operator meets it on a bad day: no region, no credentials, no network, a
stack that is not there, a malformed argument. Each one is one line on stderr, exit 2, and no
traceback; nothing is read or written before the line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from connect_guard_tools import cli
from connect_guard_tools.local_aws import LocalAws

ACCOUNT = "111122223333"
INSTANCE_ARN = f"arn:aws:connect:us-east-1:{ACCOUNT}:instance/f3c95789-ace1-4954-ac5d-6baed2eac902"
STACK = "connect-guard-missing"

# Each command on a deployed stack, with the arguments it needs (all well formed).
COMMANDS = {
    "approve-baseline": ["--instance-arn", INSTANCE_ARN, "--approved-by", "soc"],
    "approve-trail": ["--trail-arn", f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org-trail", "--approved-by", "soc"],
    "approve-storage": ["--instance-arn", INSTANCE_ARN, "--approved-by", "soc"],
    "approve-key": [
        "--key-arn",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0c4e5a1b-7d2f-4e8a-9b3c-5f6a7d8e9f01",
        "--approved-by",
        "soc",
    ],
    "release": ["--account", ACCOUNT, "--user", "mallory", "--by", "soc", "--reason", "reviewed"],
    "restore-role": ["--account", ACCOUNT, "--role", "ConnectAgentFederation", "--by", "soc"],
    "redrive": ["--dry-run"],
    "status": [],
}

AWS_ENV = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
)


def argv(command: str, *extra: str) -> list[str]:
    return [command, "--stack", STACK, *COMMANDS[command], *extra]


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(command: str, code: int, out: str, err: str, says: str) -> None:
    assert code == 2, err
    assert "Traceback" not in out + err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert err.startswith(f"connect-guard {command}: ") and says in err, err
    assert "; " in err  # what went wrong; what to do


@pytest.fixture
def no_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No environment, no ~/.aws files, no instance metadata: only what each test sets."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_a_region(command, capsys, monkeypatch, no_aws_config):
    keys(monkeypatch)
    code, out, err = run(capsys, argv(command))
    assert_one_line(command, code, out, err, "no AWS region configured; pass --region")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_credentials(command, capsys, monkeypatch, no_aws_config):
    code, out, err = run(capsys, argv(command, "--region", "us-east-1"))
    assert_one_line(command, code, out, err, "no AWS credentials found; configure them")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_profile(command, capsys, monkeypatch, no_aws_config):
    monkeypatch.setenv("AWS_PROFILE", "secops")
    code, out, err = run(capsys, argv(command, "--region", "us-east-1"))
    assert_one_line(command, code, out, err, "AWS profile 'secops' not found; check AWS_PROFILE")


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS request fails to connect, as with no network (botocore's own error, raised where
    its HTTP layer would raise it)."""
    attempted: list[str] = []
    original = boto3.session.Session.__init__

    def refuse(request, **_):  # type: ignore[no-untyped-def]
        attempted.append(request.url)
        raise EndpointConnectionError(endpoint_url=request.url)

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        self.events.register("before-send", refuse)

    monkeypatch.setattr(boto3.session.Session, "__init__", init)
    return attempted


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_network(command, capsys, monkeypatch, no_aws_config, unreachable):
    keys(monkeypatch)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, out, err = run(capsys, argv(command, "--region", "eu-west-1"))
    assert_one_line(command, code, out, err, "cannot reach https://cloudformation.eu-west-1.amazonaws.com")
    assert "check the network" in err and unreachable  # the call was attempted, and refused


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_stack(command, capsys):
    with LocalAws() as aws:
        code, out, err = run(capsys, argv(command, "--region", aws.region))
        assert aws.audit_records() == [] and aws.inbox() == []
    assert_one_line(command, code, out, err, f"unknown stack {STACK} in us-east-1; check --stack and --region")


def test_a_stack_that_is_not_a_connect_guard_stack(capsys):
    with LocalAws() as aws:
        body = '{"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}'
        aws.session.client("cloudformation").create_stack(StackName=STACK, TemplateBody=body)
        code, out, err = run(capsys, argv("release", "--region", aws.region))
    assert_one_line("release", code, out, err, f"stack {STACK} (CREATE_COMPLETE) has no output AlertTopicArn")


@pytest.mark.parametrize(
    ("command", "args", "says"),
    [
        ("approve-baseline", ["--instance-arn", "f3c95789"], "'f3c95789' is not a Connect instance ARN"),
        ("approve-storage", ["--instance-arn", "arn:aws:connect:us-east-1:1111:instance/x"], "Connect instance ARN"),
        ("approve-trail", ["--trail-arn", "org-trail"], "'org-trail' is not a CloudTrail trail ARN"),
        ("approve-key", ["--key-arn", "alias/acme"], "'alias/acme' is not a KMS key ARN"),
        ("approve-key", ["--assume-role-arn", "SecurityOperator"], "is not an IAM role ARN"),
        ("release", ["--account", "1111-2222-3333"], "'1111-2222-3333' is not a 12-digit account ID"),
        ("release", ["--user", "mallory", "--role", "x"], "not allowed with argument --user"),
        ("restore-role", ["--role", "role/Admin"], "'role/Admin' is not an IAM user or role name"),
        ("restore-role", ["--region", "virginia"], "'virginia' is not a region name"),
        ("release", ["--stack", "my stack"], "'my stack' is not a stack name or ID"),
        ("release", ["--reason"], "expected one argument"),
    ],
)
def test_a_malformed_argument_is_refused_before_any_call(command, args, says, capsys, monkeypatch, unreachable):
    base = argv(command)
    for flag in {a for a in args if a.startswith("--")} & set(base):  # replace the well-formed value
        index = base.index(flag)
        del base[index : index + 2]
    code, out, err = run(capsys, [*base, *args])
    assert code == 2 and out == "" and unreachable == []
    assert len(err.splitlines()) == 1 and says in err and "Traceback" not in err, err
    assert err.startswith(f"connect-guard {command}: ") and err.rstrip().endswith(f"see connect-guard {command} --help")


def test_release_without_the_account_is_one_line_before_any_call(capsys, unreachable):
    args = ["release", "--stack", STACK, "--user", "mallory", "--by", "soc", "--reason", "r", "--region", "us-east-1"]
    code, out, err = run(capsys, args)
    assert_one_line("release", code, out, err, "--account is required with --user or --role; pass the")
    assert unreachable == []


def test_an_unknown_command_and_no_command_are_one_line(capsys):
    for args in (["approve-everything"], []):
        code, out, err = run(capsys, args)
        assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith("connect-guard: "), err


def test_an_unexpected_error_names_its_type_and_debug_shows_the_traceback(capsys, monkeypatch):
    def broken(*_, **__):  # type: ignore[no-untyped-def]
        raise RuntimeError("the baseline table\nreturned nonsense")

    monkeypatch.setattr(cli, "release_command", broken)
    code, out, err = run(capsys, argv("release"))
    assert_one_line("release", code, out, err, "unexpected RuntimeError: the baseline table returned nonsense")
    assert "rerun with --debug" in err
    for args in (["--debug", *argv("release")], [*argv("release"), "--debug"]):
        code, _, err = run(capsys, args)
        assert code == 2 and "Traceback (most recent call last)" in err and "RuntimeError" in err
        assert err.splitlines()[-1].startswith("connect-guard release: unexpected RuntimeError")


def test_interrupted_is_one_line_and_exit_130(capsys, monkeypatch):
    def interrupted(*_, **__):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "approve_key", interrupted)
    code, _, err = run(capsys, argv("approve-key"))
    assert code == 130 and len(err.splitlines()) == 1 and "interrupted" in err and "Traceback" not in err


# ---- the installed entry point, as a shell runs it --------------------------------------------------
def entry_point(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "connect-guard"
    clean = {k: v for k, v in os.environ.items() if k not in AWS_ENV and not k.startswith("PYTEST")}
    return subprocess.run([str(script), *args], env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_the_installed_command_without_a_region_or_network_prints_one_line(tmp_path):
    (tmp_path / "empty").write_text("")
    files = {"AWS_CONFIG_FILE": str(tmp_path / "empty"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "empty")}
    env = {**files, "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"}
    env["AWS_SECRET_ACCESS_KEY"] = "secret"
    done = entry_point(argv("restore-role"), env)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (
        "connect-guard restore-role: no AWS region configured; pass --region (e.g. --region us-east-1) "
        "or set AWS_DEFAULT_REGION\n"
    )
    # A closed local port stands for a network that is not there (no request leaves the machine).
    closed = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    done = entry_point(argv("release", "--region", "us-east-1"), closed)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("connect-guard release: cannot reach http://127.0.0.1:9/") and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
