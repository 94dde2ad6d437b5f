"""Template settings that must hold together, read from template.yaml itself."""

from __future__ import annotations

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


def test_every_alarm_notifies_the_topic_and_every_function_is_watched():
    alarms = TEMPLATE.of_type("AWS::CloudWatch::Alarm")
    for name, alarm in alarms.items():
        for key in ("AlarmActions", "OKActions"):
            assert alarm["Properties"][key] == {
                "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
            }, (name, key)
    watched = {
        (a["Properties"]["MetricName"], a["Properties"]["Dimensions"][0]["Value"]["Ref"])
        for a in alarms.values()
        if a["Properties"]["Namespace"] == "AWS/Lambda"
    }
    for fn in TEMPLATE.functions():
        assert {("Errors", fn.logical_id), ("Throttles", fn.logical_id)} <= watched, fn.logical_id
    assert any(a["Properties"]["Namespace"] == "AWS/ApiGateway" for a in alarms.values())


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
        assert required <= set(overrides) <= set(parameters), env
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
