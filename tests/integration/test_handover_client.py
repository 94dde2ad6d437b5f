"""HandoverClient against the Handover-compatible server over HTTP: statuses, errors, retries."""

from __future__ import annotations

import pytest

from signoff.adapters.handover import (
    HandoverClient,
    HandoverNotFound,
    HandoverRejected,
    HandoverUnavailable,
    UnknownDecisionStatus,
)
from signoff.domain.models import DecisionStatus
from signoff.domain.ports import DecisionRequest

REQUEST = DecisionRequest(
    action="Issue a refund of 340.00 EUR to customer #4821",
    context="test",
    approver="approver@example.com",
    urgency="high",
    timeout_minutes=30,
    callback_url="http://127.0.0.1:9/callbacks/handover/none",
)


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def handover(stack, sleeps):
    stack.handover.fail_next(0)
    yield HandoverClient(stack.handover_url, stack.config.handover_local_key, sleep=sleeps.append)
    stack.handover.fail_next(0)


def test_create_then_get_every_resolution(stack, handover):
    for action, status in (("approve", "approved"), ("deny", "denied"), ("modify", "modified")):
        decision_id = handover.create_decision(REQUEST)
        assert handover.get_decision(decision_id).status is DecisionStatus.PENDING
        stack.handover.resolve(decision_id, {"action": action, "notes": "n", "resolved_by": "a@b.c"})
        decision = handover.get_decision(decision_id)
        assert decision.status.value == status and decision.notes == "n" and decision.resolved_by == "a@b.c"
    decision_id = handover.create_decision(REQUEST)
    stack.handover.expire(decision_id)
    assert handover.get_decision(decision_id).status is DecisionStatus.EXPIRED


def test_unknown_decision_is_a_typed_404(handover):
    with pytest.raises(HandoverNotFound) as caught:
        handover.get_decision("dec_missing")
    assert caught.value.status == 404 and caught.value.code == "not_found"


def test_wrong_key_is_rejected_without_retries(stack, sleeps):
    client = HandoverClient(stack.handover_url, "ho_wrong", sleep=sleeps.append)
    with pytest.raises(HandoverRejected) as caught:
        client.create_decision(REQUEST)
    assert caught.value.status == 401
    assert sleeps == []


def test_429_honours_retry_after_then_succeeds(stack, handover, sleeps):
    stack.handover.fail_next(2, status=429, retry_after="3")
    decision_id = handover.create_decision(REQUEST)
    assert decision_id.startswith("dec_")
    assert sleeps == [3.0, 3.0]


def test_retries_are_bounded_and_end_in_unavailable(stack, handover, sleeps):
    stack.handover.fail_next(50, status=503)
    with pytest.raises(HandoverUnavailable) as caught:
        handover.get_decision("dec_any")
    assert caught.value.status == 503
    assert len(sleeps) == 3  # four attempts in all
    assert all(0 < s <= 8 for s in sleeps)


def test_unreachable_handover_is_unavailable(sleeps):
    client = HandoverClient("http://127.0.0.1:9", "ho_x", sleep=sleeps.append, timeout=(0.5, 0.5))
    with pytest.raises(HandoverUnavailable):
        client.create_decision(REQUEST)
    assert len(sleeps) == 3


def test_unknown_status_is_not_permission(stack, handover):
    decision_id = handover.create_decision(REQUEST)
    stack.handover.decisions[decision_id]["status"] = "approved_ish"
    with pytest.raises(UnknownDecisionStatus):
        handover.get_decision(decision_id)
