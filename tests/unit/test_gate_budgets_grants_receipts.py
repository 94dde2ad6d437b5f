"""Budgets, standing approvals and signed receipts through the gate, in memory."""

from __future__ import annotations

import copy
from datetime import timedelta

import time_machine

from signoff.domain.models import DecisionStatus, ExecutionStatus, utc_now
from signoff.domain.receipts import decode, log_problems
from signoff.logic.audit import ApprovalStats, AuditTrail
from signoff.logic.checkpoints import Checkpointer
from signoff.logic.grants import GrantKeeper
from signoff.verify import KeySet
from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import POLICY, Gate


def _policy(limit: int = 100, hard: bool = False) -> dict:
    policy = copy.deepcopy(POLICY)
    policy["budgets"] = [
        {
            "name": "refunds",
            "tools": ["issue_refund"],
            "sum": "amount",
            "group_by": ["customer_id"],
            "window_hours": 24,
            "limit": limit,
            "over_limit": "deny" if hard else "approve",
        }
    ]
    return policy


def _refund(amount, customer="c1"):
    return ("issue_refund", {"customer_id": customer, "amount": amount})


# -- budgets ----------------------------------------------------------------------------------
def test_small_calls_run_unasked_until_the_budget_would_go_over_then_a_human_is_asked():
    gate = Gate(ScriptedAgent(pause(_refund(60)), reply(), pause(_refund(60)), reply()), _policy())
    first = gate.ask()
    assert len(gate.ran()) == 1 and gate.handover.asked() == []
    with time_machine.travel(utc_now() + timedelta(seconds=1), tick=False):
        second = gate.ask()
    action = gate.action(second)
    assert action.gated and "already used of 100" in action.gated_by_budget and len(gate.ran()) == 1
    assert gate.conversations.view(second)["actions"][0]["gated_by_budget"] == action.gated_by_budget
    [decision] = gate.handover.asked()
    assert "a budget does" in gate.handover.requests[decision].context
    gate.answer(decision, "approved")
    assert len(gate.ran()) == 2  # signed off: counts even over the limit
    assert gate.action(first).execution.status is ExecutionStatus.EXECUTED


def test_a_hard_cap_refuses_even_what_a_human_approved():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply()), _policy(limit=300, hard=True))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved")
    action = gate.action(cid)
    assert gate.ran() == [] and action.execution.status is ExecutionStatus.NOT_EXECUTED
    assert "over the hard cap" in action.execution.result["error"]


def test_a_call_that_did_not_run_gives_its_budget_back():
    gate = Gate(
        ScriptedAgent(pause(_refund(340)), reply(), pause(_refund(90)), reply()),
        _policy(limit=400),
    )
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "modified", response_data={"amount": "x"})  # refused modification
    assert gate.action(cid).execution.status is ExecutionStatus.NOT_EXECUTED
    with time_machine.travel(utc_now() + timedelta(seconds=1), tick=False):
        gate.ask()
    assert gate.ran("issue_refund") == [{"customer_id": "c1", "amount": 90}]  # 90 fits: nothing was kept


def test_an_answer_its_verdict_and_its_reservation_are_one_write():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply(), pause(_refund(90)), reply()), _policy(400, hard=True))
    cid = gate.ask()
    writes = gate.table.writes
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    assert gate.table.writes - writes == 1  # the approval settled, the verdict, the turn, the budget
    [approval] = gate.approvals(cid)
    assert approval.outcome is DecisionStatus.APPROVED and gate.action(cid).verdict is DecisionStatus.APPROVED
    gate.drain()
    assert gate.ran("issue_refund") == [{"customer_id": "c1", "amount": 340}]
    with time_machine.travel(utc_now() + timedelta(seconds=1), tick=False):
        later = gate.ask()
    assert "340 already used of 400" in gate.action(later).error  # the reservation was written


def test_a_verdict_planned_against_a_budget_that_moved_is_planned_again():
    """Another call takes from the same budget between the verdict's read of it and its write: the
    write is refused as a whole and the verdict planned again, now over the hard cap."""
    from signoff.domain.budgets import charge_for
    from signoff.domain.policy import ApprovalPolicy

    gate = Gate(ScriptedAgent(pause(_refund(340)), reply()), _policy(400, hard=True))
    cid = gate.ask()
    [budget] = ApprovalPolicy.model_validate(_policy(400, hard=True)).budgets_for("issue_refund")
    other = charge_for(budget, {"customer_id": "c1", "amount": 100})
    read = gate.table.budget_state
    reads: list[int] = []

    def read_then_another_call_takes(group_id):
        state = read(group_id)
        if not reads:
            assert gate.table.reserve_budget(other, "another-call", utc_now(), True).taken
        reads.append(state[1])
        return state

    gate.table.budget_state = read_then_another_call_takes
    writes = gate.table.writes
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    assert reads == [0, 1]  # planned twice: the second time against the moved counter
    assert gate.table.writes - writes == 2  # the other call's reservation; then answer and verdict, one write
    gate.drain()
    action = gate.action(cid)
    assert gate.ran() == [] and "over the hard cap" in action.execution.result["error"]
    assert str(gate.table.budget_total(other, utc_now())) == "100"  # the other call's only


def test_two_callbacks_racing_with_the_same_answer_run_the_call_once():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply("Done.")), _policy(400, hard=True))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.handover.answer(decision, "approved")
    [pending] = gate.approvals(cid)  # both callbacks read it pending
    answer = gate.handover.get_decision(decision)
    assert gate.settler.settle(pending, answer).value == "settled"
    assert gate.settler.settle(pending, answer).value == "already_settled"
    gate.drain()
    assert len(gate.ran()) == 1 and gate.reply(cid) == "Done."


# -- standing approvals -----------------------------------------------------------------------
def test_an_approval_with_allow_similar_covers_later_calls_up_to_its_uses():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply()))
    gate.ask()
    [decision] = gate.handover.asked()
    gate.answer(decision, "approved", response_data={"allow_similar": {"hours": 1, "max_uses": 2}})
    later = []
    for n in range(3):
        gate.agent.will(pause(_refund(300)), reply())
        with time_machine.travel(utc_now() + timedelta(seconds=n + 1), tick=False):
            later.append(gate.ask())
    assert len(gate.handover.asked()) == 2  # two covered by the grant; the third asks again
    covered = [gate.action(c) for c in later[:2]]
    assert [a.grant.uses_left for a in covered] == [1, 0]
    assert gate.conversations.view(later[0])["actions"][0]["grant"] == {"id": covered[0].grant.id, "uses_left": 1}
    assert "grant" not in gate.conversations.view(later[2])["actions"][0]
    assert all(a.execution.status is ExecutionStatus.EXECUTED for a in covered)
    assert gate.action(later[2]).grant is None and len(gate.ran()) == 3


def test_a_grant_does_not_cover_a_bigger_call_another_customer_or_another_tenant():
    gate = Gate(ScriptedAgent(pause(_refund(100.5)), reply()))
    gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", response_data={"allow_similar": {"hours": 1, "max_uses": 9}})
    for call, tenant in ((_refund(101), "default"), (_refund(150, "c2"), "default"), (_refund(150), "globex")):
        gate.agent.will(pause(call))
        cid = gate.ask(tenant=tenant)
        assert gate.action(cid).grant is None and gate.action(cid).gated
    assert len(gate.ran()) == 1


def test_a_revoked_grant_covers_nothing_and_only_its_tenant_can_revoke_it():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply()))
    gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", response_data={"allow_similar": {"hours": 1, "max_uses": 9}})
    keeper = GrantKeeper(gate.table, gate.policy)
    [grant] = keeper.list("default", 10, None)["grants"]
    assert keeper.revoke("globex", grant["grant_id"], "mallory") is None
    assert keeper.revoke("default", grant["grant_id"], "ops").revoked_by == "ops"
    gate.agent.will(pause(_refund(300)))
    cid = gate.ask()
    assert gate.action(cid).grant is None and len(gate.handover.asked()) == 2


def test_a_grant_is_refused_for_a_quorum_tool():
    gate = Gate(ScriptedAgent(pause(("deploy", {})), reply()))
    gate.ask()
    first, second, _ = gate.handover.asked()
    gate.answer(first, "approved", response_data={"allow_similar": {"hours": 1, "max_uses": 9}})
    gate.answer(second, "approved", response_data={"allow_similar": {"hours": 1, "max_uses": 9}})
    assert GrantKeeper(gate.table, gate.policy).list("default", 10, None)["grants"] == []


# -- receipts ---------------------------------------------------------------------------------
def test_each_gated_call_that_ran_has_a_receipt_in_the_tenants_log():
    gate = Gate(ScriptedAgent(pause(_refund(340), ("send_email", {"to": "x"})), reply()), receipts=True)
    cid = gate.ask()
    first, second = gate.handover.asked()
    gate.answer(first, "approved", notes="ok")
    gate.answer(second, "denied")
    refund, email = gate.actions(cid)
    assert refund.receipt and email.receipt is None  # a denied call ran nothing: no receipt
    assert [q.jws for q in gate.table.queued_receipts("default", 10)] == [refund.receipt]
    claims = decode(refund.receipt).claims
    assert claims["verdict"] == "approved" and claims["approvals"][0]["decision_id"] == first
    assert claims["arguments"] == '{"amount":340,"customer_id":"c1"}'

    assert Checkpointer(gate.table, gate.signer, "iss").run().appended == 1
    entries, _ = gate.table.list_log("default", 0, 10)
    checkpoints, _ = gate.table.list_checkpoints("default", 0, 10)
    assert entries == [(0, refund.receipt)] and len(checkpoints) == 1
    assert log_problems(entries, checkpoints, KeySet(gate.signer.jwks()).verify) == []


def test_ungated_calls_get_no_receipt():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {})), reply()), receipts=True)
    cid = gate.ask()
    assert gate.action(cid).receipt is None and gate.table.queued_receipts("default", 10) == []


# -- the audit trail ----------------------------------------------------------------------------
def test_the_audit_trail_and_stats_show_who_decided_what_for_their_tenant_only():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply(), pause(_refund(500)), reply()))
    acme = gate.ask(tenant="acme")
    gate.answer(gate.handover.asked()[0], "approved", notes="fine")
    with time_machine.travel(utc_now() + timedelta(seconds=1), tick=False):
        gate.ask(tenant="globex")
    trail = AuditTrail(gate.table)
    entries = trail.list(
        since=None, until=None, status=None, tool=None, conversation_id=None, limit=10, cursor=None, tenant="acme"
    )["approvals"]
    assert [(e["conversation_id"], e["status"]) for e in entries] == [(acme, "approved")]
    with time_machine.travel(utc_now() + timedelta(seconds=2), tick=False):  # after globex's approval
        stats = ApprovalStats(gate.table).compute(since=None, until=None, tool=None, approver=None, tenant="globex")
    [group] = stats["groups"]
    assert group["pending"] == 1 and group["decisions"] == 0
    assert gate.action(acme).verdict is DecisionStatus.APPROVED


def test_the_last_calls_receipt_claims_the_resume_and_the_turn_goes_on_without_another_write():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply("Done.")), receipts=True)
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    claims: list[str] = []
    claim = gate.table.claim_turn_resume
    gate.table.claim_turn_resume = lambda *a: claims.append(a[2]) or claim(*a)
    writes = gate.table.writes
    gate.drain()
    assert gate.reply(cid) == "Done." and len(gate.ran()) == 1 and len(gate.agent.submitted) == 1
    assert claims == []  # claimed by the receipt's write
    assert gate.table.writes - writes == 3  # claim the call; its receipt with the resume; the reply
    assert gate.action(cid).receipt


def test_a_receipt_whose_resume_another_invocation_claimed_is_written_alone():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply("Done.")), receipts=True)
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    gate.queue.sent.clear()
    action = gate.action(cid)
    assert gate.table.claim_turn_resume(cid, action.turn_id, action.pause_ref)  # someone else resumes
    actions, resumed = gate.executor.settle_pause(cid, action.turn_id, action.pause_ref, resume=True)
    assert not resumed and len(gate.ran()) == 1
    assert actions[0].execution.status is ExecutionStatus.EXECUTED and actions[0].receipt
    assert gate.action(cid).receipt == actions[0].receipt
