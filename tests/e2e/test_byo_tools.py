"""Bring your own tools, end to end over real HTTP: each executor of the example catalog runs a
call exactly once when it is approved and never when it is denied; client-run calls make a round
trip through the client API; agents are chosen per conversation."""

from __future__ import annotations

import json

import pytest
from standardwebhooks.webhooks import Webhook

from local.tool_servers import lambda_tools


def _start(client, agent: str | None, message: str) -> str:
    body = {"message": message, **({"agent": agent} if agent else {})}
    response = client.post("/conversations", json=body)
    assert response.status_code == 202, response.text
    return response.json()["conversation_id"]


def _call(tool: str, arguments: dict) -> str:
    return f"call {tool} with {json.dumps(arguments)}"


def _requests_for(stack, cid: str) -> list:
    return [r for r in stack.http_tools.requests if r.body and r.body["conversation_id"] == cid]


# -- http ------------------------------------------------------------------------------------
def test_an_approved_http_tool_gets_exactly_one_signed_request_and_its_result_reaches_the_reply(client, stack):
    args = {"customer_id": "c-77", "amount": 120.5, "currency": "EUR"}
    cid = _start(client, "billing", _call("create_invoice", args))
    [decision_id] = client.pending_decision_ids(cid)
    assert _requests_for(stack, cid) == []  # nothing ran while the approver thinks
    client.resolve(decision_id, "approve")
    view = client.wait_status(cid, "idle")

    [request] = _requests_for(stack, cid)
    [action] = view["actions"]
    assert request.verified and request.ran and request.tool == "create_invoice"
    assert request.idempotency_key.endswith(f":{action['call_id']}") and request.idempotency_key.startswith(cid)
    assert request.body == {
        "tool": "create_invoice",
        "arguments": args,
        "conversation_id": cid,
        "call_id": action["call_id"],
        "idempotency_key": request.idempotency_key,
    }
    assert action["execution"]["status"] == "executed"
    assert action["execution"]["result"]["invoice_id"].startswith("inv_")
    assert "create_invoice was approved" in client.reply(view)


def test_the_tool_server_verifies_the_signature_with_the_stack_tool_signing_secret(stack):
    """What a tool server does (docs/catalog.md): a request signed with another secret is refused."""
    payload = '{"tool":"create_invoice"}'
    forged = Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    import requests

    response = requests.post(
        f"{stack.http_tools.url}/create_invoice",
        data=payload,
        headers={
            "webhook-id": "msg_forged",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": forged.sign("msg_forged", now, payload),
            "content-type": "application/json",
        },
        timeout=5,
    )
    assert response.status_code == 401


def test_a_denied_http_tool_is_never_requested(client, stack):
    cid = _start(client, "billing", _call("create_invoice", {"customer_id": "c-78", "amount": 5, "currency": "EUR"}))
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "deny", notes="Not this month.")
    view = client.wait_status(cid, "idle")
    assert _requests_for(stack, cid) == []
    assert view["actions"][0]["execution"]["status"] == "not_executed"


def test_an_http_tool_that_refuses_with_4xx_fails_once_and_is_not_retried(client, stack):
    cid = _start(client, "billing", _call("create_invoice", {"customer_id": "c-79", "amount": 9, "currency": "EUR"}))
    [decision_id] = client.pending_decision_ids(cid)
    stack.http_tools.refuse_next(1)
    client.resolve(decision_id, "approve")
    view = client.wait_status(cid, "idle")
    [request] = _requests_for(stack, cid)
    assert request.answered == 422 and not request.ran
    execution = view["actions"][0]["execution"]
    assert execution["status"] == "failed"
    assert execution["result"]["detail"] == {"error": "refused by the tool server"}


def test_arguments_that_break_the_json_schema_are_never_gated_nor_sent(client, stack):
    cid = _start(client, "billing", _call("create_invoice", {"customer_id": "c-80", "amount": -3, "currency": "EUR"}))
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["decision"] is None and action["execution"]["status"] == "not_executed"
    assert "amount" in action["error"] and "do not fit its schema" in action["error"]
    assert _requests_for(stack, cid) == []
    assert client.approval_ids(cid) == []


# -- lambda ----------------------------------------------------------------------------------
def _lambda_invocations(cid: str) -> list[dict]:
    return [e for e in lambda_tools.INVOCATIONS if e["conversation_id"] == cid]


@pytest.mark.parametrize(("answer", "runs"), [("approve", 1), ("deny", 0)])
def test_a_lambda_tool_is_invoked_once_when_approved_and_never_when_denied(client, answer, runs):
    cid = _start(client, "billing", _call("close_account", {"account_id": f"acct-{answer}"}))
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, answer)
    view = client.wait_status(cid, "idle")
    invocations = _lambda_invocations(cid)
    assert len(invocations) == runs
    [action] = view["actions"]
    if runs:
        assert invocations[0]["arguments"] == {"account_id": "acct-approve"}
        assert (
            invocations[0]["idempotency_key"]
            == f"{cid}:{invocations[0]['idempotency_key'].split(':')[1]}:{action['call_id']}"
        )
        assert action["execution"] == {"status": "executed", "result": {"account_id": "acct-approve", "closed": True}}
    else:
        assert action["execution"]["status"] == "not_executed"


# -- mcp -------------------------------------------------------------------------------------
def _mcp_calls(stack, cid: str) -> list[dict]:
    return [c for c in stack.mcp_tools.calls.of("create_ticket") if (c["idempotency_key"] or "").startswith(cid)]


@pytest.mark.parametrize(("answer", "runs"), [("approve", 1), ("deny", 0)])
def test_an_mcp_tool_is_called_once_when_approved_and_never_when_denied(client, stack, answer, runs):
    title = f"Printer on fire ({answer})"
    cid = _start(client, "ops", _call("tracker__create_ticket", {"title": title, "body": "Third floor."}))
    [decision_id] = client.pending_decision_ids(cid)
    assert _mcp_calls(stack, cid) == []
    client.resolve(decision_id, answer)
    view = client.wait_status(cid, "idle")
    calls = _mcp_calls(stack, cid)
    assert len(calls) == runs
    [action] = view["actions"]
    if runs:
        assert calls[0]["arguments"] == {"title": title, "body": "Third floor."}
        assert calls[0]["idempotency_key"].endswith(action["call_id"])
        assert action["execution"]["result"]["title"] == title
    else:
        assert action["execution"]["status"] == "not_executed"


def test_an_mcp_tool_the_policy_lets_run_is_called_without_a_decision(client, stack):
    cid = _start(client, "ops", _call("tracker__search_docs", {"query": "reset a badge"}))
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["gated"] is False and action["execution"]["result"] == {"articles": ["How to reset a badge"]}
    assert [c for c in stack.mcp_tools.calls.of("search_docs") if (c["idempotency_key"] or "").startswith(cid)]


# -- client (return of control) --------------------------------------------------------------
def test_a_client_tool_waits_for_the_client_then_the_turn_goes_on(client):
    cid = _start(client, "ops", _call("get_device_location", {"device_id": "dev-1"}))
    view = client.wait_status(cid, "awaiting_client")
    [action] = view["actions"]
    assert action["execution"] == {"status": "awaiting_client", "result": {"arguments": {"device_id": "dev-1"}}}

    wrong = client.post(f"/conversations/{cid}/tool-results", json={"results": [{"call_id": "call_nope", "output": 1}]})
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "not_awaiting_client"

    output = {"lat": 52.37, "lon": 4.89}
    posted = client.post(
        f"/conversations/{cid}/tool-results", json={"results": [{"call_id": action["call_id"], "output": output}]}
    )
    assert posted.status_code == 202, posted.text
    assert posted.json() == {"accepted": 1, "awaiting_client": 0}
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"] == {"status": "executed", "result": output}
    assert "get_device_location is done" in client.reply(view)
    again = client.post(
        f"/conversations/{cid}/tool-results", json={"results": [{"call_id": action["call_id"], "output": output}]}
    )
    assert again.status_code == 409
    assert client.submissions(action["call_id"]) == 1


def test_tool_results_are_the_owning_tenant_s_only_and_bad_bodies_change_nothing(client, stack):
    from tests.support import SignoffClient

    cid = _start(client, "ops", _call("get_device_location", {"device_id": "dev-2"}))
    view = client.wait_status(cid, "awaiting_client")
    call_id = view["actions"][0]["call_id"]
    other = SignoffClient(stack, "key-globex")
    stolen = other.post(f"/conversations/{cid}/tool-results", json={"results": [{"call_id": call_id, "output": 1}]})
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "conversation_not_found"
    for bad in (
        {},
        {"results": []},
        {"results": [{"call_id": call_id}]},
        {"results": [{"call_id": call_id, "output": 1}] * 2},
    ):
        response = client.post(f"/conversations/{cid}/tool-results", json=bad)
        assert response.status_code in (400, 422), (bad, response.text)
    assert client.get(cid)["actions"][0]["execution"]["status"] == "awaiting_client"
    busy = client.post(f"/conversations/{cid}/messages", json={"message": "hello?"})
    assert busy.status_code == 409
    client.post(f"/conversations/{cid}/tool-results", json={"results": [{"call_id": call_id, "output": "here"}]})
    client.wait_status(cid, "idle")


def test_parallel_calls_to_two_executors_both_denied_run_nothing(client, stack):
    cid = _start(
        client,
        "billing",
        _call("close_account", {"account_id": "acct-x"})
        + " and "
        + _call("create_invoice", {"customer_id": "c-81", "amount": 1, "currency": "EUR"}),
    )
    decisions = client.pending_decision_ids(cid, count=2)
    for decision_id in decisions:
        client.resolve(decision_id, "deny")
    view = client.wait_status(cid, "idle")
    assert [a["execution"]["status"] for a in view["actions"]] == ["not_executed", "not_executed"]
    assert _lambda_invocations(cid) == [] and _requests_for(stack, cid) == []


# -- agents ----------------------------------------------------------------------------------
def test_an_unknown_agent_is_refused_and_nothing_is_created(client):
    response = client.post("/conversations", json={"message": "hi", "agent": "nobody"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_agent"


def test_each_agent_is_offered_its_own_tools_and_keeps_its_conversation(client):
    cid = _start(client, "billing", "hello")
    view = client.wait_status(cid, "idle")
    assert view["agent"] == "billing"
    from signoff import runtime

    remote = runtime.table().get_conversation(cid).backend_state["conversation"]
    request = next(e for e in client.openai_log() if (e.get("body") or {}).get("conversation") == remote)
    offered = {t.get("name") or t.get("function", {}).get("name") for t in request["body"].get("tools", [])}
    assert offered == {"lookup_customer", "create_invoice", "close_account"}
    assert "billing assistant" in json.dumps(request["body"])
    support = _start(client, None, _call("create_invoice", {"customer_id": "c", "amount": 1, "currency": "EUR"}))
    view = client.wait_status(support, "idle")
    assert view["agent"] is None and view["actions"] == []  # the default agent has no such tool


def test_a_turn_that_meets_an_invalid_catalog_fails_saying_signoff_is_not_set_up(client, tmp_path):
    from local.environment import settings_changed

    bad = tmp_path / "catalog.json"
    bad.write_text(json.dumps({"default_agent": "ghost", "agents": {"support": {"instructions": "x"}}}))
    with settings_changed(CATALOG_FILE=str(bad)):
        cid = client.start("Look up customer #12")["conversation_id"]
        view = client.wait_status(cid, "failed", "idle")
    assert view["status"] == "failed" and view["actions"] == []
    assert "not fully set up" in client.reply(view)


def test_an_http_tool_that_answers_5xx_is_retried_under_one_key_and_runs_once(client, stack):
    cid = _start(client, "billing", _call("create_invoice", {"customer_id": "c-82", "amount": 7, "currency": "EUR"}))
    [decision_id] = client.pending_decision_ids(cid)
    stack.http_tools.refuse_next(2, status=503)
    client.resolve(decision_id, "approve")
    view = client.wait_status(cid, "idle")
    requests_ = _requests_for(stack, cid)
    assert [r.answered for r in requests_] == [503, 503, 200]
    assert [r.ran for r in requests_] == [False, False, True]
    assert len({r.webhook_id for r in requests_}) == 1 and len({r.idempotency_key for r in requests_}) == 1
    assert view["actions"][0]["execution"]["status"] == "executed"


@pytest.mark.parametrize("answer", ["approve", "deny"])
def test_a_gated_client_tool_reaches_the_client_only_once_approved(client, answer):
    cid = _start(client, "ops", _call("wipe_device", {"device_id": f"dev-{answer}"}))
    [decision_id] = client.pending_decision_ids(cid)
    assert client.get(cid)["actions"][0]["execution"] is None  # nothing for the client yet
    client.resolve(decision_id, answer)
    if answer == "deny":
        view = client.wait_status(cid, "idle")
        assert view["actions"][0]["execution"]["status"] == "not_executed"
        refused = client.post(
            f"/conversations/{cid}/tool-results",
            json={"results": [{"call_id": view["actions"][0]["call_id"], "output": "wiped"}]},
        )
        assert refused.status_code == 409  # a denied call never reaches the client
        return
    view = client.wait_status(cid, "awaiting_client")
    [action] = view["actions"]
    assert action["execution"] == {"status": "awaiting_client", "result": {"arguments": {"device_id": "dev-approve"}}}
    client.post(
        f"/conversations/{cid}/tool-results", json={"results": [{"call_id": action["call_id"], "output": "ok"}]}
    )
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"] == {"status": "executed", "result": "ok"}


def test_a_lambda_tool_that_raises_is_failed_once_not_invoked_again(client):
    cid = _start(client, "billing", _call("close_account", {"account_id": "locked-1"}))
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve")
    view = client.wait_status(cid, "idle")
    assert len(_lambda_invocations(cid)) == 1
    execution = view["actions"][0]["execution"]
    assert execution["status"] == "failed" and execution["result"]["detail"] == "AccountLocked"
    assert execution["outcome"] == "unknown"  # it may have acted before it raised


def test_an_mcp_tool_error_result_is_failed_with_what_the_tool_said(client, stack):
    cid = _start(client, "ops", _call("tracker__create_ticket", {"title": "REJECT me", "body": "b"}))
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve")
    view = client.wait_status(cid, "idle")
    assert len(_mcp_calls(stack, cid)) == 1
    execution = view["actions"][0]["execution"]
    assert execution["status"] == "failed"
    assert "refuses tickets titled REJECT" in execution["result"]["detail"]


def test_a_client_call_with_no_result_in_time_fails_and_the_turn_goes_on(client, stack):
    """The reconciler's next look after the client's deadline fails the call; the user gets a reply."""
    import boto3

    cid = _start(client, "ops", _call("get_device_location", {"device_id": "dev-silent"}))
    view = client.wait_status(cid, "awaiting_client")
    [action] = view["actions"]
    # 31 minutes pass (the tool's timeout is 30): the hand-over time moves back instead.
    from signoff import runtime

    stored = runtime.table().get_action(cid, *_turn_and_call(cid, action["call_id"]))
    boto3.client("dynamodb").update_item(
        TableName=stack.resources.refs["SignoffTable"],
        Key={"pk": {"S": f"CONV#{cid}"}, "sk": {"S": f"ACTION#{stored.turn_id}#{stored.call_id}"}},
        UpdateExpression="SET execution.claimed_at = :then",
        ExpressionAttributeValues={":then": {"S": "2026-01-01T00:00:00.000Z"}},
    )
    stack.run_scheduled("ReconcilerFunction")
    view = client.wait_status(cid, "idle", timeout=30)
    execution = view["actions"][0]["execution"]
    assert execution["status"] == "failed"
    assert "no result within 30 minutes" in execution["result"]["error"]
    late = client.post(
        f"/conversations/{cid}/tool-results", json={"results": [{"call_id": action["call_id"], "output": 1}]}
    )
    assert late.status_code == 409  # too late: nothing is recorded


def _turn_and_call(cid: str, call_id: str) -> tuple[str, str]:
    from signoff import runtime

    conversation = runtime.table().get_conversation(cid)
    return conversation.active_turn_id, call_id
