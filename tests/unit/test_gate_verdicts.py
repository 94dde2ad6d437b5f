"""The gate end to end in memory: each verdict a call can get, and what runs because of it.

AgentRunner, ApprovalRequester, ApprovalSettler, ApprovalCallback and ActionExecutor are the real
ones; the table, the agent, Handover and the queue are in-memory fakes (tests/fakes)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from signoff.domain.models import ConversationStatus, DecisionStatus, ExecutionStatus, TurnStatus, utc_now
from signoff.domain.ports import ApprovalServiceError
from signoff.logic.callback import CallbackOutcome
from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import APPROVER, Gate


def _refund(amount: float = 340, customer: str = "c1"):
    return ("issue_refund", {"customer_id": customer, "amount": amount})


def test_an_approved_call_runs_once_and_the_model_gets_its_result():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Refunded.")))
    cid = gate.ask("refund me")
    assert gate.ran() == []  # nothing runs before the approver answers
    assert gate.conversation(cid).status is ConversationStatus.AWAITING_APPROVAL
    [decision] = gate.handover.asked()
    request = gate.handover.requests[decision]
    assert request.approver == APPROVER and request.options == ["approve", "deny", "modify"]
    assert "issue_refund" in request.context and request.callback_url.startswith("https://signoff.test/callbacks/")

    assert gate.answer(decision, "approved") is CallbackOutcome.SETTLED
    assert gate.ran("issue_refund") == [{"customer_id": "c1", "amount": 340}]
    [(_, _, key)] = gate.invocations
    action = gate.action(cid)
    assert key == f"{cid}:{action.turn_id}:{action.call_id}"
    assert action.verdict is DecisionStatus.APPROVED and action.execution.status is ExecutionStatus.EXECUTED
    assert gate.agent.outputs()[action.call_id]["result"] == {"refund_id": "re_340"}
    assert gate.reply(cid) == "Refunded." and gate.conversation(cid).status is ConversationStatus.IDLE

    # The same callback again (a retry, a duplicate): nothing runs twice, the model is not asked again.
    assert gate.answer(decision, "approved") is CallbackOutcome.ALREADY_SETTLED
    assert len(gate.ran()) == 1 and len(gate.agent.submitted) == 1


@pytest.mark.parametrize("status", ["denied", "expired"])
def test_a_call_not_approved_never_runs_and_the_model_hears_why(status):
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Not refunded.")))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.answer(decision, status, notes="too much")
    action = gate.action(cid)
    assert gate.ran() == []
    assert action.verdict is DecisionStatus(status) and action.execution.status is ExecutionStatus.NOT_EXECUTED
    output = gate.agent.outputs()[action.call_id]
    assert output["execution"] == "not_executed" and output["decision"] == status
    assert gate.reply(cid) == "Not refunded."


def test_a_modified_call_runs_with_the_approvers_values_only():
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.answer(decision, "modified", response_data={"amount": 200})
    assert gate.ran("issue_refund") == [{"customer_id": "c1", "amount": 200}]
    action = gate.action(cid)
    assert action.verdict is DecisionStatus.MODIFIED and action.arguments == {"customer_id": "c1", "amount": 340}
    assert action.approved_arguments == {"customer_id": "c1", "amount": 200}
    assert action.approved_digest and action.approved_digest != action.digest


@pytest.mark.parametrize(
    "change",
    [{"customer_id": "c2"}, {"amount": "lots"}, {}, None],
    ids=["not-modifiable", "schema", "nothing", "no-data"],
)
def test_a_modification_the_policy_or_schema_refuses_is_not_run(change):
    gate = Gate(ScriptedAgent(pause(_refund(340)), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.answer(decision, "modified", response_data=change)
    action = gate.action(cid)
    assert gate.ran() == []
    assert action.execution.status is ExecutionStatus.NOT_EXECUTED and action.execution.result["error"]


def test_a_call_scheduled_for_later_runs_only_once_its_time_has_come():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Scheduled.")))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    when = utc_now() + timedelta(hours=2)
    gate.answer(decision, "scheduled", execute_at=when.isoformat())
    action = gate.action(cid)
    assert action.execution.status is ExecutionStatus.SCHEDULED and gate.ran() == []
    assert gate.agent.outputs()[action.call_id]["execution"] == "scheduled"
    gate.reconciler.run_once()
    assert gate.ran() == []  # not before its time
    with time_machine.travel(when + timedelta(seconds=1), tick=False):
        report = gate.reconciler.run_once()
    assert report.scheduled_run == 1 and len(gate.ran("issue_refund")) == 1
    with time_machine.travel(when + timedelta(minutes=10), tick=False):
        gate.reconciler.run_once()
    assert len(gate.ran("issue_refund")) == 1
    assert gate.action(cid).execution.status is ExecutionStatus.EXECUTED


def test_a_scheduled_answer_without_a_time_is_refused():
    gate = Gate(ScriptedAgent(pause(_refund()), reply()))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "scheduled")
    assert gate.action(cid).execution.result == {"error": "no execute_at"} and gate.ran() == []


def test_a_pending_answer_changes_nothing():
    gate = Gate(ScriptedAgent(pause(_refund()), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    assert gate.callback.handle(gate.handover.token(decision)) is CallbackOutcome.PENDING
    assert gate.action(cid).verdict is None and gate.approvals(cid)[0].state.value == "pending"


def test_an_approver_who_cannot_be_asked_counts_as_no_answer():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Could not ask.")))
    gate.handover.refuse_asks = True
    cid = gate.ask()
    action = gate.action(cid)
    assert action.verdict is None and action.verdict_recorded
    assert action.execution.status is ExecutionStatus.NOT_EXECUTED and gate.ran() == []
    assert gate.agent.outputs()[action.call_id]["decision"] == "not_requested"
    assert gate.reply(cid) == "Could not ask."


def test_a_quorum_runs_on_the_second_approval_and_ignores_the_third():
    gate = Gate(ScriptedAgent(pause(("deploy", {"service": "api"})), reply()))
    cid = gate.ask()
    first, second, third = gate.handover.asked()
    assert [gate.handover.requests[d].approver for d in (first, second, third)] == ["a@x.io", "b@x.io", "c@x.io"]
    assert "2 of 3 approvers must approve" in gate.handover.requests[first].context
    gate.answer(first, "approved")
    assert gate.ran() == [] and gate.action(cid).verdict is None
    gate.answer(second, "approved")
    assert len(gate.ran("deploy")) == 1 and gate.action(cid).verdict is DecisionStatus.APPROVED
    gate.answer(third, "denied")  # late: the verdict stands, nothing runs again
    assert len(gate.ran("deploy")) == 1 and gate.action(cid).verdict is DecisionStatus.APPROVED


def test_one_denial_in_a_quorum_denies():
    gate = Gate(ScriptedAgent(pause(("deploy", {})), reply()))
    cid = gate.ask()
    first, second, _ = gate.handover.asked()
    gate.answer(first, "approved")
    gate.answer(second, "denied")
    assert gate.action(cid).verdict is DecisionStatus.DENIED and gate.ran() == []


def test_an_expired_decision_goes_up_the_ladder_and_the_last_rung_decides():
    gate = Gate(ScriptedAgent(pause(("wipe_device", {"device": "d1"})), reply()))
    cid = gate.ask()
    [first] = gate.handover.asked()
    assert gate.handover.requests[first].approver == "oncall@x.io"
    assert gate.handover.requests[first].timeout_minutes == 30
    gate.answer(first, "expired")
    [second] = gate.handover.asked("lead@x.io")
    assert gate.handover.requests[second].context.startswith("Escalated: oncall@x.io did not answer in time")
    action = gate.action(cid)
    assert action.verdict is None and len(action.approval_ids) == 1 and gate.ran() == []
    assert gate.table.get_approval(action.approval_ids[0]).rung == 1
    gate.answer(first, "expired")  # the first rung's callback again: the ladder does not fork
    assert len(gate.handover.asked()) == 2
    gate.answer(second, "approved")
    assert len(gate.ran("wipe_device")) == 1


def test_the_last_rung_expiring_is_no_answer_in_time():
    gate = Gate(ScriptedAgent(pause(("wipe_device", {})), reply()))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "expired")
    gate.answer(gate.handover.asked("lead@x.io")[0], "expired")
    action = gate.action(cid)
    assert action.verdict is DecisionStatus.EXPIRED and gate.ran() == [] and len(gate.handover.asked()) == 2


def test_an_ungated_call_runs_without_asking_and_a_small_refund_too():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {"customer_id": "c9"}), _refund(40)), reply("Here.")))
    cid = gate.ask()
    assert gate.handover.asked() == []
    assert gate.ran("lookup_customer") == [{"customer_id": "c9"}]
    assert gate.ran("issue_refund") == [{"customer_id": "c1", "amount": 40}]
    assert gate.reply(cid) == "Here."
    assert gate.table.get_turn(cid, gate.conversation(cid).active_turn_id).status is TurnStatus.COMPLETED


def test_a_sign_off_request_is_asked_and_its_answer_is_the_output():
    gate = Gate(ScriptedAgent(pause(("request_human_approval", {"context": "may I?"})), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.answer(decision, "approved", notes="yes")
    assert gate.agent.outputs()[gate.action(cid).call_id] == "Decision: approved. Approver notes: yes"
    assert gate.ran() == []  # a sign-off request runs nothing: the decision is the output


def test_the_last_decision_bound_shows_the_conversation_awaiting_approval_in_the_same_write():
    gate = Gate(ScriptedAgent(pause(_refund(), ("send_email", {})), reply()))
    shows: list[str] = []
    original = gate.table.show_awaiting_approval
    gate.table.show_awaiting_approval = lambda *a: shows.append(a[2]) or original(*a)
    writes = gate.table.writes
    cid = gate.ask()
    assert shows == []  # not a write of its own
    assert gate.conversation(cid).status is ConversationStatus.AWAITING_APPROVAL
    assert all(a.decision is not None and a.decision.id for a in gate.actions(cid))
    # create, claim, the agent's state, pause, two bindings (the second showing the conversation)
    assert gate.table.writes - writes == 6


def test_when_the_last_approver_cannot_be_asked_the_pause_is_still_shown_awaiting_the_first():
    gate = Gate(ScriptedAgent(pause(_refund(), ("send_email", {})), reply()))
    create = gate.handover.create_decision
    asked: list[str] = []

    def second_fails(request):
        asked.append(request.action)
        if len(asked) == 2:
            raise ApprovalServiceError("handover is down")
        return create(request)

    gate.handover.create_decision = second_fails
    cid = gate.ask()
    refund, email = gate.actions(cid)
    assert email.verdict_recorded and email.execution.status is ExecutionStatus.NOT_EXECUTED
    assert refund.decision is not None and not refund.verdict_recorded
    assert gate.conversation(cid).status is ConversationStatus.AWAITING_APPROVAL


def test_a_quorum_that_can_no_longer_be_reached_goes_on_at_once_though_its_last_binding_showed_it_waiting():
    gate = Gate(ScriptedAgent(pause(("deploy", {"service": "api"})), reply("Not deployed.")))
    create = gate.handover.create_decision
    asked: list[str] = []

    def only_the_last_is_asked(request):
        asked.append(request.approver)
        if len(asked) < 3:
            raise ApprovalServiceError("handover is down")
        return create(request)

    gate.handover.create_decision = only_the_last_is_asked
    cid = gate.ask()
    assert asked == ["a@x.io", "b@x.io", "c@x.io"]
    assert gate.action(cid).verdict_recorded and gate.ran() == []
    assert gate.reply(cid) == "Not deployed."  # no reconciler needed
