"""Approval callback: ``POST /callbacks/handover/{token}``, public at the gateway.

Authenticated here: the token must verify before anything else happens. The body is never
read; the decision is re-fetched from Handover. Imports neither openai nor the event handler,
so a cold start stays short on the path a waiting approver triggers.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from signoff import runtime
from signoff.api.errors import json_response
from signoff.api.origin import public_base_url
from signoff.domain.ports import ApprovalServiceError
from signoff.logic.callback import CallbackOutcome, ForgedCallback, UnknownApproval
from signoff.observability import count, metrics, tracer

logger = Logger()

_STATUS = {
    CallbackOutcome.SETTLED: 200,
    CallbackOutcome.ALREADY_SETTLED: 200,
    CallbackOutcome.PENDING: 202,
    CallbackOutcome.NOT_READY: 202,
}


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return json_response(status, {"error": {"code": code, "message": message}})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = _handle(event)
    count(_METRIC.get(response["statusCode"], "CallbackOther"))  # the forged count is on the dashboard
    return response


_METRIC = {
    200: "CallbackSettled",
    202: "CallbackPending",
    401: "CallbackForged",
    404: "CallbackUnknown",
    503: "CallbackUpstreamUnavailable",
}


def _handle(event: dict[str, Any]) -> dict[str, Any]:
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    if method != "POST":
        return _error(405, "method_not_allowed", "Use POST.")
    token = (event.get("pathParameters") or {}).get("token", "")
    # Its own URL is not in its environment (see signoff.api.origin): the request tells it.
    runtime.use_request_api_url(public_base_url(event))
    try:
        outcome = runtime.approval_callback().handle(token)
    except ForgedCallback:
        logger.warning("callback refused: invalid token")
        return _error(401, "invalid_token", "This callback URL is not valid.")
    except UnknownApproval:
        return _error(404, "unknown_approval", "No such approval.")
    except ApprovalServiceError as exc:
        logger.warning("could not fetch the decision", extra={"error": type(exc).__name__})
        return _error(503, "upstream_unavailable", "The decision could not be fetched; retry later.")
    except Exception:
        logger.exception("callback failed")
        return _error(500, "internal_error", "Something went wrong on our side.")
    return json_response(_STATUS[outcome], {"status": outcome.value})
