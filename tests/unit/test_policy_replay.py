"""Policy replay against a hand calculation: gated now vs then, approvals no longer asked, calls that
ran unasked but would now need sign-off, budget hits, approver load per day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signoff.domain.models import Action, DecisionStatus, Execution, ExecutionStatus
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.tools import ToolRegistry
from signoff.logic.replay import PolicyReplay

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _call(n, tool, arguments, gated, verdict=None, ran=True, hours=0):
    return Action(
        conversation_id="conv",
        turn_id="turn",
        call_id=f"call{n}",
        seq=0,
        tool=tool,
        arguments=arguments,
        digest="d",
        gated=gated,
        created_at=(T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z"),
        verdict=DecisionStatus(verdict) if verdict else None,
        execution=Execution(status=ExecutionStatus.EXECUTED if ran else ExecutionStatus.NOT_EXECUTED),
    )


def _refund(amount):
    return {"customer_id": "c1", "amount": amount, "currency": "EUR"}


CALLS = [
    _call(1, "issue_refund", _refund(50), gated=False),  # ran unasked; candidate (>40) asks
    # asked both times; counts on the budget, a day before the rest (outside their 24 h window)
    _call(2, "issue_refund", _refund(150), gated=True, verdict="approved", hours=-26),
    _call(3, "issue_refund", _refund(30), gated=False, hours=1),  # unasked both; budget: 30+0 ok
    _call(4, "issue_refund", _refund(20), gated=False, hours=2),  # unasked both; budget 30+20 ok
    _call(5, "issue_refund", _refund(35), gated=False, hours=3),  # unasked both; 30+20+35 > 80: hit
    _call(
        6,
        "send_customer_email",
        {"customer_id": "c1", "subject": "s", "body": "b"},
        gated=True,
        verdict="denied",
        ran=False,
        hours=30,
    ),  # asked now; candidate says never
    _call(7, "lookup_customer", {"customer_id": "c1"}, gated=False, hours=30),
]

CANDIDATE = ApprovalPolicy.model_validate(
    {
        "tools": {
            "lookup_customer": {"approval": "never"},
            "send_customer_email": {"approval": "never"},
            "issue_refund": {
                "approval": "rules",
                "rules": [{"kind": "amount_over", "field": "amount", "thresholds": {"*": 40}}],
                "quorum": {"required": 1, "approvers": ["ana@example.com", "bo@example.com"]},
            },
        },
        "budgets": [
            {
                "name": "small-refunds",
                "tools": ["issue_refund"],
                "sum": "amount",
                "group_by": ["customer_id"],
                "window_hours": 24,
                "limit": 80,
            }
        ],
    }
)


class RecordedCalls:
    def __init__(self, calls):
        self.calls = calls
        self.asked = []

    def calls_between(self, tenant, since, until, most):
        self.asked.append((tenant, most))
        return list(reversed(self.calls))  # any order: the replay sorts by time


def test_a_replay_gives_the_hand_calculated_counts():
    table = RecordedCalls(CALLS)
    report = PolicyReplay(table, ToolRegistry(), "default@example.com").simulate(
        CANDIDATE, since=T0 - timedelta(days=1), until=T0 + timedelta(days=2), tenant="acme"
    )
    refunds = report["tools"]["issue_refund"]
    assert refunds == {
        "calls": 5,
        "gated_now": 1,
        "gated_under_candidate": 3,  # 50, 150 by the rule; 35 by the budget
        "approvals_no_longer_asked": 0,
        "ran_ungated_would_need_sign_off": 2,  # 50 (rule) and 35 (budget)
        "budget_hits": 1,
    }
    email = report["tools"]["send_customer_email"]
    assert (email["gated_now"], email["gated_under_candidate"], email["approvals_no_longer_asked"]) == (1, 0, 1)
    assert report["total"]["calls"] == 7 and report["total"]["approvals_no_longer_asked"] == 1
    # every call gated under the candidate asks both refund approvers, on the day it was made
    assert report["approver_load_per_day"] == {
        "ana@example.com": {"2026-11-01": 1, "2026-11-02": 2},
        "bo@example.com": {"2026-11-01": 1, "2026-11-02": 2},
    }
    assert report["truncated"] is False and table.asked == [("acme", 20_001)]


def test_replaying_the_policy_in_force_changes_nothing_it_gated():
    same = ApprovalPolicy.model_validate(
        {
            "tools": {
                "issue_refund": {
                    "approval": "rules",
                    "rules": [{"kind": "amount_over", "field": "amount", "thresholds": {"*": 100}}],
                },
                "send_customer_email": {"approval": "always"},
                "lookup_customer": {"approval": "never"},
            }
        }
    )
    report = PolicyReplay(RecordedCalls(CALLS), ToolRegistry(), "x").simulate(same, since=None, until=None, tenant="t")
    assert report["total"]["gated_now"] == report["total"]["gated_under_candidate"] == 2
    assert report["total"]["approvals_no_longer_asked"] == report["total"]["ran_ungated_would_need_sign_off"] == 0


def test_a_replay_stops_at_its_time_budget_and_says_what_it_covered():
    ticks = iter(range(100))  # each look at the clock is a second later
    replay = PolicyReplay(RecordedCalls(CALLS), ToolRegistry(), "x", time_budget_seconds=3.5, clock=lambda: next(ticks))
    report = replay.simulate(CANDIDATE, since=None, until=None, tenant="t")
    ordered = sorted(CALLS, key=lambda a: a.created_at)
    assert report["truncated"] is True and report["truncated_by"] == "time"
    assert report["covered_calls"] == 3 == report["total"]["calls"]
    assert report["covered_until"] == ordered[2].created_at


def test_a_replay_within_its_budget_covers_every_call():
    report = PolicyReplay(RecordedCalls(CALLS), ToolRegistry(), "x").simulate(
        CANDIDATE, since=None, until=None, tenant="t"
    )
    assert report["truncated_by"] is None and report["covered_calls"] == len(CALLS)
    assert report["covered_until"] == max(a.created_at for a in CALLS)
