"""The approval loop end to end, over real HTTP: client API → worker → Handover → callback → reply."""

from __future__ import annotations

import concurrent.futures
import json

import requests

from tests.support import wait_for

SEED = "Issue a €340 refund to customer #4821."


def test_seed_scenario_approved_executes_once_and_replies(client):
    started = client.start(SEED)
    assert started["status"] == "running"
    cid = started["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)

    # Nothing has run while the approver thinks.
    assert client.effects(cid) == []
    decision = requests.get(
        f"{client.stack.handover_url}/decisions/{decision_id}", headers=client.handover_headers
    ).json()
    assert decision["action"] == "Issue a refund of 340.00 EUR to customer #4821"
    assert decision["urgency"] == "high"

    client.resolve(decision_id, "approve", notes="Customer is a VIP, go ahead.", resolved_by="maria@example.com")
    view = client.wait_status(cid, "idle")

    [effect] = client.effects(cid)
    assert effect["tool"] == "issue_refund"
    assert effect["arguments"]["customer_id"] == "4821"
    [action] = view["actions"]
    assert action["tool"] == "issue_refund" and action["gated"] is True
    assert action["decision"] == {
        "id": decision_id,
        "status": "approved",
        "resolved_by": "maria@example.com",
        "notes": "Customer is a VIP, go ahead.",
    }
    assert action["execution"]["status"] == "executed"
    reply = client.reply(view)
    assert "340" in reply and "4821" in reply and "approved" in reply
    assert '"Customer is a VIP, go ahead."' in reply
    assert client.submissions(action["call_id"]) == 1


def test_denied_is_not_executed_and_the_model_hears_who_and_why(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "deny", notes="Refund limit exceeded this month.", resolved_by="lee@example.com")
    view = client.wait_status(cid, "idle")

    assert client.effects(cid) == []
    [action] = view["actions"]
    assert action["decision"]["status"] == "denied"
    assert action["execution"]["status"] == "not_executed"
    reply = client.reply(view)
    assert "denied by lee@example.com" in reply
    assert '"Refund limit exceeded this month."' in reply
    # The model was told in the tool output itself, not only in our reply.
    outputs = [
        i["output"]
        for e in client.openai_log()
        for i in (e["body"] or {}).get("input") or []
        if isinstance(i, dict) and i.get("call_id") == action["call_id"] and i.get("type") == "function_call_output"
    ]
    assert len(outputs) == 1
    told = json.loads(outputs[0])
    assert told["decision"] == "denied" and told["approver"] == "lee@example.com"
    assert told["notes"] == "Refund limit exceeded this month." and told["execution"] == "not_executed"


def test_ungated_tool_runs_without_a_decision(client):
    before = len([e for e in client.handover_log() if e["method"] == "POST"])
    cid = client.start("Please look up customer #1234.")["conversation_id"]
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["tool"] == "lookup_customer" and action["gated"] is False
    assert action["decision"] is None
    assert action["execution"]["status"] == "executed"
    assert action["execution"]["result"]["customer_id"] == "1234"
    assert len([e for e in client.handover_log() if e["method"] == "POST"]) == before


def test_small_refund_is_not_gated_but_large_one_is(client):
    cid = client.start("Refund €40 to customer #77.")["conversation_id"]
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["gated"] is False and action["execution"]["status"] == "executed"
    assert len(client.effects(cid)) == 1


def test_voluntary_request_human_approval_uses_the_seed_wording(client):
    cid = client.start("Please ask for approval before rebooting the billing server.")["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve", notes="Window is open.")
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["tool"] == "request_human_approval"
    assert action["decision"]["status"] == "approved"
    assert "Decision: approved. Approver notes: Window is open." in client.reply(view)


def test_forged_callbacks_are_refused_before_any_outbound_call(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    handover_calls_before = len(client.handover_log())
    api = client.stack.api_url
    genuine = _token_from_store(client, cid)
    approval_id = genuine.split(".")[1]
    forged = [
        "v1.deadbeefdeadbeefdeadbeefdeadbeef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # random
        f"v1.{approval_id}.{'B' * 43}",  # right approval, wrong signature
        genuine[:-4],  # truncated
        "not-a-token",
        "v2." + genuine[3:],
        "x" * 500,
    ]
    for token in forged:
        response = requests.post(f"{api}/callbacks/handover/{token}", json={"id": decision_id, "status": "approved"})
        assert response.status_code == 401, (token, response.text)
        assert response.json()["error"]["code"] == "invalid_token"
    assert len(client.handover_log()) == handover_calls_before  # no GET /decisions for forged input
    view = client.get(cid)
    assert view["status"] == "awaiting_approval"
    assert view["actions"][0]["decision"]["status"] == "pending"
    assert client.effects(cid) == []


def test_callback_body_is_never_trusted(client):
    """A genuine URL posted with a lying body before the approver answered changes nothing."""
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    token = _token_from_store(client, cid)
    response = requests.post(
        f"{client.stack.api_url}/callbacks/handover/{token}", json={"id": decision_id, "status": "approved"}
    )
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert client.get(cid)["status"] == "awaiting_approval"
    assert client.effects(cid) == []


def test_duplicate_and_concurrent_callbacks_execute_and_submit_once(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve")
    url = client.callback_url(decision_id)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: requests.post(url, json={}).status_code, range(16)))
    assert set(statuses) <= {200}, statuses
    view = client.wait_status(cid, "idle")
    call_id = view["actions"][0]["call_id"]
    assert len(client.effects(cid)) == 1
    assert client.submissions(call_id) == 1
    assert len([m for m in view["messages"] if m["role"] == "assistant"]) == 1


def test_parallel_refunds_each_get_their_own_decision_in_either_order(client):
    cid = client.start("Refund €340 to customer #4821 and €120 to customer #4822.")["conversation_id"]
    first, second = client.pending_decision_ids(cid, count=2)
    client.resolve(second, "approve")
    # One answered, one pending: the turn still waits and nothing is submitted yet.
    wait_for(lambda: len(client.effects(cid)) == 1, what="the first refund")
    assert client.get(cid)["status"] == "awaiting_approval"
    client.resolve(first, "deny", notes="Not this one.")
    view = client.wait_status(cid, "idle")
    by_customer = {a["arguments"]["customer_id"]: a for a in view["actions"]}
    assert by_customer["4821"]["execution"]["status"] == "not_executed"
    assert by_customer["4822"]["execution"]["status"] == "executed"
    [effect] = client.effects(cid)
    assert effect["arguments"]["customer_id"] == "4822"
    assert sum(client.submissions(a["call_id"]) for a in view["actions"]) == 2
    reply = client.reply(view)
    assert "4822" in reply and "denied" in reply and '"Not this one."' in reply


def test_expired_decision_is_not_executed_and_the_user_still_gets_a_reply(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    assert client.stack.handover.expire(decision_id)
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["decision"]["status"] == "expired"
    assert view["actions"][0]["execution"]["status"] == "not_executed"
    assert client.effects(cid) == []
    assert "no approval came in time" in client.reply(view)


def test_lost_callback_is_settled_by_the_reconciler(client):
    handover = client.stack.handover
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    handover.drop_callbacks = 1.0
    try:
        client.resolve(decision_id, "approve", notes="approved while the callback was lost")
    finally:
        handover.drop_callbacks = 0.0
    assert client.get(cid)["status"] == "awaiting_approval"
    report = client.stack.run_scheduled("ReconcilerFunction")
    assert report["settled"] >= 1
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "executed"
    assert len(client.effects(cid)) == 1


def test_a_second_message_is_refused_while_awaiting_approval_then_accepted(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    busy = client.post(f"/conversations/{cid}/messages", json={"message": "hello?"})
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "conversation_busy"
    client.resolve(decision_id, "approve")
    client.wait_status(cid, "idle")
    accepted = client.post(f"/conversations/{cid}/messages", json={"message": "Thanks! Now look up customer #4821."})
    assert accepted.status_code == 202
    assert set(accepted.json()) == {"turn_id", "status"}
    view = client.wait_status(cid, "idle")
    assert [a["tool"] for a in view["actions"]] == ["issue_refund", "lookup_customer"]
    assert [m["role"] for m in view["messages"]] == ["user", "assistant", "user", "assistant"]


def test_handover_unreachable_means_not_executed_and_the_model_is_told(client):
    handover = client.stack.handover
    handover.fail_next(100, status=503)
    try:
        cid = client.start(SEED)["conversation_id"]
        view = client.wait_status(cid, "idle", timeout=30)
    finally:
        handover.fail_next(0)
    [action] = view["actions"]
    assert action["decision"] is None
    assert action["execution"]["status"] == "not_executed"
    assert client.effects(cid) == []
    assert "not done" in client.reply(view)


def _token_from_store(client, conversation_id: str) -> str:
    """The token of the conversation's first approval, re-issued with the stored signing key."""
    from signoff import runtime
    from signoff.domain.tokens import issue_token

    return issue_token(runtime.signing_key(), client.approval_ids(conversation_id)[0])


def test_a_turn_whose_queue_message_was_lost_is_redriven_by_the_reconciler(client):
    """The state right after the API stored a turn whose message never reached the worker."""
    from signoff import runtime
    from signoff.domain.models import Conversation, ConversationStatus, Message, Turn, TurnStatus, iso, utc_now
    from signoff.logic.ids import new_conversation_id, new_turn_id

    cid, tid, now = new_conversation_id(), new_turn_id(), iso(utc_now())
    text = "Please look up customer #31."
    runtime.table().create_conversation(
        Conversation(conversation_id=cid, status=ConversationStatus.RUNNING, active_turn_id=tid, created_at=now),
        Turn(conversation_id=cid, turn_id=tid, status=TurnStatus.QUEUED, created_at=now, input=text),
        Message(role="user", content=text, created_at=now),
    )
    assert client.get(cid)["status"] == "running"
    report = client.stack.run_scheduled("ReconcilerFunction")
    assert report["turns_redriven"] >= 1
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["tool"] == "lookup_customer"
