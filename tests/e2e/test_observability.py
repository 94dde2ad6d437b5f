"""A full scenario's traces and logs: the ids an operator follows a call by, and nothing secret.

The seed refund, approved, with a notify_url: traces are collected as the X-Ray daemon would
receive them; logs as the handlers' JSON formatter writes them."""

from __future__ import annotations

import json

import pytest

from local.receivers.webhook import WebhookReceiver
from local.tracing import XRayDaemon, traced_invocations
from tests.support import SignoffClient, captured_product_logs, wait_for

SEED = "Issue a €340 refund to customer #4821."


@pytest.fixture(scope="module")
def scenario(stack):
    """Run the approved seed scenario once with traces and logs captured; return what was seen."""
    client = SignoffClient(stack)
    wait_for(stack.quiescent, what="earlier tests' work to end")  # their lines are not this scenario's
    daemon = XRayDaemon().start()
    receiver = WebhookReceiver(stack.config.webhook_secret).start()
    try:
        with traced_invocations(daemon), captured_product_logs() as buffer:
            response = client.post("/conversations", json={"message": SEED, "notify_url": receiver.url})
            started = response.json()
            cid = started["conversation_id"]
            [decision_id] = client.pending_decision_ids(cid)
            client.resolve(decision_id, "approve", notes="ok")
            view = client.wait_status(cid, "idle")
            wait_for(lambda: len([e for e in receiver.events() if e["conversation_id"] == cid]) == 2, what="events")
            # The notifier logs and traces a delivery once the receiver has answered: wait for both.
            wait_for(lambda: len(_delivered_lines(buffer.getvalue(), cid)) == 2, what="both deliveries' log lines")
        ids = {a.webhook_id for a in receiver.attempts if a.event and a.event["conversation_id"] == cid}
        wait_for(lambda: any(e["name"] == "## tool issue_refund" for e in daemon.entities()), what="the traces")
        wait_for(
            lambda: ids <= {e["annotations"]["webhook_id"] for e in _named(daemon.entities(), "## webhook deliver")},
            what="both deliveries' traces",
        )
    finally:
        receiver.stop()
        daemon.stop()
    [action] = view["actions"]
    logs = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    return {
        "cid": cid,
        "tid": started["turn_id"],
        "call_id": action["call_id"],
        "decision_id": decision_id,
        "entities": daemon.entities(),
        "raw_traces": "\n".join(daemon.raw),
        "webhook_ids": {a.webhook_id for a in receiver.attempts if a.event and a.event["conversation_id"] == cid},
        "logs": logs,
    }


def _delivered_lines(text: str, cid: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [r for r in lines if r.get("message") == "notification delivered" and r.get("conversation_id") == cid]


def _named(entities, name):
    return [e for e in entities if e["name"] == name]


def test_each_handler_and_each_call_out_is_a_subsegment_annotated_with_ids(scenario):
    entities = scenario["entities"]
    handlers = {e["segment_name"] for e in _named(entities, "## handler")}
    assert {"ClientApiFunction", "AgentWorkerFunction", "ApprovalCallbackFunction", "NotifierFunction"} <= handlers
    worker = [e for e in _named(entities, "## handler") if e["segment_name"] == "AgentWorkerFunction"]
    assert all(e["annotations"]["conversation_id"] == scenario["cid"] for e in worker)
    assert all(e["annotations"]["turn_id"] == scenario["tid"] for e in worker)
    [tool] = _named(entities, "## tool issue_refund")
    assert tool["annotations"] == {"tool": "issue_refund", "call_id": scenario["call_id"]}
    assert tool["segment_name"] == "AgentWorkerFunction"  # the callback handed the approved call to the worker
    assert _named(entities, "## handover create_decision")
    fetched = _named(entities, "## handover get_decision")
    assert fetched and all(e["annotations"] == {"decision_id": scenario["decision_id"]} for e in fetched)
    agent = _named(entities, "## agent start_turn") + _named(entities, "## agent submit_tool_outputs")
    assert {e["name"] for e in agent} == {"## agent start_turn", "## agent submit_tool_outputs"}
    assert all(e["annotations"] == {"api": "responses", "conversation_id": scenario["cid"]} for e in agent)
    # This conversation's two events (another test's retried notification may be delivered meanwhile).
    delivered = {e["annotations"]["webhook_id"] for e in _named(entities, "## webhook deliver")}
    assert scenario["webhook_ids"] <= delivered and len(scenario["webhook_ids"]) == 2


def test_traces_hold_no_argument_value_no_key_and_no_token(scenario, stack):
    from signoff import runtime

    traces = scenario["raw_traces"]
    assert "metadata" not in traces  # neither responses nor errors are captured
    for value in (
        # The call's arguments, by name and by value ("340" alone would match timestamps).
        "customer_id",
        "amount",
        '"4821"',
        "EUR",
        "€",
        stack.config.api_key,
        stack.config.handover_local_key,
        "sk-local-emulator",
        runtime.signing_key().decode(),
        stack.config.webhook_secret.removeprefix("whsec_"),
    ):
        assert value not in traces, value


def test_log_lines_carry_the_ids_of_what_they_are_about(scenario):
    logs, cid, tid = scenario["logs"], scenario["cid"], scenario["tid"]
    # The worker's lines, use cases' included (function_name is no guide here: the local stack runs
    # every function in one process, and Powertools keeps the Lambda context keys per process).
    worker = [r for r in logs if r["message"] in ("turn paused", "decision requested", "turn completed")]
    assert len(worker) >= 3
    assert all(
        r.get("conversation_id") == cid and r.get("turn_id") == tid and r.get("tenant") == "default" for r in worker
    ), [(r["message"], r.get("conversation_id"), r.get("turn_id")) for r in worker]

    def line(message):
        [record] = [r for r in logs if r["message"] == message and r.get("conversation_id", cid) == cid]
        return record

    assert line("decision requested")["call_id"] == scenario["call_id"]
    assert line("decision requested")["decision_id"] == scenario["decision_id"]
    handled = line("callback handled")
    assert handled["tenant"] == "default"
    assert (handled["conversation_id"], handled["turn_id"], handled["call_id"], handled["decision_id"]) == (
        cid,
        tid,
        scenario["call_id"],
        scenario["decision_id"],
    )
    assert line("action settled")["call_id"] == scenario["call_id"]
    delivered = [r for r in logs if r["message"] == "notification delivered" and r["conversation_id"] == cid]
    assert {r["event"] for r in delivered} == {"turn.awaiting_approval", "turn.completed"}
    assert all(r["turn_id"] == tid and r["webhook_id"].startswith("msg_") for r in delivered)
