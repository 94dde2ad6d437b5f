"""A decision Handover answers in a shape we cannot read (here: notes a number) is never acted on,
and never strands the conversation: looked at again with backoff, then settled as not executed."""

from __future__ import annotations

from signoff.logic.reconciler import MAX_READ_FAILURES

SEED = "Issue a €340 refund to customer #4821."


def test_an_unreadable_decision_is_retried_then_settled_as_not_executed(stack, client):
    from signoff import runtime

    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    [approval_id] = client.approval_ids(cid)
    stack.handover.drop_callbacks = 1.0  # the reconciler is the one to look
    try:
        client.resolve(decision_id, "approve")
    finally:
        stack.handover.drop_callbacks = 0.0
    # Handover answers the decision with a field of the wrong type (notes a number), as a service
    # with a bug or a changed API might: stored so here, behind the emulator's own validation.
    stack.handover.decisions[decision_id]["response_notes"] = 123
    reports = []
    for _ in range(MAX_READ_FAILURES - 1):
        reports.append(stack.run_scheduled("ReconcilerFunction"))
        assert client.get(cid)["status"] == "awaiting_approval"  # looked at, not given up on yet
    approval = runtime.table().get_approval(approval_id)
    assert approval.read_failures >= MAX_READ_FAILURES - 1
    reports.append(stack.run_scheduled("ReconcilerFunction"))
    assert sum(r["unreadable_settled"] for r in reports) == 1
    view = client.wait_status(cid, "idle")
    action = view["actions"][0]
    assert action["execution"]["status"] == "not_executed"
    assert client.effects(cid) == []
    assert "issue_refund was not done (No usable approval could be obtained" in client.reply(view)
