"""AuditTrail: who approved what, when, with which notes, for which arguments, and what ran."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from signoff.domain.models import Action, Approval, ApprovalState, utc_now

if TYPE_CHECKING:
    from signoff.dal.table import SignoffTable

MAX_RANGE = timedelta(days=366)
DEFAULT_RANGE = timedelta(days=30)


class InvalidAuditQuery(ValueError):
    pass


class AuditTrail:
    def __init__(self, table: SignoffTable):
        self._table = table

    def list(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        status: str | None,
        tool: str | None,
        conversation_id: str | None,
        limit: int,
        cursor: str | None,
        tenant: str = "default",
    ) -> dict[str, Any]:
        from signoff.dal.audit import AuditQuery, InvalidCursor

        until = until or utc_now()
        since = since or until - DEFAULT_RANGE
        if since > until:
            raise InvalidAuditQuery("since must be before until")
        if until - since > MAX_RANGE:
            raise InvalidAuditQuery("the time range may span at most 366 days")
        query = AuditQuery(since, until, status, tool, conversation_id, limit, cursor, tenant)
        try:
            approvals, next_cursor = self._table.list_approvals(query)
        except InvalidCursor as exc:
            raise InvalidAuditQuery(str(exc)) from exc
        actions: dict[tuple[str, str, str], Action | None] = {}
        for approval in approvals:
            key = (approval.conversation_id, approval.turn_id, approval.call_id)
            if key not in actions:
                actions[key] = self._table.get_action(*key)
        return {
            "approvals": [_entry(a, actions[(a.conversation_id, a.turn_id, a.call_id)]) for a in approvals],
            "next_cursor": next_cursor,
        }


def _entry(approval: Approval, action: Action | None) -> dict[str, Any]:
    if approval.state is ApprovalState.PENDING:
        status = "pending"
    else:
        status = approval.outcome.value if approval.outcome else "not_requested"
    execution = None
    if action is not None and action.execution is not None and action.execution.status.is_final:
        execution = {"status": action.execution.status.value, "result": action.execution.result}
    return {
        "approval_id": approval.approval_id,
        "tenant": approval.tenant,
        "conversation_id": approval.conversation_id,
        "call_id": approval.call_id,
        "tool": approval.tool,
        "action": approval.summary,
        "arguments_digest": approval.digest,
        "approver": approval.approver,
        "decision_id": approval.decision_id,
        "status": status,
        "resolved_by": approval.resolved_by,
        "notes": approval.notes,
        "resolved_at": approval.resolved_at if approval.state is ApprovalState.SETTLED else None,
        "created_at": approval.created_at,
        "verdict": action.verdict.value if action is not None and action.verdict else None,
        "arguments_used": action.arguments_to_run if action is not None else None,
        "execution": execution,
    }
