"""What the use cases count: the metrics the dashboard and the alarms are built on (docs/operations.md)."""

from __future__ import annotations

import copy

from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import POLICY, Gate


def _refund(amount=340, customer="c1"):
    return ("issue_refund", {"customer_id": customer, "amount": amount})


def test_an_approved_call_counts_its_request_answer_wait_execution_and_reply(counted):
    gate = Gate(ScriptedAgent(pause(_refund()), reply()), receipts=True)
    gate.ask()
    gate.answer(gate.handover.asked()[0], "approved")
    assert counted() == {
        "ApprovalsRequested": 1,
        "ApprovalsAnswered": 1,
        "TimeToDecisionSeconds": 1,
        "ActionsExecuted": 1,
        "ReceiptsIssued": 1,
        "TurnsCompleted": 1,
    }


def test_a_denied_call_and_a_failed_tool_are_counted_as_such(counted):
    gate = Gate(ScriptedAgent(pause(_refund(), ("flaky", {"mode": "refuse"})), reply()))
    gate.ask()
    gate.answer(gate.handover.asked()[0], "denied")
    totals = counted()
    assert totals["ActionsFailed"] == 1 and totals["ApprovalsAnswered"] == 1
    assert "ActionsExecuted" not in totals and totals["TurnsCompleted"] == 1


def test_an_escalation_and_a_failed_turn_are_counted(counted):
    from signoff.logic.turn_failure import fail_turn

    gate = Gate(ScriptedAgent(pause(("wipe_device", {}))))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "expired")
    assert counted()["ApprovalsEscalated"] == 1 and counted()["ApprovalsRequested"] == 2
    assert fail_turn(gate.table, gate.executor, cid, gate.conversation(cid).active_turn_id, "gave up")
    assert not fail_turn(gate.table, gate.executor, cid, gate.conversation(cid).active_turn_id, "again")
    assert counted()["TurnsFailed"] == 1


def test_budgets_count_what_they_gate_and_what_they_refuse(counted):
    policy = copy.deepcopy(POLICY)
    policy["budgets"] = [
        {"name": "soft", "tools": ["issue_refund"], "sum": "amount", "window_hours": 1, "limit": 50},
        {
            "name": "hard",
            "tools": ["issue_refund"],
            "sum": "amount",
            "window_hours": 1,
            "limit": 500,
            "over_limit": "deny",
        },
    ]
    gate = Gate(ScriptedAgent(pause(_refund(60)), reply(), pause(_refund(600)), reply()), policy)
    gate.ask()
    assert counted()["BudgetGated"] == 1
    gate.answer(gate.handover.asked()[0], "approved")
    gate.ask()
    gate.answer(gate.handover.asked()[1], "approved")
    assert counted()["BudgetCapRefusals"] == 1


def test_standing_approvals_count_their_creation_uses_and_revocation(counted):
    from signoff.logic.grants import GrantKeeper

    gate = Gate(ScriptedAgent(pause(_refund()), reply(), pause(_refund(200)), reply()))
    gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", response_data={"allow_similar": {"hours": 1, "max_uses": 5}})
    gate.ask()
    keeper = GrantKeeper(gate.table, gate.policy)
    [grant] = keeper.list("default", 5, None)["grants"]
    keeper.revoke("default", grant["grant_id"], "ops")
    keeper.revoke("default", grant["grant_id"], "ops")
    totals = counted()
    assert (totals["GrantsCreated"], totals["GrantUses"], totals["GrantsRevoked"]) == (1, 1, 1)


def test_a_client_result_counts_as_an_execution_and_an_overdue_one_as_a_failure(counted):
    gate = Gate(ScriptedAgent(pause(("run_on_laptop", {}), ("run_on_laptop", {"n": 2})), reply()))
    cid = gate.ask()
    first, second = gate.actions(cid)
    assert gate.executor.record_client_result(first, {"ok": True})
    assert gate.executor.expire_client_call(second, 60)
    totals = counted()
    assert (totals["ActionsExecuted"], totals["ActionsFailed"]) == (1, 1)
