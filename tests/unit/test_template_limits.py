"""Template settings that must hold together, read from template.yaml itself."""

from __future__ import annotations

import re

from local.template import SamTemplate

TEMPLATE = SamTemplate()


def _props(logical_id: str) -> dict:
    return TEMPLATE.resources[logical_id]["Properties"]


def test_the_work_queue_outlasts_every_worker_invocation_six_times():
    worker_timeout = int(_props("AgentWorkerFunction")["Timeout"])
    assert int(_props("WorkQueue")["VisibilityTimeout"]) >= 6 * worker_timeout


def test_a_dead_letter_is_kept_longer_than_its_message_could_have_waited_before():
    assert int(_props("WorkDeadLetterQueue")["MessageRetentionPeriod"]) > int(
        _props("WorkQueue")["MessageRetentionPeriod"]
    )


def test_the_reconciler_schedule_is_named_per_stack_and_says_minute_in_the_singular():
    schedule = _props("ReconcilerFunction")["Events"]["Schedule"]["Properties"]
    assert "${AWS::StackName}" in schedule["Name"]["Fn::Sub"]
    condition, one, many = schedule["ScheduleExpression"]["Fn::If"]
    assert TEMPLATE.doc["Conditions"][condition] == {"Fn::Equals": [{"Ref": "ReconcileIntervalMinutes"}, 1]}
    assert one == "rate(1 minute)" and many == {"Fn::Sub": "rate(${ReconcileIntervalMinutes} minutes)"}


def test_the_public_callback_route_has_its_own_smaller_throttle():
    api = _props("HttpApi")
    assert api["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
    }
    callback = api["RouteSettings"]["POST /callbacks/handover/{token}"]
    assert callback == {
        "ThrottlingBurstLimit": {"Ref": "CallbackBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "CallbackRateLimit"},
    }
    events = _props("ApprovalCallbackFunction")["Events"]["HandoverCallback"]["Properties"]
    assert f"{events['Method']} {events['Path']}" == "POST /callbacks/handover/{token}"  # the route it throttles
    parameters = TEMPLATE.doc["Parameters"]
    assert parameters["CallbackRateLimit"]["Default"] < parameters["ApiRateLimit"]["Default"]
    assert parameters["CallbackBurstLimit"]["Default"] < parameters["ApiBurstLimit"]["Default"]


def test_the_worker_takes_one_turn_per_invocation():
    assert TEMPLATE.sqs_batch_size("AgentWorkerFunction") == 1


def _evaluate(value, parameters: dict[str, str]):
    """The few intrinsics the SSM statement uses (Sub, Split, Join), evaluated for a parameter value."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for key, replacement in parameters.items():
            text = text.replace("${" + key + "}", replacement)
        return text
    if isinstance(value, dict) and "Fn::Split" in value:
        separator, source = value["Fn::Split"]
        return _evaluate(source, parameters).split(separator)
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_evaluate(parts, parameters))
    return value


def _optional_statement(function: str, condition: str) -> dict:
    [optional] = [p for p in _props(function)["Policies"] if p.get("Fn::If", [None])[0] == condition]
    [statement] = optional["Fn::If"][1]["Statement"]
    return statement


def test_the_policy_and_catalog_parameter_arns_are_right_for_flat_and_hierarchical_names():
    parameters = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}
    for function in ("AgentWorkerFunction", "ApprovalCallbackFunction", "ReconcilerFunction"):
        for condition, parameter in (
            ("HasPolicyParameter", "PolicyParameterName"),
            ("HasCatalogParameter", "CatalogParameterName"),
        ):
            statement = _optional_statement(function, condition)
            for name, arn_tail in (
                ("/signoff/policy", "parameter/signoff/policy"),
                ("signoff-policy", "parameter/signoff-policy"),
            ):
                arn = _evaluate(statement["Resource"], {**parameters, parameter: name})
                assert arn == f"arn:aws:ssm:eu-west-1:123456789012:{arn_tail}", (function, name, arn)


def test_lambda_tools_and_tool_secrets_are_reachable_only_as_listed():
    """Signoff may invoke exactly the functions and read exactly the secrets the user lists."""
    for function in ("AgentWorkerFunction", "ApprovalCallbackFunction", "ReconcilerFunction"):
        invoke = _optional_statement(function, "HasToolFunctions")
        assert invoke["Action"] == "lambda:InvokeFunction" and invoke["Resource"] == {"Ref": "ToolFunctionArns"}
        secrets = _optional_statement(function, "HasToolSecrets")
        assert secrets["Action"] == "secretsmanager:GetSecretValue" and secrets["Resource"] == {"Ref": "ToolSecretArns"}
    assert "HasToolFunctions" not in str(_props("ClientApiFunction")["Policies"])


def test_every_function_logs_to_a_group_with_the_retention_parameter():
    for fn in TEMPLATE.functions():
        group = _props(fn.logical_id)["LoggingConfig"]["LogGroup"]["Ref"]
        resource = TEMPLATE.resources[group]
        assert resource["Type"] == "AWS::Logs::LogGroup", fn.logical_id
        assert resource["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert "${AWS::StackName}" in resource["Properties"]["LogGroupName"]["Fn::Sub"]  # two stacks never collide


TOPIC = [{"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]


def _metrics(alarm: dict) -> list[tuple[str, str, object]]:
    """(namespace, metric, first dimension's value) of an alarm, whether on one metric or metric math."""
    props = alarm["Properties"]
    if "Metrics" in props:
        found = []
        for query in props["Metrics"]:
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                found.append((metric["Namespace"], metric["MetricName"], metric["Dimensions"][0]["Value"]))
        return found
    return [(props["Namespace"], props["MetricName"], props["Dimensions"][0]["Value"])]


def test_every_alarm_notifies_a_topic_that_always_exists():
    """The stack's own topic unless one is given: an alarm never notifies no one."""
    alarms = TEMPLATE.of_type("AWS::CloudWatch::Alarm")
    for name, alarm in alarms.items():
        for key in ("AlarmActions", "OKActions"):
            assert alarm["Properties"][key] == TOPIC, (name, key)
    topic = TEMPLATE.resources["AlarmTopic"]
    assert topic["Condition"] == "CreateAlarmTopic"
    assert TEMPLATE.doc["Conditions"]["CreateAlarmTopic"] == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    assert "${AWS::StackName}" in topic["Properties"]["TopicName"]["Fn::Sub"]
    subscription = TEMPLATE.resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail" and subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["TopicArn"] == TOPIC[0]


def test_every_function_is_watched_for_errors_and_throttles_and_the_api_for_its_5xx_rate():
    alarms = TEMPLATE.of_type("AWS::CloudWatch::Alarm")
    watched = {
        (metric, value["Ref"]) for a in alarms.values() for ns, metric, value in _metrics(a) if ns == "AWS/Lambda"
    }
    for fn in TEMPLATE.functions():
        assert {("Errors", fn.logical_id), ("Throttles", fn.logical_id)} <= watched, fn.logical_id
    api = TEMPLATE.resources["ApiServerErrorsAlarm"]["Properties"]
    assert {m for _, m, _ in _metrics(TEMPLATE.resources["ApiServerErrorsAlarm"])} == {"5xx", "Count"}
    assert "100 * errors / requests" in api["Metrics"][-1]["Expression"]


def test_no_alarm_fires_on_one_event_in_one_period_except_a_dead_letter():
    """M of N datapoints, or a rate: a single blip does not page. A message in a dead-letter (or
    failure) queue is the exception: each one is a lost piece of work someone must look at."""
    single_event_ok = {"WorkDeadLetterAlarm", "NotifyDeadLetterAlarm", "NotifyStreamFailureAlarm"}
    for name, alarm in TEMPLATE.of_type("AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if name in single_event_ok:
            continue
        m_of_n = props.get("DatapointsToAlarm", props["EvaluationPeriods"]) >= 2
        assert m_of_n, name
        if "Metrics" not in props and props.get("MetricName") in ("Errors", "Throttles", "5xx"):
            assert props["Threshold"] >= 1 and props["EvaluationPeriods"] >= 3, name


def test_failures_are_seen_where_they_happen():
    alarms = TEMPLATE.of_type("AWS::CloudWatch::Alarm")
    metrics = {(ns, metric) for a in alarms.values() for ns, metric, _ in _metrics(a)}
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage") in metrics  # the work queue backs up
    assert ("Signoff", "WorkMessagesHandedBack") in metrics  # partial batch failures: not in Errors
    assert ("AWS/Lambda", "IteratorAge") in metrics  # the notifier's stream falls behind
    stream = _props("NotifierFunction")["Events"]["ConversationChanges"]["Properties"]
    destination = stream["DestinationConfig"]["OnFailure"]
    assert destination == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["NotifyStreamFailureQueue", "Arn"]}}
    assert _metrics(alarms["NotifyStreamFailureAlarm"])[0][2] == {
        "Fn::GetAtt": ["NotifyStreamFailureQueue", "QueueName"]
    }
    deliveries = _props("NotifierFunction")["Events"]["Deliveries"]["Properties"]
    assert deliveries["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "NotifierMaxConcurrency"}


def test_metrics_are_per_stack():
    """Service name and every alarm and dashboard metric of Signoff's namespace carry the stack name."""
    import json

    globals_env = TEMPLATE.doc["Globals"]["Function"]["Environment"]["Variables"]
    assert globals_env["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    for name, alarm in TEMPLATE.of_type("AWS::CloudWatch::Alarm").items():
        for ns, _metric, value in _metrics(alarm):
            if ns == "Signoff":
                assert value == {"Ref": "AWS::StackName"}, name
    body = json.dumps(_props("Dashboard")["DashboardBody"])
    assert '\\"service\\",\\"signoff\\"' not in body and "${AWS::StackName}" in body


def test_a_team_can_bring_its_receipt_key_and_its_secrets_key():
    key = TEMPLATE.resources["ReceiptSigningKey"]
    assert key["Condition"] == "CreateReceiptKey" and key["DeletionPolicy"] == "Retain"
    chosen = {"Fn::If": ["CreateReceiptKey", {"Ref": "ReceiptSigningKey"}, {"Ref": "ReceiptKeyArn"}]}
    assert TEMPLATE.doc["Globals"]["Function"]["Environment"]["Variables"]["RECEIPT_KEY_ID"] == chosen
    import json

    text = json.dumps(TEMPLATE.resources)
    assert '"Resource": {"Fn::GetAtt": ["ReceiptSigningKey", "Arn"]}' not in text  # always through the If
    for secret in TEMPLATE.of_type("AWS::SecretsManager::Secret").values():
        assert secret["Properties"]["KmsKeyId"] == {
            "Fn::If": ["HasSecretsKmsKey", {"Ref": "SecretsKmsKeyArn"}, {"Ref": "AWS::NoValue"}]
        }
    for fn in TEMPLATE.functions():
        policies = json.dumps(_props(fn.logical_id)["Policies"])
        reads_secrets = "AWSSecretsManagerGetSecretValuePolicy" in policies
        assert ("kms:Decrypt" in policies) is reads_secrets, fn.logical_id
        if reads_secrets:
            assert '"HasSecretsKmsKey"' in policies  # granted only when a key is given


def test_the_layer_ships_a_coherent_aws_sdk():
    """aws-xray-sdk pulls botocore into the layer, where it shadows the runtime's: boto3 is pinned
    beside it at the same minor version, and the tests use that same boto3."""
    import re

    root = TEMPLATE.path.parent
    pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", (root / "layers/signoff/requirements.txt").read_text(), re.M)
    )
    assert "boto3" in pins and "botocore" in pins
    assert pins["boto3"].split(".")[:2] == pins["botocore"].split(".")[:2]
    dev = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", (root / "requirements-dev.txt").read_text(), re.M))
    assert dev.get("boto3", pins["boto3"]) == pins["boto3"]


def test_the_table_is_protected_from_deletion_and_kept_on_replacement():
    table = TEMPLATE.resources["SignoffTable"]
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_the_worker_cannot_take_the_whole_account_concurrency():
    work = _props("AgentWorkerFunction")["Events"]["Work"]["Properties"]
    assert work["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaxConcurrency"}
    parameter = TEMPLATE.doc["Parameters"]["WorkerMaxConcurrency"]
    assert parameter["MinValue"] == 2 and parameter["Default"] < 10  # SQS's minimum; a new account's limit


def _overrides(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split())


def test_each_samconfig_environment_deploys_without_a_prompt():
    """`make deploy` and `make deploy ENV=prod`: every required parameter is set, only parameters the
    template has are named, the two stacks differ, and no key is ever typed into samconfig."""
    import tomllib

    config = tomllib.loads((TEMPLATE.path.parent / "samconfig.toml").read_text())
    parameters = TEMPLATE.doc["Parameters"]
    required = {name for name, spec in parameters.items() if "Default" not in spec}
    stacks = set()
    for env in ("default", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        overrides = _overrides(deploy["parameter_overrides"])
        # prod names no placeholder approver: its deploy stops at once until the team sets one
        expected = required - {"ApproverEmail"} if env == "prod" else required
        assert expected <= set(overrides) <= set(parameters), env
        assert env != "prod" or "ApproverEmail" not in overrides
        assert not any(parameters[name].get("NoEcho") for name in overrides), env
        assert deploy["capabilities"] == "CAPABILITY_IAM" and deploy["resolve_s3"] is True
        stacks.add(config[env]["global"]["parameters"]["stack_name"])
    assert len(stacks) == 2


def test_no_key_is_a_template_parameter():
    """Keys live in Secrets Manager (created once, or existing ARNs): a deploy never retypes or resets one."""
    for name, spec in TEMPLATE.doc["Parameters"].items():
        assert not spec.get("NoEcho"), name
    for secret in ("OpenAIApiKeySecret", "HandoverApiKeySecret"):
        props = _props(secret)
        assert "SecretString" not in props and "GenerateSecretString" in props
        assert TEMPLATE.resources[secret]["Condition"].startswith("Create")


def test_api_access_logs_name_the_route_never_the_path_or_a_header():
    """A callback's path holds its token and requests carry API keys: neither may reach the access log."""
    import json

    settings = _props("HttpApi")["AccessLogSettings"]
    fields = json.loads(settings["Format"])
    values = " ".join(fields.values())
    assert "$context.routeKey" in values and "$context.status" in values
    for leak in ("$context.path", "$context.rawPath", "$input", "header", "$context.authorizer.principal"):
        assert leak not in values, leak
    group = TEMPLATE.resources[settings["DestinationArn"]["Fn::GetAtt"][0]]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert "${AWS::StackName}" in group["LogGroupName"]["Fn::Sub"]


# What creating, updating and deleting each resource type needs at least (CloudFormation's own
# handlers call these); the resource types SAM expands its own into are listed with them.
DEPLOYER_NEEDS = {
    "AWS::Serverless::Function": {
        "lambda:CreateFunction",
        "lambda:UpdateFunctionConfiguration",
        "lambda:DeleteFunction",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:PassRole",
        "lambda:CreateEventSourceMapping",
        "lambda:UpdateEventSourceMapping",
        "lambda:AddPermission",
    },
    "AWS::Serverless::LayerVersion": {"lambda:PublishLayerVersion", "lambda:DeleteLayerVersion"},
    "AWS::Serverless::HttpApi": {"apigateway:POST", "apigateway:PATCH", "apigateway:DELETE", "logs:CreateLogDelivery"},
    "AWS::DynamoDB::Table": {"dynamodb:CreateTable", "dynamodb:UpdateTimeToLive", "dynamodb:UpdateContinuousBackups"},
    "AWS::SQS::Queue": {"sqs:CreateQueue", "sqs:SetQueueAttributes", "sqs:DeleteQueue"},
    "AWS::SecretsManager::Secret": {"secretsmanager:CreateSecret", "secretsmanager:GetRandomPassword"},
    "AWS::KMS::Key": {"kms:CreateKey", "kms:PutKeyPolicy"},
    "AWS::SNS::Topic": {"sns:CreateTopic", "sns:DeleteTopic"},
    "AWS::SNS::Subscription": {"sns:Subscribe", "sns:Unsubscribe"},
    "AWS::CloudWatch::Alarm": {"cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"},
    "AWS::CloudWatch::Dashboard": {"cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards"},
    "AWS::Logs::LogGroup": {"logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:DeleteLogGroup"},
}


def test_the_deployer_policy_covers_every_resource_type():
    """docs/operations.md's deployer policy grants what each resource type of the template needs; a new
    type without an entry here fails until the policy (and this list) say what it needs."""
    import json
    import re

    text = (TEMPLATE.path.parent / "docs" / "operations.md").read_text()
    section = text[text.index("### The deployer's permissions") :]
    policy = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))
    granted = {a for statement in policy["Statement"] for a in statement["Action"]}
    types = {r["Type"] for r in TEMPLATE.resources.values()}
    assert types <= set(DEPLOYER_NEEDS), types - set(DEPLOYER_NEEDS)
    for kind in types:
        assert DEPLOYER_NEEDS[kind] <= granted, (kind, DEPLOYER_NEEDS[kind] - granted)
    schedules = any(
        "ScheduleV2" in json.dumps(f.get("Properties", {}).get("Events", {})) for f in TEMPLATE.resources.values()
    )
    assert not schedules or {"scheduler:CreateSchedule", "scheduler:DeleteSchedule"} <= granted


def test_no_output_is_exported_under_a_name_another_stack_would_take():
    for name, output in TEMPLATE.doc["Outputs"].items():
        export = output.get("Export", {}).get("Name")
        assert export is None or "${AWS::StackName}" in str(export), name


def test_every_alarm_is_in_the_operations_guide_with_what_to_do():
    """docs/operations.md's alarm table names every alarm the template makes (per-function error and
    throttle alarms by their pattern), so a new alarm never pages someone who cannot look it up."""
    text = (TEMPLATE.path.parent / "docs" / "operations.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines() if line.startswith("| `")}
    functions = "|".join(fn.logical_id.removesuffix("Function") for fn in TEMPLATE.functions())
    for name in TEMPLATE.of_type("AWS::CloudWatch::Alarm"):
        pattern = re.sub(rf"^({functions})(?=(Errors|Throttles)Alarm$)", "<Function>", name)
        assert pattern in rows, name
