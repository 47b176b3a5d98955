"""Operations (stacks/operations.yaml, nested as OperationsStack): every alarm notifies an operations
topic under its own key; the parent passes the physical names the alarms and the dashboard watch;
queue-age, throttle and the responders' own EMF alarms; the dashboard renders to valid JSON whose
every metric exists; every alarm links a runbook section that exists."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from connect_guard.observability import metrics
from connect_guard.outcome import OUTCOMES
from tests.template.stack import (
    ALARMS,
    FUNCTIONS,
    OPERATIONS_PARAMETERS,
    OPERATIONS_RESOURCES,
    OPERATIONS_STACK,
    OPS,
    RESOURCES,
    ROOT,
    RULES,
    SLACK_SECRET_ARN,
    SOURCE_QUEUES,
    T,
    deployed,
    notifies_topic,
    operations_parameters,
    operations_resolver,
    parameters,
    props,
    resolve,
    target,
)

CORE = ROOT / "layers" / "core" / "connect_guard"
RUNBOOKS = ROOT / "docs" / "runbooks"
BASE_URL = "https://runbooks.example.com/connect-guard/"
INTEGRATION_CONDITIONS = {
    "HasSlack": {"SlackWebhookSecretArn": SLACK_SECRET_ARN},
    "HasSecurityHub": {"EnableSecurityHub": "true"},
    "HasChat": {"EnableChat": "true"},
}
ALL_ON = {"RunbookBaseUrl": BASE_URL, **{k: v for p in INTEGRATION_CONDITIONS.values() for k, v in p.items()}}
DEPLOYMENTS = {
    "defaults": {"RunbookBaseUrl": BASE_URL},
    "all-integrations": ALL_ON,
    **{condition: {"RunbookBaseUrl": BASE_URL, **extra} for condition, extra in INTEGRATION_CONDITIONS.items()},
}


# ---- the nested stack and what the parent passes -------------------------------------------------
def test_the_alarms_live_in_the_operations_stack_only() -> None:
    assert RESOURCES[OPERATIONS_STACK]["Type"] == "AWS::Serverless::Application"
    assert props(OPERATIONS_STACK)["Location"] == "stacks/operations.yaml"
    assert not [n for n, r in RESOURCES.items() if r["Type"].startswith("AWS::CloudWatch::")]
    assert len(ALARMS) > 60 and "Dashboard" in OPERATIONS_RESOURCES


def test_the_parent_passes_every_nested_parameter_and_nothing_else() -> None:
    declared = OPS["Parameters"]
    required = {name for name, spec in declared.items() if "Default" not in spec}
    assert required <= set(OPERATIONS_PARAMETERS) <= set(declared)
    assert len(declared) <= 60  # SAM's limit on a nested application's parameters


def _named(value: Any) -> tuple[str, str]:
    """(logical ID, how) of a passed physical name: `Ref X` or `GetAtt X.Attr`."""
    if "Ref" in value:
        return value["Ref"], "Ref"
    logical, attribute = value["Fn::GetAtt"]
    return logical, attribute


# What each resource type's physical name is, as a metric dimension wants it.
PHYSICAL_NAME = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::Serverless::Function": "Ref",
    "AWS::Events::Rule": "Ref",
    "AWS::SNS::Topic": "TopicName",
}


def test_each_name_parameter_carries_that_resources_physical_name_guarded_by_its_condition() -> None:
    for name, value in OPERATIONS_PARAMETERS.items():
        if not name.endswith("Name"):
            continue
        condition = None
        if "Fn::If" in value:
            condition, value, otherwise = value["Fn::If"]
            assert otherwise == "", name
        logical, how = _named(value)
        assert name == f"{logical}Name", name
        assert how == PHYSICAL_NAME[RESOURCES[logical]["Type"]], name
        # Guarded exactly when the resource is conditional (else the stack fails without it).
        assert condition == RESOURCES[logical].get("Condition"), name


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_the_nested_conditions_follow_the_parents(deployment: str) -> None:
    params = parameters(**DEPLOYMENTS[deployment])
    nested = operations_resolver(params)
    for condition in INTEGRATION_CONDITIONS:
        parent_holds = resolve({"Fn::If": [condition, "yes", "no"]}, params) == "yes"
        assert nested.condition(condition) is parent_holds, condition
    # An alarm exists exactly when what it watches does.
    for name, alarm in ALARMS.items():
        watched = [target(d["Value"]) for d in alarm["Properties"]["Dimensions"]]
        for logical in filter(None, watched):
            if logical in RESOURCES:
                assert nested.deployed(name) == deployed(logical, params), (name, logical)


# ---- the operations topic ------------------------------------------------------------------------
def _cloudwatch_statement(statements: list[dict[str, Any]]) -> dict[str, Any]:
    (statement,) = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    return statement


def test_the_operations_topic_has_its_own_key_that_only_this_accounts_suite_alarms_may_use() -> None:
    topic = OPERATIONS_RESOURCES["OperationsTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["OperationsKey", "Arn"]}  # not the suite key
    # In the parent, so that the logging guard keeps it enabled and rotating like the suite's others.
    suite_keys = props("LoggingGuardFunction")["Environment"]["Variables"]["SUITE_KEY_ARNS"]["Fn::Join"][1]
    assert {"Fn::GetAtt": ["OperationsKey", "Arn"]} in suite_keys
    assert props("OperationsKeyAlias")["AliasName"] == {"Fn::Sub": "alias/connect-guard-${Environment}-operations"}
    key = props("OperationsKey")
    assert key["EnableKeyRotation"] is True
    statements = key["KeyPolicy"]["Statement"]
    cloudwatch = _cloudwatch_statement(statements)
    assert set(cloudwatch["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    policy = OPERATIONS_RESOURCES["OperationsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    publish = _cloudwatch_statement(policy)
    assert publish["Action"] == "sns:Publish" and publish["Resource"] == {"Ref": "OperationsTopic"}
    # The same confused-deputy scoping on both: this account, this suite's alarm names.
    for statement in (cloudwatch, publish):
        assert statement["Condition"] == {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
            "ArnLike": {
                "aws:SourceArn": {
                    "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:"
                    "connect-guard-${Environment}-*"
                }
            },
        }
    others = [s for s in statements if s is not cloudwatch]
    assert [s["Principal"] for s in others] == [
        {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    ]
    (deny,) = [s for s in policy if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Neither the suite key nor the alert topic lets CloudWatch in any more.
    assert not [s for s in props("SuiteKey")["KeyPolicy"]["Statement"] if "cloudwatch" in json.dumps(s)]
    assert not [s for s in props("AlertTopicPolicy")["PolicyDocument"]["Statement"] if "cloudwatch" in json.dumps(s)]


def test_every_alarm_notifies_the_operations_topic_under_a_unique_suite_name() -> None:
    names = [alarm["Properties"]["AlarmName"]["Fn::Sub"] for alarm in ALARMS.values()]
    assert len(set(names)) == len(names)
    for name, alarm in ALARMS.items():
        assert notifies_topic(alarm), name
        assert alarm["Properties"]["AlarmName"]["Fn::Sub"].startswith("connect-guard-${Environment}-"), name


@pytest.mark.parametrize(
    ("overrides", "email"),
    [
        ({}, None),
        ({"AlertEmail": "soc@example.com"}, "soc@example.com"),
        ({"AlertEmail": "soc@example.com", "OperationsEmail": "oncall@example.com"}, "oncall@example.com"),
        ({"OperationsEmail": "oncall@example.com"}, "oncall@example.com"),
    ],
)
def test_the_operations_email_defaults_to_the_alert_email(overrides: dict[str, str], email: str | None) -> None:
    params = parameters(RunbookBaseUrl=BASE_URL, **overrides)
    nested = operations_resolver(params)
    assert nested.deployed("OperationsEmailSubscription") is (email is not None)
    if email:
        subscription = OPS["Resources"]["OperationsEmailSubscription"]["Properties"]
        assert nested.resolve(subscription["Endpoint"]) == email
        assert subscription["TopicArn"] == {"Ref": "OperationsTopic"} and subscription["Protocol"] == "email"
    spec = T["Parameters"]["OperationsEmail"]
    assert spec["Default"] == "" and spec["AllowedPattern"] == T["Parameters"]["AlertEmail"]["AllowedPattern"]


def test_the_parent_outputs_the_operations_topic_and_the_dashboard() -> None:
    outputs = T["Outputs"]
    assert outputs["OperationsTopicArn"]["Value"] == {"Fn::GetAtt": ["OperationsStack", "Outputs.OperationsTopicArn"]}
    assert outputs["DashboardName"]["Value"] == {"Fn::GetAtt": ["OperationsStack", "Outputs.DashboardName"]}
    assert set(OPS["Outputs"]) >= {"OperationsTopicArn", "DashboardName"}
    assert outputs["OperationsKeyArn"]["Value"] == {"Fn::GetAtt": ["OperationsKey", "Arn"]}


# ---- the new alarms --------------------------------------------------------------------------------
def _alarms(namespace: str, metric: str) -> dict[str, dict[str, Any]]:
    return {
        name: a["Properties"]
        for name, a in ALARMS.items()
        if a["Properties"]["Namespace"] == namespace and a["Properties"]["MetricName"] == metric
    }


def test_every_responder_queue_alarms_on_its_oldest_message_past_two_receive_cycles() -> None:
    aged = {
        target(p["Dimensions"][0]["Value"]): p for p in _alarms("AWS/SQS", "ApproximateAgeOfOldestMessage").values()
    }
    for queue in SOURCE_QUEUES.values():
        p = aged[queue]
        # Two visibility timeouts: a transient failure costs one; no receive at all never reaches the DLQ.
        assert p["Threshold"] == 2 * props(queue)["VisibilityTimeout"], queue
        assert (p["Statistic"], p["ComparisonOperator"], p["TreatMissingData"]) == (
            "Maximum",
            "GreaterThanThreshold",
            "notBreaching",
        )
    assert set(aged) == {*SOURCE_QUEUES.values(), "FindingsArchiveQueue"}


def test_every_function_alarms_on_sustained_throttles() -> None:
    throttled = {target(p["Dimensions"][0]["Value"]): (n, p) for n, p in _alarms("AWS/Lambda", "Throttles").items()}
    assert set(throttled) == set(FUNCTIONS)
    for function, (name, p) in throttled.items():
        assert p["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
        assert (p["Statistic"], p["Period"], p["EvaluationPeriods"], p["DatapointsToAlarm"]) == ("Sum", 300, 3, 2)
        assert ALARMS[name].get("Condition") == RESOURCES[function].get("Condition"), name


def _emitted_metrics(path: Path) -> set[str]:
    """The metric names a module passes to metrics.add_metric (f-strings as their literal prefix)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_metric":
            (name,) = [k.value for k in node.keywords if k.arg == "name"]
            if isinstance(name, ast.Constant):
                names.add(name.value)
            elif isinstance(name, ast.JoinedStr) and isinstance(name.values[0], ast.Constant):
                names.add(f"{name.values[0].value}*")
            elif isinstance(name, ast.Name):  # a module constant
                (value,) = [
                    a.value.value
                    for a in ast.walk(ast.parse(path.read_text()))
                    if isinstance(a, ast.Assign) and getattr(a.targets[0], "id", None) == name.id
                ]
                names.add(value)
    return names


RUNTIME_METRICS = _emitted_metrics(CORE / "runtime.py")
SUITE_METRICS = {m for path in CORE.rglob("*.py") for m in _emitted_metrics(path)}
# The runtime's error and poison metrics: each one alarms, for each responder it runs.
ALARMED_EMF = {"PoisonEvents", "UnclassifiedErrors", "FinalAlertFailures", "DeadLetterSendFailures"}


def _service(function: str) -> str:
    return str(props(function)["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"])


def test_the_responders_error_and_poison_metrics_alarm_as_the_code_emits_them() -> None:
    assert ALARMED_EMF <= RUNTIME_METRICS  # read from the code: a renamed metric fails here
    emf = {n: a["Properties"] for n, a in ALARMS.items() if a["Properties"]["Namespace"] == metrics.namespace}
    assert (
        metrics.namespace
        == "ConnectGuard"
        == props("PolicyAlertsFunction")["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    )
    seen = {(p["MetricName"], p["Dimensions"][0]["Value"]) for p in emf.values()}
    # Powertools adds the service dimension from POWERTOOLS_SERVICE_NAME: the function's own.
    assert seen == {(metric, _service(function)) for metric in ALARMED_EMF for function in SOURCE_QUEUES}
    for name, p in emf.items():
        assert p["Dimensions"][0]["Name"] == "service", name
        assert (p["Statistic"], p["Threshold"], p["TreatMissingData"]) == ("Sum", 0, "notBreaching"), name


# ---- runbook links in the alarms -------------------------------------------------------------------
def github_anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub renders them: lower case, punctuation dropped, spaces to hyphens,
    repeats suffixed -1, -2."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6} +(.+?) *#* *$", line)
        if match:
            text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", match[1])
            slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in anchors:
                n += 1
                candidate = f"{slug}-{n}"
            anchors.add(candidate)
    return anchors


def test_github_anchors() -> None:
    assert github_anchors("# A b\n## Dead letters: `DLQ` (*-dlq)\n# A b\n```\n# not\n```") == {
        "a-b",
        "dead-letters-dlq--dlq",
        "a-b-1",
    }


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_every_alarm_description_ends_with_its_runbook_section(name: str) -> None:
    nested = operations_resolver(parameters(**ALL_ON))
    description = nested.resolve(OPS["Resources"][name]["Properties"]["AlarmDescription"])
    assert len(description) <= 1024  # CloudWatch's limit
    match = re.search(r"Runbook: (\S+)$", description)
    assert match and match[1].startswith(BASE_URL), description
    file, _, anchor = match[1].removeprefix(BASE_URL).partition("#")
    assert anchor and (RUNBOOKS / file).is_file(), match[1]
    assert anchor in github_anchors((RUNBOOKS / file).read_text()), match[1]


def test_runbook_base_url_is_required_and_must_end_in_a_slash() -> None:
    spec = T["Parameters"]["RunbookBaseUrl"]
    assert "Default" not in spec  # no default link that may not exist
    pattern = re.compile(spec["AllowedPattern"])
    assert pattern.fullmatch(BASE_URL) and pattern.fullmatch("https://wiki.example.com/soc/runbooks/")
    for bad in ("", "http://example.com/runbooks/", "https://example.com/runbooks", "https://a b/"):
        assert not pattern.fullmatch(bad), bad
    assert OPERATIONS_PARAMETERS["RunbookBaseUrl"] == {"Ref": "RunbookBaseUrl"}
    assert OPS["Parameters"]["RunbookBaseUrl"]["AllowedPattern"] == spec["AllowedPattern"]
    # The longest base URL allowed still leaves every alarm description within CloudWatch's 1,024.
    assert spec["MaxLength"] == OPS["Parameters"]["RunbookBaseUrl"]["MaxLength"] == 512
    longest = "https://" + "a" * (spec["MaxLength"] - len("https://") - 1) + "/"
    nested = operations_resolver(parameters(RunbookBaseUrl=longest))
    for name in ALARMS:
        assert len(nested.resolve(OPS["Resources"][name]["Properties"]["AlarmDescription"])) <= 1024, name


# ---- dashboard -------------------------------------------------------------------------------------
def dashboard(params: dict[str, str]) -> dict[str, Any]:
    body = operations_resolver(params).resolve(OPS["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    return json.loads(body)  # as CloudFormation passes it: it must be valid JSON


def _metrics(widget: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [tuple(m[:4]) for m in widget["properties"].get("metrics", [])]  # type: ignore[misc]


def _placeholder(value: str) -> tuple[str, str]:
    """The parent resource behind a resolved physical name (`<X>` for Ref, `<X.Attr>` for GetAtt)."""
    match = re.fullmatch(r"<(\w+)(?:\.(\w+))?>", value)
    assert match, f"{value} is not a stack resource's physical name"
    return match[1], match[2] or "Ref"


DIMENSIONS = {
    "AWS/SQS": ("QueueName", "AWS::SQS::Queue"),
    "AWS/Lambda": ("FunctionName", "AWS::Serverless::Function"),
    "AWS/Events": ("RuleName", "AWS::Events::Rule"),
    "AWS/SNS": ("TopicName", "AWS::SNS::Topic"),
}
SERVICES = {_service(function) for function in FUNCTIONS}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_every_metric_on_the_dashboard_exists(deployment: str) -> None:
    params = parameters(**DEPLOYMENTS[deployment])
    body = dashboard(params)
    for widget in body["widgets"]:
        if widget["type"] == "text":
            continue
        assert widget["properties"]["region"] == "us-east-1"
        for namespace, metric, dimension, value in _metrics(widget):
            if namespace == metrics.namespace:
                assert dimension == "service" and value in SERVICES, (metric, value)
                if metric.startswith("Outcome_"):
                    assert "Outcome_*" in RUNTIME_METRICS and metric.removeprefix("Outcome_") in OUTCOMES
                else:
                    assert metric in SUITE_METRICS, metric
                continue
            expected_dimension, resource_type = DIMENSIONS[namespace]
            assert dimension == expected_dimension, (namespace, metric)
            logical, attribute = _placeholder(value)
            assert RESOURCES[logical]["Type"] == resource_type, value
            assert attribute == PHYSICAL_NAME[resource_type], value
            assert deployed(logical, params), f"{widget['properties']['title']}: {logical} is not deployed"


CONTROLS = {fn: _service(fn) for fn in SOURCE_QUEUES}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_the_dashboard_shows_each_control_by_outcome_errors_queues_and_delivery(deployment: str) -> None:
    params = parameters(**DEPLOYMENTS[deployment])
    widgets = [w for w in dashboard(params)["widgets"] if w["type"] == "metric"]
    shown = {(m[0], m[1], m[3]) for w in widgets for m in _metrics(w)}
    for function, service in CONTROLS.items():
        queue = SOURCE_QUEUES[function]
        dlq = target(props(queue)["RedrivePolicy"]["deadLetterTargetArn"])
        outcomes = {m for ns, m, v in shown if ns == metrics.namespace and v == service and m.startswith("Outcome_")}
        assert outcomes == {f"Outcome_{o}" for o in OUTCOMES}, service
        for measure in ("PoisonEvents", "UnclassifiedErrors", "FinalAlertFailures", "RetriedEvents"):
            assert (metrics.namespace, measure, service) in shown, (service, measure)
        assert ("AWS/Lambda", "Errors", f"<{function}>") in shown
        assert ("AWS/Lambda", "Throttles", f"<{function}>") in shown
        assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", f"<{queue}.QueueName>") in shown
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", f"<{dlq}.QueueName>") in shown
        for rule in (
            r for r, rule in RULES.items() if any(target(t["Arn"]) == queue for t in rule["Properties"]["Targets"])
        ):
            assert ("AWS/Events", "FailedInvocations", f"<{rule}>") in shown, rule
    assert (metrics.namespace, "CanaryAgeSeconds", "liveness") in shown
    assert ("AWS/SNS", "NumberOfNotificationsFailed", "<AlertTopic.TopicName>") in shown
    for function in ("BaselineSweepFunction", "RoleSnapshotFunction", "LogExportFunction"):
        assert ("AWS/Lambda", "Errors", f"<{function}>") in shown
    # The optional integrations' delivery failures, exactly when deployed.
    for function, dlq in (
        ("SlackNotifierFunction", "SlackNotifierDLQ"),
        ("SecurityHubImportFunction", "SecurityHubImportDLQ"),
        ("ChatNotifierFunction", "ChatNotifierDLQ"),
    ):
        on = deployed(function, params)
        assert (("AWS/Lambda", "Errors", f"<{function}>") in shown) is on, function
        assert (("AWS/SQS", "ApproximateNumberOfMessagesVisible", f"<{dlq}.QueueName>") in shown) is on, dlq


def test_the_dashboard_has_no_sub_placeholder_left_and_fits_cloudwatchs_limit() -> None:
    params = parameters(**ALL_ON)
    body = operations_resolver(params).resolve(OPS["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    assert "${" not in body and len(body.encode()) < 1_000_000
    assert operations_parameters(params)["Environment"] == "dev"
    assert "connect-guard dev" in body and f"{BASE_URL}operations.md" in body


def _outcomes_in_code() -> set[str]:
    """Every outcome string the core sets: Outcome(..., "<o>"), `.outcome = "<o>"`, the result of
    publish_outcome / _publish, and `{"outcome": "<o>"}` results."""
    found: set[str] = set()

    def text(node: ast.expr) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = getattr(node.func, "attr", getattr(node.func, "id", None))
                if func == "Outcome" and len(node.args) >= 4:
                    found.add(text(node.args[3]) or "")
                elif func in {"publish_outcome", "_publish"} and node.args:
                    found.add(text(node.args[-1]) or "")
            elif isinstance(node, ast.Assign) and getattr(node.targets[0], "attr", None) == "outcome":
                if isinstance(node.value, ast.IfExp):
                    found |= {text(node.value.body) or "", text(node.value.orelse) or ""}
                else:
                    found.add(text(node.value) or "")
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if key is not None and text(key) == "outcome" and text(value):
                        found.add(text(value) or "")
    found.discard("")
    return found


def test_the_dashboards_outcomes_are_every_outcome_the_code_reports() -> None:
    found = _outcomes_in_code()
    assert {"alerted", "ignored", "restored", "rolled_back", "quarantined", "dead_lettered", "duplicate"} <= found
    assert found <= set(OUTCOMES), found - set(OUTCOMES)
