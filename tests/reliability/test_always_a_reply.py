"""Three single crashes that used to strand a conversation for good, each reproduced from outside
the product (the crash injector kills the invocation right after the write named), then healed
by what runs in AWS: queue redelivery, the reconciler, the approver, the next message."""

from __future__ import annotations

import pytest

from local.drills.crash_matrix import MATRIX_SETTINGS
from local.drills.crashes import CrashPlan
from local.evidence import effect_call, wait_for
from tests.support import assistant_for, settings_changed

TWO_GATED = "Refund €340 to customer #4821 and €120 to customer #4822."
GATED_AND_UNGATED = "Refund €340 to customer #4821 and look up customer #55."


def _crash(client, message: str, after_write=None, before_write=None) -> str:
    """Start a conversation whose start_turn invocation dies right after the write ``after_write`` picks
    (or right before the one ``before_write`` picks)."""
    plan = client.stack.crashes.arm(
        CrashPlan("AgentWorkerFunction", None, after_write=after_write, before_write=before_write)
    )
    try:
        cid = client.start(message)["conversation_id"]
        wait_for(lambda: plan.done.is_set(), timeout=30, what="the worker invocation")
    finally:
        client.stack.crashes.disarm()
    assert plan.fired, "the crash did not happen"
    return cid


def _heal(client, cid: str) -> dict:
    """Approve whatever is asked, let the queue and the reconciler run, until the turn is over."""
    stack = client.stack

    def replied():
        view = client.get(cid)
        if view["status"] in ("idle", "failed"):
            return view
        for decision in stack.handover.pending():
            client.resolve(decision["id"], "approve")
        if stack.quiescent():
            stack.run_scheduled("ReconcilerFunction")
        return None

    return wait_for(replied, timeout=45, what=f"a reply in {cid}")


def _follow_up_gets_a_reply(client, cid: str) -> None:
    response = client.post(f"/conversations/{cid}/messages", json={"message": "Please look up customer #56."})
    assert response.status_code == 202, response.text
    view = client.wait_status(cid, "idle", "failed", timeout=30)
    assert view["status"] == "idle", view
    assert view["messages"][-1]["role"] == "assistant"


@pytest.fixture
def short_leases():
    with settings_changed(**MATRIX_SETTINGS):
        yield


def test_worker_dies_before_every_gated_call_has_its_approvals(client, short_leases):
    """Hole 1: died right after binding the first call's decision; the second call had no approval."""
    cid = _crash(client, TWO_GATED, lambda op, body: op == "TransactWriteItems" and "decision_id = :d" in body)
    view = _heal(client, cid)
    assert view["status"] == "idle" and view["messages"][-1]["role"] == "assistant"
    statuses = sorted((a["execution"] or {}).get("status") for a in view["actions"])
    assert statuses == ["executed", "not_executed"], view["actions"]  # asked and approved; never asked
    _follow_up_gets_a_reply(client, cid)


def test_an_ungated_call_left_claimed_by_a_crash_is_settled_and_the_turn_ends(client, short_leases):
    """Hole 2: died right after claiming the ungated call, before running it."""
    cid = _crash(client, GATED_AND_UNGATED, lambda op, body: op == "UpdateItem" and "execution = :claim" in body)
    view = _heal(client, cid)
    assert view["status"] == "idle" and view["messages"][-1]["role"] == "assistant"
    lookup = next(a for a in view["actions"] if a["tool"] == "lookup_customer")
    assert lookup["execution"]["status"] == "failed" and "unknown" in lookup["execution"]["result"]["error"]
    assert [e for e in client.effects(cid) if e["tool"] == "lookup_customer"] == []  # never invoked
    _follow_up_gets_a_reply(client, cid)


def test_an_ungated_call_left_executing_by_a_crash_is_settled_not_rerun(client, short_leases):
    """Hole 2, later: died right after the ungated tool ran, before its execution was recorded."""
    cid = _crash(client, GATED_AND_UNGATED, lambda op, body: op == "UpdateItem" and "EFFECT#" in body)
    view = _heal(client, cid)
    assert view["status"] == "idle" and view["messages"][-1]["role"] == "assistant"
    lookup = next(a for a in view["actions"] if a["tool"] == "lookup_customer")
    assert lookup["execution"]["status"] == "failed" and "unknown" in lookup["execution"]["result"]["error"]
    ran = [e for e in client.effects(cid) if e["tool"] == "lookup_customer"]
    assert [int(e["invocations"]) for e in ran] == [1]  # told "outcome unknown", never invoked again
    assert effect_call(ran[0])[1] == lookup["call_id"]
    _follow_up_gets_a_reply(client, cid)


@pytest.mark.parametrize("api", ["responses", "chat", "assistants"])
def test_a_turn_that_fails_after_the_model_asked_for_tools_does_not_block_the_next(client, api):
    """Hole 3: the model asked for a call, the worker died before recording the pause (its calls, its
    approvals and the turn's move are one write); the turn fails (lease over), and the next message
    must not find the agent API still waiting on that call."""
    extra = {"AGENT_API": api, **MATRIX_SETTINGS}
    if api == "assistants":
        extra["OPENAI_ASSISTANT_ID"] = assistant_for(client.stack)
    with settings_changed(**extra):
        pause = lambda op, body: op == "TransactWriteItems" and '"ACTION#' in body  # noqa: E731
        cid = _crash(client, "Please look up customer #57.", before_write=pause)
        view = _heal(client, cid)
        assert view["status"] == "failed"
        _follow_up_gets_a_reply(client, cid)
        failed_turn_reply = next(m for m in client.get(cid)["messages"] if m["role"] == "assistant")
        assert "could not finish" in failed_turn_reply["content"]  # the failure itself was said
