"""AwsCallRecorder: which AWS actions each function really performs, to hold against its IAM policy.

A botocore ``before-parameter-build`` hook notes (function, IAM action, resource) for every call made while
a handler runs (``lambda_runtime.CURRENT_FUNCTION``). Transactions count as the item actions
they contain, as IAM counts them.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import boto3

from local.lambda_runtime import CURRENT_FUNCTION

_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
_PREFIX = {"dynamodb": "dynamodb", "sqs": "sqs", "secrets-manager": "secretsmanager", "ssm": "ssm"}


class AwsCallRecorder:
    def __init__(self):
        self.calls: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._lock = threading.Lock()

    def __call__(self, model, params, **_kwargs):
        function = CURRENT_FUNCTION.get()
        if function is None:
            return
        service = model.service_model.endpoint_prefix
        prefix = _PREFIX.get(service, service)
        name = model.name
        found: list[tuple[str, str]] = []
        if name == "TransactWriteItems":
            for item in params.get("TransactItems", []):
                for kind, body in item.items():
                    found.append((f"dynamodb:{_TRANSACT[kind]}", body.get("TableName", "")))
        elif name in ("BatchGetItem", "BatchWriteItem"):  # one request, each table it names a resource
            found += [(f"dynamodb:{name}", table) for table in params.get("RequestItems", {})]
        elif service == "dynamodb":
            resource = params.get("TableName", "")
            if params.get("IndexName"):
                resource += f"/index/{params['IndexName']}"
            found.append((f"dynamodb:{name}", resource))
        elif prefix == "secretsmanager":
            found.append((f"secretsmanager:{name}", params.get("SecretId", "")))
        elif prefix == "sqs":
            found.append((f"sqs:{name}", params.get("QueueUrl", "")))
        elif prefix == "kms":
            found.append((f"kms:{name}", params.get("KeyId", "")))
        elif prefix == "s3":
            found.append((f"s3:{name}", params.get("Bucket", "")))
        else:
            found.append((f"{prefix}:{name}", ""))
        with self._lock:
            self.calls[function].update(found)

    def install(self, *clients) -> AwsCallRecorder:
        """Hook the default session (clients made from now on) and any existing ``clients``."""
        self._emitters = [boto3.DEFAULT_SESSION.events, *(c.meta.events for c in clients)]
        for emitter in self._emitters:
            emitter.register("before-parameter-build", self)
        return self

    def uninstall(self) -> None:
        for emitter in self._emitters:
            emitter.unregister("before-parameter-build", self)
