"""The complete gate end to end: the policy decides, every Handover outcome, bound approvals, quorum."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.support import settings_changed, wait_for

SEED = "Issue a €340 refund to customer #4821."
QUORUM = ["ana@example.com", "ben@example.com", "cai@example.com"]


@pytest.fixture
def policy_file(tmp_path):
    """Swap the approval policy for a file of the test's own, as an operator would (no code change)."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"version": 1}))
    with settings_changed(POLICY_FILE=str(path)):
        from signoff import runtime

        def use(document: dict) -> None:
            path.write_text(json.dumps(document))
            runtime.reset()

        yield use


def _decision_for(client, decision_id: str) -> dict:
    import requests

    return requests.get(
        f"{client.stack.handover_url}/decisions/{decision_id}", headers=client.handover_headers, timeout=30
    ).json()


def test_modified_runs_the_changed_call_and_the_model_hears_what_changed(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    decision = _decision_for(client, decision_id)
    assert decision["options"] == ["approve", "deny", "modify"]
    _resolve(client, decision_id, {"action": "modify", "response_data": {"amount": 150}, "notes": "150 max."})
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["decision"]["status"] == "modified" and action["execution"]["status"] == "executed"
    [effect] = client.effects(cid)
    assert effect["arguments"]["amount"] == "150" and effect["arguments"]["customer_id"] == "4821"
    assert "amount from 340 to 150" in client.reply(view)


@pytest.mark.parametrize(
    ("changes", "why"),
    [({"customer_id": "9999"}, "may not be changed"), ({"amount": -5}, "do not fit"), ({}, "no changed values")],
)
def test_a_modification_that_cannot_apply_is_not_executed(client, changes, why):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    _resolve(client, decision_id, {"action": "modify", "response_data": changes})
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "not_executed"
    assert why in view["actions"][0]["execution"]["result"]["error"]
    assert client.effects(cid) == []


def test_escalated_is_not_permission(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    assert client.stack.handover.expire(decision_id, status="escalated")
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["decision"]["status"] == "escalated"
    assert view["actions"][0]["execution"]["status"] == "not_executed"
    assert client.effects(cid) == []
    assert "no approval came in time" in client.reply(view)


def test_scheduled_runs_when_execute_at_comes_and_not_before(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    execute_at = datetime.now(UTC) + timedelta(seconds=2)
    when = execute_at.isoformat().replace("+00:00", "Z")
    _resolve(client, decision_id, {"action": "approve", "response_data": {"execute_at": when}})
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["decision"]["status"] == "scheduled"
    assert action["execution"]["status"] == "scheduled"
    assert "to run at" in client.reply(view)
    # Before its time, the reconciler leaves it alone.
    client.stack.run_scheduled("ReconcilerFunction")
    assert client.effects(cid) == []
    wait_for(lambda: datetime.now(UTC) > execute_at, what="execute_at")
    report = client.stack.run_scheduled("ReconcilerFunction")
    assert report["scheduled_run"] >= 1
    assert client.get(cid)["actions"][0]["execution"]["status"] == "executed"
    client.stack.run_scheduled("ReconcilerFunction")
    assert len(client.effects(cid)) == 1


def test_a_digest_mismatch_is_never_executed(client):
    """Arguments changed after the approval was asked for (a bug or tampering): the approval does not cover them."""
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    from signoff import runtime

    action = runtime.table().load_conversation(cid)[2][0]
    boto3.client("dynamodb").update_item(
        TableName=client.stack.resources.refs["SignoffTable"],
        Key={"pk": {"S": f"CONV#{cid}"}, "sk": {"S": f"ACTION#{action.turn_id}#{action.call_id}"}},
        UpdateExpression="SET arguments = :a",
        ExpressionAttributeValues={":a": {"S": json.dumps({**action.arguments, "amount": 9999})}},
    )
    client.resolve(decision_id, "approve")
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "not_executed"
    assert view["actions"][0]["execution"]["result"] == {"error": "approval does not match"}
    assert client.effects(cid) == []
    assert "does not match" in client.reply(view)


def test_the_policy_file_decides_what_is_gated(client, policy_file):
    policy_file(
        {
            "tools": {
                "lookup_customer": {
                    "approval": "always",
                    "urgency": "low",
                    "timeout_minutes": 15,
                    "approver": "auditor@example.com",
                }
            }
        }
    )
    cid = client.start("Please look up customer #12.")["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    decision = _decision_for(client, decision_id)
    assert decision["urgency"] == "low" and decision["timeout_minutes"] == 15
    assert client.stack.handover.decisions[decision_id]["_approver"] == "auditor@example.com"
    client.resolve(decision_id, "approve")
    assert client.wait_status(cid, "idle")["actions"][0]["execution"]["status"] == "executed"


def test_rules_on_arguments_gate_only_the_matching_calls(client, policy_file):
    policy_file(
        {
            "tools": {
                "send_customer_email": {
                    "approval": "rules",
                    "rules": [{"kind": "matches", "field": "body", "pattern": "(?i)legal"}],
                }
            }
        }
    )
    quiet = client.start("Email customer #5 about the delay")["conversation_id"]
    assert client.wait_status(quiet, "idle")["actions"][0]["gated"] is False
    loud = client.start("Email customer #5 about legal action")["conversation_id"]
    [decision_id] = client.pending_decision_ids(loud)
    client.resolve(decision_id, "deny")
    assert client.wait_status(loud, "idle")["actions"][0]["execution"]["status"] == "not_executed"


def _quorum_policy(policy_file):
    policy_file(
        {"tools": {"delete_customer_data": {"quorum": {"required": 2, "approvers": QUORUM}, "urgency": "critical"}}}
    )


def _decisions_by_approver(client, cid: str) -> dict[str, str]:
    handover = client.stack.handover

    def ready():
        view = client.get(cid)
        if view["status"] != "awaiting_approval":
            return None
        mine = {d["_approver"]: d["id"] for d in handover.decisions.values() if cid in d["context"]}
        return mine if len(mine) == 3 else None

    return wait_for(ready, what="three decisions")


def test_quorum_two_approvals_run_the_call_once_and_a_late_third_changes_nothing(client, policy_file):
    _quorum_policy(policy_file)
    cid = client.start("Delete customer #66's data")["conversation_id"]
    decisions = _decisions_by_approver(client, cid)
    assert all(_decision_for(client, d)["urgency"] == "critical" for d in decisions.values())
    client.resolve(decisions[QUORUM[0]], "approve", resolved_by=QUORUM[0])
    wait_for(lambda: client.stack.handover.decisions[decisions[QUORUM[0]]]["status"] == "approved", what="first")
    assert client.get(cid)["status"] == "awaiting_approval"  # one yes is not enough
    assert client.effects(cid) == []
    client.resolve(decisions[QUORUM[2]], "approve", resolved_by=QUORUM[2], notes="second")
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["decision"]["status"] == "approved"
    assert action["decision"]["resolved_by"] == f"{QUORUM[0]}, {QUORUM[2]}"
    assert len(client.effects(cid)) == 1
    # The third answer comes late (a denial, even): it is recorded for the audit, nothing else changes.
    client.resolve(decisions[QUORUM[1]], "deny", resolved_by=QUORUM[1])
    wait_for(lambda: _audit_status(client, cid, QUORUM[1]) == "denied", what="the late answer recorded")
    assert client.get(cid)["actions"][0]["execution"]["status"] == "executed"
    assert len(client.effects(cid)) == 1


def test_quorum_any_denial_denies(client, policy_file):
    _quorum_policy(policy_file)
    cid = client.start("Delete customer #67's data")["conversation_id"]
    decisions = _decisions_by_approver(client, cid)
    client.resolve(decisions[QUORUM[0]], "approve", resolved_by=QUORUM[0])
    client.resolve(decisions[QUORUM[1]], "deny", resolved_by=QUORUM[1], notes="Legal hold on this account.")
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["decision"]["status"] == "denied" and action["execution"]["status"] == "not_executed"
    assert client.effects(cid) == []
    assert '"Legal hold on this account."' in client.reply(view)
    client.resolve(decisions[QUORUM[2]], "approve")
    wait_for(lambda: _audit_status(client, cid, QUORUM[2]) == "approved", what="the late answer recorded")
    assert client.effects(cid) == []


def test_quorum_that_can_no_longer_be_reached_does_not_run(client, policy_file):
    _quorum_policy(policy_file)
    cid = client.start("Delete customer #68's data")["conversation_id"]
    decisions = _decisions_by_approver(client, cid)
    client.stack.handover.expire(decisions[QUORUM[0]])
    client.stack.handover.expire(decisions[QUORUM[1]])
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["decision"]["status"] == "expired"
    assert view["actions"][0]["execution"]["status"] == "not_executed"


def _audit_status(client, cid: str, approver: str) -> str | None:
    response = client.get_json("/approvals", params={"conversation_id": cid})
    for entry in response["approvals"]:
        if entry["approver"] == approver:
            return entry["status"]
    return None


def _resolve(client, decision_id: str, body: dict) -> None:
    import requests

    response = requests.post(
        f"{client.stack.handover_url}/decisions/{decision_id}/resolve",
        json=body,
        headers=client.handover_headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_a_server_that_reuses_call_ids_gets_a_new_action_each_turn(client):
    """An OpenAI-compatible server numbering calls per answer (call_0 every turn) must not make the
    second turn's call look like the first one's."""
    with settings_changed(AGENT_API="chat"):
        client.stack.openai.sequential_call_ids = True
        try:
            cid = client.start("Please look up customer #61.")["conversation_id"]
            client.wait_status(cid, "idle")
            assert client.post(f"/conversations/{cid}/messages", json={"message": "Look up customer #62."}).ok
            view = client.wait_status(cid, "idle")
        finally:
            client.stack.openai.sequential_call_ids = False
    assert [a["call_id"] for a in view["actions"]] == ["call_0", "call_0"]
    assert [a["arguments"]["customer_id"] for a in view["actions"]] == ["61", "62"]
    assert all(a["execution"]["status"] == "executed" for a in view["actions"])
    assert len(client.effects(cid)) == 2


def test_an_answer_that_comes_after_its_turn_failed_never_runs_the_call(client):
    """The turn was given up on (say its worker's lease ran out) while a decision was pending, and
    the crash came before its calls were settled: the late approval is recorded, the call is not run,
    and the approval leaves the reconciler's list."""
    from signoff import runtime
    from signoff.domain.models import Message, iso, utc_now

    table = runtime.table()
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    conversation, _, [action] = table.load_conversation(cid)
    reply = Message(role="assistant", content="Sorry.", created_at=iso(utc_now()))
    assert table.fail_turn(cid, conversation.active_turn_id, "given up", reply)  # and nothing after it
    client.resolve(decision_id, "approve")
    wait_for(lambda: table.get_action(cid, action.turn_id, action.call_id).settled, what="the call settled")
    settled = table.get_action(cid, action.turn_id, action.call_id)
    assert settled.execution.status.value == "not_executed" and settled.verdict is None
    assert client.effects(cid) == []

    def retired() -> bool:  # the callback retires the approval right after it settles the call
        due = {a.approval_id for a in table.due_work(utc_now(), limit=1000).approvals}
        return not set(action.approval_ids) & due

    wait_for(retired, what="the approval out of the reconciler's list")
