"""What the use cases need from the store, and the conditions each write holds to.

The use cases in ``signoff.logic`` depend on these protocols, never on a database: DynamoDB
(``SignoffTable``, in the data access layer) implements them for real, and an in-memory table
(``tests/fakes/memory_table.py``) implements them for the unit tests. One contract suite
(``tests/contract/test_store_contract.py``) runs against both, so the two cannot drift.

Every state transition is a conditional write: it returns False (or None) when its condition
does not hold, and then changes nothing at all. Transactions are all or nothing. Reads are
strongly consistent. "Due" means listed for the reconciler (``due_work``) from a time on.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from signoff.domain.budgets import BudgetCharge, BudgetWrite, Reservation, Reservations
from signoff.domain.grants import Grant, GrantUse
from signoff.domain.merkle import Node
from signoff.domain.models import (
    Action,
    Approval,
    Conversation,
    Decision,
    DecisionRef,
    Execution,
    ExecutionStatus,
    Message,
    Turn,
)
from signoff.domain.receipts import LogEntry, LogHead, PendingReceipt
from signoff.domain.tenants import DEFAULT_TENANT


class InvalidCursor(ValueError):
    """A page cursor that this store did not hand out (or for another query)."""


def encode_cursor(fields: dict[str, Any]) -> str:
    """A page cursor: where a listing goes on, as opaque URL-safe text."""
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


def decode_cursor(cursor: str, kinds: dict[str, type]) -> dict[str, Any]:
    """The fields of a cursor made by ``encode_cursor``, each of its kind; InvalidCursor otherwise."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        fields = {name: data[name] for name in kinds}
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not all(isinstance(fields[name], kind) for name, kind in kinds.items()):
        raise InvalidCursor("cursor is not valid")
    return fields


class BudgetContention(RuntimeError):
    """Too many writers raced for one budget counter; the caller fails closed."""


class BudgetMoved(RuntimeError):
    """A budget counter a write was computed from changed before the write: compute it again."""


class ResumeRefused(RuntimeError):
    """A write that would also claim a turn's resume was refused for that claim alone: write it
    without (another invocation resumes the turn, or it is not ready)."""


@dataclass
class DueWork:
    approvals: list[Approval] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)  # scheduled calls whose time has come
    oldest_due_at: str | None = None  # when the longest-waiting item listed fell due
    more: bool = False  # more items were due than were listed: the backlog is not drained


MAX_CONVERSATION_PAGE = 200  # messages (and actions) one read of a conversation returns at most
READ_TO_END = "~"  # as ``after_message`` / ``after_action``: that list is done, read none of it


@dataclass
class ConversationPage:
    """A conversation with one page of its messages (oldest first) and of its tool calls (by turn,
    oldest first); ``after_*`` is where each list goes on, None once it is read to its end."""

    conversation: Conversation
    messages: list[Message] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    after_message: str | None = None
    after_action: str | None = None


def conversation_of(records: Iterable[Any]) -> tuple[Conversation, list[Message], list[Action]] | None:
    """A conversation, its messages (in key order, which is time order) and its actions in call
    order, from the records of its partition; None without the conversation itself."""
    meta, messages, actions = None, [], []
    for record in records:
        if isinstance(record, Conversation):
            meta = record
        elif isinstance(record, Message):
            messages.append(record)
        elif isinstance(record, Action):
            actions.append(record)
    if meta is None:
        return None
    return meta, messages, sorted(actions, key=_call_order)


def _call_order(action: Action) -> tuple[str, str, int]:
    return action.created_at, action.turn_id, action.seq


def conversation_page(
    conversation: Conversation,
    after_message: str | None,
    after_action: str | None,
    limit: int,
    read: Callable[[str, str | None, int], tuple[list[Any], str | None]],
) -> ConversationPage:
    """A page assembled from one store's ``read(prefix, after, limit)`` → (records, where to go on):
    each list read no further than the page (none of it once READ_TO_END), the actions in call order."""
    limit = max(1, min(limit, MAX_CONVERSATION_PAGE))
    page = ConversationPage(conversation)
    if after_message != READ_TO_END:
        page.messages, page.after_message = read("MSG#", after_message, limit)
    if after_action != READ_TO_END:
        actions, page.after_action = read("ACTION#", after_action, limit)
        page.actions = sorted(actions, key=_call_order)
    return page


def months_newest_first(since: datetime, until: datetime) -> list[str]:
    """The months (``yyyy-mm``) a time range touches, the latest first: the audit index's buckets."""
    months = []
    year, month = until.year, until.month
    while (year, month) >= (since.year, since.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


@dataclass(frozen=True)
class AuditQuery:
    since: datetime
    until: datetime
    status: str | None = None
    tool: str | None = None
    conversation_id: str | None = None
    limit: int = 50
    cursor: str | None = None
    tenant: str = DEFAULT_TENANT  # only this tenant's approvals are listed


class ConversationStore(Protocol):
    """Conversations, their messages and turns. A turn moves queued → running → (awaiting_approval
    ↔ running) → completed | failed; the conversation shows its active turn's state."""

    def create_conversation(self, conversation: Conversation, turn: Turn, message: Message) -> None:
        """Conversation, first turn (due after the stall time) and message, all or nothing; raises
        ConversationBusy when the id exists."""
        ...

    def open_turn(self, conversation_id: str, turn: Turn, message: Message, tenant: str = DEFAULT_TENANT) -> None:
        """Conversation idle|failed → running with ``turn`` active, for its own tenant only (the default
        tenant also owns conversations stored without one). ConversationNotFound for a missing or
        another tenant's conversation, ConversationBusy otherwise."""
        ...

    def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    def get_turn(self, conversation_id: str, turn_id: str) -> Turn | None: ...

    def get_pause(
        self, conversation_id: str, turn_id: str, call_ids: Sequence[str] = ()
    ) -> tuple[Turn | None, Conversation | None, list[Action] | None]:
        """The turn, its conversation (each None if missing) and the named calls of the turn by seq,
        read together; the calls None unless every one was found."""
        ...

    def load_conversation(self, conversation_id: str) -> tuple[Conversation, list[Message], list[Action]] | None:
        """The conversation, its messages in time order and its actions by (created_at, turn, seq)."""
        ...

    def conversation_page(
        self, conversation_id: str, after_message: str | None, after_action: str | None, limit: int
    ) -> ConversationPage | None:
        """The conversation and at most ``limit`` (capped at MAX_CONVERSATION_PAGE) of its messages
        after ``after_message`` and of its actions after ``after_action`` (a position this method
        handed out; None: from the start; READ_TO_END: none). Each list is read only as far as the
        page needs."""
        ...

    def set_backend_state(self, conversation_id: str, state: dict[str, Any]) -> None: ...

    def claim_turn_start(self, conversation_id: str, turn_id: str) -> Turn | None:
        """queued → running, due when the running lease ends. One winner, which gets the turn as it
        now is; None for the others."""
        ...

    def claim_turn_resume(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        """awaiting_approval with this pause and nothing pending → running (due at the lease end), and
        the conversation → running while this turn is its active one. One winner."""
        ...

    def release_turn(self, conversation_id: str, turn_id: str, *, for_resume: bool) -> int | None:
        """running → queued (or awaiting_approval, for a resume), attempts + 1, due later as a backstop.
        The attempts so far; None when the turn was not running."""
        ...

    def record_pause(
        self,
        turn: Turn,
        pause_ref: str,
        actions: list[Action],
        approvals: list[tuple[Approval, datetime]],
        pending: int,
        said: Message | None = None,
    ) -> bool:
        """Only while the turn is running and none of them exists yet, all at once: each action and
        approval put (and ``said``, the model's words beside its calls, as a message), pause_ref and
        pending set, status awaiting_approval when pending > 0. (A pause
        too large for one DynamoDB transaction is put one by one, an existing one kept, the turn last.)"""
        ...

    def show_awaiting_approval(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        """Conversation → awaiting_approval, only while the turn awaits this pause with pending > 0
        and is the active turn."""
        ...

    def show_awaiting_client(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        """Turn running|awaiting_approval with this pause and nothing pending → awaiting_approval, due
        after the stall time; conversation → awaiting_client while the turn is active."""
        ...

    def complete_turn(self, conversation_id: str, turn_id: str, reply: Message) -> bool:
        """Turn running → completed (no longer due), conversation → idle, reply stored: all or nothing."""
        ...

    def fail_turn(self, conversation_id: str, turn_id: str, error: str, reply: Message | None = None) -> bool:
        """Turn queued|running|awaiting_approval → failed (error kept, ≤ 500 chars; no longer due);
        conversation → failed with ``unanswered_turn_id``; the reply stored: all or nothing."""
        ...

    def clear_unanswered_turn(self, conversation_id: str, turn_id: str) -> bool:
        """Forget ``unanswered_turn_id``, only if it is still ``turn_id``."""
        ...

    def postpone_turn(self, conversation_id: str, turn_id: str, due_at: datetime | None) -> bool:
        """A due turn is due again at ``due_at``, or no longer (None). False when it was not due."""
        ...


class ActionStore(Protocol):
    """Tool calls, keyed by conversation, turn and call id. An execution is claimed once."""

    def put_action(self, action: Action) -> bool:
        """Stored once; False (and the stored one kept) when it exists."""
        ...

    def get_action(self, conversation_id: str, turn_id: str, call_id: str) -> Action | None: ...

    def list_actions(self, conversation_id: str, turn_id: str) -> list[Action]:
        """One turn's actions by seq."""
        ...

    def claim_execution(self, action: Action) -> bool:
        """No execution → executing (claimed now), only for an ungated call, a verdict of approved or
        modified, or a call under a grant."""
        ...

    def settle_stale_execution(self, action: Action, lease_seconds: int) -> bool:
        """executing, claimed more than ``lease_seconds`` ago → failed, outcome unknown."""
        ...

    def abandon_action(self, action: Action, why: str) -> bool:
        """No execution → not_executed with ``why``."""
        ...

    def claim_scheduled_execution(self, action: Action) -> bool:
        """Execution scheduled, its execute_at come, verdict scheduled → executing; no longer due."""
        ...

    def settle_client_call(self, action: Action, execution: Execution) -> bool:
        """awaiting_client → ``execution``."""
        ...

    def settle_delegated_call(self, action: Action, execution: Execution) -> bool:
        """delegated (a hosted MCP call) → ``execution``, once."""
        ...

    def finish_execution(self, action: Action, execution: Execution) -> bool:
        """executing → ``execution``."""
        ...


class ApprovalStore(Protocol):
    """Approvals (one per approver of a call) and each call's verdict."""

    def put_approval(self, approval: Approval, due_at: datetime) -> bool:
        """Stored once, due at ``due_at``; False when it exists."""
        ...

    def escalate(self, action: Action, expired: Approval, next_rung: Approval, due_at: datetime) -> bool:
        """All or nothing: ``next_rung`` stored (due), the action's approval ids with the expired one
        swapped for it and its decision removed, the expired one no longer due. Only while the action
        has no verdict and waits on ``expired``, and ``expired`` is settled and ``next_rung`` new."""
        ...

    def get_approval(self, approval_id: str) -> Approval | None: ...

    def get_approvals(self, approval_ids: list[str]) -> list[Approval]:
        """In the order asked; missing ones left out."""
        ...

    def attach_decision(
        self, approval: Approval, decision_id: str, expires_at: str | None = None, show_pause: str | None = None
    ) -> bool:
        """Bind the decision (and when it times out) once, only while pending and unbound; the action
        shows its first one. With ``show_pause``, also ``show_awaiting_approval`` for that pause, all or
        nothing (False if either is refused)."""
        ...

    def settle_approval(self, approval: Approval, decision: Decision | None) -> Approval | None:
        """pending → settled with the answer (None: no decision could be asked); due now. The settled
        approval, or None when it was settled already."""
        ...

    def record_verdict(
        self,
        action: Action,
        decision: DecisionRef,
        verdict: str | None,
        execution: Execution | None,
        approved_arguments: dict[str, Any] | None = None,
        approved_digest: str | None = None,
        changes: dict[str, Any] | None = None,
        retire: Sequence[str] = (),
        answered: Approval | None = None,
        budgets: Sequence[BudgetWrite] = (),
    ) -> bool:
        """The call's verdict once (no verdict yet, no execution, its approval ids still those of
        ``action``), with its turn's pending count down by
        one while the turn awaits approvals with pending > 0 (the turn due after the stall time); a
        scheduled execution makes the action due at its execute_at; the ``retire`` approvals (which
        must exist) leave the reconciler's list. ``answered``: an approval settled by this same write
        (only while still pending), its answer the one that decides. ``budgets``: the call's
        reservations, each written only if its group is still at the version read (BudgetMoved if
        one is not). All or nothing."""
        ...

    def retire_approval(self, approval_id: str) -> None:
        """No longer due."""
        ...

    def postpone_approval(self, approval_id: str, due_at: datetime, *, unreadable: bool = False) -> bool:
        """A due approval is due again at ``due_at`` (``unreadable``: read_failures + 1). False when not due."""
        ...


class DueStore(Protocol):
    def due_work(self, now: datetime, limit: int = 100) -> DueWork:
        """About ``limit`` due items (approvals, turns, scheduled actions) with due_at ≤ now, the oldest
        of each shard of the list (an even share each); ``more`` when some were left out."""
        ...


class AuditStore(Protocol):
    def list_approvals(self, query: AuditQuery) -> tuple[list[Approval], str | None]:
        """The tenant's approvals created in the range and matching the filters, newest first, at most
        ``limit``; a cursor when there may be more (InvalidCursor for one not handed out for this range)."""
        ...

    def calls_between(self, tenant: str, since: datetime, until: datetime, most: int) -> list[Action]:
        """The tenant's actions created in the range, oldest first, at most ``most``."""
        ...


class BudgetStore(Protocol):
    def budget_total(self, charge: BudgetCharge, now: datetime) -> Decimal:
        """The live total of the charge's group in its window."""
        ...

    def budget_state(self, group_id: str) -> tuple[Reservations, int]:
        """The group's reservations and the version of its counter (0: none yet), for a BudgetWrite."""
        ...

    def reserve_budget(self, charge: BudgetCharge, call_key: str, now: datetime, enforce_limit: bool) -> Reservation:
        """Add the call's amount once per ``call_key`` (a repeat is taken again at no cost); with
        ``enforce_limit``, refused when the total would pass the limit."""
        ...

    def release_budget(self, charge: BudgetCharge, call_key: str, now: datetime) -> bool:
        """Take the call's reservation back; False when it held none."""
        ...


class GrantStore(Protocol):
    def put_grant(self, grant: Grant) -> bool:
        """Stored once; False when it exists."""
        ...

    def get_grant(self, grant_id: str) -> Grant | None: ...

    def grants_for_scope(self, tenant: str, tool: str, scope: dict[str, str]) -> list[Grant]: ...

    def take_grant_use(self, grant: Grant, use: GrantUse, now: datetime) -> int | None:
        """One use, recorded, only from a live grant (uses left, not expired at ``now``, not revoked):
        the uses left after it, or None."""
        ...

    def revoke_grant(self, tenant: str, grant_id: str, by: str, now: datetime) -> bool:
        """Revoked once, by its own tenant; False otherwise."""
        ...

    def list_grants(self, tenant: str, limit: int, cursor: str | None) -> tuple[list[Grant], str | None]:
        """The tenant's grants newest first, a page at a time (a page may hold fewer than ``limit``)."""
        ...


class ReceiptStore(Protocol):
    def finish_with_receipt(
        self,
        action: Action,
        execution: Execution,
        jws: str,
        resume_pause: str | None = None,
        from_status: ExecutionStatus = ExecutionStatus.EXECUTING,
    ) -> bool:
        """executing (or ``from_status``) → ``execution`` with the receipt on the action, the receipt queued for the
        tenant's log: all or nothing, never waiting on another call. With ``resume_pause``, also
        ``claim_turn_resume`` for that pause; ResumeRefused when only the claim was refused."""
        ...


class ReceiptLogStore(Protocol):
    """What checkpoints read and write: the queue, the log, its nodes and checkpoints."""

    def receipt_log(self, tenant: str) -> LogHead: ...

    def tenants_with_queued_receipts(self, limit: int) -> list[str]: ...

    def queued_receipts(self, tenant: str, limit: int) -> list[PendingReceipt]:
        """Receipts waiting for a checkpoint, oldest first."""
        ...

    def chain_receipts(self, tenant: str, after_seq: int, limit: int) -> list[PendingReceipt]:
        """Chain-mode receipts after ``after_seq``, in order (for the log to take in first)."""
        ...

    def append_to_log(self, tenant: str, old: LogHead, new: LogHead, entries: list[LogEntry], checkpoint: str) -> bool:
        """Entries into the log and out of the queue, the head moved from exactly ``old`` to ``new``,
        the checkpoint stored at ``new.size``: all or nothing; False if the log or queue moved."""
        ...

    def list_log(self, tenant: str, after: int, limit: int) -> tuple[list[tuple[int, str]], int | None]:
        """(index, receipt) from index ``after`` on, and where the next page starts (None: no more).
        Before the tenant's first checkpoint, its chain-mode receipts (index = seq - 1)."""
        ...

    def list_checkpoints(self, tenant: str, after_size: int, limit: int) -> tuple[list[str], int | None]: ...

    def checkpoint_at(self, tenant: str, size: int) -> str | None: ...

    def log_entry(self, tenant: str, index: int) -> str | None: ...

    def log_nodes(self, tenant: str, nodes: set[Node]) -> dict[Node, bytes]: ...


class SignoffStore(
    ConversationStore,
    ActionStore,
    ApprovalStore,
    DueStore,
    AuditStore,
    BudgetStore,
    GrantStore,
    ReceiptStore,
    ReceiptLogStore,
    Protocol,
):
    """Everything the use cases keep: what ``SignoffTable`` and the in-memory table both are."""
