"""Client API: start a conversation, add a message, read a conversation, list approvals (audit).

Thin by design: parse and validate the request, call ConversationService, shape the response.
Runs behind the API-key authorizer; never imports openai.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from signoff import runtime
from signoff.api.errors import JSON_HEADERS, ApiError
from signoff.api.requests import (
    PostMessage,
    PostToolResults,
    StartConversation,
    parse_audit_query,
    parse_body,
    parse_grant_query,
    query_parameters,
)
from signoff.config import settings
from signoff.dal.audit import InvalidCursor
from signoff.dal.idempotency import client_request_config, client_request_persistence
from signoff.dal.table import ConversationBusy, ConversationNotFound
from signoff.domain.notifications import url_allowed
from signoff.domain.tenants import TENANT_NAME
from signoff.logic.audit import InvalidAuditQuery
from signoff.logic.conversations import NotAwaitingClient, QueueUnavailable, StartedTurn
from signoff.logic.grants import grant_view
from signoff.logic.ids import CONVERSATION_ID
from signoff.observability import log_keys, metrics, tracer

logger = Logger()
app = APIGatewayHttpResolver()

MAX_IDEMPOTENCY_KEY = 255


def _json(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type="application/json", body=body, headers=dict(JSON_HEADERS))


@app.exception_handler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return _json(exc.status, exc.body())


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error")
    return _json(500, {"error": {"code": "internal_error", "message": "Something went wrong on our side."}})


@app.not_found
def _not_found(_exc: Exception) -> Response:
    return _json(404, {"error": {"code": "not_found", "message": "No such route."}})


def _authorizer_context() -> dict[str, Any]:
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer", {}) or {}
    return authorizer.get("lambda") or {}


def _principal() -> str:
    return str(_authorizer_context().get("principal", "anonymous"))


def _tenant() -> str:
    """The caller's tenant, as the authorizer found it for the key (every route is scoped to it)."""
    tenant = _authorizer_context().get("tenant")
    if not isinstance(tenant, str) or not TENANT_NAME.match(tenant):
        # Only the authorizer sets it; a request without one did not come through it.
        raise ApiError(403, "forbidden", "This key has no tenant.")
    return tenant


def _idempotency_key() -> str | None:
    key = app.current_event.headers.get("idempotency-key") or app.current_event.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, "invalid_idempotency_key", f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters.")
    # Scoped to the tenant and the route, so two tenants can never collide.
    return hashlib.sha256(f"{_tenant()}|{app.current_event.raw_path}|{key}".encode()).hexdigest()


def _with_idempotency(operation, request: dict[str, Any]) -> StartedTurn:
    key = _idempotency_key()
    try:
        if key is None:
            return operation(request)
        return _run_command(command={"idempotency_key": key, "request": request}, operation=operation)
    except IdempotencyValidationError as exc:
        raise ApiError(422, "idempotency_key_reused", "This Idempotency-Key was used with another request.") from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise ApiError(409, "request_in_progress", "A request with this Idempotency-Key is in progress.") from exc
    except ConversationBusy as exc:
        raise ApiError(
            409, "conversation_busy", "A turn of this conversation is still running or awaiting approval."
        ) from exc
    except ConversationNotFound as exc:
        raise ApiError(404, "conversation_not_found", "No such conversation.") from exc
    except QueueUnavailable as exc:
        raise ApiError(503, "unavailable", "The service is busy; try again shortly.") from exc


_idempotency_config = client_request_config(settings().idempotency_ttl_seconds)
_idempotency_store = client_request_persistence(settings().table_name)


@idempotent_function(
    data_keyword_argument="command",
    persistence_store=_idempotency_store,
    config=_idempotency_config,
    output_serializer=PydanticSerializer(StartedTurn),
)
def _run_command(command: dict[str, Any], operation) -> StartedTurn:
    return operation(command["request"])


def _body[M: BaseModel](model: type[M]) -> M:
    cfg = settings()
    return parse_body(app.current_event.raw_event, model, max_bytes=cfg.max_body_bytes, max_chars=cfg.max_message_chars)


@app.post("/conversations")
def create_conversation() -> Response:
    body = _body(StartConversation)
    if body.notify_url is not None and not url_allowed(body.notify_url, list(settings().notify_url_prefixes)):
        raise ApiError(
            422,
            "notify_url_not_allowed",
            "notify_url must be an http(s) URL starting with one of the prefixes this deployment allows "
            "(template parameter NotifyUrlPrefixes).",
        )
    if body.agent is not None and runtime.catalog().agent(body.agent) is None:
        raise ApiError(422, "unknown_agent", "agent must name an agent of this deployment's catalog.")
    service, tenant = runtime.conversation_service(), _tenant()
    started = _with_idempotency(
        lambda req: service.start(req["message"], req.get("metadata"), req.get("notify_url"), tenant, req.get("agent")),
        body.model_dump(mode="json", exclude={"agent"} if body.agent is None else None),
    )
    return _json(202, started.model_dump(mode="json"))


@app.post("/conversations/<conversation_id>/messages")
def post_message(conversation_id: str) -> Response:
    if not CONVERSATION_ID.match(conversation_id):
        raise ApiError(404, "conversation_not_found", "No such conversation.")
    body = _body(PostMessage)
    service, tenant = runtime.conversation_service(), _tenant()
    started = _with_idempotency(
        lambda req: service.post_message(conversation_id, req["message"], tenant),
        {"conversation_id": conversation_id, **body.model_dump(mode="json")},
    )
    return _json(202, {"turn_id": started.turn_id, "status": started.status.value})


@app.post("/conversations/<conversation_id>/tool-results")
def post_tool_results(conversation_id: str) -> Response:
    """Results of the calls handed to the client (return of control); the turn goes on once the
    last of its client calls has one."""
    body = _body(PostToolResults)
    try:
        waiting = runtime.conversation_service().submit_tool_results(
            conversation_id, [(r.call_id, r.output) for r in body.results], _tenant()
        )
    except ConversationNotFound as exc:
        raise ApiError(404, "conversation_not_found", "No such conversation.") from exc
    except NotAwaitingClient as exc:
        raise ApiError(
            409, "not_awaiting_client", f"Call {exc.call_id} is not awaiting a result from the client."
        ) from exc
    return _json(202, {"accepted": len(body.results), "awaiting_client": waiting})


@app.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    view = runtime.conversation_service().view(conversation_id, _tenant())
    if view is None:
        raise ApiError(404, "conversation_not_found", "No such conversation.")
    return _json(200, view)


@app.get("/approvals")
def list_approvals() -> Response:
    query = parse_audit_query(query_parameters(app.current_event.raw_event))
    try:
        page = runtime.audit_trail().list(**query.model_dump(), tenant=_tenant())
    except InvalidAuditQuery as exc:
        raise ApiError(400, "invalid_query", str(exc)) from exc
    return _json(200, page)


@app.get("/grants")
def list_grants() -> Response:
    query = parse_grant_query(query_parameters(app.current_event.raw_event))
    try:
        page = runtime.grant_keeper().list(_tenant(), query.limit, query.cursor)
    except InvalidCursor as exc:
        raise ApiError(400, "invalid_query", str(exc)) from exc
    return _json(200, page)


@app.delete("/grants/<grant_id>")
def revoke_grant(grant_id: str) -> Response:
    """Revoked at once: a call that has not taken a use yet can no longer take one."""
    grant = runtime.grant_keeper().revoke(_tenant(), grant_id, by=f"client:{_principal()}")
    if grant is None:
        raise ApiError(404, "grant_not_found", "No such grant.")
    return _json(200, grant_view(grant))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _idempotency_config.register_lambda_context(context)
    authorizer = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    with log_keys(logger, tenant=str(authorizer.get("tenant", ""))):
        return app.resolve(event, context)
