"""Assistants runs expire ~10 minutes after creation and lock their thread: Signoff copes with both."""

from __future__ import annotations

import time

import pytest
from openai import OpenAI

from tests.contract.test_backends import SEED
from tests.support import assistant_for, settings_changed


@pytest.fixture
def assistants(stack):
    assistant_id = assistant_for(stack)
    with settings_changed(AGENT_API="assistants", OPENAI_ASSISTANT_ID=assistant_id):
        yield OpenAI(api_key="sk-test", base_url=stack.openai_url), assistant_id


def _let_ten_minutes_pass(run: dict) -> None:
    """The run reaches its expires_at now, as it would ten minutes after it was created."""
    run["_expires_precise"] = time.time()


def _runs_of(stack, thread_id: str) -> list[dict]:
    return sorted(
        (r for r in stack.openai.assistants.runs.values() if r["thread_id"] == thread_id), key=lambda r: r["created_at"]
    )


def _paused_past_expiry(stack, client) -> tuple[str, str, str, dict]:
    """The seed request paused on its refund, and the run's ten minutes already over."""
    from signoff import runtime

    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    thread_id = runtime.table().get_conversation(cid).backend_state["thread"]
    [paused_run] = _runs_of(stack, thread_id)
    _let_ten_minutes_pass(paused_run)
    return cid, decision_id, thread_id, paused_run


def test_an_approval_after_the_run_expired_executes_once_and_gets_a_reply(stack, client, assistants):
    cid, decision_id, thread_id, paused_run = _paused_past_expiry(stack, client)

    client.resolve(decision_id, "approve", notes="Late, but yes.")
    view = client.wait_status(cid, "idle")

    assert paused_run["status"] == "expired"
    assert view["actions"][0]["execution"]["status"] == "executed"
    assert len(client.effects(cid)) == 1
    reply = client.reply(view)
    assert "approved" in reply and '"Late, but yes."' in reply
    runs = _runs_of(stack, thread_id)
    assert len(runs) == 2 and runs[1]["status"] == "completed"
    # Nothing was ever submitted to the expired run.
    assert not any(e["path"].endswith(f"{paused_run['id']}/submit_tool_outputs") for e in client.openai_log())
    continuation = [m for m in stack.openai.assistants.threads[thread_id]["_messages"] if m["role"] == "user"][-1]
    assert "Signoff:" in continuation["content"][0]["text"]["value"]


def test_a_denial_after_expiry_also_reaches_the_model(stack, client, assistants):
    cid, decision_id, _, _ = _paused_past_expiry(stack, client)
    client.resolve(decision_id, "deny", notes="Too late anyway.")
    view = client.wait_status(cid, "idle")
    assert client.effects(cid) == []
    assert '"Too late anyway."' in client.reply(view)


def test_a_run_left_active_is_cancelled_before_the_next_message(stack, assistants):
    """A thread locked by a run from an earlier failure: the adapter cancels it, then carries on."""
    from signoff.adapters.openai_assistants import AssistantsBackend
    from signoff.domain.models import Conversation, ConversationStatus, Pause, Reply
    from signoff.domain.ports import AgentSetup

    client, assistant_id = assistants
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content=SEED)
    stuck = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=5)
    assert stuck.status == "requires_action"
    # The real API's refusal while the run is active:
    with pytest.raises(Exception, match=f"while a run {stuck.id} is active"):
        client.beta.threads.messages.create(thread.id, role="user", content="hello")

    setup = AgentSetup(name="test", model="gpt-4.1", instructions="be brief", tools=[], assistant_id=assistant_id)
    backend = AssistantsBackend(client, lambda _conversation: setup, sleep=lambda _s: None)
    conversation = Conversation(
        conversation_id="conv_x",
        status=ConversationStatus.RUNNING,
        active_turn_id="t",
        created_at="now",
        backend_state={"api": "assistants", "thread": thread.id},
    )
    step = backend.start_turn(conversation, "hello there")
    assert isinstance(step, Reply | Pause)
    assert client.beta.threads.runs.retrieve(stuck.id, thread_id=thread.id).status == "cancelled"
