"""Creates the template's table, queues, keys and secrets in moto (or any endpoint boto3 is pointed at)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import boto3

from local.template import SamTemplate


@dataclass
class CreatedResources:
    """What ``!Ref``/``!GetAtt`` resolve to locally, by logical id."""

    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[tuple[str, str], str] = field(default_factory=dict)


def create_resources(
    template: SamTemplate,
    secret_values: dict[str, str],
    *,
    prefix: str = "signoff-local",
    queue_visibility_seconds: int | None = None,
    parameters: dict[str, Any] | None = None,
) -> CreatedResources:
    """Create every table, queue and secret the template declares (those whose condition holds for
    ``parameters``). ``secret_values`` maps a secret's logical id to its value; secrets the template
    generates get a random value when not given."""
    parameters = parameters if parameters is not None else template.parameter_defaults()
    created = CreatedResources()
    dynamodb = boto3.client("dynamodb")
    for logical_id, res in template.of_type("AWS::DynamoDB::Table").items():
        props = res["Properties"]
        name = f"{prefix}-{logical_id}"
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        described = dynamodb.create_table(**kwargs)["TableDescription"]
        if "LatestStreamArn" in described:
            created.attrs[(logical_id, "StreamArn")] = described["LatestStreamArn"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        created.refs[logical_id] = name

    sqs = boto3.client("sqs")
    queues = template.of_type("AWS::SQS::Queue")
    # Dead-letter queues first, so redrive policies can point at them.
    order = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {}))
    for logical_id in order:
        props = queues[logical_id].get("Properties", {})
        attributes: dict[str, str] = {}
        if "VisibilityTimeout" in props:
            attributes["VisibilityTimeout"] = str(queue_visibility_seconds or props["VisibilityTimeout"])
        if "MessageRetentionPeriod" in props:
            attributes["MessageRetentionPeriod"] = str(props["MessageRetentionPeriod"])
        if "RedrivePolicy" in props:
            policy = dict(props["RedrivePolicy"])
            target = policy["deadLetterTargetArn"]["Fn::GetAtt"][0]
            policy["deadLetterTargetArn"] = created.attrs[(target, "Arn")]
            attributes["RedrivePolicy"] = json.dumps(policy)
        url = sqs.create_queue(QueueName=f"{prefix}-{logical_id}", Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        created.refs[logical_id] = url
        created.attrs[(logical_id, "Arn")] = arn
        created.attrs[(logical_id, "QueueName")] = f"{prefix}-{logical_id}"

    kms = boto3.client("kms")
    for logical_id, res in template.of_type("AWS::KMS::Key", parameters).items():
        props = res.get("Properties", {})
        key = kms.create_key(
            Description=f"{prefix} {logical_id}",
            KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
            KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
        )["KeyMetadata"]
        created.refs[logical_id] = key["KeyId"]
        created.attrs[(logical_id, "Arn")] = key["Arn"]

    sm = boto3.client("secretsmanager")
    for logical_id, res in template.of_type("AWS::SecretsManager::Secret", parameters).items():
        props = res.get("Properties", {})
        value = secret_values.get(logical_id)
        if value is None:
            if "GenerateSecretString" not in props:
                raise ValueError(f"no local value for secret {logical_id}")
            value = secrets.token_urlsafe(32)
        arn = sm.create_secret(Name=f"{prefix}/{logical_id}", SecretString=value)["ARN"]
        created.refs[logical_id] = arn
    return created


def resolve(
    value: Any, created: CreatedResources, parameters: dict[str, Any], template: SamTemplate | None = None
) -> Any:
    """Resolve the intrinsic functions used in the template's environment variables."""
    if isinstance(value, dict) and "Fn::If" in value:
        if template is None:
            raise KeyError("!If needs the template's conditions")
        condition, when_true, when_false = value["Fn::If"]
        chosen = when_true if template.condition(condition, parameters) else when_false
        return resolve(chosen, created, parameters, template)
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name in created.refs:
            return created.refs[name]
        if name in parameters:
            return parameters[name]
        raise KeyError(f"cannot resolve !Ref {name} locally")
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attr = value["Fn::GetAtt"]
        return created.attrs[(logical_id, attr)]
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for key, replacement in parameters.items():
            text = text.replace("${" + key + "}", str(replacement))
        return text
    return value


def function_environments(
    template: SamTemplate, created: CreatedResources, parameters: dict[str, Any], overrides: dict[str, str]
) -> dict[str, dict[str, str]]:
    """Every function's environment as the template declares it, resolved against the local
    resources, then ``overrides`` applied to the variables each function declares."""
    environments = {}
    for fn in template.functions():
        env = {key: str(resolve(value, created, parameters, template)) for key, value in fn.environment.items()}
        env.update({key: value for key, value in overrides.items() if key in env})
        environments[fn.logical_id] = env
    return environments
