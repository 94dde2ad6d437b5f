"""AgentRunner in memory: how a turn starts, pauses, resumes, retries and ends."""

from __future__ import annotations

import json

from signoff import deadline
from signoff.domain.models import ConversationStatus, ExecutionStatus, TurnStatus
from signoff.domain.ports import BackendRejected, NotConfigured
from signoff.logic.agent_runner import AgentRunner
from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import Gate


def _refund(amount=340):
    return ("issue_refund", {"customer_id": "c1", "amount": amount})


def test_the_agent_apis_state_is_kept_on_the_conversation_once():
    gate = Gate(ScriptedAgent(reply("Hi."), reply("Again.")))
    cid = gate.ask()
    assert gate.conversation(cid).backend_state == {"thread": f"th_{cid}"}
    writes = gate.table.writes
    from datetime import timedelta

    import time_machine

    from signoff.domain.models import utc_now

    with time_machine.travel(utc_now() + timedelta(seconds=1), tick=False):
        gate.conversations.post_message(cid, "again")
        gate.drain()
    # open_turn, claim, complete: the unchanged state is not written again
    assert gate.table.writes - writes == 3 and gate.agent.prepared == 2


def test_each_call_of_a_pause_becomes_an_action_in_order_with_what_the_approver_is_shown():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {"customer_id": "c1"}), _refund(), ("deploy", {"v": 2}))))
    cid = gate.ask()
    lookup, refund, deploy = gate.actions(cid)
    assert [a.seq for a in (lookup, refund, deploy)] == [0, 1, 2]
    assert (lookup.gated, refund.gated, deploy.gated) == (False, True, True)
    assert refund.summary == 'Run issue_refund with {"amount": 340, "customer_id": "c1"}'
    assert len(refund.approval_ids) == 1 and refund.quorum_required == 1
    assert len(deploy.approval_ids) == 3 and deploy.quorum_required == 2
    assert lookup.approval_ids == [] and all(a.tenant == "default" for a in (lookup, refund, deploy))
    assert gate.table.get_turn(cid, refund.turn_id).pending == 2
    request = gate.handover.requests[gate.handover.asked()[0]]
    assert request.action == refund.summary and request.urgency == "medium" and request.timeout_minutes == 60
    assert f"call {refund.call_id}, " in request.context and f"digest {refund.digest[:16]}." in request.context


def test_arguments_that_are_not_an_object_count_as_none():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", [1, 2])), reply()))
    cid = gate.ask()
    action = gate.action(cid)
    assert action.arguments == {} and action.error == "arguments for lookup_customer must be a JSON object"


def test_a_turn_without_time_for_a_model_call_is_handed_back_for_a_retry():
    gate = Gate(ScriptedAgent(reply("Later.")))
    gate.runner = AgentRunner(
        gate.table,
        gate.agent,
        gate.tools,
        gate.policy,
        gate.executor,
        gate.requester,
        gate.queue,
        model_call_seconds=30,
    )
    started = gate.conversations.start("hi")
    message, _ = gate.queue.sent.pop(0)
    with deadline.invocation(10_000):  # 10 s left, a model call needs 30
        gate.runner.handle(message)
    [(retry, delay)] = gate.queue.sent
    assert retry.kind == "start_turn" and delay == 5 and gate.agent.started == []
    assert gate.table.get_turn(started.conversation_id, started.turn_id).status is TurnStatus.QUEUED
    gate.drain()  # outside an invocation there is time
    assert gate.reply(started.conversation_id) == "Later."


def test_a_refused_request_or_a_missing_setting_fails_the_turn_with_what_the_user_may_know():
    for error, said in (
        (BackendRejected("400 bad"), "the agent service refused the request"),
        (NotConfigured("key missing"), "Signoff is not fully set up yet"),
        (KeyError("internal detail"), "an unexpected error occurred (KeyError)"),
    ):
        gate = Gate(ScriptedAgent(error))
        cid = gate.ask()
        text = gate.reply(cid)
        assert said in text and "internal detail" not in text and "400 bad" not in text
        assert gate.conversation(cid).status is ConversationStatus.FAILED


def test_a_resume_for_another_pause_or_a_turn_not_waiting_does_nothing():
    gate = Gate(ScriptedAgent(pause(_refund()), reply()))
    cid = gate.ask()
    turn = gate.table.get_turn(cid, gate.conversation(cid).active_turn_id)
    gate.runner.resume(cid, turn.turn_id, "resp_other")
    gate.runner.resume(cid, "turn_nope", turn.pause_ref)
    assert gate.agent.submitted == [] and gate.queue.sent == []


def test_a_call_still_executing_makes_the_resume_look_again_shortly():
    gate = Gate(ScriptedAgent(pause(_refund()), reply()))
    cid = gate.ask()
    action = gate.decide_only(cid, gate.handover.asked()[0], "approved")
    assert gate.table.claim_execution(action)  # another invocation is running the tool
    turn = gate.table.get_turn(cid, action.turn_id)
    gate.runner.resume(cid, turn.turn_id, turn.pause_ref)
    [(again, delay)] = gate.queue.sent
    assert again.kind == "resume_turn" and delay == 10 and gate.agent.submitted == [] and gate.ran() == []


def test_a_retry_after_outputs_got_through_asks_the_model_what_followed_instead_of_sending_again():
    agent = ScriptedAgent(pause(("lookup_customer", {})), reply("Found."))
    gate = Gate(agent)
    original = agent.submit_tool_outputs
    calls = []

    def timed_out(conversation, pause_ref, outputs):
        calls.append(1)
        if len(calls) == 1:
            original(conversation, pause_ref, outputs)  # it got through ...
            from signoff.domain.ports import BackendUnavailable

            raise BackendUnavailable("timeout")  # ... but the answer was lost
        raise AssertionError("the outputs were sent twice")

    agent.submit_tool_outputs = timed_out
    cid = gate.ask()
    assert gate.reply(cid) == "Found." and len(calls) == 1 and len(agent.submitted) == 1


def test_a_call_of_the_failed_turn_still_running_holds_the_next_turn_back():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {}))))
    cid = gate.conversations.start("hi").conversation_id
    message, _ = gate.queue.sent.pop(0)
    gate.table.claim_turn_start(cid, message.turn_id)
    step = gate.agent.start_turn(gate.conversation(cid), "hi")
    turn = gate.table.get_turn(cid, message.turn_id)
    action = gate.runner._to_action(turn, 0, step.tool_calls[0], "default", None)
    gate.table.record_pause(turn, step.pause_ref, [action], [], pending=0)
    gate.table.claim_execution(action)  # running in an invocation still alive
    from signoff.logic.turn_failure import fail_turn

    fail_turn(gate.table, gate.executor, cid, turn.turn_id, "gave up")
    gate.agent.will(reply("Next."))
    gate.conversations.post_message(cid, "next")
    message, _ = gate.queue.sent.pop(0)
    gate.runner.handle(message)
    [(retry, delay)] = gate.queue.sent
    assert retry.kind == "start_turn" and delay == 5 and gate.agent.closed == [] and gate.agent.started == ["hi"]


def test_open_calls_the_table_never_saw_are_answered_as_not_run():
    gate = Gate(ScriptedAgent(pause(("lookup_customer", {}))))
    cid = gate.ask()
    gate.agent._open[cid].append(pause(("ghost", {}, "call_ghost")).tool_calls[0])
    from signoff.logic.turn_failure import fail_turn

    fail_turn(gate.table, gate.executor, cid, gate.conversation(cid).active_turn_id, "gave up")
    gate.agent.will(reply())
    gate.conversations.post_message(cid, "again")
    gate.drain()
    [closed] = gate.agent.closed
    ghost = next(o for o in closed if o.call_id == "call_ghost")
    assert json.loads(ghost.output) == {
        "tool": "ghost",
        "execution": "not_executed",
        "error": "the turn ended before this call could run",
    }


def test_a_client_call_past_its_time_is_failed_when_the_turn_is_next_looked_at():
    gate = Gate(ScriptedAgent(pause(("run_on_laptop", {}), ("lookup_customer", {})), reply("Went on.")))
    cid = gate.ask()
    client_call, lookup = gate.actions(cid)
    assert client_call.execution.status is ExecutionStatus.AWAITING_CLIENT
    assert lookup.execution.status is ExecutionStatus.EXECUTED
    assert gate.conversation(cid).status is ConversationStatus.AWAITING_CLIENT


def test_each_round_of_a_turn_submits_the_outputs_of_its_own_calls_only():
    """A turn pauses again after each round; the second submission answers the second round's calls,
    not the first round's again (Chat Completions refuses outputs that are not exactly the paused calls)."""
    gate = Gate(
        ScriptedAgent(pause(("lookup_customer", {"customer_id": "c1"})), pause(_refund(), _refund(500)), reply("Done."))
    )
    cid = gate.ask()
    first, second = gate.handover.asked()
    gate.answer(first, "approved")
    gate.answer(second, "denied")
    assert gate.reply(cid) == "Done."
    rounds = [[o.call_id for o in outputs] for outputs in gate.agent.submitted]
    assert len(rounds) == 2 and len(rounds[0]) == 1 and len(rounds[1]) == 2
    assert not set(rounds[0]) & set(rounds[1])
    assert {gate.agent.outputs(1)[c]["execution"] for c in rounds[1]} == {"executed", "not_executed"}
