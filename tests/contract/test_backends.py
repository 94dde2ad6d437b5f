"""One contract, three agent APIs: every guarantee holds on Responses, Assistants and Chat Completions.

Each test runs against the OpenAI-compatible server through the real openai SDK, with the API
chosen the way a deployment chooses it (the ``AGENT_API`` setting).
"""

from __future__ import annotations

import concurrent.futures

import pytest
import requests

from tests.support import assistant_for, settings_changed, wait_for

SEED = "Issue a €340 refund to customer #4821."
API_PATHS = {"responses": "/v1/responses", "assistants": "/v1/threads", "chat": "/v1/chat/completions"}


@pytest.fixture(params=["responses", "assistants", "chat"])
def agent_api(request, stack):
    with settings_changed(AGENT_API=request.param, OPENAI_ASSISTANT_ID=assistant_for(stack)):
        yield request.param


def _used(client, api: str, before: int) -> bool:
    return any(e["path"].startswith(API_PATHS[api]) for e in client.openai_log()[before:])


def test_approved(client, agent_api):
    before = len(client.openai_log())
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    assert client.effects(cid) == []
    client.resolve(decision_id, "approve", notes="Fine by me.")
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "executed"
    assert len(client.effects(cid)) == 1
    reply = client.reply(view)
    assert "approved" in reply and '"Fine by me."' in reply
    assert _used(client, agent_api, before)


def test_denied(client, agent_api):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "deny", notes="No.", resolved_by="lee@example.com")
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "not_executed"
    assert client.effects(cid) == []
    assert "denied by lee@example.com" in client.reply(view)


def test_ungated(client, agent_api):
    cid = client.start("Please look up customer #4821.")["conversation_id"]
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["gated"] is False and action["decision"] is None
    assert action["execution"]["status"] == "executed"
    assert "lookup_customer is done" in client.reply(view)


@pytest.mark.parametrize("order", ["first-then-second", "second-then-first"])
def test_parallel_gated_calls_in_either_order(client, agent_api, order):
    cid = client.start("Refund €340 to customer #4821 and €120 to customer #4822.")["conversation_id"]
    ids = client.pending_decision_ids(cid, count=2)
    if order == "second-then-first":
        ids.reverse()
    client.resolve(ids[0], "approve")
    wait_for(lambda: len(client.effects(cid)) == 1, what="the first refund")
    assert client.get(cid)["status"] == "awaiting_approval"
    client.resolve(ids[1], "approve")
    view = client.wait_status(cid, "idle")
    assert {a["execution"]["status"] for a in view["actions"]} == {"executed"}
    assert len(client.effects(cid)) == 2
    reply = client.reply(view)
    assert "4821" in reply and "4822" in reply


def test_duplicate_callbacks(client, agent_api):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve")
    url = client.callback_url(decision_id)
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(lambda _: requests.post(url, json={}).status_code, range(12)))
    assert set(codes) == {200}
    view = client.wait_status(cid, "idle")
    assert len(client.effects(cid)) == 1
    assert len([m for m in view["messages"] if m["role"] == "assistant"]) == 1
    call_id = view["actions"][0]["call_id"]
    assert _submissions(client, call_id) == 1


def test_a_second_turn_continues_the_same_chat(client, agent_api):
    cid = client.start("Please look up customer #7.")["conversation_id"]
    client.wait_status(cid, "idle")
    assert client.post(f"/conversations/{cid}/messages", json={"message": SEED}).status_code == 202
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve")
    view = client.wait_status(cid, "idle")
    assert [a["tool"] for a in view["actions"]] == ["lookup_customer", "issue_refund"]
    assert len([m for m in view["messages"] if m["role"] == "assistant"]) == 2


def _submissions(client, call_id: str) -> int:
    return client.submissions(call_id)


def test_agents_mcp_tools_and_client_tools_work_on_every_agent_api(client, stack, agent_api):
    """The ops agent (its own instructions and tools): an MCP call approved, then a client-run call."""
    import json

    before = len(client.openai_log())
    title = f"Agents on {agent_api}"
    message = f'call tracker__create_ticket with {{"title": "{title}", "body": "b"}}'
    cid = client.post("/conversations", json={"agent": "ops", "message": message}).json()["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve")
    view = client.wait_status(cid, "idle")
    calls = [c for c in stack.mcp_tools.calls.of("create_ticket") if (c["idempotency_key"] or "").startswith(cid)]
    assert len(calls) == 1 and calls[0]["arguments"]["title"] == title
    assert view["actions"][0]["execution"]["status"] == "executed"

    client.post(f"/conversations/{cid}/messages", json={"message": 'call get_device_location with {"device_id": "d"}'})
    view = client.wait_status(cid, "awaiting_client")
    call_id = view["actions"][-1]["call_id"]
    posted = client.post(f"/conversations/{cid}/tool-results", json={"results": [{"call_id": call_id, "output": 7}]})
    assert posted.status_code == 202
    view = client.wait_status(cid, "idle")
    assert view["actions"][-1]["execution"] == {"status": "executed", "result": 7}
    assert client.submissions(call_id) == 1
    assert _used(client, agent_api, before)
    assert any("operations assistant" in json.dumps(e.get("body")) for e in client.openai_log()[before:])
