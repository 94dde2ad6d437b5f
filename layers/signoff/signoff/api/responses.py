"""What the client API answers, as models: the OpenAPI document is generated from these and the
routes (``make openapi``), and the fuzz test holds every real answer to that document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

ConversationStatus = Literal["running", "awaiting_approval", "awaiting_client", "idle", "failed"]
DecisionStatus = Literal["pending", "approved", "denied", "modified", "expired", "escalated", "scheduled"]
ExecutionStatus = Literal["executed", "failed", "not_executed", "scheduled", "awaiting_client"]


class StartedConversation(BaseModel):
    conversation_id: str
    turn_id: str
    status: ConversationStatus


class StartedTurn(BaseModel):
    turn_id: str
    status: ConversationStatus


class ToolResultsAccepted(BaseModel):
    accepted: int = Field(description="Results recorded by this request.")
    awaiting_client: int = Field(description="Calls of the turn still waiting for the client's result.")


class MessageView(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    created_at: str
    ending: Literal["cut_short", "filtered", "refused", "empty"] | None = Field(
        default=None,
        description="How the model's answer ended short of a reply (the message says what happened): cut off at "
        "its output limit, withheld by the content filter, declined, or empty. Absent for a reply as asked.",
    )


class DecisionView(BaseModel):
    id: str
    status: DecisionStatus
    resolved_by: str | None
    notes: str | None


class ExecutionView(BaseModel):
    status: ExecutionStatus
    result: Any = Field(description="The tool's result, an error, or (awaiting_client) the arguments to run.")
    outcome: Literal["unknown"] | None = Field(
        default=None,
        description='"unknown" when a failed call may still have acted (a timeout or dropped connection after '
        "sending): it keeps counting on its budgets.",
    )


class GrantRefView(BaseModel):
    id: str
    uses_left: int


class ActionView(BaseModel):
    call_id: str
    tool: str
    arguments: dict[str, Any]
    gated: bool
    decision: DecisionView | None
    execution: ExecutionView | None
    error: str | None = Field(default=None, description="Why the call was never run (bad arguments, ...).")
    gated_by_budget: str | None = Field(default=None, description="Why a budget asked for sign-off.")
    grant: GrantRefView | None = Field(default=None, description="The standing approval it ran under.")
    receipt: str | None = Field(default=None, description="The signed receipt (JWS) of a gated call that ran.")


class ConversationView(BaseModel):
    conversation_id: str
    status: ConversationStatus
    created_at: str
    metadata: dict[str, Any]
    notify_url: str | None
    agent: str | None = Field(description="The catalog agent; null for the catalog's default.")
    messages: list[MessageView] = Field(description="A page of the messages, oldest first.")
    actions: list[ActionView] = Field(description="A page of the tool calls, by turn, oldest first.")
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page of messages and tool calls; null when both are read."
    )


class AuditExecution(BaseModel):
    status: str
    result: Any = None
    outcome: Literal["unknown"] | None = Field(default=None, description='"unknown": it may have acted.')


class AuditEntry(BaseModel):
    approval_id: str
    tenant: str | None = None
    conversation_id: str
    call_id: str
    tool: str
    action: str | None = None
    arguments_digest: str
    approver: str | None = None
    decision_id: str | None = None
    status: str
    resolved_by: str | None = None
    notes: str | None = None
    resolved_at: str | None = None
    created_at: str
    verdict: str | None = None
    arguments_used: dict[str, Any] | None = None
    execution: AuditExecution | None = None
    receipt: str | None = Field(default=None, description="The call's signed receipt, once it ran.")


class ApprovalPage(BaseModel):
    approvals: list[AuditEntry]
    next_cursor: str | None


class GrantUseView(BaseModel):
    conversation_id: str
    turn_id: str
    call_id: str
    digest: str
    at: str


class GrantView(BaseModel):
    grant_id: str
    tool: str
    scope: dict[str, str]
    caps: dict[str, str]
    approved_by: str | None = None
    decision_id: str | None = None
    origin_conversation_id: str | None = None
    origin_call_id: str | None = None
    created_at: str | None = None
    expires_at: str
    max_uses: int
    uses_left: int
    uses: list[GrantUseView]
    revoked_at: str | None = None
    revoked_by: str | None = None
    tenant: str | None = None
    live: bool


class GrantPage(BaseModel):
    grants: list[GrantView]
    next_cursor: str | None


class Latency(BaseModel):
    p50: float | None
    p95: float | None


class ApprovalStatsGroup(BaseModel):
    tool: str
    approver: str
    decisions: int = Field(description="Answered or expired decisions in the range.")
    pending: int
    not_requested: int = Field(description="Approvals whose decision could not be asked for.")
    shares: dict[str, float] = Field(description="approved, denied, modified, expired: each a share of decisions.")
    time_to_decision_seconds: Latency = Field(description="Asked → answered, answered decisions only.")


class ApprovalStatsPage(BaseModel):
    since: str
    until: str
    groups: list[ApprovalStatsGroup]
    truncated: bool = Field(description="More than 10,000 approvals in the range: narrow it.")


class ReplayCounts(BaseModel):
    calls: int
    gated_now: int
    gated_under_candidate: int
    approvals_no_longer_asked: int = Field(description="Gated as recorded, not under the candidate.")
    ran_ungated_would_need_sign_off: int = Field(description="Ran without sign-off; the candidate would ask.")
    budget_hits: int = Field(description="Calls the candidate's budgets would stop (sign-off, or refused).")


class ReplayReport(BaseModel):
    since: str
    until: str
    total: ReplayCounts
    tools: dict[str, ReplayCounts]
    approver_load_per_day: dict[str, dict[str, int]] = Field(description="approver → day → decisions asked.")
    truncated: bool = Field(description="Not every call of the range was replayed (see truncated_by).")
    truncated_by: Literal["calls", "time"] | None = Field(
        description="calls: more than 20,000 calls in the range, only the first were replayed; time: the "
        "replay's time budget (10 s) ran out first. Replay the rest with since = covered_until."
    )
    covered_calls: int = Field(description="How many recorded calls were replayed.")
    covered_until: str | None = Field(description="created_at of the last call replayed (null: none).")


class LogEntryView(BaseModel):
    index: int = Field(description="The receipt's place in the tenant's log (0 first).")
    receipt: str = Field(description="The receipt (compact JWS, ES256).")


class ReceiptPage(BaseModel):
    entries: list[LogEntryView] = Field(
        description="The tenant's receipts in log order. Before the tenant's first checkpoint, its chain-mode "
        "receipts (index = seq - 1)."
    )
    next_after: int | None = Field(description="Pass as `after` for the next page; null at the end.")


class CheckpointPage(BaseModel):
    checkpoints: list[str] = Field(description="Signed checkpoints (compact JWS, ES256), oldest first.")
    next_after: int | None = Field(description="Pass as `after` for the next page; null at the end.")


class InclusionProof(BaseModel):
    index: int
    tree_size: int = Field(description="The size of the checkpoint the proof is against.")
    receipt: str
    path: list[str] = Field(description="RFC 9162 inclusion path, hex SHA-256 hashes, leaf side first.")
    checkpoint: str = Field(description="The signed checkpoint of that size.")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    path: list[str] = Field(description="RFC 9162 consistency path, hex SHA-256 hashes.")
    first_checkpoint: str
    second_checkpoint: str


class Jwk(BaseModel):
    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str
    y: str
    kid: str
    alg: Literal["ES256"]
    use: Literal["sig"]


class Jwks(BaseModel):
    keys: list[Jwk]


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    """Every refusal Signoff itself makes: the request changed nothing."""

    error: ErrorInfo


class GatewayError(BaseModel):
    """API Gateway's own refusal (no or wrong key, throttled), before Signoff ran."""

    message: str
