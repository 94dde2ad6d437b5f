"""ConversationService: the client API's use cases (start a chat, add a message, read it back)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from signoff.domain.models import (
    Action,
    Conversation,
    ConversationStatus,
    ExecutionStatus,
    Message,
    Turn,
    TurnStatus,
    iso,
    utc_now,
)
from signoff.domain.ports import ConversationNotFound, WorkMessage, WorkQueue
from signoff.domain.stores import READ_TO_END, InvalidCursor, decode_cursor, encode_cursor
from signoff.domain.tenants import DEFAULT_TENANT
from signoff.logic.ids import CONVERSATION_ID, new_conversation_id, new_turn_id

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore
    from signoff.logic.executor import ActionExecutor

logger = Logger(child=True)

DEFAULT_PAGE_SIZE = 100  # messages (and tool calls) GET /conversations/{id} returns per page


class QueueUnavailable(RuntimeError):
    """The turn was stored but could not be handed to the worker; it was marked failed."""


class NotAwaitingClient(RuntimeError):
    """A posted result names a call that is not waiting for the client (nothing was recorded)."""

    def __init__(self, call_id: str):
        super().__init__(f"call {call_id} is not awaiting a result from the client")
        self.call_id = call_id


class StartedTurn(BaseModel):
    conversation_id: str
    turn_id: str
    status: ConversationStatus


class ConversationService:
    def __init__(self, table: SignoffStore, queue: WorkQueue, executor: ActionExecutor | None = None):
        self._table = table
        self._queue = queue
        self._executor = executor  # records client results (return of control)

    def start(
        self,
        text: str,
        metadata: dict[str, Any] | None = None,
        notify_url: str | None = None,
        tenant: str = DEFAULT_TENANT,
        agent: str | None = None,
    ) -> StartedTurn:
        now = iso(utc_now())
        conversation_id, turn_id = new_conversation_id(), new_turn_id()
        conversation = Conversation(
            conversation_id=conversation_id,
            status=ConversationStatus.RUNNING,
            active_turn_id=turn_id,
            created_at=now,
            metadata=metadata or {},
            notify_url=notify_url,
            tenant=tenant,
            agent=agent,
        )
        self._table.create_conversation(
            conversation,
            self._turn(conversation_id, turn_id, text, now, tenant),
            Message(role="user", content=text, created_at=now),
        )
        return self._enqueue(conversation_id, turn_id, tenant)

    def post_message(self, conversation_id: str, text: str, tenant: str = DEFAULT_TENANT) -> StartedTurn:
        """Raises ConversationNotFound (also for another tenant's conversation), or ConversationBusy
        while a turn is running or awaiting approval."""
        now = iso(utc_now())
        turn_id = new_turn_id()
        self._table.open_turn(
            conversation_id,
            self._turn(conversation_id, turn_id, text, now, tenant),
            Message(role="user", content=text, created_at=now),
            tenant,
        )
        return self._enqueue(conversation_id, turn_id, tenant)

    def submit_tool_results(self, conversation_id: str, results: list[tuple[str, Any]], tenant: str) -> int:
        """Record the client's results of calls handed to it; resume the turn once none is left.

        Every named call must be waiting for the client (else NotAwaitingClient, and nothing is
        recorded); ConversationNotFound for another tenant's conversation. Returns how many calls
        of the turn still wait for the client."""
        assert self._executor is not None
        known = CONVERSATION_ID.fullmatch(conversation_id)
        conversation = self._table.get_conversation(conversation_id) if known else None
        if conversation is None or conversation.tenant != tenant:
            raise ConversationNotFound(conversation_id)
        turn_id = conversation.active_turn_id
        actions = {a.call_id: a for a in self._table.list_actions(conversation_id, turn_id)}
        for call_id, _output in results:
            action = actions.get(call_id)
            if (
                action is None
                or action.execution is None
                or action.execution.status is not ExecutionStatus.AWAITING_CLIENT
            ):
                raise NotAwaitingClient(call_id)
        for call_id, output in results:
            if not self._executor.record_client_result(actions[call_id], output):
                raise NotAwaitingClient(call_id)  # settled meanwhile (overdue, or a racing post)
        remaining = [a for a in self._table.list_actions(conversation_id, turn_id) if _awaits_client(a)]
        if not remaining:
            turn = self._table.get_turn(conversation_id, turn_id)
            if turn is not None and turn.pause_ref:
                self._queue.send(WorkMessage.resume(turn))
        return len(remaining)

    def view(
        self,
        conversation_id: str,
        tenant: str = DEFAULT_TENANT,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> dict[str, Any] | None:
        """The conversation as its tenant sees it, with a page of its messages and of its tool calls
        and the cursor to the next page (None once both are read to the end); None when there is no
        such conversation (for this tenant). InvalidCursor for a cursor this did not hand out."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        after_message, after_action = _positions(cursor)
        page = self._table.conversation_page(conversation_id, after_message, after_action, limit)
        if page is None or page.conversation.tenant != tenant:
            return None
        conversation = page.conversation
        return {
            "conversation_id": conversation.conversation_id,
            "status": conversation.status.value,
            "created_at": conversation.created_at,
            "metadata": conversation.metadata,
            "notify_url": conversation.notify_url,
            "agent": conversation.agent,
            "messages": [m.model_dump(exclude_none=True) for m in page.messages],
            "actions": [_action_view(a) for a in page.actions],
            "next_cursor": _cursor(page.after_message, page.after_action),
        }

    @staticmethod
    def _turn(conversation_id: str, turn_id: str, text: str, now: str, tenant: str) -> Turn:
        return Turn(
            conversation_id=conversation_id,
            turn_id=turn_id,
            status=TurnStatus.QUEUED,
            created_at=now,
            input=text,
            tenant=tenant,
        )

    def _enqueue(self, conversation_id: str, turn_id: str, tenant: str) -> StartedTurn:
        try:
            self._queue.send(
                WorkMessage(kind="start_turn", conversation_id=conversation_id, turn_id=turn_id, tenant=tenant)
            )
        except Exception as exc:
            logger.exception("could not enqueue the turn")
            self._table.fail_turn(conversation_id, turn_id, "queue unavailable")
            raise QueueUnavailable("the work queue is unavailable; try again") from exc
        return StartedTurn(conversation_id=conversation_id, turn_id=turn_id, status=ConversationStatus.RUNNING)


def _cursor(after_message: str | None, after_action: str | None) -> str | None:
    if after_message is None and after_action is None:
        return None
    return encode_cursor({"m": after_message or READ_TO_END, "a": after_action or READ_TO_END})


def _positions(cursor: str | None) -> tuple[str | None, str | None]:
    """Where each list goes on (None: from the start)."""
    if not cursor:
        return None, None
    fields = decode_cursor(cursor, {"m": str, "a": str})
    for name, prefix in (("m", "MSG#"), ("a", "ACTION#")):
        value = fields[name]
        if len(value) > 512 or not (value == READ_TO_END or value.startswith(prefix)):
            raise InvalidCursor("cursor is not valid")
    return fields["m"], fields["a"]


def _awaits_client(action: Action | None) -> bool:
    return (
        action is not None
        and action.execution is not None
        and action.execution.status is ExecutionStatus.AWAITING_CLIENT
    )


def _action_view(action: Action) -> dict[str, Any]:
    decision = None
    if action.decision is not None and action.decision.id is not None:
        decision = {
            "id": action.decision.id,
            "status": action.decision.status,
            "resolved_by": action.decision.resolved_by,
            "notes": action.decision.notes,
        }
    execution = None
    if action.execution is not None and action.execution.status is not ExecutionStatus.EXECUTING:
        execution = action.execution.view()
    view = {
        "call_id": action.call_id,
        "tool": action.tool,
        "arguments": action.arguments,
        "gated": action.gated,
        "decision": decision,
        "execution": execution,
    }
    if action.error:
        view["error"] = action.error
    if action.gated_by_budget:
        view["gated_by_budget"] = action.gated_by_budget
    if action.grant is not None:
        view["grant"] = action.grant.model_dump()
    if action.receipt:
        view["receipt"] = action.receipt
    return view
