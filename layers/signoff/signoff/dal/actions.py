"""ActionRecords: the tool calls of a pause and their executions (claimed once, finished once)."""

from __future__ import annotations

from datetime import timedelta

from signoff.dal.base import TableBase, _conv_pk, _key, _record
from signoff.dal.codec import to_item
from signoff.domain.canonical import canonical_json
from signoff.domain.models import Action, Execution, ExecutionStatus, iso, utc_now


class ActionRecords(TableBase):
    # -- actions and executions ------------------------------------------------------------
    def put_action(self, action: Action) -> bool:
        """Write a tool call once; a redelivered pause finds it already there and keeps it."""
        item = {
            "pk": _conv_pk(action.conversation_id),
            "sk": f"ACTION#{action.call_id}",
            "type": "action",
            "ttl": self._expiry(),
        }
        item.update(action.model_dump(mode="json"))
        # Stored as canonical JSON text: numbers keep their spelling, so the digest still matches on read.
        item["arguments"] = canonical_json(action.arguments)
        return self._put_new(to_item(item))

    def get_action(self, conversation_id: str, call_id: str) -> Action | None:
        data = self._get(_key(_conv_pk(conversation_id), f"ACTION#{call_id}"))
        return _record(data) if data else None

    def list_actions(self, conversation_id: str, turn_id: str) -> list[Action]:
        actions = [
            _record(item)
            for item in self._query_partition(_conv_pk(conversation_id))
            if item.get("type") == "action" and item.get("turn_id") == turn_id
        ]
        return sorted(actions, key=lambda a: a.seq)

    def claim_execution(self, conversation_id: str, call_id: str, lease_seconds: int) -> bool:
        """No execution yet (or a claim whose lease ran out) → executing. One winner."""
        now = utc_now()
        return self._update(
            _key(_conv_pk(conversation_id), f"ACTION#{call_id}"),
            "SET execution = :claim",
            "attribute_exists(pk) AND (attribute_not_exists(execution) OR "
            "(execution.#s = :executing AND execution.claimed_at < :stale)) "
            # A gated call only ever runs after a verdict that lets it (defence in depth).
            "AND (gated = :false OR verdict IN (:approved, :modified))",
            {
                ":claim": {"status": ExecutionStatus.EXECUTING, "claimed_at": iso(now)},
                ":executing": ExecutionStatus.EXECUTING,
                ":stale": iso(now - timedelta(seconds=lease_seconds)),
                ":false": False,
                ":approved": "approved",
                ":modified": "modified",
            },
            {"#s": "status"},
        )

    def claim_scheduled_execution(self, conversation_id: str, call_id: str) -> bool:
        """scheduled → executing, and only once its time has come (never before ``execute_at``)."""
        now = iso(utc_now())
        return self._update(
            _key(_conv_pk(conversation_id), f"ACTION#{call_id}"),
            "SET execution = :claim REMOVE due_bucket, due_at",
            "execution.#s = :scheduled AND execution.execute_at <= :now AND verdict = :scheduled",
            {
                ":claim": {"status": ExecutionStatus.EXECUTING, "claimed_at": now},
                ":scheduled": ExecutionStatus.SCHEDULED,
                ":now": now,
            },
            {"#s": "status"},
        )

    def finish_execution(self, conversation_id: str, call_id: str, execution: Execution) -> bool:
        """executing → executed | failed | not_executed."""
        return self._update(
            _key(_conv_pk(conversation_id), f"ACTION#{call_id}"),
            "SET execution = :done",
            "execution.#s = :executing",
            {
                ":done": execution.model_dump(mode="json", exclude_none=True),
                ":executing": ExecutionStatus.EXECUTING,
            },
            {"#s": "status"},
        )
