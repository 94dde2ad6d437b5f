"""The records Signoff keeps and the states they move through."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    """A stored timestamp back as an aware datetime; None for none, or for one without a zone."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


class ConversationStatus(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_CLIENT = "awaiting_client"  # a client-run tool call waits for its result
    IDLE = "idle"
    FAILED = "failed"


class TurnStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"


class DecisionStatus(StrEnum):
    """Handover's decision statuses, as its API spells them."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    MODIFIED = "modified"
    EXPIRED = "expired"
    ESCALATED = "escalated"
    SCHEDULED = "scheduled"

    @property
    def is_terminal(self) -> bool:
        return self is not DecisionStatus.PENDING

    @property
    def lapsed(self) -> bool:
        """Nobody answered: the decision timed out, or Handover escalated it (the next rung may be asked)."""
        return self in (DecisionStatus.EXPIRED, DecisionStatus.ESCALATED)

    @property
    def permits_execution(self) -> bool:
        """Approved, approved with changes, or approved for later; everything else fails closed."""
        return self in (DecisionStatus.APPROVED, DecisionStatus.MODIFIED, DecisionStatus.SCHEDULED)


class ExecutionStatus(StrEnum):
    EXECUTING = "executing"  # claimed by one invocation; not visible as a final state
    EXECUTED = "executed"
    FAILED = "failed"
    NOT_EXECUTED = "not_executed"
    SCHEDULED = "scheduled"
    AWAITING_CLIENT = "awaiting_client"  # handed to the client (return of control); its result comes back
    # Approved for a hosted MCP server that OpenAI calls itself: final for the turn (the approval goes
    # back with the others); executed or failed once the response's mcp_call item says so.
    DELEGATED = "delegated"

    @property
    def is_final(self) -> bool:
        return self not in (ExecutionStatus.EXECUTING, ExecutionStatus.AWAITING_CLIENT)


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Conversation(Record):
    conversation_id: str
    status: ConversationStatus
    active_turn_id: str
    created_at: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    backend_state: dict[str, Any] = Field(default_factory=dict)
    unanswered_turn_id: str | None = None  # a failed turn whose calls the agent API may still hold open
    notify_url: str | None = None  # where the client hears of its turns (see domain/notifications)
    tenant: str = "default"  # whose it is: no other tenant sees or changes it
    agent: str | None = None  # the catalog agent it talks to (None: the catalog's default)


class Message(Record):
    role: Literal["user", "assistant"]
    content: str
    created_at: str
    # How the model's answer ended, when not with a full reply (domain/endings.py): the message then
    # says what happened, in words. None: a reply as asked (or a user message).
    ending: str | None = None


class Turn(Record):
    conversation_id: str
    turn_id: str
    status: TurnStatus
    created_at: str
    input: str = ""
    pause_ref: str | None = None
    pending: int = 0
    attempts: int = 0
    error: str | None = None
    tenant: str = "default"  # its conversation's


class Decision(Record):
    """What the approver answered, as last fetched from Handover."""

    id: str
    status: DecisionStatus
    resolved_by: str | None = None
    notes: str | None = None
    response_data: dict[str, Any] | None = None
    resolved_at: str | None = None
    execute_at: str | None = None


class DecisionRef(Record):
    """The decision as the client sees it on an action (for a quorum: the verdict)."""

    id: str | None = None
    status: str = "pending"
    resolved_by: str | None = None
    notes: str | None = None


class Execution(Record):
    status: ExecutionStatus
    result: Any = None
    claimed_at: str | None = None
    execute_at: str | None = None  # when a scheduled call is due
    # Failed, but the tool may have acted (a timeout or dropped connection after sending, an error
    # raised mid-call, a dead invocation): it keeps its budget reservation and says so to everyone.
    outcome_unknown: bool | None = None  # None (not stored) unless True

    def view(self) -> dict[str, Any]:
        """What a client reads of it (the conversation view, the audit trail): a call that may have
        acted says so, since its budget reservation stands."""
        shown: dict[str, Any] = {"status": self.status.value, "result": self.result}
        if self.outcome_unknown:
            shown["outcome"] = "unknown"
        return shown

    @property
    def certainly_did_not_act(self) -> bool:
        """Refused before sending, or a definitive refusal from the tool: its reservation goes back."""
        if self.status is ExecutionStatus.NOT_EXECUTED:
            return True
        return self.status is ExecutionStatus.FAILED and not self.outcome_unknown


class GrantRef(BaseModel):
    """What a call run under a standing approval shows: which grant, and its uses left after this one."""

    id: str
    uses_left: int


class Action(Record):
    """One tool call of a paused run, and what became of it."""

    conversation_id: str
    turn_id: str
    call_id: str
    seq: int
    tool: str
    arguments: dict[str, Any]
    digest: str
    gated: bool
    created_at: str = ""
    summary: str = ""
    approval_ids: list[str] = Field(default_factory=list)
    quorum_required: int = 1
    decision: DecisionRef | None = None
    verdict: DecisionStatus | None = None  # set once, when the approvers' answers decide
    verdict_recorded: bool = False
    approved_arguments: dict[str, Any] | None = None  # what runs after a "modified" answer
    approved_digest: str | None = None
    changes: dict[str, Any] | None = None
    execution: Execution | None = None
    error: str | None = None
    gated_by_budget: str | None = None  # why a budget asks for sign-off although no rule does
    tenant: str = "default"  # its conversation's
    grant: GrantRef | None = None  # signed off by a standing approval instead of a decision
    receipt: str | None = None  # the signed receipt (compact JWS) once a gated call ran
    pause_ref: str | None = None  # the pause it came with (None: recorded before calls kept it)
    pause_calls: list[str] = Field(default_factory=list)  # the call ids of that pause, read by key
    # A hosted MCP server's call: OpenAI runs it once approved; Signoff answers approve or deny.
    hosted: bool = False

    @property
    def settled(self) -> bool:
        """Final for this turn: executed, failed, not executed, or scheduled for later."""
        return self.execution is not None and self.execution.status.is_final

    @property
    def arguments_to_run(self) -> dict[str, Any]:
        return self.approved_arguments if self.approved_arguments is not None else self.arguments

    def as_written(self, **fields: Any) -> Action:
        """The call after a write that set ``fields``, validated as a read of it would be: a flow
        goes on with what it just wrote instead of reading it back."""
        return Action.model_validate(self.model_dump() | fields)


def of_pause(actions: list[Action], pause_ref: str) -> list[Action]:
    """The calls of one pause among a turn's: a turn pauses again after each round of outputs, and a
    submission answers its own round only (a call kept before calls knew their pause counts for any)."""
    return [a for a in actions if a.pause_ref in (None, pause_ref)]


class ApprovalState(StrEnum):
    PENDING = "pending"  # waiting on the approver
    SETTLED = "settled"  # outcome recorded exactly once; never changes again


class Approval(Record):
    """A request for sign-off by one approver, bound to exactly one tool call (tool, digest, call id)."""

    approval_id: str
    conversation_id: str
    turn_id: str
    call_id: str
    tool: str
    digest: str
    approver: str = ""
    summary: str = ""
    state: ApprovalState = ApprovalState.PENDING
    outcome: DecisionStatus | None = None  # None once settled: no decision could be requested
    decision_id: str | None = None
    resolved_by: str | None = None
    notes: str | None = None
    response_data: dict[str, Any] | None = None
    execute_at: str | None = None
    resolved_at: str | None = None
    created_at: str
    expires_at: str | None = None  # when its decision times out, as asked (the reconciler looks then)
    read_failures: int = 0  # looks at the decision that found it unreadable
    rung: int = 0  # its step on the tool's escalation ladder (0: the first approver asked)
    tenant: str = "default"  # its conversation's (the audit trail lists a tenant's own only)
    # The call as its pause wrote it, so an answer is decided without reading the call again; every
    # write that follows is conditional on the call as it is by then. None: read it.
    call: Action | None = None

    def answered(self, decision: Decision | None) -> Approval:
        """Settled with the approver's answer (None: no decision could be requested), as the table
        keeps it: one definition of what a settlement writes, for each write that makes one."""
        return self.model_copy(
            update={
                "state": ApprovalState.SETTLED,
                "outcome": decision.status if decision else None,
                "resolved_by": decision.resolved_by if decision else None,
                "notes": decision.notes if decision else None,
                "response_data": decision.response_data if decision else None,
                "execute_at": decision.execute_at if decision else None,
                "resolved_at": decision.resolved_at if decision and decision.resolved_at else iso(utc_now()),
            }
        )

    @classmethod
    def for_call(cls, action: Action, approval_id: str, approver: str, created_at: str, **state: Any) -> Approval:
        """One approver's approval of exactly this call (its tool, digest and ids)."""
        return cls(
            approval_id=approval_id,
            conversation_id=action.conversation_id,
            turn_id=action.turn_id,
            call_id=action.call_id,
            tool=action.tool,
            digest=action.digest,
            approver=approver,
            summary=action.summary,
            created_at=created_at,
            tenant=action.tenant,
            **state,
        )


class ToolCall(Record):
    """A function call the model asked for; ``arguments`` is the raw JSON text it sent. ``kind``
    "mcp_approval": a hosted MCP server's call OpenAI asks approval for (``call_id`` is the
    request's id, ``name`` is ``<server label>__<tool>``)."""

    call_id: str
    name: str
    arguments: str
    kind: Literal["function", "mcp_approval"] = "function"


class HostedCall(Record):
    """What a hosted MCP call came to (the response's ``mcp_call`` item after an approval)."""

    approval_request_id: str
    output: str | None = None
    error: str | None = None


class Reply(Record):
    kind: Literal["reply"] = "reply"
    text: str
    # "completed", or how the answer fell short (domain/endings.py); ``detail``: the API's reason.
    ending: str = "completed"
    detail: str | None = None
    hosted: list[HostedCall] = Field(default_factory=list)  # hosted MCP calls this response reports


class Pause(Record):
    kind: Literal["pause"] = "pause"
    pause_ref: str
    tool_calls: list[ToolCall]
    said: str = ""  # text the model wrote beside its calls ("I'll check that first…"), shown to the user
    hosted: list[HostedCall] = Field(default_factory=list)


AgentStep = Reply | Pause


class ToolOutput(Record):
    call_id: str
    output: str
    tool: str = ""
    # A hosted MCP call's answer goes back as approve or deny (with the reason), not as an output.
    approve: bool | None = None
    reason: str = ""
