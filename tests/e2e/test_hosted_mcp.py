"""Hosted MCP servers (the Responses API's ``mcp`` tool, which OpenAI calls itself): every call
OpenAI asks approval for is gated like a function call, answered approve or deny in one submission
when the pause settles, run once (counted at the MCP server) only when approved, and receipted from
the ``mcp_call`` item that reports it. Through the local stack, the emulator calling the local MCP
tool server with the mcp SDK."""

from __future__ import annotations

import json

import pytest

from local.environment import settings_changed
from signoff.domain.receipts import decode
from tests.support import SignoffClient

TICKET = 'call helpdesk__create_ticket with {"title": "Printer on floor 3", "body": "It jams on every page."}'


def _asked(client: SignoffClient, message: str = TICKET) -> tuple[str, str]:
    started = client.post("/conversations", json={"message": message, "agent": "helpdesk"})
    assert started.status_code == 202, started.text
    cid = started.json()["conversation_id"]
    [decision] = client.pending_decision_ids(cid)
    return cid, decision


def _approvals_sent(stack) -> list[dict]:
    return [
        item
        for e in stack.openai.log.entries()
        if e["path"] == "/v1/responses" and isinstance((e["body"] or {}).get("input"), list)
        for item in e["body"]["input"]
        if isinstance(item, dict) and item.get("type") == "mcp_approval_response"
    ]


@pytest.fixture
def responses_api():
    with settings_changed(AGENT_API="responses"):
        yield


def test_an_approved_hosted_call_runs_once_and_is_receipted_from_what_ran(stack, responses_api):
    client = SignoffClient(stack)
    before = len(stack.mcp_tools.calls.of("create_ticket"))
    cid, decision = _asked(client)
    assert len(stack.mcp_tools.calls.of("create_ticket")) == before  # nothing runs before the OK
    asked = stack.handover.decisions[decision]
    assert "helpdesk__create_ticket" in json.dumps(asked["context"]) or "create_ticket" in asked["action"]
    client.resolve(decision, "approve", resolved_by="maria@example.com")
    view = client.wait_status(cid, "idle")
    assert len(stack.mcp_tools.calls.of("create_ticket")) == before + 1
    [action] = view["actions"]
    assert action["tool"] == "helpdesk__create_ticket" and action["execution"]["status"] == "executed"
    claims = decode(action["receipt"]).claims
    assert claims["tool"] == "helpdesk__create_ticket" and claims["execution"] == "executed"
    assert claims["approvals"][0]["resolved_by"] == "maria@example.com"
    [sent] = [a for a in _approvals_sent(stack) if a["approval_request_id"] == action["call_id"]]
    assert sent["approve"] is True


def test_a_denied_hosted_call_never_runs_and_openai_hears_why(stack, responses_api):
    client = SignoffClient(stack)
    before = len(stack.mcp_tools.calls.of("create_ticket"))
    cid, decision = _asked(client)
    client.resolve(decision, "deny", notes="Use the facilities form instead.")
    view = client.wait_status(cid, "idle")
    assert len(stack.mcp_tools.calls.of("create_ticket")) == before
    [action] = view["actions"]
    assert action["execution"]["status"] == "not_executed" and action.get("receipt") is None
    [sent] = [a for a in _approvals_sent(stack) if a["approval_request_id"] == action["call_id"]]
    assert sent["approve"] is False and "Use the facilities form instead." in sent["reason"]
    assert "not approved" in view["messages"][-1]["content"]


def test_a_modified_hosted_call_is_refused_not_run_changed(stack, responses_api):
    client = SignoffClient(stack)
    before = len(stack.mcp_tools.calls.of("create_ticket"))
    cid, decision = _asked(client)
    assert stack.handover.decisions[decision]["options"] == ["approve", "deny"]  # approve or deny, no change
    import requests

    answered = requests.post(
        f"{stack.handover_url}/decisions/{decision}/resolve",
        json={"action": "modify", "response_data": {"title": "Something else"}},
        headers=client.handover_headers,
        timeout=30,
    )
    assert answered.status_code == 200, answered.text
    view = client.wait_status(cid, "idle")
    assert len(stack.mcp_tools.calls.of("create_ticket")) == before
    [action] = view["actions"]
    assert action["execution"]["status"] == "not_executed"
    [sent] = [a for a in _approvals_sent(stack) if a["approval_request_id"] == action["call_id"]]
    assert sent["approve"] is False and "only be approved or denied" in sent["reason"]


def test_a_hosted_call_the_policy_lets_through_needs_no_person(stack, responses_api):
    client = SignoffClient(stack)
    before = len(stack.mcp_tools.calls.of("search_docs"))
    started = client.post(
        "/conversations", json={"message": 'call helpdesk__search_docs with {"query": "printer"}', "agent": "helpdesk"}
    )
    view = client.wait_status(started.json()["conversation_id"], "idle")
    assert len(stack.mcp_tools.calls.of("search_docs")) == before + 1
    [action] = view["actions"]
    assert action["gated"] is False and action["execution"]["status"] == "executed"
