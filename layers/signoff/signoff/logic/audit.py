"""AuditTrail: who approved what, when, with which notes, for which arguments, and what ran."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from signoff.domain.models import Action, Approval, ApprovalState, parse_iso, utc_now

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore

MAX_RANGE = timedelta(days=366)
DEFAULT_RANGE = timedelta(days=30)


class InvalidAuditQuery(ValueError):
    pass


def time_range(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The range a query covers: the last 30 days by default, at most 366 days, in order."""
    until = until or utc_now()
    since = since or until - DEFAULT_RANGE
    if since > until:
        raise InvalidAuditQuery("since must be before until")
    if until - since > MAX_RANGE:
        raise InvalidAuditQuery("the time range may span at most 366 days")
    return since, until


class AuditTrail:
    def __init__(self, table: SignoffStore):
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
        from signoff.domain.stores import AuditQuery, InvalidCursor

        since, until = time_range(since, until)
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
        execution = action.execution.view()
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
        "receipt": action.receipt if action is not None else None,
    }


MAX_STATS_APPROVALS = 10_000  # approvals read per stats request; beyond, the answer says "truncated"
ANSWERED = ("approved", "denied", "modified", "scheduled", "escalated")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100): a value that was observed, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return round(ordered[int(rank) - 1], 3)


class ApprovalStats:
    """Per tool and approver: how many decisions, how they went, and how long approvers took."""

    def __init__(self, table: SignoffStore):
        self._table = table

    def compute(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        tool: str | None,
        approver: str | None,
        tenant: str,
    ) -> dict[str, Any]:
        from signoff.domain.stores import AuditQuery

        since, until = time_range(since, until)
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        cursor: str | None = None
        read = 0
        while True:
            page, cursor = self._table.list_approvals(AuditQuery(since, until, None, tool, None, 200, cursor, tenant))
            read += len(page)
            for approval in page:
                if approver is None or approval.approver == approver:
                    _count(groups, approval)
            if cursor is None or read >= MAX_STATS_APPROVALS:
                break
        return {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "groups": [_summary(tool_name, who, data) for (tool_name, who), data in sorted(groups.items())],
            "truncated": cursor is not None,
        }


def _count(groups: dict[tuple[str, str], dict[str, Any]], approval: Approval) -> None:
    data = groups.setdefault((approval.tool, approval.approver), {"outcomes": {}, "seconds": [], "pending": 0})
    if approval.state is ApprovalState.PENDING:
        data["pending"] += 1
        return
    outcome = approval.outcome.value if approval.outcome else "not_requested"
    data["outcomes"][outcome] = data["outcomes"].get(outcome, 0) + 1
    if outcome in ANSWERED and approval.resolved_at:
        began = parse_iso(approval.created_at)
        ended = parse_iso(approval.resolved_at)
        if began and ended:
            data["seconds"].append(max(0.0, (ended - began).total_seconds()))


def _summary(tool: str, approver: str, data: dict[str, Any]) -> dict[str, Any]:
    outcomes: dict[str, int] = data["outcomes"]
    decisions = sum(n for outcome, n in outcomes.items() if outcome != "not_requested")
    shares = {
        outcome: round(outcomes.get(outcome, 0) / decisions, 4) if decisions else 0.0
        for outcome in ("approved", "denied", "modified", "expired")
    }
    return {
        "tool": tool,
        "approver": approver,
        "decisions": decisions,
        "pending": data["pending"],
        "not_requested": outcomes.get("not_requested", 0),
        "shares": shares,
        "time_to_decision_seconds": {"p50": percentile(data["seconds"], 50), "p95": percentile(data["seconds"], 95)},
    }
