"""Escalation ladders: an unanswered decision goes to the next rung, bound to the same call; the
last rung expiring ends in not executed; each rung is in the audit trail."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from local.environment import settings_changed
from signoff.domain.receipts import decode

LADDER = [{"approver": "lead@example.com", "after_minutes": 30}, {"approver": "cto@example.com", "after_minutes": 45}]


@pytest.fixture
def ladder_policy(tmp_path):
    policy = json.loads(Path(os.environ["POLICY_FILE"]).read_text())
    policy["tools"]["delete_customer_data"] = {
        "approval": "always",
        "urgency": "critical",
        "timeout_minutes": 120,
        "escalation": LADDER,
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    with settings_changed(POLICY_FILE=str(path)):
        yield


def _decision(client, decision_id: str) -> dict:
    return next(d for d in client.stack.handover.all_decisions() if d["id"] == decision_id)


def test_a_two_rung_ladder_reaches_the_second_approver_and_executes_once_on_their_approval(client, ladder_policy):
    cid = client.start("Delete customer #ladder-1's data")["conversation_id"]
    [first] = client.pending_decision_ids(cid)
    assert (_decision(client, first)["approver"], _decision(client, first)["timeout_minutes"]) == (
        "approver@example.com",
        30,
    )
    assert client.stack.handover.expire(first)
    second = client.next_decision(cid, first)
    assert (_decision(client, second)["approver"], _decision(client, second)["timeout_minutes"]) == (
        "lead@example.com",
        45,
    )
    assert "Escalated: approver@example.com did not answer in time" in _decision(client, second)["context"]
    assert client.effects(cid) == []  # nothing ran on the way up
    client.resolve(second, "approve", resolved_by="lead@example.com")
    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["execution"]["status"] == "executed" and action["decision"]["id"] == second
    [effect] = client.effects(cid)
    assert effect["invocations"] == 1  # invoked once
    trail = client.get_json("/approvals", params={"conversation_id": cid})["approvals"]
    assert sorted((e["approver"], e["status"]) for e in trail) == [
        ("approver@example.com", "expired"),
        ("lead@example.com", "approved"),
    ]
    assert {e["arguments_digest"] for e in trail} == {trail[0]["arguments_digest"]}  # the same call each time
    receipt = decode(action["receipt"]).claims
    assert [a["approver"] for a in receipt["approvals"]] == ["lead@example.com"]


def test_handover_escalating_moves_the_ladder_to_the_last_rung_too(client, ladder_policy):
    cid = client.start("Delete customer #ladder-4's data")["conversation_id"]
    [first] = client.pending_decision_ids(cid)
    assert client.stack.handover.expire(first, status="escalated")  # Handover's own escalation counts too
    second = client.next_decision(cid, first)
    assert client.stack.handover.expire(second)
    third = client.next_decision(cid, second)
    assert (_decision(client, third)["approver"], _decision(client, third)["timeout_minutes"]) == (
        "cto@example.com",
        120,  # the last rung has the tool's timeout
    )
    client.resolve(third, "approve", resolved_by="cto@example.com")
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "executed" and len(client.effects(cid)) == 1
    trail = client.get_json("/approvals", params={"conversation_id": cid})["approvals"]
    assert sorted(e["status"] for e in trail) == ["approved", "escalated", "expired"]


def test_the_last_rung_expiring_ends_in_not_executed_with_a_reply(client, ladder_policy):
    cid = client.start("Delete customer #ladder-2's data")["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    for _ in LADDER:
        assert client.stack.handover.expire(decision_id)
        decision_id = client.next_decision(cid, decision_id)
    assert client.stack.handover.expire(decision_id)
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "not_executed"
    assert view["actions"][0]["decision"]["status"] == "expired"
    assert client.effects(cid) == []
    assert "no approval came in time" in client.reply(view)
    assert len(client.get_json("/approvals", params={"conversation_id": cid})["approvals"]) == 3


def test_a_ladder_is_for_one_approver_at_a_time():
    from pydantic import ValidationError

    from signoff.domain.policy import ApprovalPolicy

    with pytest.raises(ValidationError, match="not a quorum"):
        ApprovalPolicy.model_validate(
            {"tools": {"t": {"quorum": {"required": 1, "approvers": ["a@x.io", "b@x.io"]}, "escalation": LADDER}}}
        )
    policy = ApprovalPolicy.model_validate({"tools": {"t": {"escalation": LADDER, "timeout_minutes": 90}}})
    assert [policy.decision_minutes("t", rung, 60) for rung in range(3)] == [30, 45, 90]
    assert [policy.rung_approver("t", rung) for rung in (1, 2, 3)] == ["lead@example.com", "cto@example.com", None]


def test_a_second_escalation_of_the_same_expiry_does_not_fork_the_ladder(client, ladder_policy):
    """Callback and reconciler can both see one expiry: only the first moves the ladder on."""
    from signoff import runtime

    cid = client.start("Delete customer #ladder-3's data")["conversation_id"]
    [first] = client.pending_decision_ids(cid)
    table = runtime.table()
    [stale] = table.load_conversation(cid)[2]  # the call as a slower invocation read it
    assert client.stack.handover.expire(first)
    second = client.next_decision(cid, first)
    [expired] = [a for a in table.get_approvals([stale.approval_ids[0]])]
    decisions_before = len([d for d in client.stack.handover.all_decisions() if cid in d.get("context", "")])

    assert runtime.approval_requester().escalate(stale, expired) is True  # handled: nothing more to do
    [action] = table.load_conversation(cid)[2]
    assert len(action.approval_ids) == 1 and action.decision.id == second
    assert len([d for d in client.stack.handover.all_decisions() if cid in d.get("context", "")]) == decisions_before
    audit = client.get_json("/approvals", params={"conversation_id": cid})["approvals"]
    assert len(audit) == 2  # the expired one and the one rung above; no third
    client.resolve(second, "deny")
    client.wait_status(cid, "idle")
