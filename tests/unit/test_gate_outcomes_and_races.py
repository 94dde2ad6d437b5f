"""What a call's execution can come to, and every race a conditional write decides, in memory.

Each race runs the loser as well as the winner: the loser must change nothing and run nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from signoff.domain.models import (
    ConversationStatus,
    Decision,
    DecisionStatus,
    Execution,
    ExecutionStatus,
    TurnStatus,
    utc_now,
)
from signoff.logic.approvals import SettleResult
from signoff.logic.callback import CallbackOutcome, ForgedCallback, UnknownApproval
from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import Gate


def _gated_refund() -> tuple[str, dict]:
    return ("issue_refund", {"customer_id": "c1", "amount": 340})


# -- outcomes --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "status", "error", "unknown"),
    [
        ("refuse", ExecutionStatus.FAILED, "no such account", None),
        ("timeout", ExecutionStatus.FAILED, "the tool did not answer; not retried, outcome unknown", True),
        ("crash", ExecutionStatus.FAILED, "KeyError; outcome unknown", True),
        ("fine", ExecutionStatus.EXECUTED, None, None),
    ],
)
def test_what_a_tool_says_is_what_the_model_hears(mode, status, error, unknown):
    gate = Gate(ScriptedAgent(pause(("flaky", {"mode": mode})), reply()))
    cid = gate.ask()
    action = gate.action(cid)
    assert len(gate.ran("flaky")) == 1 and action.execution.status is status
    assert action.execution.outcome_unknown is unknown
    [heard] = gate.agent.outputs().values()
    assert heard.get("outcome") == ("unknown" if unknown else None)
    if error:
        assert action.execution.result["error"] == error
        assert "secret internals" not in str(action.execution.result)
    if mode == "refuse":
        assert action.execution.result["detail"] == {"code": 404}
    assert gate.reply(cid) == "done"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (("no_such_tool", {}), "unknown tool 'no_such_tool'"),
        (("issue_refund", {"amount": 5}), "arguments for issue_refund do not fit its schema"),
        (("issue_refund", {"customer_id": "c", "amount": 1, "pad": "x" * 70_000}), "larger than"),
    ],
)
def test_a_call_that_cannot_be_run_is_never_gated_and_never_run(call, error):
    gate = Gate(ScriptedAgent(pause(call), reply()))
    cid = gate.ask()
    action = gate.action(cid)
    assert error in action.error and action.execution.status is ExecutionStatus.NOT_EXECUTED
    assert gate.ran() == [] and gate.handover.asked() == [] and not action.gated
    assert error in gate.agent.outputs()[action.call_id]["error"]


def test_a_tool_the_agent_is_not_offered_is_not_run():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {})), reply()), offered=lambda agent: ["send_email"])
    cid = gate.ask()
    assert gate.ran() == [] and gate.action(cid).error == "unknown tool 'lookup_customer'"


def test_an_approval_that_no_longer_matches_the_call_is_not_run():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    action = gate.action(cid)
    # The stored approval's digest no longer matches the call (tampered, or a bug): fail closed.
    key = (f"APPROVAL#{action.approval_ids[0]}", "APPROVAL")
    row = gate.table._rows[key]
    row.record = row.record.model_copy(update={"digest": "0" * 64})
    gate.answer(decision, "approved")
    after = gate.action(cid)
    assert gate.ran() == [] and after.execution.status is ExecutionStatus.NOT_EXECUTED
    assert after.execution.result == {"error": "approval does not match"}


def test_a_client_tool_is_handed_to_the_client_and_its_result_resumes_the_turn():
    gate = Gate(ScriptedAgent(pause(("run_on_laptop", {"cmd": "ls"})), reply("Listed.")))
    cid = gate.ask()
    action = gate.action(cid)
    assert action.execution.status is ExecutionStatus.AWAITING_CLIENT
    assert action.execution.result == {"arguments": {"cmd": "ls"}}
    assert gate.conversation(cid).status is ConversationStatus.AWAITING_CLIENT and gate.agent.submitted == []
    assert gate.conversations.submit_tool_results(cid, [(action.call_id, {"files": 3})], "default") == 0
    gate.drain()
    assert gate.agent.outputs()[action.call_id]["result"] == {"files": 3}
    assert gate.reply(cid) == "Listed."


def test_a_client_result_that_never_comes_fails_the_call_and_the_turn_goes_on():
    gate = Gate(ScriptedAgent(pause(("run_on_laptop", {})), reply("Gave up.")))
    cid = gate.ask()
    with time_machine.travel(utc_now() + timedelta(minutes=61), tick=False):
        gate.reconciler.run_once()
        gate.drain()
    action = gate.action(cid)
    assert action.execution.status is ExecutionStatus.FAILED and "outcome unknown" in action.execution.result["error"]
    assert gate.reply(cid) == "Gave up."


# -- races -----------------------------------------------------------------------------------
def test_two_callbacks_for_one_answer_settle_it_once():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.handover.answer(decision, "approved")
    approval = gate.approvals(cid)[0]
    answer = gate.handover.get_decision(decision)
    assert gate.settler.settle(approval, answer) is SettleResult.SETTLED  # the winner
    assert gate.settler.settle(approval, answer) is SettleResult.ALREADY_SETTLED  # the loser, same snapshot
    gate.drain()
    assert len(gate.ran()) == 1 and len(gate.agent.submitted) == 1


def test_a_late_contrary_answer_does_not_change_a_settled_approval():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    approval = gate.approvals(cid)[0]
    gate.settler.settle(approval, Decision(id=decision, status=DecisionStatus.DENIED))
    assert gate.settler.settle(approval, Decision(id=decision, status=DecisionStatus.APPROVED)) is (
        SettleResult.ALREADY_SETTLED
    )
    assert gate.approvals(cid)[0].outcome is DecisionStatus.DENIED and gate.ran() == []


def test_two_invocations_deciding_one_call_record_one_verdict():
    gate = Gate(ScriptedAgent(pause(_gated_refund(), ("send_email", {})), reply()))
    cid = gate.ask()
    first, _ = gate.handover.asked()
    gate.handover.answer(first, "approved")
    approval = gate.approvals(cid)[0]
    gate.table.settle_approval(approval, gate.handover.get_decision(first))
    stale = gate.action(cid)  # both read the call before either recorded its verdict
    assert gate.settler.decide(stale) is True
    assert gate.settler.decide(stale) is False
    turn = gate.table.get_turn(cid, stale.turn_id)
    assert turn.pending == 1  # counted down once, not twice


def test_an_execution_is_claimed_by_one_invocation_only():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    stale = gate.decide_only(cid, gate.handover.asked()[0], "approved")
    gate.executor.run_approved(stale)  # the winner runs it
    gate.executor.run_approved(stale)  # the loser holds the same stale read: runs nothing
    assert len(gate.ran()) == 1


def test_a_claim_whose_invocation_died_is_settled_unknown_after_its_lease_never_run_again():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {})), reply("ok")), lease_seconds=60)
    gate.conversations.start("hi")
    message, _ = gate.queue.sent.pop(0)
    gate.table.claim_turn_start(message.conversation_id, message.turn_id)
    step = gate.agent.start_turn(gate.conversation(message.conversation_id), "hi")
    turn = gate.table.get_turn(message.conversation_id, message.turn_id)
    action = gate.runner._to_action(turn, 0, step.tool_calls[0], "default", None)
    assert gate.table.record_pause(turn, step.pause_ref, [action], [], pending=0)
    assert gate.table.claim_execution(action)  # ... and the invocation that claimed it dies here
    gate.executor.run_ungated(action)
    assert gate.ran() == []  # still within its lease: nobody else runs it
    with time_machine.travel(utc_now() + timedelta(seconds=61), tick=False):
        gate.executor.run_ungated(action)
    settled = gate.table.get_action(action.conversation_id, action.turn_id, action.call_id)
    assert gate.ran() == [] and settled.execution.status is ExecutionStatus.FAILED
    assert "outcome unknown" in settled.execution.result["error"]


def test_a_start_message_delivered_twice_starts_the_turn_once():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {})), reply()))
    gate.conversations.start("hi")
    gate.queue.sent.append(gate.queue.sent[0])
    gate.drain()
    assert gate.agent.started == ["hi"] and len(gate.ran()) == 1


def test_a_resume_message_delivered_twice_submits_once():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    [(resume, _)] = gate.queue.sent
    gate.queue.sent.append((resume, 0))
    gate.drain()
    assert len(gate.agent.submitted) == 1 and len(gate.ran()) == 1
    assert gate.table.get_turn(cid, resume.turn_id).status is TurnStatus.COMPLETED


def test_a_verdict_after_the_turn_failed_never_runs_the_call():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    turn_id = gate.conversation(cid).active_turn_id
    from signoff.logic.turn_failure import fail_turn

    assert fail_turn(gate.table, gate.executor, cid, turn_id, "gave up")
    assert gate.answer(gate.handover.asked()[0], "approved") is CallbackOutcome.SETTLED
    action = gate.action(cid)
    assert gate.ran() == [] and action.execution.status is ExecutionStatus.NOT_EXECUTED
    assert gate.conversation(cid).status is ConversationStatus.FAILED


def test_a_client_result_racing_its_expiry_one_wins():
    gate = Gate(ScriptedAgent(pause(("run_on_laptop", {})), reply()))
    cid = gate.ask()
    action = gate.action(cid)
    assert gate.executor.expire_client_call(action, 60)
    assert not gate.executor.record_client_result(action, {"late": True})
    assert not gate.executor.expire_client_call(action, 60)
    assert gate.action(cid).execution.status is ExecutionStatus.FAILED


# -- callback refusals ------------------------------------------------------------------------
def test_a_forged_or_unknown_callback_changes_nothing():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.handover.answer(decision, "approved")
    token = gate.handover.token(decision)
    with pytest.raises(ForgedCallback):
        gate.callback.handle(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    with pytest.raises(ForgedCallback):
        gate.callback.handle("")
    from signoff.domain.tokens import issue_token
    from tests.fakes.gate import SIGNING_KEY

    with pytest.raises(UnknownApproval):
        gate.callback.handle(issue_token(SIGNING_KEY, "nobody0123"))
    assert gate.ran() == [] and gate.action(cid).verdict is None and gate.handover.fetches == 0


def test_a_decision_that_is_not_the_approvals_is_refused():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.handover.decisions[decision] = Decision(id="dec_other", status=DecisionStatus.APPROVED)
    with pytest.raises(ForgedCallback):
        gate.callback.handle(gate.handover.token(decision))
    assert gate.ran() == [] and gate.approvals(cid)[0].state.value == "pending"


def _unbound(gate: Gate, cid: str):
    """The approval as it is between the decision's creation and the worker's binding of it."""
    approval = gate.approvals(cid)[0]
    row = gate.table._rows[(f"APPROVAL#{approval.approval_id}", "APPROVAL")]
    row.record = row.record.model_copy(update={"decision_id": None})
    return approval


def test_a_callback_before_its_decision_is_bound_waits_for_the_reconciler():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    _unbound(gate, cid)
    gate.handover.answer(decision, "approved")
    naps: list[float] = []
    gate.callback._sleep = naps.append  # the binding never comes
    assert gate.callback.handle(gate.handover.token(decision)) is CallbackOutcome.NOT_READY
    assert gate.ran() == [] and gate.handover.fetches == 0
    assert 0 < sum(naps) <= 1.0  # it looked again for about a second, no longer


def test_a_callback_that_beats_the_binding_by_moments_settles_the_call():
    """A fast approver (a bot) answers before the worker has written the decision id it got back."""
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply("Done.")))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    approval = _unbound(gate, cid)
    gate.handover.answer(decision, "approved")
    gate.callback._sleep = lambda _seconds: gate.table.attach_decision(approval, decision)  # bound meanwhile
    assert gate.callback.handle(gate.handover.token(decision)) is CallbackOutcome.SETTLED
    gate.drain()
    assert len(gate.ran()) == 1 and gate.reply(cid) == "Done."


def test_a_callback_for_a_settled_approval_finishes_what_a_crash_left():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply("Done.")))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.handover.answer(decision, "approved")
    gate.table.settle_approval(gate.approvals(cid)[0], gate.handover.get_decision(decision))  # then a crash
    assert gate.callback.handle(gate.handover.token(decision)) is CallbackOutcome.ALREADY_SETTLED
    gate.drain()
    assert len(gate.ran()) == 1 and gate.reply(cid) == "Done."


def test_execution_records_are_json_as_dynamodb_keeps_them():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {"customer_id": "x"})), reply()))
    cid = gate.ask()
    assert gate.action(cid).execution == Execution(status=ExecutionStatus.EXECUTED, result={"customer": "x"})


# -- the callback hands approved calls to the worker ---------------------------------------------
def test_the_callback_records_the_verdict_and_the_worker_runs_the_call():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply("Done.")))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    assert gate.ran() == []  # not in the callback: it has the gateway's 30 seconds
    [(message, delay)] = gate.queue.sent
    assert (message.kind, message.pause_ref, delay) == (
        "run_calls",
        gate.table.get_turn(cid, message.turn_id).pause_ref,
        0,
    )
    gate.queue.sent.append((message, 0))  # delivered twice
    gate.drain()
    assert len(gate.ran()) == 1 and len(gate.agent.submitted) == 1 and gate.reply(cid) == "Done."


def test_an_approved_call_runs_at_once_while_another_call_of_the_pause_still_waits():
    gate = Gate(ScriptedAgent(pause(_gated_refund(), ("send_email", {})), reply()))
    cid = gate.ask()
    refund, email = gate.handover.asked()
    gate.answer(refund, "approved")
    assert gate.ran("issue_refund") and gate.agent.submitted == []  # ran; the turn waits for the email
    assert gate.table.get_turn(cid, gate.action(cid).turn_id).status is TurnStatus.AWAITING_APPROVAL
    gate.answer(email, "denied")
    assert len(gate.ran()) == 1 and len(gate.agent.submitted) == 1


def test_a_lost_hand_off_is_made_up_for_by_the_reconciler():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply("Done.")))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    gate.queue.sent.clear()  # the run_calls message is lost
    with time_machine.travel(utc_now() + timedelta(minutes=3), tick=False):
        gate.reconciler.run_once()
        gate.drain()
    assert len(gate.ran()) == 1 and gate.reply(cid) == "Done."


def test_a_denied_call_needs_no_hand_off():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply()))
    gate.ask()
    gate.answer(gate.handover.asked()[0], "denied", drain=False)
    assert [m.kind for m, _ in gate.queue.sent] == ["resume_turn"]


def _counting(gate: Gate, *names: str) -> dict[str, int]:
    """How often each named read of the table is made from here on."""
    counts = dict.fromkeys(names, 0)
    for name in names:
        original = getattr(gate.table, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        setattr(gate.table, name, counted)
    return counts


def test_an_answer_goes_on_with_the_call_its_approval_carries_and_the_worker_reads_the_pause_by_key():
    gate = Gate(ScriptedAgent(pause(_gated_refund(), ("lookup_customer", {"customer_id": "c1"})), reply("Done.")))
    cid = gate.ask()
    [approval] = gate.approvals(cid)
    assert approval.call == gate.table.get_action(cid, approval.turn_id, approval.call_id).model_copy(
        update={"decision": None}
    )
    reads = _counting(gate, "get_action", "list_actions")
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    assert reads == {"get_action": 0, "list_actions": 0}  # the callback: the call came with its approval
    [(message, _delay)] = gate.queue.sent
    assert message.calls == [a.call_id for a in gate.actions(cid)] and len(message.calls) == 2
    reads = _counting(gate, "get_action", "list_actions")
    gate.drain()
    assert reads == {"get_action": 0, "list_actions": 0}  # the worker: the pause's calls read by key
    assert len(gate.ran("issue_refund")) == 1 and gate.reply(cid) == "Done."


def test_a_hand_off_naming_calls_the_pause_lacks_lists_the_pause_instead():
    gate = Gate(ScriptedAgent(pause(_gated_refund()), reply("Done.")))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    [(message, _delay)] = gate.queue.sent
    gate.queue.sent[0] = (message.model_copy(update={"calls": ["call_elsewhere"]}), 0)
    reads = _counting(gate, "list_actions")
    gate.drain()
    assert reads["list_actions"] >= 1 and len(gate.ran()) == 1 and gate.reply(cid) == "Done."


def test_a_work_message_from_a_newer_version_is_taken_for_what_this_one_knows():
    from signoff.domain.ports import WorkMessage

    body = '{"kind": "run_calls", "conversation_id": "c", "turn_id": "t", "pause_ref": "p", "priority": 3}'
    message = WorkMessage.model_validate_json(body)
    assert (message.kind, message.pause_ref, message.calls) == ("run_calls", "p", None)
