"""API-key authorizer for the client routes (HTTP API, simple responses).

Accepts ``Authorization: Bearer <key>`` when the key is one of those in the client API keys
secret, compared in constant time, and passes on the key's tenant. The key itself is never
logged; the principal passed on is a short hash of it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from signoff import runtime
from signoff.observability import tracer

logger = Logger()


def _presented_key(event: dict[str, Any]) -> str | None:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    value = headers.get("authorization", "")
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)  # the response names the caller
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    key = _presented_key(event)
    if key is None:
        return {"isAuthorized": False}
    tenant = None
    for candidate_tenant, candidate in runtime.client_api_keys():
        # No early exit: the time taken does not tell which key came close.
        if hmac.compare_digest(key.encode(), candidate.encode()):
            tenant = candidate_tenant
    if tenant is None:
        logger.info("client API key refused")
        return {"isAuthorized": False}
    principal = hashlib.sha256(key.encode()).hexdigest()[:16]
    logger.debug("client API key accepted", extra={"tenant": tenant, "principal": principal})
    return {"isAuthorized": True, "context": {"principal": principal, "tenant": tenant}}
