"""Deploy rehearsal: the template as `sam deploy` would send it, created in moto's CloudFormation.

SAM's own translator turns template.yaml into CloudFormation (``translate``), the code URIs
point at an uploaded artifact as `sam package` would make them, and the stack is created under
each given name in one account. What moto's CloudFormation cannot
create is listed, not hidden, so the tests can cover those resources with template assertions.

    python -m local.rehearsal.deploy [stack-name ...]     (prints the report as JSON)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
import zipfile
from collections import Counter
from typing import Any

from local.rehearsal.translate import ARTIFACT, translated_template

REGION = "us-east-1"
# Parameters an operator would set: every optional branch of the template is taken at least once.
PARAMETERS = {
    "ApproverEmail": "approver@example.com",
    "PolicyParameterName": "/signoff/policy",
    "AlarmTopicArn": f"arn:aws:sns:{REGION}:123456789012:signoff-alarms",
    "NotifyUrlPrefixes": "https://hooks.example.com/",
    "CatalogParameterName": "/signoff/catalog",
    "ToolFunctionArns": f"arn:aws:lambda:{REGION}:123456789012:function:close-account",
    "ToolSecretArns": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:mcp-token-AbCdEf",
    "RetiredReceiptKeyArns": f"arn:aws:kms:{REGION}:123456789012:key/11111111-2222-3333-4444-555555555555",
}


def _upload_artifact() -> None:
    import boto3

    bucket, key = ARTIFACT.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def rehearse(stack_names: list[str]) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        os.environ.pop(name)  # moto's in-process mock, not a server (nor the stack's Lambda endpoint)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    # moto prints and warns for each resource it cannot create: the report lists those instead.
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with mock_aws(), warnings.catch_warnings(), quiet[0], quiet[1]:
        warnings.simplefilter("ignore")
        _upload_artifact()
        template = translated_template()
        declared = Counter(r["Type"] for r in template["Resources"].values())
        cfn = boto3.client("cloudformation", region_name=REGION)
        stacks = {}
        for name in stack_names:
            cfn.create_stack(
                StackName=name,
                TemplateBody=json.dumps(template),
                Capabilities=["CAPABILITY_IAM"],
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()],
            )
            described = cfn.describe_stacks(StackName=name)["Stacks"][0]
            resources = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
            created = [r for r in resources if r["ResourceType"]]
            stacks[name] = {
                "status": described["StackStatus"],
                "created": dict(Counter(r["ResourceType"] for r in created)),
                "physical_ids": {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in created},
                "outputs": {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
            }
        report = {"declared": dict(declared), "stacks": stacks, "live": _live(stacks)}
    return report


def _live(stacks: dict[str, Any]) -> dict[str, Any]:
    """What the services themselves hold after the deploys (not what CloudFormation says it made)."""
    import boto3

    lam = boto3.client("lambda", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    ddb = boto3.client("dynamodb", region_name=REGION)
    cw = boto3.client("cloudwatch", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    live: dict[str, Any] = {}
    for name, stack in stacks.items():
        ids = stack["physical_ids"]
        table = ddb.describe_table(TableName=ids["SignoffTable"])["Table"]
        functions = {
            logical: lam.get_function_configuration(FunctionName=physical)
            for logical, physical in ids.items()
            if logical.endswith("Function") and not logical.endswith("Role")
        }
        mappings = lam.list_event_source_mappings()["EventSourceMappings"]
        arns = {f["FunctionArn"]: logical for logical, f in functions.items()}
        live[name] = {
            "table_stream": table.get("StreamSpecification", {}).get("StreamViewType"),
            "log_groups": {
                g["logGroupName"]: g.get("retentionInDays")
                for g in logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}/")["logGroups"]
            },
            "functions": {
                logical: {
                    "timeout": f["Timeout"],
                    "memory": f["MemorySize"],
                    "env": sorted(f.get("Environment", {}).get("Variables", {})),
                }
                for logical, f in functions.items()
            },
            "mappings": sorted(
                (arns[m["FunctionArn"]], m["EventSourceArn"].split(":")[2], m.get("BatchSize"))
                for m in mappings
                if m["FunctionArn"] in arns
            ),
            "dashboard": json.loads(cw.get_dashboard(DashboardName=ids["Dashboard"])["DashboardBody"]),
            "work_queue": sqs.get_queue_attributes(
                QueueUrl=ids["WorkQueue"], AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
            )["Attributes"],
        }
    return live


def main() -> None:
    names = sys.argv[1:] or ["signoff-staging", "signoff-prod"]
    print(json.dumps(rehearse(names), indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
