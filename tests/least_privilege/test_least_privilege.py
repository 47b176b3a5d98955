"""Least privilege, proven both ways, in detect and in enforce mode.

Every function's code path runs against the embedded AWS, with the settings its template
environment gives it: the responders over the whole corpus (as it arrives from the source
account, and again as if it happened in the security account), a throttled call retried and a
last attempt given up, each responder's deployed handler (poison into its DLQ, a retried event
past the delivery horizon), the release of what was quarantined, the baseline sweep (a first sweep
included), the role snapshot, one log-archive cycle, the Slack, Security Hub and chat
deliveries. Every call is recorded with the credentials that signed it: a function's own role
(in the embedded AWS, moto's default credentials stand for it, under the template role's ARN)
or the member role it assumed for the purpose (read, rollback, quarantine), matched by its
RoleName in member/template.yaml resolved for the same Environment and ResponseMode. Each call
is checked against the statements the templates give that role:

- every call is granted (action and resource, Deny honoured; an assumed role's trust policy
  must admit the exact function role ARN that assumes it), and
- every granted action is called by some path, and every function role a member role trusts
  assumes it.

What Lambda itself does with a function's role (log group, event source, destinations), the
KMS requests services make on the caller's behalf and the write an export task checks are
derived from the template too. A grant kept on purpose though no path here calls it is in
NOT_CALLED, with its reason; findings not fixed yet would be KNOWN_GAPS. A new mismatch fails,
and so does an entry that no longer occurs.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from botocore.awsrequest import AWSResponse

from connect_guard import liveness, runtime, scheduled
from connect_guard.archive import archive_cycle
from connect_guard.clients import AwsClients
from connect_guard.responders import logging_drift, logging_guard, policy_alerts, profile_rollback, role_quarantine
from connect_guard.runtime import lambda_handler_for, parse_event
from connect_guard.settings import Settings
from connect_guard.slack import notifier_from_settings
from connect_guard.sweep import build as build_sweep
from connect_guard_tools.config import replay_parameters
from connect_guard_tools.inputs import InputItem, iter_inputs
from connect_guard_tools.local_aws import QUARANTINE_POLICY, REGION, SECURITY_ACCOUNT, LocalAws
from connect_guard_tools.replay import Replayer
from connect_guard_tools.routing import Router
from connect_guard_tools.template import PROJECT_ROOT, load_template, rule_routes
from tests.conftest import EVENTS, FakeLambdaContext, load_event, with_new_event_id
from tests.integration.runtime_support import sqs_record
from tests.integration.test_integrations import function as function_module
from tests.integration.test_integrations import sns_event
from tests.integration.test_slack import FakeSlack
from tests.least_privilege.iam_model import (
    OPERATOR,
    Call,
    CallLog,
    Mismatch,
    Request,
    Role,
    Stacks,
    Statement,
    check,
    default_physical,
    encryption_keys,
    evaluate,
    implied_requests,
    requests_of,
    runtime_calls,
    trusts,
)
from tests.template.cfn import Resolver, parameters

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])  # the Slack webhook stand-in

SECURITY = load_template()
MEMBER = load_template(PROJECT_ROOT / "member" / "template.yaml")
SOURCE_ACCOUNT = "111122223333"  # the corpus' source account
OPERATOR_ROLE = "arn:aws:iam::123456789012:role/SecurityOperator"  # the member stack's OperatorRoleArn
DEMO_INSTANCE = "f3c95789-ace1-4954-ac5d-6baed2eac902"
OWN_INSTANCE = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"  # its twin in the security account
FRESH_INSTANCE = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"  # no baseline yet: the sweep records one
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION}


def as_security_account(text: str) -> str:
    return text.replace(SOURCE_ACCOUNT, SECURITY_ACCOUNT).replace(DEMO_INSTANCE, OWN_INSTANCE)


def in_security_account(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the security account, under its own IDs (a redelivery stays one)."""
    twin = json.loads(as_security_account(json.dumps(event)))
    detail = twin.get("detail")
    for holder, key in ((twin, "id"), (detail if isinstance(detail, dict) else {}, "eventID")):
        if isinstance(holder.get(key), str):
            holder[key] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"security-account:{holder[key]}"))
    return twin


def corpus() -> list[InputItem]:
    """Every sample, from the source account, then as if it happened in the security account."""
    items = list(iter_inputs([EVENTS], root=EVENTS))
    own = [InputItem(f"{i.source} (security account)", in_security_account(i.event)) for i in items if i.event]
    return items + own


@dataclass
class Run:
    mode: str
    stacks: Stacks
    calls: list[Call]
    requests: list[Request]
    outcomes: dict[str, set[str]]  # function → replay outcomes
    variant: str = ""  # identity-center-in-member: Identity Center is administered from the member account

    @property
    def quarantine_enforces(self) -> bool:
        return self.mode == "enforce" or self.variant == "quarantine-enforces"

    @cached_property
    def mismatches(self) -> list[Mismatch]:
        return check(self.requests, self.stacks)

    @property
    def suite_calls(self) -> list[Call]:
        """The calls a suite role made: all but an operator's with their own credentials."""
        return [c for c in self.calls if c.function != OPERATOR or c.role is not None]


# ---- the embedded stack, as the template names it -----------------------------------------------
def _signing_key(kms: Any) -> dict[str, str]:
    """The manifests' asymmetric key (connect_guard.manifests), as the template makes it."""
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    return {"ArchiveSigningKey": key["KeyId"], "ArchiveSigningKey.Arn": key["Arn"]}


def physical_resources(aws: LocalAws, archive_key: str, chat_topic: str) -> dict[str, str]:
    """Template logical ID (Ref) and `ID.Attribute` (GetAtt) → the embedded resource playing it."""
    dynamodb, sqs, kms = (aws.session.client(service) for service in ("dynamodb", "sqs", "kms"))
    tables = {"DedupTable": aws.table_name, "BaselineTable": aws.baseline_table, "AuditTable": aws.audit_table}
    findings = sqs.get_queue_attributes(QueueUrl=aws.findings_archive_url, AttributeNames=["QueueArn"])
    mapping = {
        "AlertTopic": aws.topic_arn,
        "SuiteKey": aws.key_id,
        "SuiteKey.Arn": kms.describe_key(KeyId=aws.key_id)["KeyMetadata"]["Arn"],
        "ArchiveKey": archive_key,
        "ArchiveKey.Arn": kms.describe_key(KeyId=archive_key)["KeyMetadata"]["Arn"],
        **_signing_key(kms),
        "ArchiveBucket": aws.archive_bucket,
        "ArchiveBucket.Arn": f"arn:aws:s3:::{aws.archive_bucket}",
        "FindingsArchiveQueue": aws.findings_archive_url,
        "FindingsArchiveQueue.Arn": findings["Attributes"]["QueueArn"],
        "ChatTopic": chat_topic,
        "QuarantinePolicy": f"arn:aws:iam::{SECURITY_ACCOUNT}:policy/connect-guard/{QUARANTINE_POLICY}",
    }
    for logical, name in tables.items():
        mapping |= {logical: name, f"{logical}.Arn": dynamodb.describe_table(TableName=name)["Table"]["TableArn"]}
    for logical, name in aws.plumbing.rules.items():  # named as CloudFormation names them
        mapping |= {logical: name, f"{logical}.Arn": f"arn:aws:events:{REGION}:{SECURITY_ACCOUNT}:rule/{name}"}
    return mapping


def stacks_for(params: dict[str, str], physical: dict[str, str]) -> Stacks:
    """Both templates for one parameter set: the member stack gets the security stack's values
    for the parameters they share (Environment, ResponseMode, DeactivateAccessKeys, ...)."""
    own = {**PSEUDO, "AWS::AccountId": SECURITY_ACCOUNT, "AWS::StackName": "connect-guard-dev"}
    security = Resolver(SECURITY, params, own, default_physical(SECURITY, params, own) | physical)
    shared = {k: v for k, v in params.items() if k in MEMBER["Parameters"]}
    # Identity Center's parameters go to the member stack of the account that administers it only.
    identity_center = {"IdentityStoreId", "SsoDenyListPolicyId", "IdentityCenterRegion"}

    def member(account: str) -> Resolver:
        given = (
            shared
            if account == params.get("IdentityCenterAccountId")
            else {k: v for k, v in shared.items() if k not in identity_center}
        )
        member_params = parameters(
            MEMBER, **given, SecurityAccountId=SECURITY_ACCOUNT, SecurityRegion=REGION, OperatorRoleArn=OPERATOR_ROLE
        )
        pseudo = {**PSEUDO, "AWS::AccountId": account, "AWS::StackName": "connect-guard-member"}
        return Resolver(MEMBER, member_params, pseudo, default_physical(MEMBER, member_params, pseudo))

    return Stacks(security, member, [SOURCE_ACCOUNT])


def settings_of(stacks: Stacks, function: str) -> Settings:
    """The function's settings as deployed, less the delivery horizon: the corpus is history
    (the replay, like the embedded AWS, sets no limit on an event's age)."""
    settings = Settings.from_env(environment_of(stacks, function))
    return settings.model_copy(update={"max_event_age_hours": None})


def environment_of(stacks: Stacks, function: str) -> dict[str, str]:
    """Globals' variables, then the function's own (as SAM merges them)."""
    shared = SECURITY.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    variables = {**shared, **SECURITY["Resources"][function]["Properties"]["Environment"]["Variables"]}
    return {name: str(value) for name, value in stacks.security.resolve(variables).items()}


def suite_roles(stacks: Stacks, account: str) -> list[str]:
    """ARNs of the roles the stacks deploy in `account`, the member roles included."""
    own = stacks.security.pseudo["AWS::AccountId"]
    roles = [r.arn for r in stacks.own.values()] if account == own else []
    return roles + [r.arn for r in stacks.member_roles(account).values()]


def create_suite_roles(aws: LocalAws, stacks: Stacks) -> None:
    """The suite's roles where the stacks put them (names and paths decide what IAM matches)."""
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    for account in (SECURITY_ACCOUNT, SOURCE_ACCOUNT):
        iam = aws.account_session(account).client("iam")
        existing = {r["RoleName"] for r in iam.list_roles()["Roles"]}
        for arn in suite_roles(stacks, account):
            *path, name = arn.split(":", 5)[5].split("/")[1:]
            if name not in existing:
                iam.create_role(RoleName=name, Path="/".join(["", *path, ""]), AssumeRolePolicyDocument=trust)


def iam_arn(account: str, kind: str, name: str) -> str:
    """An IAM principal's ARN with its path, as IAM authorizes it (read from moto's state)."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["global"]
    try:
        return str(backend.get_user(name).arn if kind == "user" else backend.get_role(name).arn)
    except Exception:  # gone, or never there: IAM names it without a path
        return f"arn:aws:iam::{account}:{kind}/{name}"


# ---- the paths ----------------------------------------------------------------------------------
def container(aws: LocalAws) -> AwsClients:
    """Clients as a fresh Lambda container builds them (no member credentials cached)."""
    aws.clients = AwsClients(aws.region, aws.session, SECURITY_ACCOUNT)
    return aws.clients


# A call each responder makes, throttled once: the event fails and SQS delivers it again.
RETRIED = {
    "PolicyAlertsFunction": ("iam/attach-group-policy-customer-managed.json", "iam", "GetPolicy"),
    "ProfileRollbackFunction": ("connect/update-user-security-profiles-iam-user.json", "connect", "DescribeUser"),
    "QuarantineFunction": ("quarantine/delete-role-tagged-assumed-role.json", "sns", "Publish"),
    "LoggingGuardFunction": ("logging/stop-logging-by-name.json", "cloudtrail", "GetTrailStatus"),
    # The seeded silence makes this canary a recovery: its alert is throttled, the state put back.
    "LivenessFunction": ("liveness/connect-canary-after-silence.json", "sns", "Publish"),
}


def throttle_next(aws: LocalAws, service: str, operation: str) -> None:
    """The next `operation` call of clients created from now on fails with Throttling."""
    if service == "connect":
        aws.connect.fail_next(operation)
        return
    pending = [True]  # clients keep a copy of the hooks: the handler itself answers once

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not pending or not pending.pop():
            return None
        error = {"Code": "Throttling", "Message": "Rate exceeded"}
        return AWSResponse(None, 400, {}, None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    aws.session.events.register_first(f"before-call.{service}.{operation}", answer)


def run_responders(aws: LocalAws, log: CallLog, stacks: Stacks, items: list[InputItem]) -> dict[str, set[str]]:
    outcomes: dict[str, set[str]] = {}
    for function in (
        "PolicyAlertsFunction",
        "ProfileRollbackFunction",
        "QuarantineFunction",
        "LoggingGuardFunction",
        "LivenessFunction",
    ):
        relative, service, operation = RETRIED[function]
        retried = InputItem(
            f"{relative} (throttled {operation}, then retried)", with_new_event_id(load_event(relative))
        )
        throttle_next(aws, service, operation)
        container(aws)
        router = Router([r for r in rule_routes() if r.function == function])
        with log.running(function, "container start"):
            replayer = Replayer(aws, settings_of(stacks, function), router)
        for item in [retried, retried, *items]:
            with log.running(function, item.source):
                outcomes.setdefault(function, set()).add(replayer.replay(item).outcome)
        give_up(aws, log, function, replayer, relative, service, operation)
    return outcomes


def give_up(
    aws: LocalAws, log: CallLog, function: str, replayer: Replayer, relative: str, service: str, operation: str
) -> None:
    """The last delivery attempt fails: the handler has the responder tell the SOC (give_up)."""
    (pipeline,) = replayer.pipelines.values()
    if not hasattr(pipeline.responder, "give_up"):
        return
    event = with_new_event_id(load_event(relative))
    throttle_next(aws, service, operation)
    container(aws)  # a new container, so the throttled client is created afresh
    last = Replayer(aws, replayer.settings, replayer.router)
    (pipeline,) = last.pipelines.values()
    path = f"{relative} (last attempt throttled: give_up)"
    with log.running(function, path):
        try:
            pipeline.process(event)
        except Exception as error:
            assert pipeline.out_of_scope(parse_event(event)[1]) is None
            pipeline.responder.give_up(parse_event(event)[1], error)
        else:
            raise AssertionError(f"{path}: the throttled attempt succeeded")


# Through each responder's deployed handler, with its template environment: one poison record
# (into its own DLQ on the first receive) and a sample on its second receive (its first arrival is
# recorded; the sample is older than the delivery horizon, so its age is measured from it).
HANDLED = {
    "PolicyAlertsFunction": (policy_alerts.build, "iam/attach-group-policy-customer-managed.json"),
    "ProfileRollbackFunction": (profile_rollback.build, "connect/update-user-security-profiles-iam-user.json"),
    "QuarantineFunction": (role_quarantine.build, "quarantine/delete-role-tagged-assumed-role.json"),
    "LoggingGuardFunction": (logging_guard.build, "logging/stop-logging-by-name.json"),
    "LivenessFunction": (liveness.build, "liveness/iam-canary.json"),
}


def run_handlers(aws: LocalAws, log: CallLog, stacks: Stacks) -> None:
    for function, (factory, relative) in HANDLED.items():
        env = environment_of(stacks, function)
        aws.session.client("sqs").create_queue(QueueName=env["DEAD_LETTER_QUEUE_URL"].rsplit("/", 1)[1])
        sample = with_new_event_id(load_event(relative))
        sent = parse_event(sample)[1].detail.event_time + timedelta(minutes=1)
        source = env["SOURCE_QUEUE_ARN"]
        poison = sqs_record('{"detail": "poison"}', "m-poison", source=source, sent_at=sent)
        retried = sqs_record(json.dumps(sample), "m-old", source=source, receives=2, sent_at=sent)
        batch = {"Records": [poison, retried]}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            patch.setattr(runtime, "AwsClients", lambda region, account_id: AwsClients(region, aws.session, account_id))
            handler = lambda_handler_for(factory)
            with log.running(function, "through the handler: poison, and a retried event past the horizon"):
                assert handler(batch, FakeLambdaContext()) == {"batchItemFailures": []}


def release_quarantines(aws: LocalAws, log: CallLog, stacks: Stacks) -> None:
    """`connect-guard release` of every quarantined principal, with the quarantine's settings."""
    responder = role_quarantine.build(settings_of(stacks, "QuarantineFunction"), container(aws))
    for account in (SOURCE_ACCOUNT, SECURITY_ACCOUNT):
        iam = aws.account_session(account).client("iam")
        users = [
            u["UserName"]
            for u in iam.list_users()["Users"]
            if any(
                p["PolicyName"] == QUARANTINE_POLICY
                for p in iam.list_attached_user_policies(UserName=u["UserName"])["AttachedPolicies"]
            )
        ]
        roles = [
            r["RoleName"]
            for r in iam.list_roles()["Roles"]
            if any(
                p["PolicyName"] == QUARANTINE_POLICY
                for p in iam.list_attached_role_policies(RoleName=r["RoleName"])["AttachedPolicies"]
            )
        ]
        for user, role in [(u, None) for u in users] + [(None, r) for r in roles]:
            # An operator's act, never the function's: it holds no detach or untag.
            with log.running(OPERATOR, f"release {user or role} in {account}"):
                role_quarantine.release(responder, account, user=user, role=role, by="soc", reason="checked")
    if responder.settings.response_mode == "enforce":  # only enforce mode denied anyone in the SCP
        with log.running(OPERATOR, "release an Identity Center user"):
            role_quarantine.release(responder, "", sso_user="dana.whitfield@example.com", by="soc", reason="checked")


def run_schedules(aws: LocalAws, log: CallLog, stacks: Stacks) -> None:
    # An instance of the security account in another region (the archive pulls its flow logs
    # below): the sweep's discovery lists that region with the function's own role.
    aws.connect.add_instance(SECURITY_ACCOUNT, "eu-west-2", OWN_EU_INSTANCE, "acme-eu")
    # And one nobody configured: reported, and the reported set recorded.
    aws.connect.add_instance(SECURITY_ACCOUNT, "eu-west-2", UNWATCHED_EU_INSTANCE, "shadow-eu")
    sweep_settings = settings_of(stacks, "BaselineSweepFunction")
    sweep_settings = sweep_settings.model_copy(
        update={"connect_instance_arns": (*sweep_settings.connect_instance_arns, OWN_EU_ARN)}
    )
    with log.running("BaselineSweepFunction", "scheduled sweep"):
        build_sweep(sweep_settings, container(aws)).run()
    with log.running("RoleSnapshotFunction", "scheduled snapshot"):
        responder = role_quarantine.build(settings_of(stacks, "RoleSnapshotFunction"), container(aws))
        role_quarantine.snapshot_protected_roles(responder)
    # The canary check twice: first sight of each expected canary, then silences past the limit.
    for later in (0, 3):
        with log.running("LivenessFunction", f"scheduled canary check (+{later} days)"):
            settings = settings_of(stacks, "LivenessFunction")
            liveness.build(settings, container(aws)).check(datetime.now(UTC) + timedelta(days=later))
    # logging-guard's drift check (its schedule's Input): every enrolled account's trails and flow
    # logs; quiet-trail drifted with no event, so enforce mode restores it; then an unapproved
    # trail is already marked.
    tamper_member_trail(aws)
    tamper_member_key(aws)
    for run_number in (1, 2):
        with log.running("LoggingGuardFunction", f"scheduled drift check ({run_number})"):
            logging_drift.run(settings_of(stacks, "LoggingGuardFunction"), container(aws))
    # A failed run (the cause is beside the point): the FAILED alert is published with the role.
    for function, job in (
        ("BaselineSweepFunction", scheduled.BASELINE_SWEEP),
        ("RoleSnapshotFunction", scheduled.ROLE_SNAPSHOT),
        ("LivenessFunction", scheduled.LIVENESS_CHECK),
        ("LoggingGuardFunction", scheduled.LOGGING_DRIFT),
    ):

        def fail() -> None:
            raise RuntimeError("the run failed")

        with log.running(function, "failed scheduled run"), pytest.raises(RuntimeError):
            scheduled.run(job, settings_of(stacks, function), container(aws).sns, "lp", fail)
    settings = settings_of(stacks, "LogExportFunction")
    logs = aws.session.client("logs")
    suite_groups = [g for g in settings.export_log_groups if g.startswith("/connect-guard/")]
    with contextlib.suppress(logs.exceptions.ResourceNotFoundException):  # seeded as deployed
        logs.delete_log_group(logGroupName=suite_groups[-1])
    for group in sorted(set(settings.export_log_groups) - {suite_groups[-1]}):  # one missing: an alert
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):  # the plumbing's, seeded
            logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="s")
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[{"timestamp": int(time.time() * 1000), "message": "a log line"}],
        )
    seed_pulled_log_groups(aws)
    # An instance of the security account in another region too (its flow logs are pulled with the
    # function's own role there), as ConnectInstanceArns would list it; the other functions' runs
    # stay as they were.
    settings = settings.model_copy(update={"connect_instance_arns": (*settings.connect_instance_arns, OWN_EU_ARN)})
    # Past the lag and the end of today: windows to export, and today complete, so sealed.
    later = time.time() + (settings.export_lag_hours + 26) * 3600
    with log.running("LogExportFunction", "scheduled archive cycle"):
        archive_cycle(settings, container(aws), clock=lambda: later)


OWN_EU_INSTANCE = "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
OWN_EU_ARN = f"arn:aws:connect:eu-west-2:{SECURITY_ACCOUNT}:instance/{OWN_EU_INSTANCE}"
UNWATCHED_EU_INSTANCE = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"


def seed_pulled_log_groups(aws: LocalAws) -> None:
    """Flow logs the archive pulls: the source account's instance (through its member-logs role;
    the second instance there has never logged, so it has no group), and the security account's
    instance in another region (run_schedules adds it), with the export list that region's member
    stack publishes."""
    from connect_guard.settings import member_export_parameter

    aws.session.client("ssm", region_name="eu-west-2").put_parameter(
        Name=member_export_parameter("dev"), Value='{"log_groups": []}', Type="String", Overwrite=True
    )
    for account, region, group in (
        (SOURCE_ACCOUNT, REGION, "/aws/connect/acme-contact-centre"),
        (SECURITY_ACCOUNT, "eu-west-2", "/aws/connect/acme-eu"),
    ):
        logs = aws.account_session(account).client("logs", region_name=region)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="flows")
        logs.put_log_events(
            logGroupName=group,
            logStreamName="flows",
            logEvents=[{"timestamp": int(time.time() * 1000), "message": "a flow log line"}],
        )


def tamper_member_key(aws: LocalAws) -> None:
    """A key the source account's approved storage snapshot names (media streams), scheduled for
    deletion with no event: the drift check cancels it and enables it through the member role."""
    key = f"arn:aws:kms:{REGION}:{SOURCE_ACCOUNT}:key/0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"
    kms = aws.account_session(SOURCE_ACCOUNT).client("kms", region_name=REGION)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)


def tamper_member_trail(aws: LocalAws) -> None:
    """The source account's trail weakened every way its restore undoes (delivery, selectors,
    Insights, logging), with no event: the drift check restores it through the member role."""
    member = aws.account_session(SOURCE_ACCOUNT)
    member.client("s3", region_name=REGION).create_bucket(Bucket="cg-lp-member-sink")
    cloudtrail = member.client("cloudtrail", region_name=REGION)
    trail = f"arn:aws:cloudtrail:{REGION}:{SOURCE_ACCOUNT}:trail/member-trail"
    cloudtrail.update_trail(Name=trail, S3BucketName="cg-lp-member-sink")
    cloudtrail.put_event_selectors(TrailName=trail, EventSelectors=[{"ReadWriteType": "ReadOnly"}])
    cloudtrail.put_insight_selectors(TrailName=trail, InsightSelectors=[{"InsightType": "ApiCallRateInsight"}])
    cloudtrail.stop_logging(Name=trail)


def run_notifications(aws: LocalAws, log: CallLog, stacks: Stacks, slack: FakeSlack) -> None:
    findings = [json.loads(m["Message"]) for m in aws.inbox()]
    assert findings, "the responders published nothing to notify about"
    DEFAULT_PROVIDERS.pop("secrets", None)  # a fresh container holds no secrets provider
    try:
        with log.running("SlackNotifierFunction", "container start"):
            notifier = notifier_from_settings(settings_of(stacks, "SlackNotifierFunction"), container(aws))
    finally:
        DEFAULT_PROVIDERS.pop("secrets", None)  # nor does the next test's
    for finding in [findings[0]] * 5 + findings[1:3]:  # a burst becomes a digest
        with log.running("SlackNotifierFunction", f"deliver {finding['finding_id']}"):
            notifier.deliver(finding)
    for function, code in (
        ("SecurityHubImportFunction", "securityhub_import"),
        ("ChatNotifierFunction", "chat_notifier"),
    ):
        with pytest.MonkeyPatch.context() as env:
            for name, value in environment_of(stacks, function).items():
                env.setenv(name, value)
            handler = function_module(code).lambda_handler
            for finding in findings[:2]:
                with log.running(function, f"SNS notification {finding['finding_id']}"):
                    handler(sns_event(finding), FakeLambdaContext())


# Identity Center administered from the security account, or from an enrolled account (its
# member stack's sso role): the corpus' SSO deletion revokes through the deny-list SCP there.
# Mixed modes: quarantine enforcing in a detect deployment (QuarantineMode=enforce): its writes,
# and nobody else's, are granted and called.
@pytest.fixture(
    scope="module", params=["detect", "enforce", "enforce/identity-center-in-member", "detect/quarantine-enforces"]
)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    mode, _, variant = request.param.partition("/")
    center_account = SOURCE_ACCOUNT if variant == "identity-center-in-member" else SECURITY_ACCOUNT
    slack = FakeSlack()
    request.addfinalizer(slack.server.shutdown)
    state = tmp_path_factory.mktemp("state") / "security-account.yaml"
    state.write_text(as_security_account((EVENTS / "demo-state.yaml").read_text()))
    with LocalAws() as aws:
        aws.seed(EVENTS / "demo-state.yaml")
        aws.seed(state, with_trails=False)  # the trails are the security account's already
        fresh = aws.connect.add_instance(SOURCE_ACCOUNT, REGION, FRESH_INSTANCE, "fresh")
        agent = aws.connect.add_security_profile(FRESH_INSTANCE, "Agent", ["BasicAgentAccess"])
        aws.connect.add_user(FRESH_INSTANCE, "new.agent", [agent])
        secret = aws.session.client("secretsmanager").create_secret(Name="connect-guard/slack", SecretString=slack.url)
        archive_key = aws.session.client("kms").create_key(Description="archive")["KeyMetadata"]["KeyId"]
        chat_topic = aws.session.client("sns").create_topic(Name="connect-guard-dev-chat")["TopicArn"]
        center = aws.prepare_identity_center(["dana.whitfield@example.com"], account=center_account)
        params = replay_parameters(
            "default",
            {
                "ResponseMode": mode,
                **({"QuarantineMode": "enforce"} if variant == "quarantine-enforces" else {}),
                "ConnectInstanceArns": ",".join([*(i.instance_arn for i in aws.instances), fresh]),
                # The corpus' allowlisted pipeline also approves: the rollback's baseline write.
                "BaselineApprovers": f"arn:aws:iam::{SOURCE_ACCOUNT}:role/ConnectChangePipeline",
                "ConnectInstanceAlias": "acme-contact-centre",
                "SnapshotAccountIds": f"{SOURCE_ACCOUNT},{SECURITY_ACCOUNT}",
                "QuarantineOnTampering": "true",
                "DeactivateAccessKeys": "true",
                "MemberAccountIds": SOURCE_ACCOUNT,
                "SlackWebhookSecretArn": secret["ARN"],
                "EnableSecurityHub": "true",
                "EnableChat": "true",
                **center.parameters(),
                "IdentityCenterRegion": REGION,  # where its permission sets are read, and its events forwarded from
            },
        )
        stacks = stacks_for(params, physical_resources(aws, archive_key, chat_topic))
        create_suite_roles(aws, stacks)
        log = CallLog(SECURITY_ACCOUNT)
        log.install(aws.session.events)
        with log.every_new_session():
            outcomes = run_responders(aws, log, stacks, corpus())
            run_handlers(aws, log, stacks)
            release_quarantines(aws, log, stacks)
            run_schedules(aws, log, stacks)
            run_notifications(aws, log, stacks, slack)
        calls = log.calls + [c for f in stacks.functions for c in runtime_calls(stacks.security, f)]
        keys = encryption_keys(stacks.security)
        requests = [r for call in calls for r in requests_of(call, iam_arn)]
        requests += [k for r in requests for k in implied_requests(r, keys)]
        yield Run(mode, stacks, calls, requests, outcomes, variant)


# ---- what is not called, and why ----------------------------------------------------------------
BOTH, DETECT = ("detect", "enforce"), ("detect",)


@dataclass(frozen=True)
class Gap:
    """A mismatch accepted by name. `detail` must occur in the mismatch's resource or where (a
    Sid, a table name), so an entry covers exactly the grant or the call it is about."""

    kind: str  # as Mismatch.kind
    role: str
    action: str
    detail: str
    why: str
    modes: tuple[str, ...] = BOTH

    def covers(self, mismatch: Mismatch, mode: str) -> bool:
        return (
            (mismatch.kind, mismatch.role, mismatch.action) == (self.kind, self.role, self.action)
            and self.detail in f"{mismatch.resource} {mismatch.where}"
            and mode in self.modes
        )


def _unused(role: str, sid: str, why: str, actions: str, modes: tuple[str, ...] = BOTH) -> set[Gap]:
    return {Gap("never called", role, action, f"#{sid}", why, modes) for action in actions.split()}


# Granted on purpose, though no code path here calls it. (The dedup table's GetItem used to be
# here: Powertools reads a record with it only where the runtime's boto3 lacks
# ReturnValuesOnConditionCheckFailure; the first-arrival lookup of a redriven event calls it now.)
NOT_CALLED: set[Gap] = set()
# Findings not fixed yet: each entry says what to change. A new mismatch fails, and so does an
# entry that no longer occurs.
KNOWN_GAPS: set[Gap] = set()
ACCEPTED = NOT_CALLED | KNOWN_GAPS


def report(run: Run, kinds: set[str]) -> str:
    mismatches = [m for m in run.mismatches if m.kind in kinds]
    new = [m for m in mismatches if not any(g.covers(m, run.mode) for g in ACCEPTED)]
    gaps = [g for g in ACCEPTED if g.kind in kinds and run.mode in g.modes]
    gone = [g for g in gaps if not any(g.covers(m, run.mode) for m in mismatches)]
    lines = []
    if new:
        lines.append(f"{len(new)} mismatch(es) in {run.mode} mode, not in NOT_CALLED or KNOWN_GAPS:")
        lines += ["  " + m.line().replace("\n", "\n  ") for m in new]
    if gone:
        lines.append(
            f"NOT_CALLED or KNOWN_GAPS entries that no longer occur in {run.mode} mode (remove or narrow them):"
        )
        lines += [f"  {g.kind:<12} {g.role:<28} {g.action:<36} {g.detail}" for g in gone]
    return "\n".join(lines)


def test_every_call_is_granted(run: Run) -> None:
    problems = report(run, {"not granted", "denied", "not trusted", "unknown role"})
    assert not problems, "\n" + problems


def test_every_grant_is_called(run: Run) -> None:
    problems = report(run, {"never called"})
    assert not problems, "\n" + problems


def test_every_deployed_function_ran(run: Run) -> None:
    ran = {c.function for c in run.calls if not c.path.startswith("Lambda runtime")}
    assert ran - {OPERATOR} == set(run.stacks.functions), "a function without a driver here is not checked"


def test_the_write_paths_ran(run: Run) -> None:
    acted = {"rolled_back", "quarantined"} & (
        run.outcomes["ProfileRollbackFunction"] | run.outcomes["QuarantineFunction"]
    )
    expected = {"rolled_back"} if run.mode == "enforce" else set()
    assert acted == expected | ({"quarantined"} if run.quarantine_enforces else set())


def test_the_member_stack_is_resolved_for_the_same_deployment(run: Run) -> None:
    params = run.stacks.member(SOURCE_ACCOUNT).params
    assert (params["Environment"], params["ResponseMode"], params["DeactivateAccessKeys"]) == ("dev", run.mode, "true")
    assert params["SecurityAccountId"] == SECURITY_ACCOUNT


def test_each_member_role_trusts_exactly_the_functions_that_assume_it(run: Run) -> None:
    """Trust, both ways: every function role a member role trusts assumes it on some path, and
    no other function role may (the embedded AWS lets anyone assume anything: the templates decide)."""
    assumed: dict[str, set[str]] = {}
    for call in run.calls:
        if call.function == OPERATOR:
            continue  # trusted through OperatorRoleArn, checked with the operator's own calls
        if call.operation == "AssumeRole" and call.role is None and not call.error:
            own = run.stacks.own[run.stacks.functions[call.function]]
            assumed.setdefault(call.params["RoleArn"], set()).add(own.arn)
    member = [role for account, role in run.stacks.in_scope() if account != SECURITY_ACCOUNT]
    assert member, "no member role in scope"
    for role in member:
        trusted = {own.arn for own in run.stacks.own.values() if trusts(role, own.arn)}
        assert trusted == assumed.get(role.arn, set()), role.label
    assert set(assumed) <= {role.arn for role in member}, "a function assumed a role no member stack deploys"


_READ_VERBS = ("Get", "List", "Describe", "Search")


def _is_write(action: str, resources: tuple[str, ...]) -> bool:
    """An IAM or Connect write, or an audit record (of one)."""
    service, name = action.split(":")
    if service in ("iam", "connect"):
        return not name.startswith(_READ_VERBS)
    return action == "dynamodb:PutItem" and any("table/connect-guard-audit" in r for r in resources)


def test_a_detect_deployment_holds_no_write(run: Run) -> None:
    """Detect mode is enforced by IAM: no write role in the member stack, no IAM or Connect write
    (nor an audit record of one) in any role a function acts as."""
    roles = run.stacks.in_scope()
    member = {role.label for account, role in roles if account != SECURITY_ACCOUNT}
    writes = {
        f"{role.label}: {action}"
        for _, role in roles
        for s in role.statements
        if s.effect == "Allow"
        for action in s.actions
        if _is_write(action, s.resources)
    }
    if run.variant == "quarantine-enforces":  # the quarantine's writes and write role, nobody else's
        assert member == {"member:ReadRole", "member:LogsRole", "member:QuarantineRole"}
        others = {w for w in writes if not w.startswith(("QuarantineFunctionRole:", "member:QuarantineRole:"))}
        assert others == {"ProfileRollbackFunctionRole: dynamodb:PutItem"}
        assert any(w.startswith("QuarantineFunctionRole: iam:Attach") for w in writes)
    elif run.mode == "detect":
        assert member == {"member:ReadRole", "member:LogsRole"}  # the log archive's reads only
        # The rollback records a baseline approver's change, in either mode.
        assert writes == {"ProfileRollbackFunctionRole: dynamodb:PutItem"}
    else:
        sso = {"member:SsoRevocationRole"} if run.variant == "identity-center-in-member" else set()
        assert member == {"member:ReadRole", "member:LogsRole", "member:RollbackRole", "member:QuarantineRole", *sso}
        assert writes > {"ProfileRollbackFunctionRole: dynamodb:PutItem"}


# ---- what the statements refuse ------------------------------------------------------------------
def forged(run: Run, call: Call, **params: Any) -> list[Mismatch]:
    """The call-side mismatches of a recorded call made again with other parameters."""
    again = replace(call, params={**call.params, **params}, path=f"{call.path}, forged {params}")
    return [m for m in check(requests_of(again, iam_arn), run.stacks) if m.kind != "never called"]


def distinct(calls: list[Call]) -> list[Call]:
    """One call per operation and credentials (own role, each assumed role)."""
    return list({(c.operation, c.role): c for c in calls if not c.error}.values())


def test_no_policy_but_the_quarantine_policy_can_be_attached(run: Run) -> None:
    attachments = distinct([c for c in run.suite_calls if c.service == "iam" and c.operation.startswith("Attach")])
    if not run.quarantine_enforces:
        assert attachments == []
        return
    assert attachments, "enforce mode attached nothing"
    for call in attachments:
        assert forged(run, call) == [], call
        refused = forged(run, call, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
        assert [m.kind for m in refused] == ["not granted"], call


def test_only_the_suites_tag_keys_can_be_written(run: Run) -> None:
    tagging = distinct([c for c in run.suite_calls if c.service == "iam" and c.operation.startswith(("Tag", "Untag"))])
    assert bool(tagging) == run.quarantine_enforces
    protected = settings_of(run.stacks, "QuarantineFunction").protected_role_tag_key
    for call in tagging:
        assert forged(run, call) == [], call
        if call.operation.startswith("Tag"):
            foreign = {"Tags": [*call.params["Tags"], {"Key": protected, "Value": "true"}]}
        else:
            foreign = {"TagKeys": [*call.params["TagKeys"], protected]}
        for params in (foreign, {"Tags": []} if call.operation.startswith("Tag") else {"TagKeys": []}):
            assert [m.kind for m in forged(run, call, **params)] == ["not granted"], (call, params)


def test_the_suites_own_roles_are_never_modified(run: Run) -> None:
    writes = distinct(
        [
            c
            for c in run.suite_calls
            if c.service == "iam" and "RoleName" in c.params and not c.operation.startswith(("Get", "List"))
        ]
    )
    assert bool(writes) == run.quarantine_enforces
    for call in writes:
        for role in suite_roles(run.stacks, call.account):
            kinds = {m.kind for m in forged(run, call, RoleName=role.rsplit("/", 1)[-1])}
            assert kinds & {"denied", "not granted"}, f"{call.role or call.function} may {call.operation} {role}"


# The BaselineTable partitions each function owns (dynamodb:LeadingKeys in its statements).
OWNED_PARTITIONS = {
    "ProfileRollbackFunction": "instance#",  # baselines (connect_guard.baseline)
    "BaselineSweepFunction": "instance#",
    "QuarantineFunction": "roles#",  # role snapshots, read only (connect_guard.quarantine)
    "PolicyAlertsFunction": "roles#",  # a role's snapshot, read only: what a new trust policy adds
    "RoleSnapshotFunction": "roles#",
    "LogExportFunction": "export#",  # checkpoints and audit-export markers (connect_guard.archive)
    # trail# and storage# snapshots, read only (connect_guard.trails, connect_guard.connect_storage)
    "LoggingGuardFunction": "trail#",
    "LivenessFunction": "canary#",  # canary arrivals and silence marks (connect_guard.liveness)
}


def _with_partition(value: Any, prefix: str) -> Any:
    """The call's parameters with every partition key moved to `prefix`."""
    if isinstance(value, list):
        return [_with_partition(v, prefix) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        k: {"S": prefix + "forged"} if k in ("pk", ":pk") and isinstance(v, dict) else _with_partition(v, prefix)
        for k, v in value.items()
    }


def test_each_function_reaches_only_its_own_partitions_of_the_baseline_table(run: Run) -> None:
    baseline = settings_of(run.stacks, "RoleSnapshotFunction").baseline_table_name
    calls = {
        (c.function, c.operation): c
        for c in run.suite_calls
        if c.service == "dynamodb"
        and not c.error
        and baseline in (c.params.get("TableName"), *c.params.get("RequestItems", {}))
    }
    assert {function for function, _ in calls} == set(OWNED_PARTITIONS)
    for (function, operation), call in calls.items():
        assert forged(run, call) == [], call
        for prefix in {"instance#", "roles#", "export#", "audit#", "canary#"} - {OWNED_PARTITIONS[function]}:
            again = _with_partition(call.params, prefix)
            refused = forged(
                run,
                call,
                **{k: again[k] for k in ("Key", "Item", "ExpressionAttributeValues", "RequestItems") if k in again},
            )
            assert [m.kind for m in refused] == ["not granted"], (function, operation, prefix)


def test_the_key_guard_reads_the_storage_snapshots_with_the_storage_guards_read_grant(run: Run) -> None:
    # Which keys Connect uses comes first from the instances' approved storage snapshots
    # (responders/key_guard.py): a GetItem of `storage#<instance ARN>`, granted, and nothing else
    # of the table for it.
    reads = [
        c
        for c in run.suite_calls
        if c.function == "LoggingGuardFunction"
        and "keys/" in c.path
        and c.service == "dynamodb"
        and str(c.params.get("Key", {}).get("pk", {}).get("S", "")).startswith("storage#")
    ]
    assert reads and {c.operation for c in reads} == {"GetItem"}
    for call in reads:
        assert forged(run, call) == [], call
        refused = forged(run, call, Key={**call.params["Key"], "pk": {"S": "instance#forged"}})
        assert [m.kind for m in refused] == ["not granted"]


# ---- the model itself ---------------------------------------------------------------------------
def _statement(effect: str, action: Any, resource: Any = "*", **extra: Any) -> Statement:
    return Statement.parse("Role", "test", {"Effect": effect, "Action": action, "Resource": resource, **extra})


def _request(action: str, resource: str | None, **context: str) -> Request:
    call = Call("F", "test", action.split(":")[0], action.split(":")[1], {}, SECURITY_ACCOUNT, None, REGION)
    return Request(call, action, resource, dict(context))


def test_actions_match_wildcards_ignoring_case_and_an_explicit_deny_wins() -> None:
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/t"
    allow = _statement("Allow", ["dynamodb:get*", "sns:Publish"], "arn:aws:dynamodb:*:*:table/*")
    assert evaluate(_request("dynamodb:GetItem", table), [allow])[0] == "allowed"
    assert evaluate(_request("dynamodb:PutItem", table), [allow])[0] == "not granted"
    assert evaluate(_request("dynamodb:GetItem", f"{table}x/other"), [allow])[0] == "allowed"  # * spans "/"
    deny = _statement("Deny", "dynamodb:*", table)
    assert evaluate(_request("dynamodb:GetItem", table), [allow, deny]) == ("denied", deny)
    assert evaluate(_request("dynamodb:GetItem", None), [deny])[0] == "not granted"  # unknown: no Allow
    not_action = Statement.parse("Role", "t", {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate(_request("iam:GetRole", "*"), [not_action])[0] == "not granted"


def test_conditions_follow_iam_when_a_key_is_missing() -> None:
    policy = "arn:aws:iam::1:policy/connect-guard/q"
    only_q = _statement("Allow", "iam:AttachUserPolicy", Condition={"ArnEquals": {"iam:PolicyARN": policy}})
    user = "arn:aws:iam::1:user/u"
    assert evaluate(_request("iam:AttachUserPolicy", user, **{"iam:PolicyARN": policy}), [only_q])[0] == "allowed"
    assert evaluate(_request("iam:AttachUserPolicy", user, **{"iam:PolicyARN": policy + "x"}), [only_q])[0] != "allowed"
    assert evaluate(_request("iam:AttachUserPolicy", user), [only_q])[0] == "not granted"  # key missing
    if_exists = replace(only_q, condition={"ArnEqualsIfExists": {"iam:PolicyARN": policy}})
    assert evaluate(_request("iam:AttachUserPolicy", user), [if_exists])[0] == "allowed"
    negated = replace(only_q, condition={"StringNotEquals": {"aws:PrincipalTag/team": "x"}})
    assert evaluate(_request("iam:AttachUserPolicy", user), [negated])[0] == "allowed"


def test_calls_become_the_requests_iam_authorizes() -> None:
    def call(service: str, operation: str, **params: Any) -> Call:
        return Call("F", "test", service, operation, params, SECURITY_ACCOUNT, None, REGION)

    url = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    (batch,) = requests_of(call("sqs", "DeleteMessageBatch", QueueUrl=url), iam_arn)
    assert (batch.action, batch.resource) == ("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:123456789012:q")
    writes = requests_of(call("dynamodb", "BatchWriteItem", RequestItems={"a": [], "b": []}), iam_arn)
    assert [r.resource for r in writes] == [f"arn:aws:dynamodb:us-east-1:{SECURITY_ACCOUNT}:table/{t}" for t in "ab"]
    (attach,) = requests_of(call("iam", "AttachUserPolicy", UserName="u", PolicyArn="arn:p"), iam_arn)
    assert (attach.resource, attach.context["iam:PolicyARN"]) == (f"arn:aws:iam::{SECURITY_ACCOUNT}:user/u", "arn:p")
    assert requests_of(call("sts", "GetCallerIdentity"), iam_arn) == []
    (user,) = requests_of(call("connect", "DescribeUser", InstanceId="i-1", UserId="u-1"), iam_arn)
    assert user.resource == f"arn:aws:connect:{REGION}:{SECURITY_ACCOUNT}:instance/i-1/agent/u-1"


def test_a_trust_policy_admits_the_account_then_its_conditions_decide() -> None:
    suite = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/connect-guard/connect-guard-dev-role-quarantine"
    trust = Statement.parse(
        "Role",
        "trust",
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{SECURITY_ACCOUNT}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"ArnEquals": {"aws:PrincipalArn": [suite]}},
        },
    )
    lookalike = suite.replace("role-quarantine", "role-quarantine2")
    assert trust.admits(suite) and not trust.admits(suite.replace(SECURITY_ACCOUNT, "444455556666"))
    assert evaluate(_request("sts:AssumeRole", None, **{"aws:PrincipalArn": suite}), [trust])[0] == "allowed"
    assert evaluate(_request("sts:AssumeRole", None, **{"aws:PrincipalArn": lookalike}), [trust])[0] == "not granted"
    role = Role("member:R", "arn:aws:iam::111122223333:role/connect-guard/r", [], [trust])
    assert trusts(role, suite) and not trusts(role, lookalike)


def test_multivalued_tag_keys_follow_for_all_values_and_null() -> None:
    only_suite = _statement(
        "Allow",
        "iam:TagRole",
        Condition={
            "ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]},
            "Null": {"aws:TagKeys": "false"},
        },
    )
    role = "arn:aws:iam::1:role/r"
    assert evaluate(_request("iam:TagRole", role, **{"aws:TagKeys": ("a", "b")}), [only_suite])[0] == "allowed"
    assert evaluate(_request("iam:TagRole", role, **{"aws:TagKeys": ("a", "c")}), [only_suite])[0] == "not granted"
    assert evaluate(_request("iam:TagRole", role), [only_suite])[0] == "not granted"  # no key: Null refuses
    without_null = replace(only_suite, condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}})
    assert evaluate(_request("iam:TagRole", role), [without_null])[0] == "allowed"  # why Null is there
    any_value = replace(only_suite, condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}})
    assert evaluate(_request("iam:TagRole", role, **{"aws:TagKeys": ("c", "a")}), [any_value])[0] == "allowed"
    call = Call(
        "F", "test", "iam", "UntagUser", {"UserName": "u", "TagKeys": ["a", "b"]}, SECURITY_ACCOUNT, None, REGION
    )
    (untag,) = requests_of(call, iam_arn)
    assert untag.context["aws:TagKeys"] == ("a", "b")


def test_an_export_task_needs_the_write_to_its_destination() -> None:
    params = {"logGroupName": "/g", "destination": "bucket", "destinationPrefix": "logs/g"}
    call = Call("F", "test", "logs", "CreateExportTask", params, SECURITY_ACCOUNT, None, REGION)
    (export,) = requests_of(call, iam_arn)
    keys = {"arn:aws:s3:::bucket": "arn:aws:kms:us-east-1:123456789012:key/k"}
    implied = implied_requests(export, keys)
    assert [(r.action, r.resource) for r in implied] == [
        ("s3:PutObject", "arn:aws:s3:::bucket/logs/g/aws-logs-write-test"),
        ("kms:GenerateDataKey", "arn:aws:kms:us-east-1:123456789012:key/k"),
    ]


def test_only_the_configured_operator_role_may_release_through_the_member_quarantine_role(run: Run) -> None:
    if not run.quarantine_enforces:
        return
    quarantine = run.stacks.member_roles(SOURCE_ACCOUNT)["connect-guard-dev-member-quarantine"]
    released = [c for c in run.calls if c.function == OPERATOR and c.role == quarantine.arn]
    assert {c.operation for c in released} >= {"DetachUserPolicy", "UntagUser"}
    assert trusts(quarantine, OPERATOR_ROLE)
    assert not trusts(quarantine, "arn:aws:iam::123456789012:role/SecurityOperator2")
    # The function itself can't release: no detach or untag in its own role.
    own = run.stacks.own["QuarantineFunctionRole"]
    assert not {a for s in own.statements if s.effect == "Allow" for a in s.actions} & {
        "iam:DetachUserPolicy",
        "iam:DetachRolePolicy",
        "iam:UntagUser",
        "iam:UntagRole",
    }
