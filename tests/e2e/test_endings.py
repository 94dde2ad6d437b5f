"""Every way an answer can end reaches the user in words, with an ending the client can read; text
the model writes beside its calls is shown; a long chat is trimmed before it overflows, and an
overflow that still happens is reported as such. Through the local stack, on each API that has them."""

from __future__ import annotations

import pytest

from local.environment import settings_changed
from tests.support import SignoffClient, assistant_for

ENDINGS = {
    "responses": [
        ("incomplete:max_output_tokens", "cut_short", "cut off"),
        ("incomplete:content_filter", "filtered", "content filter"),
        ("refusal", "refused", "I can't help with that."),
        ("empty", "empty", "no answer"),
    ],
    "chat": [
        ("length", "cut_short", "cut off"),
        ("content_filter", "filtered", "content filter"),
        ("refusal", "refused", "I'm sorry, I can't help with that."),
        ("empty", "empty", "no answer"),
    ],
}
ENDINGS["assistants"] = [
    ("incomplete:max_completion_tokens", "cut_short", "cut off"),
    ("refusal", "refused", "I can't help with that."),
    ("empty", "empty", "no answer"),
]
CASES = [(api, *case) for api, cases in ENDINGS.items() for case in cases]


@pytest.mark.parametrize(("api", "emulated", "ending", "words"), CASES)
def test_an_answer_that_ends_short_says_what_happened(stack, api, emulated, ending, words):
    client = SignoffClient(stack)
    with settings_changed(AGENT_API=api, OPENAI_ASSISTANT_ID=assistant_for(stack)):
        (stack.openai.assistants if api == "assistants" else stack.openai).endings.append(emulated)
        cid = client.start("Hello, what can you do?")["conversation_id"]
        view = client.wait_status(cid, "idle")
    last = view["messages"][-1]
    assert last["role"] == "assistant" and last["ending"] == ending
    assert words in last["content"] and last["content"].strip()
    # The next message is answered as usual, with no ending.
    client.post(f"/conversations/{cid}/messages", json={"message": "Please look up customer #5."})
    view = client.wait_status(cid, "idle")
    assert "ending" not in view["messages"][-1]


def test_text_beside_calls_is_shown_with_the_pause(stack):
    client = SignoffClient(stack)
    with settings_changed(AGENT_API="responses"):
        stack.openai.endings.append("commentary")
        cid = client.start("Issue a €340 refund to customer #4821.")["conversation_id"]
        view = client.wait_status(cid, "awaiting_approval")
        assert [m["content"] for m in view["messages"] if m["role"] == "assistant"] == ["I'll check that first."]
        [decision] = client.pending_decision_ids(cid)
        client.resolve(decision, "approve")
        view = client.wait_status(cid, "idle")
    assistant = [m["content"] for m in view["messages"] if m["role"] == "assistant"]
    assert assistant[0] == "I'll check that first." and len(assistant) == 2


def test_a_long_responses_chat_is_trimmed_by_the_api_not_failed(stack):
    client = SignoffClient(stack)
    with settings_changed(AGENT_API="responses"):
        cid = client.start("Please look up customer #1.")["conversation_id"]
        client.wait_status(cid, "idle")
        stack.openai.context_chars = 200  # the conversation is now past the window
        try:
            client.post(f"/conversations/{cid}/messages", json={"message": "Please look up customer #2."})
            view = client.wait_status(cid, "idle", "failed")
        finally:
            stack.openai.context_chars = 0
    assert view["status"] == "idle" and "ending" not in view["messages"][-1]
    sent = [e["body"] for e in stack.openai.log.entries() if e["path"] == "/v1/responses"]
    assert sent[-1]["truncation"] == "auto"


def test_an_assistants_thread_past_its_prompt_budget_is_reported_as_too_long(stack):
    client = SignoffClient(stack)
    with settings_changed(AGENT_API="assistants", OPENAI_ASSISTANT_ID=assistant_for(stack)):
        stack.openai.assistants.endings.append("incomplete:max_prompt_tokens")
        cid = client.start("Hello again.")["conversation_id"]
        view = client.wait_status(cid, "failed", "idle")
    assert view["status"] == "failed" and "longer than the model can read" in view["messages"][-1]["content"]


def test_an_overflow_that_still_happens_is_reported_as_such(stack):
    client = SignoffClient(stack)
    with settings_changed(AGENT_API="chat"):
        stack.openai.context_chars = 10  # smaller than any request: trimming cannot help
        try:
            cid = client.start("Please look up customer #3.")["conversation_id"]
            view = client.wait_status(cid, "failed", "idle")
        finally:
            stack.openai.context_chars = 0
    assert view["status"] == "failed"
    assert "longer than the model can read" in view["messages"][-1]["content"]
