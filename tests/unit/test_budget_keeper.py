"""BudgetKeeper in memory: what a call's budgets say at the gate, after sign-off, and when it did not run."""

from __future__ import annotations

from signoff.domain.models import Action
from signoff.domain.policy import ApprovalPolicy
from signoff.logic.budgets import BudgetKeeper, call_key, call_key_of
from tests.fakes.memory_table import MemoryTable

SOFT = {"name": "soft", "tools": ["pay"], "sum": "amount", "group_by": ["customer"], "window_hours": 24, "limit": 100}
HARD = {"name": "hard", "tools": ["pay"], "sum": "amount", "window_hours": 24, "limit": 150, "over_limit": "deny"}


def _keeper(*budgets) -> tuple[BudgetKeeper, MemoryTable]:
    table = MemoryTable()
    policy = ApprovalPolicy.model_validate({"budgets": list(budgets)})
    return BudgetKeeper(table, lambda: policy), table


def _totals(keeper: BudgetKeeper, arguments: dict, tenant: str = "default") -> list[str]:
    return keeper.standing("pay", arguments, tenant)


def test_a_tool_without_budgets_is_let_through_and_counts_nothing():
    keeper, table = _keeper(SOFT)
    admission = keeper.admit_ungated("k1", "other", {"amount": 10**6}, "default")
    assert admission.let_through and admission.refused is None and admission.needs_sign_off == []
    assert table.writes == 0


def test_calls_within_every_budget_are_let_through_and_counted():
    keeper, _ = _keeper(SOFT, HARD)
    assert keeper.admit_ungated("k1", "pay", {"amount": 60, "customer": "c1"}, "default").let_through
    assert _totals(keeper, {"amount": 30, "customer": "c1"}) == [
        "Budget soft (customer=c1, last 24 h): 60 used of 100 (limit); this call adds 30.",
        "Budget hard (all calls, last 24 h): 60 used of 150 (hard cap); this call adds 30.",
    ]


def test_over_a_soft_limit_a_call_needs_sign_off_and_keeps_nothing_reserved():
    keeper, _ = _keeper(SOFT, HARD)
    keeper.admit_ungated("k1", "pay", {"amount": 60, "customer": "c1"}, "default")
    admission = keeper.admit_ungated("k2", "pay", {"amount": 50, "customer": "c1"}, "default")
    assert not admission.let_through and admission.refused is None
    assert admission.needs_sign_off == [
        "budget 'soft' (customer=c1, 24 h): 60 already used of 100; this call would make 110"
    ]
    assert "60 used of 150" in _totals(keeper, {"amount": 1, "customer": "c1"})[1]  # the hard one was given back


def test_over_a_hard_cap_a_call_is_refused_and_keeps_nothing_reserved():
    keeper, _ = _keeper(SOFT, HARD)
    keeper.admit_ungated("k1", "pay", {"amount": 90, "customer": "c1"}, "default")
    admission = keeper.admit_ungated("k2", "pay", {"amount": 90, "customer": "c2"}, "default")
    assert admission.refused == (
        "over the hard cap of budget 'hard' (all calls, 24 h): 90 already used of 150; this call would make 180"
    )
    assert "0 used of 100" in _totals(keeper, {"amount": 1, "customer": "c2"})[0]  # c2's soft one given back


def test_a_call_a_budget_cannot_count_needs_sign_off_or_is_refused_by_a_hard_cap():
    keeper, _ = _keeper(SOFT)
    admission = keeper.admit_ungated("k", "pay", {"amount": "lots", "customer": "c1"}, "default")
    assert admission.needs_sign_off == ["budget 'soft' cannot count this call: 'amount' is missing or not a number"]
    hard_keeper, _ = _keeper(HARD)
    refused = hard_keeper.admit_ungated("k", "pay", {"amount": -1}, "default")
    assert refused.refused == "budget 'hard' cannot count this call: 'amount' must be a non-negative number"


def test_a_signed_off_call_counts_even_over_a_soft_limit_but_not_over_a_hard_cap():
    keeper, _ = _keeper(SOFT, HARD)
    assert keeper.admit_approved("k1", "pay", {"amount": 140, "customer": "c1"}, "default") is None
    assert "140 used of 100" in _totals(keeper, {"amount": 1, "customer": "c1"})[0]
    refusal = keeper.admit_approved("k2", "pay", {"amount": 20, "customer": "c2"}, "default")
    assert (
        refusal
        == "over the hard cap of budget 'hard' (all calls, 24 h): 140 already used of 150; this call would make 160"
    )
    assert "0 used of 100" in _totals(keeper, {"amount": 1, "customer": "c2"})[0]  # c2's soft one given back


def test_a_signed_off_call_a_soft_budget_cannot_count_still_runs_a_hard_one_refuses():
    keeper, _ = _keeper(SOFT)
    assert keeper.admit_approved("k", "pay", {"amount": 5}, "default") is None  # no customer: soft can't count
    hard_keeper, _ = _keeper(SOFT, HARD)
    refusal = hard_keeper.admit_approved("k", "pay", {"amount": "x", "customer": "c1"}, "default")
    assert refusal == "budget 'hard' cannot count this call: 'amount' is missing or not a number"


def test_a_call_that_did_not_run_gives_back_what_it_took_at_either_arguments():
    keeper, _ = _keeper(SOFT)
    action = Action(
        conversation_id="conv",
        turn_id="t",
        call_id="c",
        seq=0,
        tool="pay",
        arguments={"amount": 80, "customer": "a"},
        digest="d",
        gated=True,
        approved_arguments={"amount": 30, "customer": "a"},
    )
    assert keeper.admit_approved(call_key(action), "pay", action.approved_arguments, "default") is None
    assert "30 used" in _totals(keeper, {"amount": 1, "customer": "a"})[0]
    keeper.release(action)
    assert "0 used" in _totals(keeper, {"amount": 1, "customer": "a"})[0]
    assert call_key(action) == call_key_of("conv", "t", "c") == "conv#t#c"


def test_each_tenant_has_its_own_counters():
    keeper, _ = _keeper(SOFT)
    assert keeper.admit_ungated("k1", "pay", {"amount": 90, "customer": "c1"}, "acme").let_through
    assert keeper.admit_ungated("k2", "pay", {"amount": 90, "customer": "c1"}, "globex").let_through
    assert not keeper.admit_ungated("k3", "pay", {"amount": 20, "customer": "c1"}, "acme").let_through


def test_the_approver_is_told_when_a_budget_cannot_count_the_call():
    keeper, _ = _keeper(SOFT)
    assert _totals(keeper, {"amount": 5}) == ["Budget soft: cannot count this call ('customer' is missing)."]
