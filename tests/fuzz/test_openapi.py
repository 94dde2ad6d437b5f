"""The client API fuzzed from its OpenAPI document (schemathesis): no 5xx, answers that match the
document, and no write at all from a refused request. Also checks the document and the template
name the same routes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.core import NotSet
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

from local.evidence import WriteTally
from local.template import SamTemplate

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi.yaml"
schema = schemathesis.openapi.from_path(str(DOCUMENT))
# A body over the size limit is refused with 413 before anything reads it: for invalid data that
# happens to be huge, that is the right refusal too.
schema.config.checks.negative_data_rejection.expected_statuses.append("413")


def test_the_document_and_the_template_name_the_same_client_routes():
    documented = {
        (method.upper(), path)
        for path, item in yaml.safe_load(DOCUMENT.read_text())["paths"].items()
        for method in item
    }
    # Every authorized route, and the public keys; not Handover's callback (not a client route).
    served = {(r.method, r.path) for r in SamTemplate().http_routes() if r.authorized or "well-known" in r.path}
    assert documented == served


def test_the_document_is_a_valid_openapi_document():
    """Every $ref resolves and every schema is OpenAPI 3.1 (a dangling ValidationError once broke it)."""
    from openapi_spec_validator import validate

    validate(yaml.safe_load(DOCUMENT.read_text()))


def test_the_committed_document_is_the_one_the_code_generates():
    """openapi.yaml comes from the client API's routes and models (`make openapi`); never edit it."""
    from local.openapi.document import render

    assert DOCUMENT.read_text() == render(), "openapi.yaml is stale: run `make openapi`"


@pytest.fixture(scope="module")
def api(stack):
    """The stack, with every write the client API makes counted (a refused request makes none)."""
    stack.tally = WriteTally().install(boto3.DEFAULT_SESSION)
    stack.warm()  # clients built afresh, so they report to the tally
    yield stack
    stack.tally.uninstall()
    stack.warm()


def _writes(api) -> int:
    """Items written and messages sent by the client API: the state a request can change."""
    return api.tally.of("ClientApiFunction")


def test_the_tally_sees_what_an_accepted_request_writes(api):
    """So the check below can fail: a conversation started is one transaction and one message."""
    before = _writes(api)
    response = requests.post(
        f"{api.api_url}/conversations",
        json={"message": "Please look up customer #58."},
        headers={"Authorization": f"Bearer {api.config.api_key}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    assert _writes(api) == before + 2


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests(case, api):
    headers = {"Authorization": f"Bearer {api.config.api_key}"}
    before = _writes(api)
    response = case.call(base_url=api.api_url, headers=headers, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    # API Gateway answers 404 (not 405) for a method no route has: AWS's behaviour, not ours. And a
    # well-formed request may rightly be refused for the state it meets (404 unknown conversation,
    # 409 busy, 422 Idempotency-Key reused), so "valid data accepted" is not a property here.
    try:
        case.validate_response(response, excluded_checks=[unsupported_method, positive_data_acceptance])
    except FailureGroup as group:
        # A "negative" case whose only invalid parts never reached the API (the Authorization
        # header this test always adds; a query parameter `requests` drops, e.g. an empty list)
        # was a valid request by the time it was sent: its 2xx is right.
        real = [
            e for e in group.exceptions if not (isinstance(e, AcceptedNegativeData) and _sent_valid(case, response))
        ]
        if real:
            raise
    if response.status_code >= 400:
        assert _writes(api) == before, "a refused request wrote something"


def _sent_valid(case, response) -> bool:
    """The request as sent: only documented query parameters, and the Authorization header."""
    documented = {p.name for p in case.operation.query}
    sent = {name for name, _ in parse_qsl(urlsplit(response.request.url).query, keep_blank_values=True)}
    no_body = case.body is None or isinstance(case.body, NotSet)  # schemathesis's "no body" for a GET
    return sent <= documented and "Authorization" in response.request.headers and no_body


HOSTILE_BODIES = [
    ("application/json", b'{"message": "hi", "metadata": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"),
    ("application/json", b'{"message": "hi", "metadata": {"a": NaN}}'),
    ("application/json", b'{"message": "hi", "metadata": {"a": Infinity}}'),
    ("application/json", b'{"message": "hi", "metadata": {"a": 1e400}}'),  # overflows a double
    ("application/json", b'{"message": "hi", "metadata": {"a": -2.5e308}}'),
    ("text/plain", b'{"message": "hi"}'),
]


@pytest.mark.parametrize(
    ("media_type", "raw"), HOSTILE_BODIES, ids=["deep", "nan", "infinity", "overflow", "-overflow", "text-plain"]
)
@pytest.mark.parametrize("path", ["/conversations", "/conversations/{conversation_id}/messages"])
def test_hostile_bodies_are_a_documented_4xx_and_change_nothing(api, path, media_type, raw):
    """What a generator rarely makes: nesting deep enough to exhaust a recursive parser, JSON's missing
    constants, and a body that says it is not JSON."""
    operation = schema[path]["POST"]
    case = operation.Case(
        path_parameters={"conversation_id": "conv_" + "0" * 32} if "{" in path else None,
        headers={"Authorization": f"Bearer {api.config.api_key}", "Content-Type": media_type},
        body=raw,
        media_type=media_type,
    )
    before = _writes(api)
    response = case.call(base_url=api.api_url, timeout=30)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:300])
    assert response.json()["error"]["code"] in ("invalid_json", "unsupported_media_type", "conversation_not_found")
    case.validate_response(response, excluded_checks=[unsupported_method, positive_data_acceptance])
    assert _writes(api) == before


def _b64(value: object) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


# What a generator does not make: cursors in the shape the store once used (they went straight into
# DynamoDB's ExclusiveStartKey), dates whose arithmetic overflows a datetime.
HOSTILE_QUERIES = [
    ("/approvals", {"cursor": _b64({"b": "AUDIT#2026-12", "k": {"pk": "x", "sk": "y"}})}),
    ("/approvals", {"cursor": _b64({"b": "AUDIT#2026-12", "k": {"zz": {"Q": 1}}})}),
    ("/grants", {"cursor": _b64({"b": "GRANTS", "k": {"pk": 1}})}),
    ("/grants", {"cursor": "e30.AAAAAAAAAAAAAAAAAAAAAA"}),
    ("/approvals", {"until": "0001-01-02T00:00:00Z"}),
    ("/approvals", {"until": "9999-12-31T23:59:59-23:59"}),
    ("/approvals/stats", {"until": "0001-01-02T00:00:00Z"}),
    ("/approvals/stats", {"since": "9999-12-31T23:59:59-23:59"}),
]


@pytest.mark.parametrize(("path", "params"), HOSTILE_QUERIES)
def test_hostile_queries_are_a_documented_400_and_change_nothing(api, path, params):
    case = schema[path]["GET"].Case(query=params, headers={"Authorization": f"Bearer {api.config.api_key}"})
    before = _writes(api)
    response = case.call(base_url=api.api_url, timeout=30)
    assert response.status_code == 400, (path, params, response.status_code, response.text[:300])
    assert response.json()["error"]["code"] in ("invalid_cursor", "invalid_query")
    case.validate_response(response, excluded_checks=[unsupported_method, positive_data_acceptance])
    assert _writes(api) == before


def test_a_simulation_over_dates_that_overflow_is_refused(api):
    case = schema["/policy/simulate"]["POST"].Case(
        body={"policy": {"tools": {}}, "until": "0001-01-02T00:00:00Z"},
        headers={"Authorization": f"Bearer {api.config.api_key}"},
        media_type="application/json",
    )
    response = case.call(base_url=api.api_url, timeout=30)
    assert response.status_code == 422, response.text
    case.validate_response(response, excluded_checks=[unsupported_method, positive_data_acceptance])
