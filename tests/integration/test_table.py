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
    DecisionRef,
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


def _paused(table: SignoffTable, calls: int = 2, approvers: int = 1) -> tuple[str, str, list[list[Approval]]]:
    """A turn paused on ``calls`` gated calls, each waiting on ``approvers`` approvals."""
    cid, tid = _conversation(table)
    assert table.claim_turn_start(cid, tid)
    actions, approvals = [], []
    for n in range(calls):
        ids = [uuid.uuid4().hex for _ in range(approvers)]
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
                approval_ids=ids,
                quorum_required=approvers,
            )
        )
        approvals.append(
            [
                Approval(
                    approval_id=i,
                    conversation_id=cid,
                    turn_id=tid,
                    call_id=f"call_{n}",
                    tool="issue_refund",
                    digest=f"d{n}",
                    created_at=iso(utc_now()),
                )
                for i in ids
            ]
        )
    turn = table.get_turn(cid, tid)
    stored = [(a, utc_now()) for group in approvals for a in group]
    assert table.record_pause(turn, "resp_1", actions, stored, pending=calls)
    for group in approvals:
        for approval in group:
            assert table.get_approval(approval.approval_id) is not None  # written with the pause
            assert table.attach_decision(approval, f"dec_{approval.approval_id}")
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


def test_an_approval_settles_once(table):
    _, _, [[approval], _] = _paused(table)
    decision = Decision(id="dec", status=DecisionStatus.APPROVED, resolved_by="a@x.io", notes="ok")
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: table.settle_approval(approval, decision), range(8)))
    [won] = [w for w in wins if w is not None]  # one winner, handed the approval as it now is
    stored = table.get_approval(approval.approval_id)
    assert won == stored
    assert stored.outcome is DecisionStatus.APPROVED and stored.resolved_by == "a@x.io" and stored.notes == "ok"
    denied = Decision(id="dec", status=DecisionStatus.DENIED)
    assert table.settle_approval(approval, denied) is None
    assert table.get_approval(approval.approval_id).outcome is DecisionStatus.APPROVED


def test_a_verdict_is_recorded_once_and_counts_the_turn_down_once(table):
    cid, tid, _ = _paused(table)
    action = table.get_action(cid, tid, "call_0")
    ref = DecisionRef(id="dec", status="denied")
    not_run = Execution(status=ExecutionStatus.NOT_EXECUTED)
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: table.record_verdict(action, ref, "denied", not_run), range(8)))
    assert wins.count(True) == 1
    assert table.get_turn(cid, tid).pending == 1
    assert not table.claim_turn_resume(cid, tid, "resp_1")  # one call still waits
    other = table.get_action(cid, tid, "call_1")
    assert table.record_verdict(other, DecisionRef(id="d", status="approved"), "approved", None)
    assert table.get_turn(cid, tid).pending == 0
    assert not table.claim_turn_resume(cid, tid, "resp_other")
    assert table.claim_turn_resume(cid, tid, "resp_1")
    assert not table.claim_turn_resume(cid, tid, "resp_1")


def test_a_gated_call_cannot_be_claimed_without_a_verdict_that_lets_it_run(table):
    cid, tid, _ = _paused(table)
    assert not table.claim_execution(table.get_action(cid, tid, "call_0"))  # no verdict yet
    denied = table.get_action(cid, tid, "call_1")
    table.record_verdict(denied, DecisionRef(id="d", status="denied"), "denied", None)
    assert not table.claim_execution(table.get_action(cid, tid, "call_1"))


def test_execution_is_claimed_once_and_a_finished_one_never_again(table):
    cid, tid, _ = _paused(table, calls=1)
    action = table.get_action(cid, tid, "call_0")
    table.record_verdict(action, DecisionRef(id="d", status="approved"), "approved", None)
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: table.claim_execution(action), range(8)))
    assert wins.count(True) == 1
    assert table.finish_execution(action, Execution(status=ExecutionStatus.EXECUTED, result={"ok": 1}))
    assert not table.finish_execution(action, Execution(status=ExecutionStatus.FAILED))
    assert not table.claim_execution(action)
    assert not table.settle_stale_execution(action, lease_seconds=-1)  # finished: nothing stale


def test_a_stale_claim_is_settled_as_unknown_never_claimed_again(table):
    cid, tid, _ = _paused(table, calls=1)
    action = table.get_action(cid, tid, "call_0")
    table.record_verdict(action, DecisionRef(id="d", status="approved"), "approved", None)
    assert table.claim_execution(action)
    assert not table.claim_execution(action)
    assert not table.settle_stale_execution(action, lease_seconds=300)  # its lease still runs
    assert table.settle_stale_execution(action, lease_seconds=-1)  # the claimer died
    settled = table.get_action(cid, tid, "call_0")
    assert settled.execution.status is ExecutionStatus.FAILED and "unknown" in settled.execution.result["error"]
    assert not table.claim_execution(settled)
    assert not table.finish_execution(action, Execution(status=ExecutionStatus.EXECUTED))  # the dead one's late word


def test_an_abandoned_call_takes_no_verdict_and_never_runs(table):
    cid, tid, _ = _paused(table, calls=2)
    first = table.get_action(cid, tid, "call_0")
    assert table.abandon_action(first, "the turn ended")
    assert not table.abandon_action(first, "again")
    assert not table.record_verdict(first, DecisionRef(id="d", status="approved"), "approved", None)
    assert not table.claim_execution(table.get_action(cid, tid, "call_0"))
    assert table.get_turn(cid, tid).pending == 2


def test_a_failed_turn_takes_no_more_verdicts(table):
    cid, tid, _ = _paused(table, calls=1)
    reply = Message(role="assistant", content="Sorry.", created_at=iso(utc_now()))
    assert table.fail_turn(cid, tid, "gave up", reply)
    action = table.get_action(cid, tid, "call_0")
    assert not table.record_verdict(action, DecisionRef(id="d", status="approved"), "approved", None)
    conversation, messages, _ = table.load_conversation(cid)
    assert conversation.status is ConversationStatus.FAILED and conversation.unanswered_turn_id == tid
    assert messages[-1].role == "assistant" and messages[-1].content == "Sorry."
    assert table.clear_unanswered_turn(cid, tid)
    assert table.get_conversation(cid).unanswered_turn_id is None


def test_a_reused_call_id_is_a_new_action_in_a_new_turn(table):
    cid, tid, _ = _paused(table, calls=1)
    again = table.get_action(cid, tid, "call_0").model_copy(update={"turn_id": "turn_next"})
    assert table.put_action(again)
    assert table.get_action(cid, "turn_next", "call_0") is not None
    assert [a.turn_id for a in table.list_actions(cid, tid)] == [tid]


def test_a_scheduled_call_is_claimed_only_once_its_time_has_come(table):
    from datetime import timedelta

    cid, tid, _ = _paused(table, calls=2)
    later = iso(utc_now() + timedelta(hours=1))
    earlier = iso(utc_now() - timedelta(seconds=1))
    for call, when in (("call_0", later), ("call_1", earlier)):
        action = table.get_action(cid, tid, call)
        execution = Execution(status=ExecutionStatus.SCHEDULED, execute_at=when)
        assert table.record_verdict(action, DecisionRef(id="d", status="scheduled"), "scheduled", execution)
    assert not table.claim_scheduled_execution(table.get_action(cid, tid, "call_0"))
    due = {a.call_id for a in table.due_work(utc_now()).actions if a.conversation_id == cid}
    assert due == {"call_1"}
    assert table.claim_scheduled_execution(table.get_action(cid, tid, "call_1"))
    assert not table.claim_scheduled_execution(table.get_action(cid, tid, "call_1"))


def test_effects_are_written_once_per_key(table):
    key = f"conv:{uuid.uuid4().hex}"
    first = table.record_effect(key, "issue_refund", {"amount": 1}, {"refund_id": "a"})
    second = table.record_effect(key, "issue_refund", {"amount": 1}, {"refund_id": "b"})
    assert first == second == {"refund_id": "a"}


def test_due_work_lists_approvals_until_retired(table):
    _, _, [[first], [second]] = _paused(table, calls=2)
    due = {a.approval_id for a in table.due_approvals(utc_now())}
    assert {first.approval_id, second.approval_id} <= due
    table.retire_approval(first.approval_id)
    due = {a.approval_id for a in table.due_approvals(utc_now())}
    assert first.approval_id not in due and second.approval_id in due


# -- budgets -------------------------------------------------------------------------------------
def _charge(limit: str = "100", amount: str = "30", group: str | None = None):
    from decimal import Decimal

    from signoff.domain.budgets import Budget, BudgetCharge

    budget = Budget(name="b", tools=["t"], sum="amount", group_by=["customer_id"], window_hours=24, limit=limit)
    return BudgetCharge(budget, {"customer_id": group or uuid.uuid4().hex}, Decimal(amount))


def test_twenty_writers_racing_for_one_budget_take_exactly_what_fits(table):
    """Each reserves 30 of 100 at once: three win, the rest see no room, and nothing is lost."""
    charge, now = _charge(), utc_now()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda n: table.reserve_budget(charge, f"call-{n}", now, True), range(20)))
    assert sum(r.taken for r in results) == 3
    assert str(table.budget_total(charge, now)) == "90"


def test_a_reservation_counts_once_and_comes_back_once(table):
    charge, now = _charge(amount="60"), utc_now()
    assert table.reserve_budget(charge, "call-a", now, True).taken
    again = table.reserve_budget(charge, "call-a", now, True)  # a retry of the same call
    assert again.taken and str(again.total_before) == "0"
    assert not table.reserve_budget(charge, "call-b", now, True).taken  # 60 + 60 > 100
    assert table.release_budget(charge, "call-a", now)
    assert not table.release_budget(charge, "call-a", now)
    assert table.reserve_budget(charge, "call-b", now, True).taken


def test_a_reservation_older_than_the_window_no_longer_counts(table):
    from datetime import timedelta

    charge, now = _charge(amount="80"), utc_now()
    assert table.reserve_budget(charge, "old", now - timedelta(hours=25), True).taken
    assert str(table.budget_total(charge, now)) == "0"
    assert table.reserve_budget(charge, "new", now, True).taken
    assert not table.reserve_budget(charge, "newer", now, True).taken


def test_without_the_limit_a_reservation_always_counts(table):
    """What a human approved is counted even past the limit (only a hard cap could refuse it)."""
    charge, now = _charge(amount="150"), utc_now()
    assert table.reserve_budget(charge, "approved", now, False).taken
    assert str(table.budget_total(charge, now)) == "150"


# -- grants --------------------------------------------------------------------------------------
def _grant(table: SignoffTable, max_uses: int = 3, hours: int = 1):
    from datetime import timedelta

    from signoff.domain.grants import Grant, grant_id_for

    scope, now = {"customer_id": uuid.uuid4().hex}, utc_now()
    grant = Grant(
        grant_id=grant_id_for("default", "issue_refund", scope, uuid.uuid4().hex),
        tool="issue_refund",
        scope=scope,
        caps={"amount": "300"},
        origin_conversation_id="conv_x",
        origin_call_id="call_x",
        created_at=iso(now),
        expires_at=iso(now + timedelta(hours=hours)),
        max_uses=max_uses,
        uses_left=max_uses,
    )
    assert table.put_grant(grant)
    assert not table.put_grant(grant)  # one grant per decision, whatever retries
    return grant


def _use(n: int):
    from signoff.domain.grants import GrantUse

    return GrantUse(conversation_id="conv_y", turn_id="turn_y", call_id=f"call_{n}", digest="d", at=iso(utc_now()))


def test_ten_calls_racing_for_a_grant_take_exactly_its_uses(table):
    """The use is a conditional write on what is left, not on what a caller read earlier."""
    grant = _grant(table, max_uses=3)
    with ThreadPoolExecutor(max_workers=10) as pool:
        left = list(pool.map(lambda n: table.take_grant_use(grant, _use(n), utc_now()), range(10)))
    assert sorted(x for x in left if x is not None) == [0, 1, 2]
    stored = table.get_grant(grant.grant_id)
    assert stored is not None and stored.uses_left == 0 and len(stored.uses) == 3


def test_a_revoked_or_expired_grant_gives_no_use_even_to_a_caller_that_read_it_live(table):
    from datetime import timedelta

    grant = _grant(table)
    assert not table.revoke_grant("globex", grant.grant_id, "ops", utc_now())  # not its tenant's
    assert table.revoke_grant("default", grant.grant_id, "ops", utc_now())
    assert not table.revoke_grant("default", grant.grant_id, "ops", utc_now())
    assert table.take_grant_use(grant, _use(1), utc_now()) is None
    expired = _grant(table)
    assert table.take_grant_use(expired, _use(1), utc_now() + timedelta(hours=2)) is None
    assert table.take_grant_use(expired, _use(2), utc_now()) == 2


# -- the local stack's moto: a failed transaction changes nothing ------------------------------
def test_a_failed_transaction_leaves_every_item_and_the_stream_as_they_were(table):
    """The local moto rolls a transaction back from the items it touched (not a copy of the table):
    a put, an update and a delete before the failing condition are all undone, and the stream
    shows none of them."""
    from local.moto_server import drain_stream

    cid, _ = _conversation(table)
    before = table.get_conversation(cid)
    doomed = f"conv_{uuid.uuid4().hex}"
    message_sk = next(i["sk"] for i in table._query_partition(f"CONV#{cid}") if i["sk"].startswith("MSG#"))
    drain_stream(table._table)
    ok = table._transact(
        [
            {"Put": {"Item": {"pk": {"S": f"CONV#{doomed}"}, "sk": {"S": "META"}, "type": {"S": "conversation"}}}},
            {
                "Update": {
                    "Key": {"pk": {"S": f"CONV#{cid}"}, "sk": {"S": "META"}},
                    "UpdateExpression": "SET #s = :x",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":x": {"S": "failed"}},
                }
            },
            {"Delete": {"Key": {"pk": {"S": f"CONV#{cid}"}, "sk": {"S": message_sk}}}},
            {
                "ConditionCheck": {
                    "Key": {"pk": {"S": "CONV#nobody"}, "sk": {"S": "META"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        ]
    )
    assert ok is False
    assert table.get_conversation(doomed) is None
    assert table.get_conversation(cid) == before
    assert any(i["sk"] == message_sk for i in table._query_partition(f"CONV#{cid}"))
    assert drain_stream(table._table) == []


def test_grants_page_with_a_cursor_and_refuse_an_audit_cursor(table):
    from signoff.dal.audit import InvalidCursor, _encode

    first, second = _grant(table), _grant(table)
    page, cursor = table.list_grants("default", 1, None)
    assert len(page) == 1 and cursor
    rest, _ = table.list_grants("default", 1, cursor)
    assert rest and rest[0].grant_id != page[0].grant_id
    assert {first.grant_id, second.grant_id} & {page[0].grant_id, rest[0].grant_id}
    with pytest.raises(InvalidCursor):
        table.list_grants("default", 1, _encode("AUDIT#2026-11", {"pk": {"S": "x"}}))
