"""Render the client API's OpenAPI document from its Powertools resolver."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "openapi.yaml"
HANDLER = ROOT / "functions" / "client_api" / "app.py"

DESCRIPTION = (
    "Start a conversation with an approval-gated agent, add messages, post the results of tool calls "
    "the client runs, read a conversation with its tool calls, their decisions and executions, list "
    "approvals for audit and manage standing approvals. Every route needs `Authorization: Bearer "
    '<api key>`; without it API Gateway answers 401 `{"message":"Unauthorized"}`, with a wrong key '
    '403 `{"message":"Forbidden"}`. Generated from the client API\'s code (`make openapi`).'
)


def _client_api() -> Any:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    layer = str(ROOT / "layers" / "signoff")
    if layer not in sys.path:
        sys.path.insert(0, layer)
    spec = importlib.util.spec_from_file_location("signoff_client_api_for_openapi", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def document() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.models import Server

    schema = _client_api().get_openapi_schema(
        title="Signoff client API",
        version="1.0",
        description=DESCRIPTION,
        servers=[Server(url="http://127.0.0.1:3000", description="the local stack (`make local`)")],
        security_schemes={"apiKey": {"type": "http", "scheme": "bearer"}},
        security=[{"apiKey": []}],
    )
    return _without_default_validation_error(schema.model_dump(mode="json", by_alias=True, exclude_none=True))


PUBLIC_OPERATIONS = {"getJwks"}  # no Authorization (the template's Auth: NONE)


def _without_default_validation_error(doc: dict[str, Any]) -> dict[str, Any]:
    """Powertools documents its own 422 body on routes that declare none; the client API answers
    every refusal as ``ErrorBody`` (a bad query is a 400 there), so that entry would be untrue."""
    for item in doc["paths"].values():
        for operation in item.values():
            responses = operation.get("responses", {})
            ref = str(responses.get("422", {}).get("content", {}))
            if "HTTPValidationError" in ref:
                del responses["422"]
            if operation.get("operationId") in PUBLIC_OPERATIONS:
                operation["security"] = []  # Powertools drops an empty list
    schemas = doc.get("components", {}).get("schemas", {})
    # Powertools' own error bodies: no route answers them (ResponseValidationError referenced the
    # ValidationError dropped here, which made the document invalid: openapi-spec-validator said so).
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    return doc


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100)
