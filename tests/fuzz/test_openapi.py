"""The client API fuzzed from its OpenAPI document (schemathesis): no 5xx, answers that match the
document, and no state change from a refused request. Also checks the document and the template
name the same routes."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

from local.evidence import conversation_count
from local.template import SamTemplate

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi.yaml"
schema = schemathesis.openapi.from_path(str(DOCUMENT))


def test_the_document_and_the_template_name_the_same_client_routes():
    documented = {
        (method.upper(), path)
        for path, item in yaml.safe_load(DOCUMENT.read_text())["paths"].items()
        for method in item
    }
    served = {(r.method, r.path) for r in SamTemplate().http_routes() if r.authorized}
    assert documented == served


def _conversations(stack) -> int:
    return conversation_count(stack.resources.refs["SignoffTable"], with_turns=True)


@pytest.fixture(scope="module")
def api(stack):
    return stack


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests(case, api):
    headers = {"Authorization": f"Bearer {api.config.api_key}"}
    before = _conversations(api)
    response = case.call(base_url=api.api_url, headers=headers, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    # API Gateway answers 404 (not 405) for a method no route has: AWS's behaviour, not ours. And a
    # well-formed request may rightly be refused for the state it meets (404 unknown conversation,
    # 409 busy, 422 Idempotency-Key reused), so "valid data accepted" is not a property here.
    case.validate_response(response, excluded_checks=[unsupported_method, positive_data_acceptance])
    if response.status_code >= 400:
        assert _conversations(api) == before, "a refused request changed the table"
