"""SignoffTable against DynamoDB (moto's server), with the table built from template.yaml.

Each transition is a conditional write: the second attempt at the same transition must lose.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from local.aws_resources import create_resources
from local.template import SamTemplate
from signoff.dal.table import ConversationBusy, ConversationNotFound, SignoffTable
from signoff.domain.models import (
    Action,
    Approval,
    Conversation,
    ConversationStatus,
    Decision,
    DecisionStatus,
    Execution,
    ExecutionStatus,
    Message,
    Turn,
    TurnStatus,
    iso,
    utc_now,
)


@pytest.fixture(scope="module")
def table(stack) -> SignoffTable:
    created = create_resources(
        SamTemplate(), {"OpenAIApiKeySecret": "x", "HandoverApiKeySecret": "y"}, prefix=f"dal-{uuid.uuid4().hex[:8]}"
    )
    return SignoffTable(boto3.client("dynamodb"), created.refs["SignoffTable"])


def _conversation(table: SignoffTable) -> tuple[str, str]:
    cid, tid, now = f"conv_{uuid.uuid4().hex}", f"turn_{uuid.uuid4().hex}", iso(utc_now())
    table.create_conversation(
        Conversation(conversation_id=cid, status=ConversationStatus.RUNNING, active_turn_id=tid, created_at=now),
        Turn(conversation_id=cid, turn_id=tid, status=TurnStatus.QUEUED, created_at=now, input="hi"),
        Message(role="user", content="hi", created_at=now),
    )
    return cid, tid


def _paused(table: SignoffTable, calls: int = 2) -> tuple[str, str, list[Approval]]:
    cid, tid = _conversation(table)
    assert table.claim_turn_start(cid, tid)
    actions, approvals = [], []
    for n in range(calls):
        aid = uuid.uuid4().hex
        actions.append(
            Action(
                conversation_id=cid,
                turn_id=tid,
                call_id=f"call_{n}",
                seq=n,
                tool="issue_refund",
                arguments={"amount": 340},
                digest=f"d{n}",
                gated=True,
                approval_id=aid,
            )
        )
        approvals.append(
            Approval(
                approval_id=aid,
                conversation_id=cid,
                turn_id=tid,
                call_id=f"call_{n}",
                tool="issue_refund",
                digest=f"d{n}",
                created_at=iso(utc_now()),
            )
        )
    turn = table.get_turn(cid, tid)
    assert table.record_pause(turn, "resp_1", actions, pending=calls)
    for approval in approvals:
        assert table.put_approval(approval, utc_now())
        assert table.attach_decision(approval, f"dec_{approval.call_id}")
    return cid, tid, approvals


def test_a_turn_starts_once(table):
    cid, tid = _conversation(table)
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: table.claim_turn_start(cid, tid), range(8)))
    assert wins.count(True) == 1


def test_new_turn_is_refused_while_one_runs_and_404_for_unknown(table):
    cid, _ = _conversation(table)
    now = iso(utc_now())
    turn = Turn(conversation_id=cid, turn_id="turn_x", status=TurnStatus.QUEUED, created_at=now, input="again")
    with pytest.raises(ConversationBusy):
        table.open_turn(cid, turn, Message(role="user", content="again", created_at=now))
    with pytest.raises(ConversationNotFound):
        table.open_turn(f"conv_{uuid.uuid4().hex}", turn, Message(role="user", content="x", created_at=now))


def test_an_approval_settles_once_and_counts_down_once(table):
    cid, tid, approvals = _paused(table)
    decision = Decision(id="dec_call_0", status=DecisionStatus.APPROVED)
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: table.settle_approval(approvals[0], decision), range(8)))
    assert wins.count(True) == 1
    assert table.get_turn(cid, tid).pending == 1
    assert not table.claim_turn_resume(cid, tid, "resp_1")  # one still pending
    denied = Decision(id="dec_call_1", status=DecisionStatus.DENIED, notes="no")
    assert table.settle_approval(approvals[1], denied)
    assert table.get_turn(cid, tid).pending == 0
    assert table.get_action(cid, "call_1").execution.status is ExecutionStatus.NOT_EXECUTED
    assert table.get_action(cid, "call_0").execution is None  # approved: runs later, once
    assert not table.claim_turn_resume(cid, tid, "resp_other")
    assert table.claim_turn_resume(cid, tid, "resp_1")
    assert not table.claim_turn_resume(cid, tid, "resp_1")


def test_execution_is_claimed_once_and_a_finished_one_never_again(table):
    cid, _, _ = _paused(table, calls=1)
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: table.claim_execution(cid, "call_0", lease_seconds=300), range(8)))
    assert wins.count(True) == 1
    assert table.finish_execution(cid, "call_0", Execution(status=ExecutionStatus.EXECUTED, result={"ok": 1}))
    assert not table.finish_execution(cid, "call_0", Execution(status=ExecutionStatus.FAILED))
    assert not table.claim_execution(cid, "call_0", lease_seconds=0)


def test_a_stale_execution_claim_can_be_taken_over(table):
    cid, _, _ = _paused(table, calls=1)
    assert table.claim_execution(cid, "call_0", lease_seconds=300)
    assert not table.claim_execution(cid, "call_0", lease_seconds=300)
    assert table.claim_execution(cid, "call_0", lease_seconds=-1)  # the first claim's lease ran out


def test_effects_are_written_once_per_key(table):
    key = f"conv:{uuid.uuid4().hex}"
    first = table.record_effect(key, "issue_refund", {"amount": 1}, {"refund_id": "a"})
    second = table.record_effect(key, "issue_refund", {"amount": 1}, {"refund_id": "b"})
    assert first == second == {"refund_id": "a"}


def test_due_approvals_lists_pending_ones_only(table):
    _cid, _tid, approvals = _paused(table, calls=2)
    due = {a.approval_id for a in table.due_approvals(utc_now())}
    assert {a.approval_id for a in approvals} <= due
    table.settle_approval(approvals[0], Decision(id="dec_call_0", status=DecisionStatus.DENIED))
    due = {a.approval_id for a in table.due_approvals(utc_now())}
    assert approvals[0].approval_id not in due and approvals[1].approval_id in due
