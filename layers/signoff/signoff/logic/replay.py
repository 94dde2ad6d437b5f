"""PolicyReplay: what a candidate approval policy would have done to the calls already recorded.

Nothing runs and nothing is written: the recorded calls of a time range (in the order they were
made) are gated again under the candidate, its budgets are charged in memory, and the differences
from what happened are counted, per tool and in total, with each approver's load per day.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from signoff import deadline
from signoff.domain.budgets import UnreadableCharge, charge_for
from signoff.domain.models import Action, DecisionStatus, ExecutionStatus
from signoff.domain.policy import ApprovalPolicy
from signoff.logic.audit import time_range

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore
    from signoff.domain.tools import ToolRegistry

MAX_REPLAYED_CALLS = 20_000

COUNTERS = (
    "calls",
    "gated_now",
    "gated_under_candidate",
    "approvals_no_longer_asked",
    "ran_ungated_would_need_sign_off",
    "budget_hits",
)


# A replay stops after this long (or sooner, as its invocation's time runs out) and answers with what
# it covered: one request never holds the client API until its timeout.
REPLAY_SECONDS = 10.0


class PolicyReplay:
    def __init__(
        self,
        table: SignoffStore,
        tools: ToolRegistry,
        default_approver: str,
        time_budget_seconds: float = REPLAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._table = table
        self._tools = tools
        self._default_approver = default_approver
        self._budget = time_budget_seconds
        self._clock = clock

    def simulate(
        self, candidate: ApprovalPolicy, *, since: datetime | None, until: datetime | None, tenant: str
    ) -> dict[str, Any]:
        since, until = time_range(since, until)
        calls = self._table.calls_between(tenant, since, until, MAX_REPLAYED_CALLS + 1)
        truncated = len(calls) > MAX_REPLAYED_CALLS
        calls = sorted(calls[:MAX_REPLAYED_CALLS], key=lambda a: a.created_at)
        per_tool: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        load: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        budgets = _BudgetLedger(candidate)
        stop_at = self._clock() + max(0.0, min(self._budget, deadline.remaining() - 3))
        covered, out_of_time = 0, False
        for action in calls:
            if self._clock() >= stop_at:
                out_of_time = True
                break
            covered += 1
            counts = per_tool[action.tool]
            counts["calls"] += 1
            gated_now = action.gated
            gated_then = self._gated_under(candidate, action)
            if not gated_then:  # would run unasked: its budgets may ask (or refuse)
                hit = budgets.charge(action, signed_off=False)
                counts["budget_hits"] += hit
                gated_then = hit
            elif _approved(action):  # asked then too, and it was signed off: it counts on its budgets
                counts["budget_hits"] += budgets.charge(action, signed_off=True)
            counts["gated_now"] += gated_now
            counts["gated_under_candidate"] += gated_then
            counts["approvals_no_longer_asked"] += gated_now and not gated_then
            counts["ran_ungated_would_need_sign_off"] += (not gated_now) and _ran(action) and gated_then
            if gated_then:
                approvers, _ = candidate.approvers(action.tool, self._default_approver)
                for approver in approvers:
                    load[approver][action.created_at[:10]] += 1
        total = {name: sum(c[name] for c in per_tool.values()) for name in COUNTERS}
        return {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "total": total,
            "tools": {tool: counts for tool, counts in sorted(per_tool.items())},
            "approver_load_per_day": {a: dict(sorted(days.items())) for a, days in sorted(load.items())},
            "truncated": truncated or out_of_time,
            "truncated_by": "time" if out_of_time else "calls" if truncated else None,
            "covered_calls": covered,
            # The last call replayed: a range that stopped short goes on with since = this.
            "covered_until": calls[covered - 1].created_at if covered else None,
        }

    def _gated_under(self, candidate: ApprovalPolicy, action: Action) -> bool:
        spec = self._tools.get(action.tool)
        if spec is not None and spec.is_sign_off_request:
            return True
        return candidate.requires_approval(action.tool, action.arguments)


def _ran(action: Action) -> bool:
    return action.execution is not None and action.execution.status in (
        ExecutionStatus.EXECUTED,
        ExecutionStatus.AWAITING_CLIENT,
    )


def _approved(action: Action) -> bool:
    return action.verdict in (DecisionStatus.APPROVED, DecisionStatus.MODIFIED) or action.grant is not None


class _BudgetLedger:
    """The candidate's budgets, charged in memory in the order the calls were made."""

    def __init__(self, policy: ApprovalPolicy):
        self._policy = policy
        self._spent: dict[tuple[str, str], list[tuple[datetime, Decimal]]] = defaultdict(list)

    def charge(self, action: Action, *, signed_off: bool) -> bool:
        """Whether the call hits one of its budgets, as Signoff admits calls: one that would run
        unasked hits when it takes a budget over its limit (it would need sign-off, or be refused
        by a hard cap) and is not counted; a signed-off call counts even over the limit, and hits
        only a hard cap."""
        at = datetime.fromisoformat(action.created_at.replace("Z", "+00:00"))
        hit = False
        for budget in self._policy.budgets_for(action.tool):
            try:
                charge = charge_for(budget, action.arguments_to_run, action.tenant)
            except UnreadableCharge:
                hit = hit or not signed_off  # a budget that cannot read the call asks for sign-off
                continue
            entries = self._spent[(budget.name, charge.group_id)]
            window_start = at - timedelta(hours=budget.window_hours)
            entries[:] = [(t, amount) for t, amount in entries if t > window_start]
            over = sum((amount for _, amount in entries), Decimal(0)) + charge.amount > budget.limit
            if over and (budget.hard or not signed_off):
                hit = True
            else:
                entries.append((at, charge.amount))
        return hit
