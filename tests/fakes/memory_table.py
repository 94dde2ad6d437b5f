"""MemoryTable: the store protocols (``signoff.domain.stores``) in memory, for unit tests.

Keyed exactly as the DynamoDB table is (``pk``/``sk``), so what overwrites what is the same; each
conditional write checks the same condition ``SignoffTable`` sends to DynamoDB and, when it does
not hold, changes nothing. One lock makes every operation (and every transaction) atomic, as
DynamoDB does per item and per transaction. ``tests/contract/test_store_contract.py`` runs the
same cases against this and against DynamoDB (moto), so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from signoff.domain.budgets import BudgetCharge, BudgetWrite, Reservation, live_total, release, reserve
from signoff.domain.grants import GRANT_ID_PATTERN, Grant, GrantUse, scope_hash
from signoff.domain.merkle import Node
from signoff.domain.models import (
    Action,
    Approval,
    ApprovalState,
    Conversation,
    ConversationStatus,
    Decision,
    DecisionRef,
    DecisionStatus,
    Execution,
    ExecutionStatus,
    Message,
    Turn,
    TurnStatus,
    iso,
    utc_now,
)
from signoff.domain.ports import ConversationBusy, ConversationNotFound
from signoff.domain.receipts import LogEntry, LogHead, PendingReceipt
from signoff.domain.stores import (
    AuditQuery,
    BudgetMoved,
    ConversationPage,
    DueWork,
    InvalidCursor,
    ResumeRefused,
    conversation_of,
    conversation_page,
    decode_cursor,
    encode_cursor,
    months_newest_first,
)
from signoff.domain.tenants import DEFAULT_TENANT

MAX_RECEIPT_PAGE = 500
_GRANT_ID = re.compile(GRANT_ID_PATTERN)
Key = tuple[str, str]


@dataclass
class _Row:
    """One item: its record, and the index attributes DynamoDB keeps beside it."""

    record: Any
    due: bool = False  # has a due bucket (listed in the due index once due_at is set)
    due_at: str | None = None
    audit: tuple[str, str] | None = None  # (bucket, sort key) in the audit index
    extra: dict[str, Any] = field(default_factory=dict)


class _Refused(Exception):
    """A condition did not hold: the operation (or the whole transaction) changes nothing."""


def _conv_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def _action_key(conversation_id: str, turn_id: str, call_id: str) -> Key:
    return _conv_pk(conversation_id), f"ACTION#{turn_id}#{call_id}"


def _turn_key(conversation_id: str, turn_id: str) -> Key:
    return _conv_pk(conversation_id), f"TURN#{turn_id}"


def _approval_key(approval_id: str) -> Key:
    return f"APPROVAL#{approval_id}", "APPROVAL"


def _grant_key(grant_id: str) -> Key:
    return f"GRANTSCOPE#{grant_id.split('_')[1]}", f"GRANT#{grant_id}"


def _cursor(bucket: str, at: str) -> str:
    return encode_cursor({"b": bucket, "at": at})


def _uncursor(cursor: str) -> tuple[str, str]:
    fields = decode_cursor(cursor, {"b": str, "at": str})
    return fields["b"], fields["at"]


def _settlement(answered: Approval) -> dict[str, Any]:
    """The fields a settlement writes (the table's SET), from Approval.answered."""
    return {
        "state": answered.state,
        "outcome": answered.outcome,
        "resolved_by": answered.resolved_by,
        "notes": answered.notes,
        "response_data": json.loads(json.dumps(answered.response_data)) if answered.response_data is not None else None,
        "execute_at": answered.execute_at,
        "resolved_at": answered.resolved_at,
    }


class MemoryTable:
    """The same constructor knobs as ``SignoffTable`` (stall, lease), without a database."""

    def __init__(self, stall_seconds: int = 120, running_lease_seconds: int = 600):
        self._rows: dict[Key, _Row] = {}
        self._lock = threading.RLock()
        self._stall = timedelta(seconds=stall_seconds)
        self._lease = timedelta(seconds=running_lease_seconds)
        self.writes = 0  # successful writes, for tests that count them

    # -- plumbing ---------------------------------------------------------------------------
    def _stall_due(self) -> str:
        return iso(utc_now() + self._stall)

    def _lease_due(self) -> str:
        return iso(utc_now() + self._lease)

    def _row(self, key: Key) -> _Row | None:
        return self._rows.get(key)

    def _record(self, key: Key) -> Any:
        row = self._rows.get(key)
        return None if row is None else row.record.model_copy(deep=True)

    def _atomically(self, change: Callable[[], Any]) -> Any:
        """Run ``change`` (which raises _Refused before it writes anything) under the lock."""
        with self._lock:
            try:
                result = change()
            except _Refused:
                return None
            self.writes += 1
            return result

    @staticmethod
    def _require(condition: bool) -> None:
        if not condition:
            raise _Refused

    def _update(self, key: Key, **fields: Any) -> None:
        row = self._rows[key]
        data = row.record.model_dump()
        data.update({k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in fields.items()})
        row.record = type(row.record).model_validate(data)  # validated, as a read from DynamoDB is

    def _partition(self, pk: str, prefix: str = "") -> Iterator[tuple[Key, _Row]]:
        for key in sorted(k for k in self._rows if k[0] == pk and k[1].startswith(prefix)):
            yield key, self._rows[key]

    # -- conversations and turns ------------------------------------------------------------
    def create_conversation(self, conversation: Conversation, turn: Turn, message: Message) -> None:
        pk = _conv_pk(conversation.conversation_id)

        def change() -> bool:
            self._require(
                (pk, "META") not in self._rows and _turn_key(turn.conversation_id, turn.turn_id) not in self._rows
            )
            self._rows[(pk, "META")] = _Row(conversation.model_copy(deep=True))
            self._put_turn(turn)
            self._put_message(conversation.conversation_id, message)
            return True

        if not self._atomically(change):
            raise ConversationBusy("conversation id already exists")

    def _put_turn(self, turn: Turn) -> None:
        key = _turn_key(turn.conversation_id, turn.turn_id)
        self._rows[key] = _Row(turn.model_copy(deep=True), due=True, due_at=self._stall_due())

    def _put_message(self, conversation_id: str, message: Message) -> None:
        key = (_conv_pk(conversation_id), f"MSG#{message.created_at}#{message.role}")
        self._rows[key] = _Row(message.model_copy(deep=True))

    def open_turn(self, conversation_id: str, turn: Turn, message: Message, tenant: str = DEFAULT_TENANT) -> None:
        meta_key = (_conv_pk(conversation_id), "META")

        def change() -> bool:
            meta = self._row(meta_key)
            self._require(meta is not None and meta.record.tenant == tenant)
            self._require(meta.record.status in (ConversationStatus.IDLE, ConversationStatus.FAILED))
            self._require(_turn_key(conversation_id, turn.turn_id) not in self._rows)
            self._update(meta_key, status=ConversationStatus.RUNNING, active_turn_id=turn.turn_id)
            self._put_turn(turn)
            self._put_message(conversation_id, message)
            return True

        if not self._atomically(change):
            existing = self.get_conversation(conversation_id)
            if existing is None or existing.tenant != tenant:
                raise ConversationNotFound(conversation_id)
            raise ConversationBusy(conversation_id)

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        with self._lock:
            return self._record((_conv_pk(conversation_id), "META"))

    def get_pause(
        self, conversation_id: str, turn_id: str, call_ids: Sequence[str] = ()
    ) -> tuple[Turn | None, Conversation | None, list[Action] | None]:
        with self._lock:
            found = [self._record(_action_key(conversation_id, turn_id, c)) for c in call_ids]
            actions = sorted(found, key=lambda a: a.seq) if found and None not in found else None
            return self.get_turn(conversation_id, turn_id), self.get_conversation(conversation_id), actions

    def get_turn(self, conversation_id: str, turn_id: str) -> Turn | None:
        with self._lock:
            return self._record(_turn_key(conversation_id, turn_id))

    def load_conversation(self, conversation_id: str) -> tuple[Conversation, list[Message], list[Action]] | None:
        with self._lock:
            records = [row.record.model_copy(deep=True) for _key, row in self._partition(_conv_pk(conversation_id))]
        return conversation_of(records)

    def conversation_page(
        self, conversation_id: str, after_message: str | None, after_action: str | None, limit: int
    ) -> ConversationPage | None:
        conversation = self.get_conversation(conversation_id)
        if conversation is None:
            return None
        return conversation_page(
            conversation, after_message, after_action, limit, lambda *slice_: self._slice(conversation_id, *slice_)
        )

    def _slice(self, conversation_id: str, prefix: str, after: str | None, limit: int) -> tuple[list, str | None]:
        with self._lock:
            rows = [
                (k, r) for k, r in self._partition(_conv_pk(conversation_id), prefix) if after is None or k[1] > after
            ]
            page = [(k[1], r.record.model_copy(deep=True)) for k, r in rows[:limit]]
        return [record for _sk, record in page], (page[-1][0] if len(rows) > limit else None)

    def set_backend_state(self, conversation_id: str, state: dict[str, Any]) -> None:
        key = (_conv_pk(conversation_id), "META")

        def change() -> None:
            self._require(key in self._rows)
            self._update(key, backend_state=json.loads(json.dumps(state)))

        self._atomically(change)

    def _turn_in(self, conversation_id: str, turn_id: str, *statuses: TurnStatus) -> _Row:
        row = self._row(_turn_key(conversation_id, turn_id))
        self._require(row is not None and row.record.status in statuses)
        assert row is not None
        return row

    def _active_turn_meta(self, conversation_id: str, turn_id: str) -> Key:
        key = (_conv_pk(conversation_id), "META")
        meta = self._row(key)
        self._require(meta is not None and meta.record.active_turn_id == turn_id)
        return key

    def claim_turn_start(self, conversation_id: str, turn_id: str) -> Turn | None:
        def change() -> Turn:
            row = self._turn_in(conversation_id, turn_id, TurnStatus.QUEUED)
            self._update(_turn_key(conversation_id, turn_id), status=TurnStatus.RUNNING)
            row.due, row.due_at = True, self._lease_due()
            return row.record.model_copy(deep=True)

        return self._atomically(change)

    def claim_turn_resume(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        def change() -> bool:
            row = self._turn_in(conversation_id, turn_id, TurnStatus.AWAITING_APPROVAL)
            self._require(row.record.pause_ref == pause_ref and row.record.pending == 0)
            meta = self._active_turn_meta(conversation_id, turn_id)
            self._update(_turn_key(conversation_id, turn_id), status=TurnStatus.RUNNING)
            row.due, row.due_at = True, self._lease_due()
            self._update(meta, status=ConversationStatus.RUNNING)
            return True

        return bool(self._atomically(change))

    def release_turn(self, conversation_id: str, turn_id: str, *, for_resume: bool) -> int | None:
        target = TurnStatus.AWAITING_APPROVAL if for_resume else TurnStatus.QUEUED

        def change() -> int:
            row = self._turn_in(conversation_id, turn_id, TurnStatus.RUNNING)
            attempts = row.record.attempts + 1
            self._update(_turn_key(conversation_id, turn_id), status=target, attempts=attempts)
            row.due, row.due_at = True, iso(utc_now() + self._stall + timedelta(seconds=900))
            return attempts

        return self._atomically(change)

    def record_pause(
        self,
        turn: Turn,
        pause_ref: str,
        actions: list[Action],
        approvals: list[tuple[Approval, datetime]],
        pending: int,
        said: Message | None = None,
    ) -> bool:
        """All or nothing, as SignoffTable's one transaction (this table has no transaction size limit)."""
        status = TurnStatus.AWAITING_APPROVAL if pending else TurnStatus.RUNNING
        action_keys = [_action_key(a.conversation_id, a.turn_id, a.call_id) for a in actions]
        approval_keys = [_approval_key(a.approval_id) for a, _ in approvals]

        def change() -> bool:
            self._turn_in(turn.conversation_id, turn.turn_id, TurnStatus.RUNNING)
            self._require(not any(key in self._rows for key in action_keys + approval_keys))
            for key, action in zip(action_keys, actions, strict=True):
                self._rows[key] = self._new_action_row(action)
            for key, (approval, due_at) in zip(approval_keys, approvals, strict=True):
                self._rows[key] = self._approval_row(approval, due_at)
            if said is not None:
                self._put_message(turn.conversation_id, said)
            self._update(
                _turn_key(turn.conversation_id, turn.turn_id), status=status, pause_ref=pause_ref, pending=pending
            )
            return True

        return bool(self._atomically(change))

    def show_awaiting_approval(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        def change() -> bool:
            row = self._turn_in(conversation_id, turn_id, TurnStatus.AWAITING_APPROVAL)
            self._require(row.record.pause_ref == pause_ref and row.record.pending > 0)
            self._update(self._active_turn_meta(conversation_id, turn_id), status=ConversationStatus.AWAITING_APPROVAL)
            return True

        return bool(self._atomically(change))

    def show_awaiting_client(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        def change() -> bool:
            row = self._turn_in(conversation_id, turn_id, TurnStatus.RUNNING, TurnStatus.AWAITING_APPROVAL)
            self._require(row.record.pause_ref == pause_ref and row.record.pending == 0)
            meta = self._active_turn_meta(conversation_id, turn_id)
            self._update(_turn_key(conversation_id, turn_id), status=TurnStatus.AWAITING_APPROVAL)
            row.due, row.due_at = True, self._stall_due()
            self._update(meta, status=ConversationStatus.AWAITING_CLIENT)
            return True

        return bool(self._atomically(change))

    def complete_turn(self, conversation_id: str, turn_id: str, reply: Message) -> bool:
        def change() -> bool:
            row = self._turn_in(conversation_id, turn_id, TurnStatus.RUNNING)
            meta = self._active_turn_meta(conversation_id, turn_id)
            self._update(_turn_key(conversation_id, turn_id), status=TurnStatus.COMPLETED)
            row.due, row.due_at = False, None
            self._update(meta, status=ConversationStatus.IDLE)
            self._put_message(conversation_id, reply)
            return True

        return bool(self._atomically(change))

    def fail_turn(self, conversation_id: str, turn_id: str, error: str, reply: Message | None = None) -> bool:
        def change() -> bool:
            row = self._turn_in(
                conversation_id, turn_id, TurnStatus.QUEUED, TurnStatus.RUNNING, TurnStatus.AWAITING_APPROVAL
            )
            meta = self._active_turn_meta(conversation_id, turn_id)
            self._update(_turn_key(conversation_id, turn_id), status=TurnStatus.FAILED, error=error[:500])
            row.due, row.due_at = False, None
            self._update(meta, status=ConversationStatus.FAILED, unanswered_turn_id=turn_id)
            if reply is not None:
                self._put_message(conversation_id, reply)
            return True

        return bool(self._atomically(change))

    def clear_unanswered_turn(self, conversation_id: str, turn_id: str) -> bool:
        key = (_conv_pk(conversation_id), "META")

        def change() -> bool:
            meta = self._row(key)
            self._require(meta is not None and meta.record.unanswered_turn_id == turn_id)
            self._update(key, unanswered_turn_id=None)
            return True

        return bool(self._atomically(change))

    def postpone_turn(self, conversation_id: str, turn_id: str, due_at: datetime | None) -> bool:
        return self._postpone(_turn_key(conversation_id, turn_id), due_at)

    def _postpone(self, key: Key, due_at: datetime | None, *, unreadable: bool = False) -> bool:
        def change() -> bool:
            row = self._row(key)
            if due_at is None:  # REMOVE due_bucket, due_at: only the item must exist
                self._require(row is not None)
                assert row is not None
                row.due, row.due_at = False, None
                return True
            self._require(row is not None and row.due)
            assert row is not None
            row.due_at = iso(due_at)
            if unreadable:
                self._update(key, read_failures=row.record.read_failures + 1)
            return True

        return bool(self._atomically(change))

    # -- actions and executions -------------------------------------------------------------
    def put_action(self, action: Action) -> bool:
        key = _action_key(action.conversation_id, action.turn_id, action.call_id)

        def change() -> bool:
            self._require(key not in self._rows)
            self._rows[key] = self._new_action_row(action)
            return True

        return bool(self._atomically(change))

    @staticmethod
    def _new_action_row(action: Action) -> _Row:
        audit = (f"CALLS#{action.tenant}#{action.created_at[:7]}", f"{action.created_at}#{action.call_id}")
        return _Row(action.model_copy(deep=True), audit=audit)

    def get_action(self, conversation_id: str, turn_id: str, call_id: str) -> Action | None:
        with self._lock:
            return self._record(_action_key(conversation_id, turn_id, call_id))

    def list_actions(self, conversation_id: str, turn_id: str) -> list[Action]:
        with self._lock:
            actions = [
                row.record.model_copy(deep=True)
                for _key, row in self._partition(_conv_pk(conversation_id), f"ACTION#{turn_id}#")
            ]
        return sorted(actions, key=lambda a: a.seq)

    def _action_row(self, action: Action) -> tuple[Key, _Row]:
        key = _action_key(action.conversation_id, action.turn_id, action.call_id)
        row = self._row(key)
        self._require(row is not None)
        assert row is not None
        return key, row

    def claim_execution(self, action: Action) -> bool:
        def change() -> bool:
            key, row = self._action_row(action)
            current: Action = row.record
            self._require(current.execution is None)
            self._require(
                not current.gated
                or current.verdict in (DecisionStatus.APPROVED, DecisionStatus.MODIFIED)
                or current.grant is not None
            )
            claim = Execution(status=ExecutionStatus.EXECUTING, claimed_at=iso(utc_now()))
            self._update(key, execution=claim)
            return True

        return bool(self._atomically(change))

    def _execution_is(self, row: _Row, status: ExecutionStatus) -> Execution:
        execution = row.record.execution
        self._require(execution is not None and execution.status is status)
        return execution

    def settle_stale_execution(self, action: Action, lease_seconds: int) -> bool:
        stale = iso(utc_now() - timedelta(seconds=lease_seconds))

        def change() -> bool:
            key, row = self._action_row(action)
            execution = self._execution_is(row, ExecutionStatus.EXECUTING)
            self._require(execution.claimed_at is not None and execution.claimed_at < stale)
            outcome = Execution(
                status=ExecutionStatus.FAILED,
                result={"error": "outcome unknown: the run stopped while the tool was being called; not retried"},
                outcome_unknown=True,
            )
            self._update(key, execution=outcome)
            return True

        return bool(self._atomically(change))

    def abandon_action(self, action: Action, why: str) -> bool:
        def change() -> bool:
            key, row = self._action_row(action)
            self._require(row.record.execution is None)
            self._update(key, execution=Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": why}))
            return True

        return bool(self._atomically(change))

    def claim_scheduled_execution(self, action: Action) -> bool:
        now = iso(utc_now())

        def change() -> bool:
            key, row = self._action_row(action)
            execution = self._execution_is(row, ExecutionStatus.SCHEDULED)
            self._require(execution.execute_at is not None and execution.execute_at <= now)
            self._require(row.record.verdict is DecisionStatus.SCHEDULED)
            self._update(key, execution=Execution(status=ExecutionStatus.EXECUTING, claimed_at=now))
            row.due, row.due_at = False, None
            return True

        return bool(self._atomically(change))

    def settle_client_call(self, action: Action, execution: Execution) -> bool:
        return self._move_execution(action, ExecutionStatus.AWAITING_CLIENT, execution)

    def settle_delegated_call(self, action: Action, execution: Execution) -> bool:
        return self._move_execution(action, ExecutionStatus.DELEGATED, execution)

    def finish_execution(self, action: Action, execution: Execution) -> bool:
        return self._move_execution(action, ExecutionStatus.EXECUTING, execution)

    def _move_execution(self, action: Action, current: ExecutionStatus, execution: Execution) -> bool:
        def change() -> bool:
            key, row = self._action_row(action)
            self._execution_is(row, current)
            self._update(key, execution=_stored(execution))
            return True

        return bool(self._atomically(change))

    # -- approvals and verdicts -------------------------------------------------------------
    def _approval_row(self, approval: Approval, due_at: datetime) -> _Row:
        audit = (f"AUDIT#{approval.created_at[:7]}", f"{approval.created_at}#{approval.approval_id}")
        return _Row(approval.model_copy(deep=True), due=True, due_at=iso(due_at), audit=audit)

    def put_approval(self, approval: Approval, due_at: datetime) -> bool:
        key = _approval_key(approval.approval_id)

        def change() -> bool:
            self._require(key not in self._rows)
            self._rows[key] = self._approval_row(approval, due_at)
            return True

        return bool(self._atomically(change))

    def escalate(self, action: Action, expired: Approval, next_rung: Approval, due_at: datetime) -> bool:
        next_key, expired_key = _approval_key(next_rung.approval_id), _approval_key(expired.approval_id)

        def change() -> bool:
            self._require(next_key not in self._rows)
            action_key, row = self._action_row(action)
            self._require(not row.record.verdict_recorded and expired.approval_id in row.record.approval_ids)
            old = self._row(expired_key)
            self._require(old is not None and old.record.state is ApprovalState.SETTLED)
            assert old is not None
            ids = [next_rung.approval_id if i == expired.approval_id else i for i in action.approval_ids]
            self._rows[next_key] = self._approval_row(next_rung, due_at)
            self._update(action_key, approval_ids=ids, decision=None)
            old.extra["escalated_to"] = next_rung.approval_id
            old.due, old.due_at = False, None
            return True

        return bool(self._atomically(change))

    def get_approval(self, approval_id: str) -> Approval | None:
        with self._lock:
            return self._record(_approval_key(approval_id))

    def get_approvals(self, approval_ids: list[str]) -> list[Approval]:
        return [a for a in (self.get_approval(i) for i in approval_ids) if a is not None]

    def attach_decision(
        self, approval: Approval, decision_id: str, expires_at: str | None = None, show_pause: str | None = None
    ) -> bool:
        key = _approval_key(approval.approval_id)
        action_key = _action_key(approval.conversation_id, approval.turn_id, approval.call_id)

        def change() -> bool:
            row, action = self._row(key), self._row(action_key)
            self._require(row is not None and row.record.decision_id is None and action is not None)
            assert row is not None and action is not None
            self._require(row.record.state is ApprovalState.PENDING)
            meta = None
            if show_pause is not None:
                turn = self._turn_in(approval.conversation_id, approval.turn_id, TurnStatus.AWAITING_APPROVAL)
                self._require(turn.record.pause_ref == show_pause and turn.record.pending > 0)
                meta = self._active_turn_meta(approval.conversation_id, approval.turn_id)
            self._update(key, decision_id=decision_id, expires_at=expires_at)
            if action.record.decision is None:
                self._update(action_key, decision=DecisionRef(id=decision_id))
            if meta is not None:
                self._update(meta, status=ConversationStatus.AWAITING_APPROVAL)
            return True

        return bool(self._atomically(change))

    def settle_approval(self, approval: Approval, decision: Decision | None) -> Approval | None:
        key = _approval_key(approval.approval_id)

        def change() -> Approval:
            row = self._row(key)
            self._require(row is not None and row.record.state is ApprovalState.PENDING)
            assert row is not None
            self._update(key, **_settlement(approval.answered(decision)))
            row.due_at = iso(utc_now())  # SET due_at: listed again only while it still has its bucket
            return row.record.model_copy(deep=True)

        return self._atomically(change)

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
        def change() -> bool:
            if any(self._budget_version(w.group_id) != w.version for w in budgets):
                raise BudgetMoved("a budget counter moved since it was read")
            key, row = self._action_row(action)
            self._require(not row.record.verdict_recorded and row.record.execution is None)
            self._require(row.record.approval_ids == action.approval_ids)
            turn = self._turn_in(action.conversation_id, action.turn_id, TurnStatus.AWAITING_APPROVAL)
            self._require(turn.record.pending > 0)
            retired = [self._row(_approval_key(i)) for i in retire]
            self._require(all(r is not None for r in retired))
            if answered is not None:
                answering = self._row(_approval_key(answered.approval_id))
                self._require(answering is not None and answering.record.state is ApprovalState.PENDING)
                assert answering is not None
                self._update(_approval_key(answered.approval_id), **_settlement(answered))
                retired.append(answering)
            for approval_row in retired:
                assert approval_row is not None
                approval_row.due, approval_row.due_at = False, None
            fields: dict[str, Any] = {"decision": decision, "verdict": verdict, "verdict_recorded": True}
            if execution is not None:
                fields["execution"] = _stored(execution)
                if execution.execute_at:
                    row.due, row.due_at = True, execution.execute_at
            if approved_arguments is not None:
                fields["approved_arguments"] = json.loads(json.dumps(approved_arguments))
                fields["approved_digest"] = approved_digest
            if changes is not None:
                fields["changes"] = json.loads(json.dumps(changes))
            self._update(key, **fields)
            self._update(_turn_key(action.conversation_id, action.turn_id), pending=turn.record.pending - 1)
            for write in budgets:
                self._store_budget(write.group_id, write.reservations)
            turn.due, turn.due_at = True, self._stall_due()
            return True

        return bool(self._atomically(change))

    def retire_approval(self, approval_id: str) -> None:
        self._postpone(_approval_key(approval_id), None)

    def postpone_approval(self, approval_id: str, due_at: datetime, *, unreadable: bool = False) -> bool:
        return self._postpone(_approval_key(approval_id), due_at, unreadable=unreadable)

    # -- the reconciler's list --------------------------------------------------------------
    def due_work(self, now: datetime, limit: int = 100) -> DueWork:
        cutoff = iso(now)
        with self._lock:
            due = sorted(
                (
                    (row.due_at, key, row)
                    for key, row in self._rows.items()
                    if row.due and row.due_at and row.due_at <= cutoff
                ),
                key=lambda entry: (entry[0], entry[1]),
            )
            work = DueWork(more=len(due) > limit)
            due = due[:limit]
            for due_at, _key, row in due:
                work.oldest_due_at = work.oldest_due_at or due_at
                record = row.record.model_copy(deep=True)
                {Approval: work.approvals, Turn: work.turns, Action: work.actions}[type(record)].append(record)
        return work

    # -- audit --------------------------------------------------------------------------------
    def list_approvals(self, query: AuditQuery) -> tuple[list[Approval], str | None]:
        months = months_newest_first(query.since, query.until)
        after: str | None = None
        if query.cursor:
            bucket, after = _uncursor(query.cursor)
            if not bucket.startswith("AUDIT#"):
                raise InvalidCursor("cursor is not valid")
            if bucket.removeprefix("AUDIT#") not in months:
                raise InvalidCursor("cursor does not belong to this time range")
        buckets = {f"AUDIT#{m}" for m in months}
        low, high = iso(query.since), iso(query.until) + "~"
        with self._lock:
            entries = sorted(
                (
                    (row.audit[1], row.record.model_copy(deep=True))
                    for row in self._rows.values()
                    if row.audit and row.audit[0] in buckets and low <= row.audit[1] <= high
                ),
                key=lambda entry: entry[0],
                reverse=True,
            )
        matching = [(at, a) for at, a in entries if (after is None or at < after) and _matches(a, query)]
        page = matching[: query.limit]
        more = len(matching) > query.limit
        cursor = _cursor(f"AUDIT#{page[-1][1].created_at[:7]}", page[-1][0]) if more else None
        return [a for _at, a in page], cursor

    def calls_between(self, tenant: str, since: datetime, until: datetime, most: int) -> list[Action]:
        buckets = {f"CALLS#{tenant}#{m}" for m in months_newest_first(since, until)}
        low, high = iso(since), iso(until) + "~"
        with self._lock:
            entries = sorted(
                (row.audit[1], row.record.model_copy(deep=True))
                for row in self._rows.values()
                if row.audit and row.audit[0] in buckets and low <= row.audit[1] <= high
            )
        return [action for _at, action in entries][:most]

    # -- budgets ------------------------------------------------------------------------------
    def _budget(self, group_id: str) -> dict[str, dict[str, str]]:
        row = self._row((f"BUDGET#{group_id}", "BUDGET"))
        return dict(row.record) if row else {}

    def _store_budget(self, group_id: str, reservations: dict) -> None:
        """The group's new reservations, its counter's version one up (as the table's counter)."""
        key = (f"BUDGET#{group_id}", "BUDGET")
        old = self._row(key)
        self._rows[key] = _Row(reservations, extra={"version": (old.extra["version"] if old else 0) + 1})

    def budget_state(self, group_id: str) -> tuple[dict[str, dict[str, str]], int]:
        with self._lock:
            return self._budget(group_id), self._budget_version(group_id)

    def _budget_version(self, group_id: str) -> int:
        row = self._row((f"BUDGET#{group_id}", "BUDGET"))
        return row.extra["version"] if row else 0

    def budget_total(self, charge: BudgetCharge, now: datetime) -> Decimal:
        with self._lock:
            return live_total(self._budget(charge.group_id), now, charge.budget.window())

    def reserve_budget(self, charge: BudgetCharge, call_key: str, now: datetime, enforce_limit: bool) -> Reservation:
        with self._lock:
            reservation, changed = reserve(self._budget(charge.group_id), charge, call_key, now, enforce_limit)
            if changed is not None:
                self._store_budget(charge.group_id, changed)
                self.writes += 1
            return reservation

    def release_budget(self, charge: BudgetCharge, call_key: str, now: datetime) -> bool:
        with self._lock:
            changed = release(self._budget(charge.group_id), charge, call_key, now)
            if changed is None:
                return False
            self._store_budget(charge.group_id, changed)
            self.writes += 1
            return True

    # -- standing approvals -------------------------------------------------------------------
    def put_grant(self, grant: Grant) -> bool:
        key = _grant_key(grant.grant_id)

        def change() -> bool:
            self._require(key not in self._rows)
            self._rows[key] = _Row(
                grant.model_copy(deep=True), audit=("GRANTS", f"{grant.created_at}#{grant.grant_id}")
            )
            return True

        return bool(self._atomically(change))

    def get_grant(self, grant_id: str) -> Grant | None:
        if not _GRANT_ID.fullmatch(grant_id):
            return None
        with self._lock:
            return self._record(_grant_key(grant_id))

    def grants_for_scope(self, tenant: str, tool: str, scope: dict[str, str]) -> list[Grant]:
        with self._lock:
            pk = f"GRANTSCOPE#{scope_hash(tenant, tool, scope)}"
            return [row.record.model_copy(deep=True) for _key, row in self._partition(pk, "GRANT#")]

    def take_grant_use(self, grant: Grant, use: GrantUse, now: datetime) -> int | None:
        key = _grant_key(grant.grant_id)

        def change() -> int:
            row = self._row(key)
            self._require(row is not None)
            assert row is not None
            current: Grant = row.record
            self._require(current.uses_left > 0 and current.expires_at > iso(now) and current.revoked_at is None)
            self._update(key, uses_left=current.uses_left - 1, uses=[*current.uses, use.model_copy()])
            return current.uses_left - 1

        return self._atomically(change)

    def revoke_grant(self, tenant: str, grant_id: str, by: str, now: datetime) -> bool:
        if not _GRANT_ID.fullmatch(grant_id):
            return False
        key = _grant_key(grant_id)

        def change() -> bool:
            row = self._row(key)
            self._require(row is not None and row.record.tenant == tenant and row.record.revoked_at is None)
            self._update(key, revoked_at=iso(now), revoked_by=by)
            return True

        return bool(self._atomically(change))

    def list_grants(self, tenant: str, limit: int, cursor: str | None) -> tuple[list[Grant], str | None]:
        after: str | None = None
        if cursor:
            bucket, after = _uncursor(cursor)
            if bucket != "GRANTS":
                raise InvalidCursor("cursor is not valid")
        with self._lock:
            entries = sorted(
                ((row.audit[1], row.record) for row in self._rows.values() if row.audit and row.audit[0] == "GRANTS"),
                key=lambda entry: entry[0],
                reverse=True,
            )
            mine = [
                (at, g.model_copy(deep=True))
                for at, g in entries
                if g.tenant == tenant and (after is None or at < after)
            ]
        page = mine[:limit]
        return [g for _at, g in page], _cursor("GRANTS", page[-1][0]) if len(mine) > limit else None

    # -- receipts -----------------------------------------------------------------------------
    def finish_with_receipt(
        self,
        action: Action,
        execution: Execution,
        jws: str,
        resume_pause: str | None = None,
        from_status: ExecutionStatus = ExecutionStatus.EXECUTING,
    ) -> bool:
        pk = f"RECEIPTS#{action.tenant}"

        def change() -> bool:
            key, row = self._action_row(action)
            self._execution_is(row, from_status)
            if resume_pause is not None:
                try:
                    turn = self._turn_in(action.conversation_id, action.turn_id, TurnStatus.AWAITING_APPROVAL)
                    self._require(turn.record.pause_ref == resume_pause and turn.record.pending == 0)
                    meta = self._active_turn_meta(action.conversation_id, action.turn_id)
                except _Refused:
                    raise ResumeRefused("the turn's resume was not this write's to claim") from None
                self._update(_turn_key(action.conversation_id, action.turn_id), status=TurnStatus.RUNNING)
                turn.due, turn.due_at = True, self._lease_due()
                self._update(meta, status=ConversationStatus.RUNNING)
            self._update(key, execution=_stored(execution), receipt=jws)
            now = iso(utc_now())
            call = f"{action.conversation_id}:{action.turn_id}:{action.call_id}"
            self._rows[(pk, f"QUEUED#{now}#{call}")] = _Row({"jws": jws})
            return True

        return bool(self._atomically(change))

    def receipt_log(self, tenant: str) -> LogHead:
        with self._lock:
            row = self._row((f"RECEIPTS#{tenant}", "LOG"))
            return row.record if row else LogHead()

    def tenants_with_queued_receipts(self, limit: int) -> list[str]:
        with self._lock:
            found = {k[0].removeprefix("RECEIPTS#") for k in self._rows if k[1].startswith("QUEUED#")}
        return sorted(found)[:limit]

    def queued_receipts(self, tenant: str, limit: int) -> list[PendingReceipt]:
        with self._lock:
            rows = list(self._partition(f"RECEIPTS#{tenant}", "QUEUED#"))[:limit]
        return [PendingReceipt(jws=row.record["jws"], key=key[1]) for key, row in rows]

    def chain_receipts(self, tenant: str, after_seq: int, limit: int) -> list[PendingReceipt]:
        with self._lock:
            rows = list(self._partition(f"RECEIPTS#{tenant}", "SEQ#"))
        chain = [(int(key[1].removeprefix("SEQ#")), row.record["jws"]) for key, row in rows]
        return [PendingReceipt(jws=jws, chain_seq=seq) for seq, jws in chain if seq > after_seq][:limit]

    def append_to_log(self, tenant: str, old: LogHead, new: LogHead, entries: list[LogEntry], checkpoint: str) -> bool:
        pk = f"RECEIPTS#{tenant}"

        def change() -> bool:
            self._require(self.receipt_log(tenant) == old)
            for entry in entries:
                self._require((pk, f"LEAF#{entry.index:012d}") not in self._rows)
                self._require(entry.receipt.key is None or (pk, entry.receipt.key) in self._rows)
            self._require((pk, f"CHECKPOINT#{new.size:012d}") not in self._rows)
            for entry in entries:
                self._rows[(pk, f"LEAF#{entry.index:012d}")] = _Row({"jws": entry.receipt.jws, "nodes": entry.nodes})
                if entry.receipt.key is not None:
                    del self._rows[(pk, entry.receipt.key)]
            self._rows[(pk, "LOG")] = _Row(new)
            self._rows[(pk, f"CHECKPOINT#{new.size:012d}")] = _Row({"jws": checkpoint})
            return True

        return bool(self._atomically(change))

    def list_log(self, tenant: str, after: int, limit: int) -> tuple[list[tuple[int, str]], int | None]:
        limit = max(1, min(limit, MAX_RECEIPT_PAGE))
        chain_mode = self.receipt_log(tenant).size == 0
        prefix, offset = ("SEQ#", 1) if chain_mode else ("LEAF#", 0)
        with self._lock:
            rows = [
                (int(key[1].removeprefix(prefix)) - offset, row.record["jws"])
                for key, row in self._partition(f"RECEIPTS#{tenant}", prefix)
            ]
        after_rows = [(index, jws) for index, jws in rows if index >= after]
        page = after_rows[:limit]
        return page, (page[-1][0] + 1 if len(after_rows) > limit else None)

    def list_checkpoints(self, tenant: str, after_size: int, limit: int) -> tuple[list[str], int | None]:
        limit = max(1, min(limit, MAX_RECEIPT_PAGE))
        with self._lock:
            rows = [
                (int(key[1].removeprefix("CHECKPOINT#")), row.record["jws"])
                for key, row in self._partition(f"RECEIPTS#{tenant}", "CHECKPOINT#")
            ]
        later = [(size, jws) for size, jws in rows if size > after_size]
        page = later[:limit]
        return [jws for _, jws in page], (page[-1][0] if len(later) > limit else None)

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        with self._lock:
            row = self._row((f"RECEIPTS#{tenant}", f"CHECKPOINT#{size:012d}"))
            return row.record["jws"] if row else None

    def log_entry(self, tenant: str, index: int) -> str | None:
        with self._lock:
            row = self._row((f"RECEIPTS#{tenant}", f"LEAF#{index:012d}"))
            return row.record["jws"] if row else None

    def log_nodes(self, tenant: str, nodes: set[Node]) -> dict[Node, bytes]:
        found = {}
        with self._lock:
            for level, index in nodes:
                row = self._row((f"RECEIPTS#{tenant}", f"LEAF#{((index + 1) << level) - 1:012d}"))
                if row is not None and level in row.record["nodes"]:
                    found[(level, index)] = row.record["nodes"][level]
        return found

    # -- demo tools' effects (the EffectLog port) -----------------------------------------------
    def record_effect(self, key: str, tool: str, arguments: dict[str, Any], result: dict[str, Any]) -> dict:
        with self._lock:
            row = self._rows.setdefault(
                (f"EFFECT#{key}", "EFFECT"), _Row({"tool": tool, "result": result, "invocations": 0})
            )
            row.record["invocations"] += 1
            self.writes += 1
            return row.record["result"]


def _stored(execution: Execution) -> Execution:
    """An execution as DynamoDB gives it back: its result through JSON (no tuples, no custom types)."""
    return Execution.model_validate(json.loads(json.dumps(execution.model_dump(mode="json", exclude_none=True))))


def _matches(approval: Approval, query: AuditQuery) -> bool:
    if approval.tenant != query.tenant:
        return False
    if query.status == "pending":
        ok = approval.state is ApprovalState.PENDING
    elif query.status == "not_requested":
        ok = approval.state is ApprovalState.SETTLED and approval.outcome is None
    elif query.status:
        ok = approval.outcome is not None and approval.outcome.value == query.status
    else:
        ok = True
    return (
        ok
        and (query.tool is None or approval.tool == query.tool)
        and (query.conversation_id is None or approval.conversation_id == query.conversation_id)
    )
