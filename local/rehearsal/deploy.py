"""Deploy rehearsal: the template as `sam deploy` would send it, through moto's CloudFormation, in
the steps teams run: a create with the defaults, a create with every option beside it (two stacks,
one account), an update of each that changes parameters, and a delete.

SAM's own translator turns template.yaml into CloudFormation (``translate``), the code URIs point at
an uploaded artifact as `sam package` would make them. After each step the report holds what
CloudFormation says it made and what the services themselves hold (functions and their
environments, event source mappings and their concurrency, log groups and their retention, SNS
topics and subscriptions), and, for the alarms moto cannot create, each alarm's actions as
CloudFormation would resolve them for that step's parameters.

    python -m local.rehearsal.deploy        (prints the report as JSON)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
import zipfile
from collections import Counter
from functools import cache
from typing import Any

from local.rehearsal.translate import ARTIFACT, translated_template

REGION = "us-east-1"
ACCOUNT = "123456789012"
APPROVER = {"ApproverEmail": "approver@example.com"}
# Parameters an operator would set: every optional branch of the template is taken at least once.
PARAMETERS = {
    **APPROVER,
    "PolicyParameterName": "/signoff/policy",
    "AlarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:signoff-alarms",
    "AlarmEmail": "oncall@example.com",
    "NotifyUrlPrefixes": "https://hooks.example.com/",
    "CatalogParameterName": "/signoff/catalog",
    "ToolFunctionArns": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:close-account",
    "ToolSecretArns": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:mcp-token-AbCdEf",
    "OpenAIApiKeySecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:openai-key-AbCdEf",
    "HandoverApiKeySecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:handover-key-AbCdEf",
    "RetiredReceiptKeyArns": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555",
    "ReceiptKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/66666666-7777-8888-9999-000000000000",
    "SecretsKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "CheckpointBucketName": "acme-signoff-checkpoints",
    "NotifierMaxConcurrency": "3",
    "WorkerMaxConcurrency": "4",
    "LogRetentionDays": "90",
}
DEFAULTS_STACK, FULL_STACK = "signoff-defaults", "signoff-full"
# The steps: (what, stack, parameters). Each update changes parameters both ways: the defaults stack
# takes options on, the full one gives its topic and key up for the stack's own.
STEPS: list[tuple[str, str, dict[str, str]]] = [
    ("create", DEFAULTS_STACK, APPROVER),
    ("create", FULL_STACK, PARAMETERS),
    (
        "update",
        DEFAULTS_STACK,
        {**APPROVER, "AlarmEmail": "pager@example.com", "LogRetentionDays": "14", "NotifierMaxConcurrency": "8"},
    ),
    (
        "update",
        FULL_STACK,
        {k: v for k, v in PARAMETERS.items() if k not in ("AlarmTopicArn", "ReceiptKeyArn")}
        | {"WorkerMaxConcurrency": "6"},
    ),
    ("delete", DEFAULTS_STACK, {}),
]


def _upload_artifact() -> None:
    import boto3

    bucket, key = ARTIFACT.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def _as_cloudformation_does() -> None:
    """Where moto 5.2's CloudFormation differs from AWS's on what this template uses, make it do what
    AWS does (each patch names the difference; none changes what the template asks for).

    - ``AWS::NoValue`` inside a list (an ``!If`` in a function's ``Policies``) removes the element on
      AWS; moto keeps it as ``None`` and fails on it (``'NoneType' object is not subscriptable``).
    - A log group's ``RetentionInDays`` changes in place on AWS; moto has no update for log groups
      and drops them from the stack on an update.
    - ``!Ref`` of a layer version is its ARN; on an update moto passes the layer object itself to the
      function's ``Layers`` and fails (``'LayerVersion' object has no attribute 'replace'``).

    (And one in how the rehearsal calls it: moto compares only the parameters an update names, so a
    parameter left to its default is not seen to change; every step passes every parameter.)"""
    from moto.cloudformation import parsing
    from moto.logs.models import LogGroup

    if getattr(parsing.clean_json, "signoff_patched", False):
        return

    def update_log_group(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        original_resource.retention_in_days = cloudformation_json["Properties"].get("RetentionInDays")
        return original_resource

    LogGroup.update_from_cloudformation_json = classmethod(update_log_group)  # type: ignore[method-assign]

    from moto.awslambda.models import LambdaFunction

    layers_data = LambdaFunction._get_layers_data

    def _get_layers_data(self, layers_versions_arns):
        return layers_data(self, [getattr(layer, "arn", layer) for layer in layers_versions_arns])

    LambdaFunction._get_layers_data = _get_layers_data  # type: ignore[method-assign]
    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        cleaned = original(resource_json, resources_map)
        if isinstance(resource_json, list) and isinstance(cleaned, list):
            return [value for value in cleaned if value is not None]
        return cleaned

    clean_json.signoff_patched = True  # type: ignore[attr-defined]
    parsing.clean_json = clean_json


def rehearse() -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    _as_cloudformation_does()
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        os.environ.pop(name)  # moto's in-process mock, not a server (nor the stack's Lambda endpoint)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    # moto prints and warns for each resource it cannot create: the report lists those instead.
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with mock_aws(), warnings.catch_warnings(), quiet[0], quiet[1]:
        warnings.simplefilter("ignore")
        _upload_artifact()
        template = translated_template()
        cfn = boto3.client("cloudformation", region_name=REGION)
        steps = []
        ids: dict[str, dict[str, str]] = {}
        for what, name, parameters in STEPS:
            step: dict[str, Any] = {"step": what, "stack": name, "parameters": parameters}
            if what == "delete":
                cfn.delete_stack(StackName=name)
                step["stacks_left"] = sorted(
                    s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"
                )
                step["left_behind"] = _left_behind(ids[name])
                step["others_intact"] = {
                    other: _left_behind(other_ids)["AgentWorkerFunction"]
                    for other, other_ids in ids.items()
                    if other != name
                }
                steps.append(step)
                continue
            call = cfn.create_stack if what == "create" else cfn.update_stack
            every = {k: str(spec["Default"]) for k, spec in template["Parameters"].items() if "Default" in spec}
            call(
                StackName=name,
                TemplateBody=json.dumps(template),
                Capabilities=["CAPABILITY_IAM"],
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (every | parameters).items()],
            )
            described = cfn.describe_stacks(StackName=name)["Stacks"][0]
            # moto lists the types it cannot create with no type: those are checked from the template
            resources = [
                r for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"] if r["ResourceType"]
            ]
            ids[name] = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
            step |= {
                "status": described["StackStatus"],
                "created": dict(Counter(r["ResourceType"] for r in resources)),
                "physical_ids": ids[name],
                "outputs": {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
                "expected": _expected(template, parameters),
                "alarms": _alarm_actions(template, parameters, ids[name]),
                "live": _live(name, ids[name]),
            }
            steps.append(step)
        return {"declared": dict(Counter(r["Type"] for r in template["Resources"].values())), "steps": steps}


# -- CloudFormation's own resolution, for what moto does not create -----------------------------------
def _condition(name: str, parameters: dict[str, str]) -> bool:
    """A condition of the template for these parameters (the translated template keeps SAM's own)."""
    return _sam_template().condition(name, parameters)


@cache
def _sam_template() -> Any:
    from local.template import SamTemplate

    return SamTemplate()


def _expected(template: dict, parameters: dict[str, str]) -> dict[str, int]:
    """The resource types CloudFormation would create for these parameters (conditions applied)."""
    return dict(
        Counter(
            r["Type"]
            for r in template["Resources"].values()
            if "Condition" not in r or _condition(r["Condition"], parameters)
        )
    )


def _alarm_actions(template: dict, parameters: dict[str, str], ids: dict[str, str]) -> dict[str, Any]:
    """Each alarm's AlarmActions and OKActions, resolved as CloudFormation would for these parameters."""

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (resolve(n) for n in node) if v is not None]
        if isinstance(node, dict) and "Fn::If" in node:
            name, yes, no = node["Fn::If"]
            return resolve(yes if _condition(name, parameters) else no)
        if isinstance(node, dict) and "Ref" in node:
            ref = node["Ref"]
            if ref == "AWS::NoValue":
                return None
            if ref in template["Parameters"]:
                return parameters.get(ref, template["Parameters"][ref].get("Default", ""))
            return ids.get(ref, f"<not created: {ref}>")
        return node

    return {
        name: {key: resolve(r["Properties"].get(key)) for key in ("AlarmActions", "OKActions")}
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def _live(name: str, ids: dict[str, str]) -> dict[str, Any]:
    """What the services themselves hold after a step (not what CloudFormation says it made)."""
    import boto3

    lam = boto3.client("lambda", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    ddb = boto3.client("dynamodb", region_name=REGION)
    cw = boto3.client("cloudwatch", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    table = ddb.describe_table(TableName=ids["SignoffTable"])["Table"]
    functions = {
        logical: lam.get_function_configuration(FunctionName=physical)
        for logical, physical in ids.items()
        if logical.endswith("Function") and not logical.endswith("Role")
    }
    arns = {f["FunctionArn"]: logical for logical, f in functions.items()}
    mappings = [m for m in lam.list_event_source_mappings()["EventSourceMappings"] if m["FunctionArn"] in arns]
    topic = ids.get("AlarmTopic")
    return {
        "table_stream": table.get("StreamSpecification", {}).get("StreamViewType"),
        "log_groups": {
            g["logGroupName"]: g.get("retentionInDays")
            for g in logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}/")["logGroups"]
        },
        "functions": {
            logical: {
                "timeout": f["Timeout"],
                "memory": f["MemorySize"],
                "env": f.get("Environment", {}).get("Variables", {}),
            }
            for logical, f in functions.items()
        },
        "mappings": sorted(
            [
                arns[m["FunctionArn"]],
                m["EventSourceArn"].split(":")[2],
                m.get("BatchSize"),
                (m.get("ScalingConfig") or {}).get("MaximumConcurrency"),
                ((m.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
            ]
            for m in mappings
        ),
        "dashboard": json.loads(cw.get_dashboard(DashboardName=ids["Dashboard"])["DashboardBody"]),
        "work_queue": sqs.get_queue_attributes(
            QueueUrl=ids["WorkQueue"], AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
        )["Attributes"],
        "alarm_topic": topic,
        "subscriptions": sorted(
            (s["TopicArn"], s["Protocol"], s["Endpoint"]) for s in sns.list_subscriptions()["Subscriptions"]
        ),
    }


def _left_behind(ids: dict[str, str]) -> dict[str, bool]:
    """After a delete: which of the stack's resources still exist (the table and the key are kept)."""
    import boto3

    ddb = boto3.client("dynamodb", region_name=REGION)
    lam = boto3.client("lambda", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)
    functions = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    left = {
        "SignoffTable": ids["SignoffTable"] in ddb.list_tables()["TableNames"],
        "AgentWorkerFunction": ids["AgentWorkerFunction"] in functions,
    }
    if "ReceiptSigningKey" in ids:  # listed, not described: moto keeps a CloudFormation key's policy unreadable
        keys = {k["KeyId"] for k in kms.list_keys()["Keys"]} | {k["KeyArn"] for k in kms.list_keys()["Keys"]}
        left["ReceiptSigningKey"] = ids["ReceiptSigningKey"] in keys
    return left


def main() -> None:
    print(json.dumps(rehearse(), indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
