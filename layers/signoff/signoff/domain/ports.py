"""What the core needs from the outside world; the adapters implement these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from signoff.domain.models import Action, AgentStep, Conversation, Decision, ToolCall, ToolOutput, Turn
from signoff.domain.notifications import Notification


class ConversationNotFound(LookupError):
    """No such conversation (or it is another tenant's: the same answer, so nothing leaks)."""


class ConversationBusy(RuntimeError):
    """A turn of this conversation is still running or waiting (on an approver or the client)."""


class NotConfigured(RuntimeError):
    """A key or setting the deployment needs has not been given yet (e.g. a secret still holds its
    placeholder): nothing is attempted with a guess."""


class BackendUnavailable(RuntimeError):
    """The agent API failed in a way a later retry may fix (429, 5xx, timeout)."""


class BackendRejected(RuntimeError):
    """The agent API refused the request; retrying the same request will not help."""


class ContextFull(BackendRejected):
    """The conversation no longer fits the model's context window (even after trimming)."""


@dataclass(frozen=True)
class AgentSetup:
    """One agent of the catalog as an agent API needs it for a conversation."""

    name: str
    model: str
    instructions: str
    tools: list[dict[str, Any]]  # function definitions
    assistant_id: str = ""  # the Assistants API only


class AgentBackend(Protocol):
    """One agent API (Responses, Assistants, Chat Completions) behind one contract."""

    def prepare(self, conversation: Conversation) -> dict[str, Any]:
        """Return the backend state for this chat (creating remote objects once); the caller stores it."""
        ...

    def start_turn(self, conversation: Conversation, text: str) -> AgentStep: ...

    def submit_tool_outputs(
        self, conversation: Conversation, pause_ref: str, outputs: list[ToolOutput]
    ) -> AgentStep: ...

    def step_after(self, conversation: Conversation, pause_ref: str, call_ids: list[str]) -> AgentStep | None:
        """If outputs for these calls were already submitted (a worker died before recording what
        followed), return what the model did next; None if they were not submitted."""
        ...

    def open_calls(self, conversation: Conversation) -> list[ToolCall]:
        """Calls the agent API still holds open (asked for, never answered): left by a failed turn."""
        ...

    def close_calls(self, conversation: Conversation, outputs: list[ToolOutput]) -> None:
        """Answer open calls without asking the model for anything, so the chat can go on."""
        ...


class DecisionRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: str
    context: str
    approver: str
    urgency: Literal["low", "medium", "high", "critical"] = "medium"
    timeout_minutes: int = 60
    callback_url: str
    options: list[str] = ["approve", "deny"]


class ApprovalServiceError(RuntimeError):
    """The approval service could not be reached or gave an answer we cannot use."""


class UnreadableDecision(ApprovalServiceError):
    """The approval service answered, but with a decision we cannot read (wrong types, missing
    fields). Looking again may help; acting on it never does."""


class ApprovalService(Protocol):
    """Handover, or anything that answers like it."""

    def create_decision(self, request: DecisionRequest) -> str: ...

    def get_decision(self, decision_id: str) -> Decision: ...


class WorkMessage(BaseModel):
    """A unit of work for the agent worker, carried on the work queue. A field it does not know is
    ignored: during a deploy, a worker not yet updated takes a newer function's message (as this
    version's ``calls``) and does what it knows."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # run_calls: run the calls of a pause that may run (approved since), then resume it if it is ready;
    # sent by the callback, which has API Gateway's 30 seconds, to the worker, which has its timeout.
    kind: Literal["start_turn", "resume_turn", "run_calls"]
    conversation_id: str
    turn_id: str
    pause_ref: str | None = None
    tenant: str | None = None  # for the worker's log lines; the conversation's own is what counts
    calls: list[str] | None = None  # run_calls: the pause's call ids, when known (read by key with the turn)

    @classmethod
    def run_calls(cls, of: Turn | Action) -> WorkMessage:
        """Run the calls of the pause (of ``of``, a turn or one of its calls) that may run, then go on
        if none is left waiting."""
        return cls._about(of, "run_calls")

    @classmethod
    def resume(cls, turn: Turn) -> WorkMessage:
        """Go on with ``turn`` after its pause (its calls settled)."""
        return cls._about(turn, "resume_turn")

    @classmethod
    def _about(cls, of: Turn | Action, kind: Literal["resume_turn", "run_calls"]) -> WorkMessage:
        calls = of.pause_calls if isinstance(of, Action) and kind == "run_calls" else None
        return cls(
            kind=kind,
            conversation_id=of.conversation_id,
            turn_id=of.turn_id,
            pause_ref=of.pause_ref,
            tenant=of.tenant,
            calls=calls or None,
        )


class WorkQueue(Protocol):
    def send(self, message: WorkMessage, delay_seconds: int = 0) -> None: ...


class ChatHistory(Protocol):
    """The message list of a Chat Completions conversation, kept by Signoff (one item per message)."""

    def load(self, conversation_id: str) -> list[dict[str, Any]]: ...

    def append(self, conversation_id: str, start: int, messages: list[dict[str, Any]]) -> None:
        """Write ``messages`` at positions ``start``…; fails if another writer got there first."""
        ...


class EffectLog(Protocol):
    """Where demo tools record what they did; writing the same key twice keeps the first."""

    def record_effect(self, key: str, tool: str, arguments: dict[str, Any], result: dict[str, Any]) -> dict: ...


class ReceiptSigner(Protocol):
    """Signs receipts (ES256) with a key whose private half it never hands out."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """The ES256 signature of ``message``: raw ``r || s``, 64 bytes."""
        ...


class DeliveryFailed(RuntimeError):
    """The client's endpoint did not take the notification (no answer, or not 2xx)."""


class NotificationSender(Protocol):
    """Delivers one notification to its client URL; raises DeliveryFailed when it was not taken."""

    def send(self, notification: Notification) -> None: ...


class NotificationQueue(Protocol):
    """Notifications waiting for delivery (at least once; each keeps its id across attempts)."""

    def send(self, notification: Notification) -> None: ...
