"""Client API: conversations, client tool results, the audit trail and standing approvals.

Thin by design: Powertools' event handler validates each request against the pydantic models of
the route's signature (the OpenAPI document is generated from the same routes: `make openapi`),
the handler calls the use case and shapes the response. Runs behind the API-key authorizer;
never imports openai.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from signoff import runtime
from signoff.api.errors import JSON_HEADERS, REFUSALS, ApiError, json_response, refusal_of
from signoff.api.requests import (
    DATE_RANGE_TEXT,
    MAX_LOG_INDEX,
    AuditStatus,
    ConsistencyQueryParams,
    ConversationQueryParams,
    PostMessage,
    PostToolResults,
    ProofQueryParams,
    ReceiptQueryParams,
    SaneDatetime,
    SimulatePolicy,
    StartConversation,
    StatsQueryParams,
    check_body_transport,
    check_message,
    parse_audit_query,
    parse_grant_query,
    parse_query,
    problems_of,
    query_parameters,
    request_json,
)
from signoff.api.responses import (
    ApprovalPage,
    ApprovalStatsPage,
    CheckpointPage,
    ConsistencyProof,
    ConversationView,
    ErrorBody,
    GatewayError,
    GrantPage,
    GrantView,
    InclusionProof,
    Jwks,
    ReceiptPage,
    ReplayReport,
    StartedConversation,
    ToolResultsAccepted,
)
from signoff.api.responses import StartedTurn as StartedTurnView
from signoff.config import settings
from signoff.dal.table import ConversationBusy, ConversationNotFound
from signoff.domain.cursors import cursor_scope
from signoff.domain.notifications import url_allowed
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.stores import InvalidCursor
from signoff.domain.tenants import TENANT_NAME
from signoff.logic.audit import InvalidAuditQuery
from signoff.logic.checkpoints import NoSuchCheckpoint
from signoff.logic.conversations import NotAwaitingClient, QueueUnavailable, StartedTurn
from signoff.logic.grants import grant_view
from signoff.logic.ids import CONVERSATION_ID
from signoff.observability import log_keys, metrics, tracer

logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=request_json)

MAX_IDEMPOTENCY_KEY = 255

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="idempotency-key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        description="A retry with the same key and body returns the first answer instead of starting another turn.",
    ),
]
ConversationId = Annotated[str, Path(description="conv_ and 32 hex digits.")]
# Query parameters the audit routes share (documented here; each route's query model checks them too).
Since = Annotated[SaneDatetime | None, Query(description=f"ISO 8601 with a zone; {DATE_RANGE_TEXT}.")]
Until = Annotated[SaneDatetime | None, Query(description=f"ISO 8601 with a zone; {DATE_RANGE_TEXT}.")]
ToolFilter = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Limit200 = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=2048,
        description="Opaque: the next_cursor of the page before, for the same tenant and query (else 400 "
        "invalid_cursor).",
    ),
]


def _json(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type="application/json", body=body, headers=dict(JSON_HEADERS))


@app.exception_handler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return _json(exc.status, exc.body())


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response:
    return _api_error(refusal_of(exc.errors()))


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


def _scoped_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key.strip():
        raise ApiError(400, "invalid_idempotency_key", f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters.")
    # Scoped to the tenant and the route, so two tenants can never collide.
    return hashlib.sha256(f"{_tenant()}|{app.current_event.raw_path}|{key}".encode()).hexdigest()


def _with_idempotency(key: str | None, operation, request: dict[str, Any]) -> StartedTurn:
    key = _scoped_key(key)
    try:
        if key is None:
            return operation(request)
        return runtime.idempotent_command()(command={"idempotency_key": key, "request": request}, operation=operation)
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


def _scope(route: str, params: dict[str, str]) -> str:
    return cursor_scope(route, _tenant(), params)


def _opened(cursor: str | None, scope: str) -> str | None:
    """The store's position a cursor holds, if this API sealed it for this tenant and query."""
    try:
        return runtime.cursor_seal().open(cursor, scope)
    except InvalidCursor as exc:
        raise ApiError(400, "invalid_cursor", "This cursor was not handed out for this query; start again.") from exc


def _sealed(page: dict[str, Any], scope: str) -> dict[str, Any]:
    if page.get("next_cursor") is not None:
        page["next_cursor"] = runtime.cursor_seal().seal(page["next_cursor"], scope)
    return page


def _refused(*statuses: int) -> dict[int, dict[str, Any]]:
    """The documented refusals of a route: Signoff's own, then API Gateway's."""
    documented: dict[int, dict[str, Any]] = {
        status: {"description": REFUSALS[status], "content": {"application/json": {"model": ErrorBody}}}
        for status in statuses
    }
    for status in (401, 403, 429):
        documented[status] = {
            "description": "Refused by API Gateway before Signoff ran.",
            "content": {"application/json": {"model": GatewayError}},
        }
    return documented


def _ok(status: int, model: type, description: str) -> dict[int, dict[str, Any]]:
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}


BODY_REFUSALS = (400, 409, 413, 415, 422)


@app.post(
    "/conversations",
    summary="Start a conversation; the agent's turn runs in the background.",
    operation_id="startConversation",
    responses=_ok(202, StartedConversation, "Accepted; poll GET /conversations/{id}, or hear of it at notify_url.")
    | _refused(*BODY_REFUSALS),
)
def create_conversation(body: StartConversation, idempotency_key: IdempotencyKey = None) -> Response[dict]:
    check_message(body.message, settings().max_message_chars)
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
        idempotency_key,
        lambda req: service.start(req["message"], req.get("metadata"), req.get("notify_url"), tenant, req.get("agent")),
        body.model_dump(mode="json", exclude={"agent"} if body.agent is None else None),
    )
    return _json(202, started.model_dump(mode="json"))


@app.post(
    "/conversations/<conversation_id>/messages",
    summary="Add a message; 409 while a turn is running or waiting on an approver or the client.",
    operation_id="postMessage",
    responses=_ok(202, StartedTurnView, "Accepted.") | _refused(404, *BODY_REFUSALS),
)
def post_message(
    conversation_id: ConversationId, body: PostMessage, idempotency_key: IdempotencyKey = None
) -> Response[dict]:
    if not CONVERSATION_ID.match(conversation_id):
        raise ApiError(404, "conversation_not_found", "No such conversation.")
    check_message(body.message, settings().max_message_chars)
    service, tenant = runtime.conversation_service(), _tenant()
    started = _with_idempotency(
        idempotency_key,
        lambda req: service.post_message(conversation_id, req["message"], tenant),
        {"conversation_id": conversation_id, **body.model_dump(mode="json")},
    )
    return _json(202, {"turn_id": started.turn_id, "status": started.status.value})


@app.post(
    "/conversations/<conversation_id>/tool-results",
    summary="Results of the calls the client runs (return of control); the turn goes on after the last.",
    operation_id="postToolResults",
    responses=_ok(202, ToolResultsAccepted, "Recorded.") | _refused(400, 404, 409, 413, 415, 422),
)
def post_tool_results(conversation_id: ConversationId, body: PostToolResults) -> Response[dict]:
    try:
        waiting = runtime.conversation_service().submit_tool_results(
            conversation_id, [(r.call_id, r.output) for r in body.results], _tenant()
        )
    except ConversationNotFound as exc:
        raise ApiError(404, "conversation_not_found", "No such conversation.") from exc
    except NotAwaitingClient as exc:
        message = f"Call {exc.call_id} is not awaiting a result from the client."
        raise ApiError(409, "not_awaiting_client", message) from exc
    return _json(202, {"accepted": len(body.results), "awaiting_client": waiting})


@app.get(
    "/conversations/<conversation_id>",
    summary="The conversation with a page of its messages (oldest first) and of its tool calls (by turn).",
    operation_id="getConversation",
    responses=_ok(200, ConversationView, "The conversation.") | _refused(400, 404),
)
def get_conversation(
    conversation_id: ConversationId,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    cursor: Cursor = None,
) -> Response[dict]:
    params = query_parameters(app.current_event.raw_event)
    query = parse_query(params, ConversationQueryParams)
    scope = _scope(f"conversation:{conversation_id}", params)
    position = _opened(query.cursor, scope)
    try:
        view = runtime.conversation_service().view(conversation_id, _tenant(), query.limit, position)
    except InvalidCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    if view is None:
        raise ApiError(404, "conversation_not_found", "No such conversation.")
    return _json(200, _sealed(view, scope))


@app.get(
    "/approvals",
    summary="The audit trail, newest first.",
    operation_id="listApprovals",
    responses=_ok(200, ApprovalPage, "A page of approvals.") | _refused(400),
)
def list_approvals(
    since: Since = None,
    until: Until = None,
    status: Annotated[AuditStatus | None, Query()] = None,
    tool: ToolFilter = None,
    conversation_id: Annotated[str | None, Query(pattern=r"^conv_[0-9a-f]{32}$")] = None,
    limit: Limit200 = 50,
    cursor: Cursor = None,
) -> Response[dict]:
    # Read again from the raw query string: a nameless or repeated parameter is refused, not dropped.
    params = query_parameters(app.current_event.raw_event)
    query = parse_audit_query(params)
    scope = _scope("approvals", params)
    try:
        page = runtime.audit_trail().list(
            **query.model_dump(exclude={"cursor"}), cursor=_opened(query.cursor, scope), tenant=_tenant()
        )
    except InvalidAuditQuery as exc:
        raise ApiError(400, "invalid_query", str(exc)) from exc
    return _json(200, _sealed(page, scope))


@app.get(
    "/approvals/stats",
    summary="Per tool and approver: decisions, how they went, and p50/p95 time to decision.",
    operation_id="approvalStats",
    responses=_ok(200, ApprovalStatsPage, "The statistics of the range.") | _refused(400),
)
def approval_stats(
    since: Since = None,
    until: Until = None,
    tool: ToolFilter = None,
    approver: Annotated[str | None, Query(min_length=1, max_length=320)] = None,
) -> Response[dict]:
    query = parse_query(query_parameters(app.current_event.raw_event), StatsQueryParams)
    try:
        stats = runtime.approval_stats().compute(
            since=query.since, until=query.until, tool=query.tool, approver=query.approver, tenant=_tenant()
        )
    except InvalidAuditQuery as exc:
        raise ApiError(400, "invalid_query", str(exc)) from exc
    return _json(200, stats)


@app.post(
    "/policy/simulate",
    summary="Replay the recorded calls of a range against a candidate policy; nothing runs or changes.",
    operation_id="simulatePolicy",
    responses=_ok(200, ReplayReport, "What the candidate would have done.") | _refused(400, 413, 415, 422),
)
def simulate_policy(body: SimulatePolicy) -> Response[dict]:
    try:
        candidate = ApprovalPolicy.model_validate(body.policy)
    except ValidationError as exc:
        if any(error["loc"][-1:] == ("pattern",) for error in exc.errors()):
            raise ApiError(
                400,
                "invalid_pattern",
                "A rule's pattern cannot be matched in linear time (RE2 syntax, at most 512 characters).",
                problems_of(exc, "policy"),
            ) from exc
        raise ApiError(422, "invalid_policy", "The candidate policy is not valid.", problems_of(exc, "policy")) from exc
    try:
        report = runtime.policy_replay().simulate(candidate, since=body.since, until=body.until, tenant=_tenant())
    except InvalidAuditQuery as exc:
        raise ApiError(400, "invalid_query", str(exc)) from exc
    return _json(200, report)


@app.get(
    "/receipts",
    summary="The tenant's signed receipts in log order (verify them with python -m signoff.verify).",
    operation_id="listReceipts",
    responses=_ok(200, ReceiptPage, "A page of receipts.") | _refused(400),
)
def list_receipts(
    after: Annotated[int, Query(ge=0, description="Start at this index (0: from the start).")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response[dict]:
    query = parse_query(query_parameters(app.current_event.raw_event), ReceiptQueryParams)
    entries, next_after = runtime.table().list_log(_tenant(), query.after, query.limit)
    return _json(200, {"entries": [{"index": i, "receipt": r} for i, r in entries], "next_after": next_after})


@app.get(
    "/receipts/<index>/proof",
    summary="A receipt's inclusion proof against a signed checkpoint: checkable with only the JWKS.",
    operation_id="getReceiptProof",
    responses=_ok(200, InclusionProof, "The receipt, its checkpoint and the path between.") | _refused(400, 404),
)
def receipt_proof(
    index: Annotated[int, Path(ge=0, le=MAX_LOG_INDEX, description="The receipt's index in the log.")],
    size: Annotated[int | None, Query(ge=1, description="A checkpoint's size (default: the latest).")] = None,
) -> Response[dict]:
    query = parse_query(query_parameters(app.current_event.raw_event), ProofQueryParams)
    try:
        return _json(200, runtime.log_proofs().inclusion(_tenant(), index, query.size))
    except NoSuchCheckpoint as exc:
        raise ApiError(404, "not_in_log", "No such receipt under a checkpoint of that size.") from exc


@app.get(
    "/checkpoints",
    summary="The tenant's signed checkpoints, oldest first: each signs the log's size and Merkle root.",
    operation_id="listCheckpoints",
    responses=_ok(200, CheckpointPage, "A page of checkpoints.") | _refused(400),
)
def list_checkpoints(
    after: Annotated[int, Query(ge=0, description="Checkpoints of sizes above this (0: from the first).")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response[dict]:
    query = parse_query(query_parameters(app.current_event.raw_event), ReceiptQueryParams)
    checkpoints, next_after = runtime.table().list_checkpoints(_tenant(), query.after, query.limit)
    return _json(200, {"checkpoints": checkpoints, "next_after": next_after})


@app.get(
    "/checkpoints/consistency",
    summary="Proof that an older checkpoint's log is a prefix of a newer one's (nothing removed or rewritten).",
    operation_id="getCheckpointConsistency",
    responses=_ok(200, ConsistencyProof, "Both checkpoints and the path between.") | _refused(400, 404),
)
def checkpoint_consistency(
    first: Annotated[int, Query(ge=1, description="The older checkpoint's size.")],
    second: Annotated[int, Query(ge=1, description="The newer checkpoint's size.")],
) -> Response[dict]:
    query = parse_query(query_parameters(app.current_event.raw_event), ConsistencyQueryParams)
    try:
        return _json(200, runtime.log_proofs().consistency(_tenant(), query.first, query.second))
    except NoSuchCheckpoint as exc:
        raise ApiError(404, "no_such_checkpoint", "No checkpoints of those sizes (first <= second).") from exc


@app.get(
    "/.well-known/jwks.json",
    summary="The public keys receipts are signed with (no authentication; cache it).",
    operation_id="getJwks",
    responses=_ok(200, Jwks, "The JSON Web Key Set, retired keys included."),
    security=[],
)
def jwks() -> Response[dict]:
    signer = runtime.receipt_signer()
    keys = signer.jwks() if signer is not None else {"keys": []}
    headers = {**JSON_HEADERS, "Cache-Control": "public, max-age=300"}
    return Response(status_code=200, content_type="application/json", body=keys, headers=headers)


@app.get(
    "/grants",
    summary="Standing approvals, newest first, with who approved each, every use and any revocation.",
    operation_id="listGrants",
    responses=_ok(200, GrantPage, "A page of grants.") | _refused(400),
)
def list_grants(
    limit: Limit200 = 50,
    cursor: Cursor = None,
) -> Response[dict]:
    params = query_parameters(app.current_event.raw_event)
    query = parse_grant_query(params)
    scope = _scope("grants", params)
    try:
        page = runtime.grant_keeper().list(_tenant(), query.limit, _opened(query.cursor, scope))
    except InvalidCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    return _json(200, _sealed(page, scope))


@app.delete(
    "/grants/<grant_id>",
    summary="Revoke a standing approval at once (revoking twice keeps the first revocation).",
    operation_id="revokeGrant",
    responses=_ok(200, GrantView, "The grant, revoked.") | _refused(404),
)
def revoke_grant(grant_id: Annotated[str, Path()]) -> Response[dict]:
    """Revoked at once: a call that has not taken a use yet can no longer take one."""
    grant = runtime.grant_keeper().revoke(_tenant(), grant_id, by=f"client:{_principal()}")
    if grant is None:
        raise ApiError(404, "grant_not_found", "No such grant.")
    return _json(200, grant_view(grant))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime.idempotency_config().register_lambda_context(context)
    authorizer = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    with log_keys(logger, tenant=str(authorizer.get("tenant", ""))):
        try:
            check_body_transport(event, settings().max_body_bytes)  # 413/415 before anything reads it
        except ApiError as exc:
            return json_response(exc.status, exc.body())
        return app.resolve(event, context)
