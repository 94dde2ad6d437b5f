"""The reconciler (the safety net) and the conversation service, in memory."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from signoff import deadline
from signoff.domain.models import ConversationStatus, DecisionStatus, ExecutionStatus, TurnStatus, utc_now
from signoff.domain.ports import BackendRejected, BackendUnavailable, ConversationBusy, ConversationNotFound
from signoff.logic.agent_runner import MAX_ATTEMPTS
from signoff.logic.conversations import NotAwaitingClient, QueueUnavailable
from signoff.logic.reconciler import MAX_READ_FAILURES, Reconciler
from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import Gate


def _refund():
    return ("issue_refund", {"customer_id": "c1", "amount": 340})


def _later(minutes: float):
    return time_machine.travel(utc_now() + timedelta(minutes=minutes), tick=False)


# -- the reconciler ---------------------------------------------------------------------------
def test_an_answer_whose_callback_never_came_is_found_and_acted_on():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Refunded.")))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.handover.answer(decision, "approved")  # ... and the callback is lost
    report = gate.reconciler.run_once()
    assert report.checked == 0  # not due yet: a callback usually comes first
    with _later(6):
        report = gate.reconciler.run_once()
        gate.drain()
    assert report.settled == 1 and len(gate.ran()) == 1 and gate.reply(cid) == "Refunded."
    with _later(20):
        assert gate.reconciler.run_once().checked == 0  # retired: never fetched again
        assert gate.handover.fetches == 1


def test_an_unanswered_decision_is_looked_at_again_later_not_every_run():
    gate = Gate(ScriptedAgent(pause(_refund()), reply()))
    gate.ask()
    with _later(6):
        report = gate.reconciler.run_once()
        assert report.still_pending == 1 and gate.reconciler.run_once().checked == 0
    with _later(12):
        assert gate.reconciler.run_once().still_pending == 1
    assert gate.ran() == []


def test_handover_unreachable_is_an_error_looked_at_again():
    gate = Gate(ScriptedAgent(pause(_refund()), reply()))
    gate.ask()
    gate.handover.unreachable = True
    with _later(6):
        assert gate.reconciler.run_once().errors == 1
    gate.handover.unreachable = False
    gate.handover.answer(gate.handover.asked()[0], "approved")
    with _later(12):
        assert gate.reconciler.run_once().settled == 1
        gate.drain()
    assert len(gate.ran()) == 1


def test_an_unreadable_decision_is_retried_with_backoff_then_settled_not_executed():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("No.")))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.handover.unreadable.add(decision)
    minutes, looks = 0.0, 0
    while looks < MAX_READ_FAILURES:
        minutes += 6 * 2**looks
        with _later(minutes):
            report = gate.reconciler.run_once()
            gate.drain()
        looks += report.errors
        assert report.errors <= 1
    assert report.unreadable_settled == 1 and gate.ran() == []
    action = gate.action(cid)
    assert action.execution.status is ExecutionStatus.NOT_EXECUTED and gate.reply(cid) == "No."
    assert gate.approvals(cid)[0].read_failures == MAX_READ_FAILURES - 1


def test_an_approval_never_bound_to_a_decision_is_settled_after_the_grace():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Nobody asked.")))
    gate.handover.refuse_asks = False
    cid = gate.ask()
    approval = gate.approvals(cid)[0]
    row = gate.table._rows[(f"APPROVAL#{approval.approval_id}", "APPROVAL")]
    row.record = row.record.model_copy(update={"decision_id": None})  # the worker died before binding it
    patient = Reconciler(gate.table, gate.handover, gate.settler, gate.executor, gate.queue, 300, 600)
    with _later(5.5):
        assert patient.run_once().settled == 0  # within the grace: it may still be being asked
    with _later(11):
        assert patient.run_once().settled == 1
        gate.drain()
    assert gate.ran() == [] and gate.action(cid).verdict_recorded and gate.reply(cid) == "Nobody asked."


def test_a_settled_approval_whose_call_has_no_verdict_is_finished():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Done.")))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    gate.handover.answer(decision, "approved")
    gate.table.settle_approval(gate.approvals(cid)[0], gate.handover.get_decision(decision))  # crash here
    report = gate.reconciler.run_once()
    gate.drain()
    assert report.checked == 1 and len(gate.ran()) == 1 and gate.reply(cid) == "Done."


def test_a_lost_start_message_is_sent_again_after_the_stall_time():
    gate = Gate(ScriptedAgent(reply("Hi.")))
    started = gate.conversations.start("hi")
    gate.queue.sent.clear()  # lost
    assert gate.reconciler.run_once().turns_redriven == 0
    with _later(3):
        assert gate.reconciler.run_once().turns_redriven == 1
        gate.drain()
    assert gate.reply(started.conversation_id) == "Hi."


def test_a_lost_resume_message_is_sent_again():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Done.")))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    gate.queue.sent.clear()
    with _later(3):
        assert gate.reconciler.run_once().turns_redriven == 1
        gate.drain()
    assert gate.reply(cid) == "Done." and len(gate.ran()) == 1


def test_a_worker_that_died_before_any_pause_fails_the_turn_with_a_reply():
    gate = Gate(ScriptedAgent(reply("never")))
    started = gate.conversations.start("hi")
    message, _ = gate.queue.sent.pop()
    assert gate.table.claim_turn_start(message.conversation_id, message.turn_id)  # ... and dies
    with _later(11):
        assert gate.reconciler.run_once().turns_redriven == 1
    cid = started.conversation_id
    assert gate.conversation(cid).status is ConversationStatus.FAILED
    assert "the worker stopped before it finished" in gate.reply(cid)


def test_a_worker_that_died_after_its_calls_ran_hands_the_turn_back():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Done.")))
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "approved", drain=False)
    message, _ = gate.queue.sent.pop()  # the worker takes the hand-off ...
    turn = gate.table.get_turn(cid, message.turn_id)
    gate.executor.settle_turn(cid, turn.turn_id, turn.pause_ref)  # ... runs the call ...
    assert gate.table.claim_turn_resume(cid, turn.turn_id, turn.pause_ref)  # ... and dies before submitting
    with _later(11):
        assert gate.reconciler.run_once().turns_redriven == 1
        gate.drain()
    assert gate.reply(cid) == "Done." and len(gate.agent.submitted) == 1 and len(gate.ran()) == 1


def test_a_call_whose_approval_is_missing_is_settled_as_not_requested():
    gate = Gate(ScriptedAgent(pause(_refund()), reply("Missing.")))
    cid = gate.ask()
    approval = gate.approvals(cid)[0]
    del gate.table._rows[(f"APPROVAL#{approval.approval_id}", "APPROVAL")]  # lost, somehow
    with _later(11):  # the turn is looked at once its running lease is over
        report = gate.reconciler.run_once()
        gate.drain()
    assert report.missing_approvals_settled == 1 and gate.ran() == []
    assert gate.action(cid).execution.status is ExecutionStatus.NOT_EXECUTED and gate.reply(cid) == "Missing."


def test_the_report_says_how_long_the_oldest_due_item_waited():
    gate = Gate(ScriptedAgent(pause(_refund()), reply()))
    gate.ask()
    with _later(65):
        report = gate.reconciler.run_once(limit=1)
    assert 59 * 60 <= report.oldest_due_age_seconds <= 61 * 60 and report.checked == 1


# -- retries of the agent API ------------------------------------------------------------------
def test_an_unavailable_agent_api_is_retried_with_a_delay_then_the_turn_fails():
    gate = Gate(ScriptedAgent(*[BackendUnavailable("503")] * MAX_ATTEMPTS))
    started = gate.conversations.start("hi")
    delays = []
    while gate.queue.sent:
        message, delay = gate.queue.sent.pop(0)
        delays.append(delay)
        gate.runner.handle(message)
    assert delays == [0, 5, 15, 45, 120]
    cid = started.conversation_id
    assert gate.conversation(cid).status is ConversationStatus.FAILED
    assert "unavailable for too long" in gate.reply(cid)


def test_a_rejected_submission_that_got_through_is_not_sent_again():
    agent = ScriptedAgent(pause(("lookup_customer", {})))
    gate = Gate(agent)
    original = agent.submit_tool_outputs

    def lost_answer(conversation, pause_ref, outputs):
        original(conversation, pause_ref, outputs)  # the model got them ...
        raise BackendRejected("already submitted")  # ... but we heard an error

    agent.submit_tool_outputs = lost_answer
    agent.will(reply("Found."))
    cid = gate.ask()
    assert gate.reply(cid) == "Found." and len(agent.submitted) == 1


def test_too_many_tool_rounds_end_the_turn():
    steps = [pause(("lookup_customer", {})) for _ in range(8)]
    gate = Gate(ScriptedAgent(*steps))
    cid = gate.ask()
    assert gate.conversation(cid).status is ConversationStatus.FAILED
    assert "more tool rounds than one turn allows" in gate.reply(cid)


def test_a_new_turn_first_answers_the_calls_a_failed_turn_left_open():
    gate = Gate(ScriptedAgent(pause(_refund())))
    cid = gate.ask()
    from signoff.logic.turn_failure import fail_turn

    fail_turn(gate.table, gate.executor, cid, gate.conversation(cid).active_turn_id, "gave up")
    gate.agent.will(reply("Fresh start."))
    gate.conversations.post_message(cid, "again")
    gate.drain()
    [closed] = gate.agent.closed
    assert '"not_executed"' in closed[0].output and gate.reply(cid) == "Fresh start."
    assert gate.conversation(cid).unanswered_turn_id is None


# -- conversations ----------------------------------------------------------------------------
def test_a_conversation_is_its_tenants_only():
    gate = Gate(ScriptedAgent(reply("Hi."), reply("Again.")))
    cid = gate.ask(tenant="acme")
    with pytest.raises(ConversationNotFound):
        gate.conversations.post_message(cid, "mine now", tenant="globex")
    assert gate.conversations.view(cid, tenant="globex") is None
    assert gate.conversations.view("not-an-id", tenant="acme") is None
    with pytest.raises(ConversationNotFound):
        gate.conversations.submit_tool_results(cid, [("call", {})], "globex")
    with _later(1):  # a later millisecond (messages are ordered and keyed by time)
        gate.conversations.post_message(cid, "again", tenant="acme")
        gate.drain()
    view = gate.conversations.view(cid, tenant="acme")
    assert [m["content"] for m in view["messages"] if m["role"] == "assistant"] == ["Hi.", "Again."]


def test_a_message_while_a_turn_waits_is_refused():
    gate = Gate(ScriptedAgent(pause(_refund())))
    cid = gate.ask()
    with pytest.raises(ConversationBusy):
        gate.conversations.post_message(cid, "hurry up")


def test_a_queue_that_is_down_fails_the_turn_it_could_not_send():
    gate = Gate(ScriptedAgent())
    gate.queue.fail = True
    with pytest.raises(QueueUnavailable):
        gate.conversations.start("hi")
    [conversation] = [r.record for r in gate.table._rows.values() if type(r.record).__name__ == "Conversation"]
    assert conversation.status is ConversationStatus.FAILED


def test_a_result_for_a_call_not_with_the_client_records_nothing():
    gate = Gate(ScriptedAgent(pause(("run_on_laptop", {}), ("run_on_laptop", {"n": 2})), reply("Both.")))
    cid = gate.ask()
    first, second = gate.actions(cid)
    with pytest.raises(NotAwaitingClient):
        gate.conversations.submit_tool_results(cid, [(first.call_id, 1), ("call_nope", 2)], "default")
    assert gate.action(cid).execution.status is ExecutionStatus.AWAITING_CLIENT  # the good one not taken either
    assert gate.conversations.submit_tool_results(cid, [(first.call_id, 1)], "default") == 1
    assert gate.queue.sent == []  # one still with the client: nothing resumed
    with pytest.raises(NotAwaitingClient):
        gate.conversations.submit_tool_results(cid, [(first.call_id, 1)], "default")
    assert gate.conversations.submit_tool_results(cid, [(second.call_id, 2)], "default") == 0
    gate.drain()
    assert gate.reply(cid) == "Both."


def test_the_view_shows_each_calls_decision_and_execution():
    gate = Gate(ScriptedAgent(pause(_refund()), reply()))
    cid = gate.ask()
    [decision] = gate.handover.asked()
    pending = gate.conversations.view(cid)["actions"][0]
    assert pending["decision"] == {"id": decision, "status": "pending", "resolved_by": None, "notes": None}
    assert pending["execution"] is None and pending["gated"] is True
    gate.answer(decision, "approved", notes="fine")
    done = gate.conversations.view(cid)["actions"][0]
    assert done["decision"]["status"] == "approved" and done["decision"]["notes"] == "fine"
    assert done["execution"] == {"status": "executed", "result": {"refund_id": "re_340"}}
    assert gate.conversations.view(cid)["status"] == "idle"
    assert gate.table.get_turn(cid, gate.action(cid).turn_id).status is TurnStatus.COMPLETED
    assert gate.action(cid).verdict is DecisionStatus.APPROVED


def test_a_conversation_is_read_a_page_at_a_time_with_a_cursor():
    from signoff.domain.stores import InvalidCursor

    gate = Gate(ScriptedAgent(*[reply(f"r{n}") for n in range(3)]))
    cid = gate.conversations.start("q0").conversation_id
    for n in (0, 1, 2):  # each message in its own millisecond (in one, the reply would sort first)
        with _later(n):
            if n:
                gate.conversations.post_message(cid, f"q{n}")
        with _later(n + 0.5):
            gate.drain()
    seen, cursor, pages = [], None, 0
    while True:
        view = gate.conversations.view(cid, limit=2, cursor=cursor)
        seen += [m["content"] for m in view["messages"]]
        pages += 1
        cursor = view["next_cursor"]
        if cursor is None:
            break
    assert seen == ["q0", "r0", "q1", "r1", "q2", "r2"] and pages == 3
    assert gate.conversations.view(cid)["next_cursor"] is None  # one page holds it all
    for bad in ("!!", "e30=", "eyJtIjogMSwgImEiOiAifiJ9"):  # not base64 JSON; {}; {"m": 1, "a": "~"}
        with pytest.raises(InvalidCursor):
            gate.conversations.view(cid, cursor=bad)
    assert gate.conversations.view(cid, tenant="globex", cursor=view["next_cursor"]) is None


def test_turn_ids_sort_in_the_order_they_were_made():
    from signoff.logic.ids import new_turn_id

    with _later(0):
        first = new_turn_id()
    with _later(1 / 60_000):  # one millisecond later
        second = new_turn_id()
    assert first < second and len(first) == len(second) == 37 and first.startswith("turn_")


def _every_five_minutes(gate: Gate, until_minutes: int, at_minute=None) -> None:
    """Run the reconciler on its schedule; ``at_minute(m)`` runs before the pass of minute m."""
    start = utc_now()
    for minute in range(5, until_minutes + 1, 5):
        with time_machine.travel(start + timedelta(minutes=minute), tick=False):
            if at_minute:
                at_minute(minute)
            gate.reconciler.run_once()
            gate.drain()


def test_a_decision_pending_for_a_week_is_looked_at_thinning_out_not_every_pass():
    import copy

    from tests.fakes.gate import POLICY

    policy = copy.deepcopy(POLICY)
    policy["tools"]["send_email"]["timeout_minutes"] = 7 * 24 * 60
    gate = Gate(ScriptedAgent(pause(("send_email", {})), reply("Expired.")), policy)
    cid = gate.ask()
    [decision] = gate.handover.asked()
    week = 7 * 24 * 60

    def expire(minute):
        if minute == week:  # Handover expires it; its callback is lost
            gate.handover.answer(decision, "expired")

    _every_five_minutes(gate, week + 10, expire)
    # 2,016 passes; a look every pass would be 2,016 fetches. Thinning out to hourly: about 175.
    assert gate.handover.fetches <= 7 * 24 + 12
    assert gate.reply(cid) == "Expired."  # the expiry was noticed within two passes


def test_a_lost_expiry_callback_still_moves_the_ladder_on_time():
    gate = Gate(ScriptedAgent(pause(("wipe_device", {})), reply()))
    gate.ask()
    [first] = gate.handover.asked()

    def expire(minute):
        if minute == 30:  # the first rung's 30 minutes are up; the callback is lost
            gate.handover.answer(first, "expired")

    _every_five_minutes(gate, 40, expire)
    assert len(gate.handover.asked("lead@x.io")) == 1  # escalated within ten minutes of the expiry


def test_one_pass_counts_everything_it_did():
    """The report feeds the reconciler's metrics: each count is a sum over the pass, not a flag."""
    gate = Gate(ScriptedAgent(*[pause(_refund()) for _ in range(4)], pause(("lookup_customer", {}))))
    cids = [gate.ask() for _ in range(4)]
    answered, fetch_fails, unreadable, pending = gate.handover.asked()
    gate.handover.answer(answered, "approved")  # its callback lost
    gate.handover.unreadable.add(unreadable)
    gate.agent.will(reply("r"))  # for the answered call's resume
    lost = gate.conversations.start("lost message").conversation_id
    gate.queue.sent.pop()  # its start message is lost
    original = gate.handover.get_decision

    def flaky(decision_id):
        if decision_id == fetch_fails:
            from signoff.domain.ports import ApprovalServiceError

            raise ApprovalServiceError("503")
        return original(decision_id)

    gate.handover.get_decision = flaky
    with _later(6):
        report = gate.reconciler.run_once()
    assert (report.checked, report.settled, report.still_pending, report.errors) == (4, 1, 1, 2)
    assert report.turns_redriven == 1 and report.unreadable_settled == 0
    assert {m.conversation_id for m, _ in gate.queue.sent} == {cids[0], lost}
    with _later(6.5):  # everything looked at was postponed, none is due again at once
        assert gate.reconciler.run_once().checked == 0
    with _later(11.5):  # the failed fetch and the pending one: again after one interval; not the unreadable one
        again = gate.reconciler.run_once()
    assert (again.checked, again.errors, again.still_pending) == (2, 1, 1)
    with _later(16.5):  # unreadable once: looked at again after two intervals
        assert gate.reconciler.run_once().errors >= 1
    assert gate.approvals(cids[2])[0].read_failures == 2 and pending


def test_a_backlog_drains_in_one_invocation_page_by_page():
    """Lost callbacks pile up: one run takes pass after pass until nothing is due (run_once: one page)."""
    gate = Gate(ScriptedAgent(*[pause(_refund()) for _ in range(5)], *[reply("r") for _ in range(5)]))
    for _ in range(5):
        gate.ask()
    for decision in gate.handover.asked():
        gate.handover.answer(decision, "denied")  # every callback lost
    with _later(6):
        first = gate.reconciler.run_once(limit=2)
        assert (first.checked, first.settled, first.more) == (2, 2, True)
        drained = gate.reconciler.run(limit=2)
    assert (drained.checked, drained.settled, drained.more) == (3, 3, False)
    assert drained.passes >= 2  # the three left took more than one page of two
    with _later(6):
        assert gate.reconciler.run(limit=2).checked == 0  # nothing left


def test_a_run_stops_at_its_pass_limit_and_says_more_is_due():
    gate = Gate(ScriptedAgent(*[pause(_refund()) for _ in range(3)]))
    for _ in range(3):
        gate.ask()
    with _later(6):
        report = gate.reconciler.run(limit=1, max_passes=2)
    assert (report.passes, report.checked, report.more) == (2, 2, True)


def test_a_pass_with_workers_handles_each_due_approval_once_even_run_twice_at_once():
    """Due approvals are handled eight at a time (each waits on Handover); two passes at once over the
    same lost callbacks still run each approved call once, and the counts add up."""
    from concurrent.futures import ThreadPoolExecutor

    gate = Gate(ScriptedAgent(*[pause(_refund()) for _ in range(8)]))
    for _ in range(8):
        gate.ask()
    decisions = gate.handover.asked()
    for decision in decisions[:4]:
        gate.handover.answer(decision, "approved")  # callbacks lost
    parallel = Reconciler(gate.table, gate.handover, gate.settler, gate.executor, gate.queue, 300, 300, workers=8)
    with _later(6), ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: parallel.run_once(), range(2)))
    assert len(gate.ran("issue_refund")) == 4  # each approved call invoked once
    assert all(r.checked <= 8 for r in reports) and max(r.checked for r in reports) == 8
    assert gate.table.due_work(utc_now() + timedelta(minutes=6)).approvals == []  # all settled or postponed


def test_a_pass_with_workers_counts_what_each_worker_did():
    gate = Gate(ScriptedAgent(*[pause(_refund()) for _ in range(8)]))
    for _ in range(8):
        gate.ask()
    for decision in gate.handover.asked()[:3]:
        gate.handover.answer(decision, "denied")
    parallel = Reconciler(gate.table, gate.handover, gate.settler, gate.executor, gate.queue, 300, 300, workers=8)
    fetch, left = gate.handover.get_decision, []

    def timed_fetch(decision_id):
        left.append(deadline.remaining())  # each worker runs in the invocation's context: its deadline
        return fetch(decision_id)

    gate.handover.get_decision = timed_fetch
    with _later(6), deadline.invocation(60_000):
        report = parallel.run_once()
    assert (report.checked, report.settled, report.still_pending, report.errors) == (8, 3, 5, 0)
    assert len(left) == 8 and all(seconds <= 60 for seconds in left)
