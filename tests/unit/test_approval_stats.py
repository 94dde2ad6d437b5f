"""Time to decision and outcome shares, against a hand calculation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signoff.domain.models import Approval, ApprovalState, DecisionStatus, iso
from signoff.logic.audit import ApprovalStats, percentile

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _approval(n: int, tool: str, approver: str, outcome: str | None, seconds: float | None) -> Approval:
    return Approval(
        approval_id=f"ap{n}",
        conversation_id="conv",
        turn_id="turn",
        call_id=f"call{n}",
        tool=tool,
        digest="d",
        approver=approver,
        state=ApprovalState.PENDING if outcome == "pending" else ApprovalState.SETTLED,
        outcome=DecisionStatus(outcome) if outcome not in (None, "pending") else None,
        created_at=iso(T0),
        resolved_at=iso(T0 + timedelta(seconds=seconds)) if seconds is not None else None,
    )


class PagedTable:
    """The audit query as the table answers it: pages of two, a cursor until the end."""

    def __init__(self, approvals):
        self.approvals = approvals
        self.queries = []

    def list_approvals(self, query):
        self.queries.append(query)
        start = int(query.cursor or 0)
        page = self.approvals[start : start + 2]
        more = start + 2 < len(self.approvals)
        return page, str(start + 2) if more else None


def test_percentiles_are_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 21)], 95) == 19.0
    assert percentile([10.0, 1.0, 7.0], 50) == 7.0


def test_stats_group_by_tool_and_approver_with_hand_calculated_figures():
    approvals = [
        _approval(1, "issue_refund", "maria", "approved", 60),
        _approval(2, "issue_refund", "maria", "approved", 120),
        _approval(3, "issue_refund", "maria", "denied", 600),
        _approval(4, "issue_refund", "maria", "expired", 3600),  # not an answer: no time to decision
        _approval(5, "issue_refund", "maria", "modified", 30),
        _approval(6, "issue_refund", "maria", "pending", None),
        _approval(7, "issue_refund", "maria", None, None),  # could not be asked
        _approval(8, "issue_refund", "lee", "denied", 10),
        _approval(9, "delete_customer_data", "maria", "approved", 5),
    ]
    table = PagedTable(approvals)
    stats = ApprovalStats(table).compute(
        since=T0 - timedelta(days=1), until=T0 + timedelta(days=1), tool=None, approver=None, tenant="acme"
    )
    groups = {(g["tool"], g["approver"]): g for g in stats["groups"]}
    maria = groups[("issue_refund", "maria")]
    assert maria["decisions"] == 5 and maria["pending"] == 1 and maria["not_requested"] == 1
    assert maria["shares"] == {"approved": 0.4, "denied": 0.2, "modified": 0.2, "expired": 0.2}
    # answered: 30, 60, 120, 600 → p50 = 2nd = 60, p95 = 4th = 600
    assert maria["time_to_decision_seconds"] == {"p50": 60.0, "p95": 600.0}
    assert groups[("issue_refund", "lee")]["shares"]["denied"] == 1.0
    assert groups[("delete_customer_data", "maria")]["time_to_decision_seconds"] == {"p50": 5.0, "p95": 5.0}
    assert stats["truncated"] is False
    assert len(table.queries) == 5 and {q.tenant for q in table.queries} == {"acme"}  # every page, one tenant


def test_stats_for_one_approver_leave_the_others_out():
    table = PagedTable([_approval(1, "t", "maria", "approved", 1), _approval(2, "t", "lee", "denied", 2)])
    stats = ApprovalStats(table).compute(since=None, until=None, tool="t", approver="lee", tenant="acme")
    assert [(g["approver"], g["decisions"]) for g in stats["groups"]] == [("lee", 1)]
    assert table.queries[0].tool == "t"
