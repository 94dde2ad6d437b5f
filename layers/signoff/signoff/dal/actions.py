"""ActionRecords: the tool calls of a pause and their executions (claimed once, finished once)."""

from __future__ import annotations

from datetime import timedelta

from signoff.dal.base import TableBase, _action_key, _conv_pk, _record
from signoff.dal.codec import to_item
from signoff.domain.canonical import canonical_json
from signoff.domain.models import Action, Execution, ExecutionStatus, iso, utc_now


def calls_bucket(tenant: str, month: str) -> str:
    return f"CALLS#{tenant}#{month}"


class ActionRecords(TableBase):
    """Actions are keyed by turn and call id: an agent API that reuses call ids across turns
    (``call_0`` every time) still gets a new action for each turn's call."""

    # -- actions and executions ------------------------------------------------------------
    def put_action(self, action: Action) -> bool:
        """Write a tool call once; a redelivered pause finds it already there and keeps it."""
        return self._put_new(self._action_item(action))

    def _action_item(self, action: Action) -> dict:
        item = {
            "pk": _conv_pk(action.conversation_id),
            "sk": _action_key(action.conversation_id, action.turn_id, action.call_id)["sk"]["S"],
            "type": "action",
            "ttl": self._expiry(),
            # Listed by time per tenant (audit index): what a policy replay reads back.
            "audit_bucket": calls_bucket(action.tenant, action.created_at[:7]),
            "audit_at": f"{action.created_at}#{action.call_id}",
        }
        item.update(action.model_dump(mode="json"))
        # Stored as canonical JSON text: numbers keep their spelling, so the digest still matches on read.
        item["arguments"] = canonical_json(action.arguments)
        return to_item(item)

    def get_action(self, conversation_id: str, turn_id: str, call_id: str) -> Action | None:
        data = self._get(_action_key(conversation_id, turn_id, call_id))
        return _record(data) if data else None

    def list_actions(self, conversation_id: str, turn_id: str) -> list[Action]:
        """The calls of one turn, read from that turn's slice of the partition only."""
        actions = [_record(item) for item in self._query_prefix(_conv_pk(conversation_id), f"ACTION#{turn_id}#")]
        return sorted(actions, key=lambda a: a.seq)

    def claim_execution(self, action: Action) -> bool:
        """No execution yet → executing. One winner; a call is never claimed twice, so it never runs twice."""
        return self._update(
            _action_key(action.conversation_id, action.turn_id, action.call_id),
            "SET execution = :claim",
            "attribute_exists(pk) AND attribute_not_exists(execution) "
            # A gated call only runs after a verdict that lets it, or under a grant (defence in depth).
            "AND (gated = :false OR verdict IN (:approved, :modified) OR attribute_exists(#grant))",
            {
                ":claim": {"status": ExecutionStatus.EXECUTING, "claimed_at": iso(utc_now())},
                ":false": False,
                ":approved": "approved",
                ":modified": "modified",
            },
            {"#grant": "grant"},
        )

    def settle_stale_execution(self, action: Action, lease_seconds: int) -> bool:
        """executing past its lease → failed, outcome unknown. The invocation that claimed the call
        died somewhere between the claim and the record of what the tool did: the tool may have run,
        so it is never run again (at most once); the model and the client are told."""
        now = utc_now()
        outcome = Execution(
            status=ExecutionStatus.FAILED,
            result={"error": "outcome unknown: the run stopped while the tool was being called; not retried"},
            outcome_unknown=True,
        )
        return self._update(
            _action_key(action.conversation_id, action.turn_id, action.call_id),
            "SET execution = :done",
            "execution.#s = :executing AND execution.claimed_at < :stale",
            {
                ":done": outcome.model_dump(mode="json", exclude_none=True),
                ":executing": ExecutionStatus.EXECUTING,
                ":stale": iso(now - timedelta(seconds=lease_seconds)),
            },
            {"#s": "status"},
        )

    def abandon_action(self, action: Action, why: str) -> bool:
        """A call that has not started (no execution) → not executed, for good: its turn ended
        without it. A late verdict can no longer be recorded, so it can never run."""
        outcome = Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": why})
        return self._update(
            _action_key(action.conversation_id, action.turn_id, action.call_id),
            "SET execution = :done",
            "attribute_exists(pk) AND attribute_not_exists(execution)",
            {":done": outcome.model_dump(mode="json", exclude_none=True)},
        )

    def claim_scheduled_execution(self, action: Action) -> bool:
        """scheduled → executing, and only once its time has come (never before ``execute_at``)."""
        now = iso(utc_now())
        return self._update(
            _action_key(action.conversation_id, action.turn_id, action.call_id),
            "SET execution = :claim REMOVE due_bucket, due_at",
            "execution.#s = :scheduled AND execution.execute_at <= :now AND verdict = :scheduled",
            {
                ":claim": {"status": ExecutionStatus.EXECUTING, "claimed_at": now},
                ":scheduled": ExecutionStatus.SCHEDULED,
                ":now": now,
            },
            {"#s": "status"},
        )

    def settle_client_call(self, action: Action, execution: Execution) -> bool:
        """awaiting_client → executed (its result) | failed (overdue): one writer wins."""
        return self._move_execution(action, ExecutionStatus.AWAITING_CLIENT, execution)

    def settle_delegated_call(self, action: Action, execution: Execution) -> bool:
        """delegated (a hosted MCP call OpenAI runs) → executed | failed, as OpenAI reports it: once."""
        return self._move_execution(action, ExecutionStatus.DELEGATED, execution)

    def finish_execution(self, action: Action, execution: Execution) -> bool:
        """executing → executed | failed | not_executed | awaiting_client."""
        return self._move_execution(action, ExecutionStatus.EXECUTING, execution)

    def _move_execution(self, action: Action, current: ExecutionStatus, execution: Execution) -> bool:
        return self._update(
            _action_key(action.conversation_id, action.turn_id, action.call_id),
            "SET execution = :done",
            "execution.#s = :current",
            {":done": execution.model_dump(mode="json", exclude_none=True), ":current": current},
            {"#s": "status"},
        )
