"""The store contract: every case runs against DynamoDB (``SignoffTable`` on the local stack's moto,
the table built from template.yaml) and against the in-memory table the unit tests use, so the
fake cannot drift from the real thing.

Each transition is a conditional write: the second attempt at the same transition must lose, and
a write whose condition fails changes nothing.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from signoff.dal.table import SignoffTable
from signoff.domain.models import (
    Action,
    Approval,
    ApprovalState,
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
from signoff.domain.ports import ConversationBusy, ConversationNotFound
from signoff.domain.stores import AuditQuery, InvalidCursor, SignoffStore
from tests.fakes.memory_table import MemoryTable
from tests.support import dynamodb_table, queued_conversation


@pytest.fixture(scope="module", params=["dynamodb", "memory"])
def table(request) -> SignoffStore:
    if request.param == "memory":
        return MemoryTable()
    request.getfixturevalue("stack")
    return dynamodb_table("dal")


def _paused(
    table: SignoffStore, calls: int = 2, approvers: int = 1, bind: bool = True
) -> tuple[str, str, list[list[Approval]]]:
    """A turn paused on ``calls`` gated calls, each waiting on ``approvers`` approvals (bound to
    decisions unless ``bind`` is False)."""
    cid, tid = queued_conversation(table)
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
            assert not bind or table.attach_decision(approval, f"dec_{approval.approval_id}")
    return cid, tid, approvals


def test_a_turn_its_conversation_and_its_calls_are_read_together(table):
    cid, tid = queued_conversation(table)
    turn, conversation, calls = table.get_pause(cid, tid)
    assert turn == table.get_turn(cid, tid) and conversation == table.get_conversation(cid) and calls is None
    assert table.get_pause(cid, "turn_" + "0" * 32) == (None, conversation, None)
    assert table.get_pause("conv_" + "0" * 32, tid) == (None, None, None)
    cid, tid, _ = _paused(table, calls=3)
    _turn, _conversation, calls = table.get_pause(cid, tid, ["call_2", "call_0", "call_1"])
    assert calls == table.list_actions(cid, tid) and [a.seq for a in calls] == [0, 1, 2]
    assert table.get_pause(cid, tid, ["call_0", "call_9"])[2] is None  # one missing: list them instead


def test_more_keys_than_one_batch_read_takes_are_read_in_several(table):
    _cid, _tid, [[approval]] = _paused(table, calls=1)
    missing = [uuid.uuid4().hex for _ in range(150)]  # DynamoDB takes 100 keys a request
    assert [a.approval_id for a in table.get_approvals([*missing, approval.approval_id])] == [approval.approval_id]


def test_an_approval_keeps_its_call_as_the_pause_wrote_it(table):
    cid, tid = queued_conversation(table)
    assert table.claim_turn_start(cid, tid)
    arguments = {"amount": 340.10, "note": "ß", "n": 10**20, "nested": {"x": [1.5, None]}}
    action = Action(
        conversation_id=cid,
        turn_id=tid,
        call_id="call_0",
        seq=0,
        tool="issue_refund",
        arguments=arguments,
        digest="d0",
        gated=True,
        approval_ids=["a" * 32],
        pause_calls=["call_0"],
        pause_ref="resp_1",
    )
    approval = Approval.for_call(action, "a" * 32, "boss@x.io", iso(utc_now()), call=action)
    assert table.record_pause(table.get_turn(cid, tid), "resp_1", [action], [(approval, utc_now())], pending=1)
    stored = table.get_approval("a" * 32)
    assert stored.call == action and stored.call.arguments == arguments
    assert stored.call == table.get_action(cid, tid, "call_0").model_copy(update={"created_at": action.created_at})


def test_a_verdict_on_approvals_the_call_no_longer_waits_on_is_refused(table):
    cid, tid, _approvals = _paused(table, calls=1)
    action = table.get_action(cid, tid, "call_0")
    swapped = action.model_copy(update={"approval_ids": ["f" * 32]})  # as if read before an escalation
    ref = DecisionRef(id="dec_x", status="approved")
    assert not table.record_verdict(swapped, ref, "approved", None)
    assert not table.get_action(cid, tid, "call_0").verdict_recorded
    assert table.record_verdict(action, ref, "approved", None)


def test_a_turn_starts_once(table):
    cid, tid = queued_conversation(table)
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: table.claim_turn_start(cid, tid), range(8)))
    [won] = [w for w in wins if w is not None]  # one winner, handed the turn as it now is
    assert won == table.get_turn(cid, tid) and won.status is TurnStatus.RUNNING


def test_new_turn_is_refused_while_one_runs_and_404_for_unknown(table):
    cid, _ = queued_conversation(table)
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
    # Messages are ordered by time (a later millisecond than the question: the memory table is that fast).
    reply = Message(role="assistant", content="Sorry.", created_at=iso(utc_now() + timedelta(milliseconds=5)))
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
    due = {a.approval_id for a in table.due_work(utc_now()).approvals}
    assert {first.approval_id, second.approval_id} <= due
    table.retire_approval(first.approval_id)
    due = {a.approval_id for a in table.due_work(utc_now()).approvals}
    assert first.approval_id not in due and second.approval_id in due


def test_a_verdict_retires_its_approvals_in_the_same_write_or_writes_nothing(table):
    cid, tid, [[first, second]] = _paused(table, calls=1, approvers=2)
    action = table.get_action(cid, tid, "call_0")
    ref = DecisionRef(id="d", status="approved")
    missing = "apr_" + "0" * 32
    # An approval that does not exist: the whole write is refused, the verdict too.
    assert not table.record_verdict(action, ref, "approved", None, retire=[first.approval_id, missing])
    assert not table.get_action(cid, tid, "call_0").verdict_recorded
    due = {a.approval_id for a in table.due_work(utc_now(), limit=1000).approvals}
    assert {first.approval_id, second.approval_id} <= due
    assert table.record_verdict(action, ref, "approved", None, retire=[first.approval_id, second.approval_id])
    assert table.get_action(cid, tid, "call_0").verdict_recorded and table.get_turn(cid, tid).pending == 0
    due = {a.approval_id for a in table.due_work(utc_now(), limit=1000).approvals}
    assert not {first.approval_id, second.approval_id} & due


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


def _budget_write(table: SignoffStore, charge, key: str, now):
    """The write that reserves ``key`` on ``charge``'s group, as computed from the counter now."""
    from signoff.domain.budgets import BudgetWrite, reserve

    reservations, version = table.budget_state(charge.group_id)
    _reservation, changed = reserve(reservations, charge, key, now, True)
    return BudgetWrite(charge.group_id, changed, version, now + charge.budget.window())


def test_an_answer_its_verdict_and_its_reservation_are_one_write(table):
    cid, tid, [[approval]] = _paused(table, calls=1, bind=False)
    action, now, charge = table.get_action(cid, tid, "call_0"), utc_now(), _charge()
    answer = Decision(id="dec_1", status=DecisionStatus.APPROVED, resolved_by="boss@x.io", notes="ok")
    answered = table.get_approval(approval.approval_id).answered(answer)
    write = _budget_write(table, charge, "call_0", now)
    assert write.version == 0
    assert approval.approval_id in {a.approval_id for a in table.due_work(utc_now()).approvals}
    ref = DecisionRef(id="dec_1", status="approved")
    assert table.record_verdict(
        action, ref, "approved", None, retire=action.approval_ids, answered=answered, budgets=[write]
    )
    stored = table.get_approval(approval.approval_id)
    assert (stored.state, stored.outcome, stored.resolved_by, stored.notes) == (
        ApprovalState.SETTLED,
        DecisionStatus.APPROVED,
        "boss@x.io",
        "ok",
    )
    assert approval.approval_id not in {a.approval_id for a in table.due_work(utc_now()).approvals}
    assert table.get_action(cid, tid, "call_0").verdict_recorded
    assert str(table.budget_total(charge, now)) == "30" and table.budget_state(charge.group_id)[1] == 1


def test_a_reservation_computed_from_a_counter_that_moved_writes_nothing(table):
    from signoff.domain.stores import BudgetMoved

    cid, tid, [[approval]] = _paused(table, calls=1, bind=False)
    action, now, charge = table.get_action(cid, tid, "call_0"), utc_now(), _charge()
    answered = table.get_approval(approval.approval_id).answered(Decision(id="d", status=DecisionStatus.APPROVED))
    stale = _budget_write(table, charge, "call_0", now)
    assert table.reserve_budget(charge, "another-call", now, True).taken  # the counter moves on
    with pytest.raises(BudgetMoved):
        table.record_verdict(action, DecisionRef(id="d"), "approved", None, answered=answered, budgets=[stale])
    assert table.get_approval(approval.approval_id).state is ApprovalState.PENDING
    assert not table.get_action(cid, tid, "call_0").verdict_recorded
    assert str(table.budget_total(charge, now)) == "30"  # the other call's only
    fresh = _budget_write(table, charge, "call_0", now)
    assert table.record_verdict(action, DecisionRef(id="d"), "approved", None, answered=answered, budgets=[fresh])
    assert str(table.budget_total(charge, now)) == "60"


def test_an_answer_to_an_approval_settled_meanwhile_writes_nothing(table):
    cid, tid, [[approval]] = _paused(table, calls=1, bind=False)
    action, now, charge = table.get_action(cid, tid, "call_0"), utc_now(), _charge()
    pending = table.get_approval(approval.approval_id)
    assert table.settle_approval(pending, Decision(id="d", status=DecisionStatus.DENIED))  # another callback
    late = pending.answered(Decision(id="d", status=DecisionStatus.APPROVED))
    write = _budget_write(table, charge, "call_0", now)
    assert not table.record_verdict(action, DecisionRef(id="d"), "approved", None, answered=late, budgets=[write])
    assert table.get_approval(approval.approval_id).outcome is DecisionStatus.DENIED
    assert not table.get_action(cid, tid, "call_0").verdict_recorded
    assert str(table.budget_total(charge, now)) == "0"


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
def _grant(table: SignoffStore, max_uses: int = 3, hours: int = 1, tenant: str = "default"):
    from datetime import timedelta

    from signoff.domain.grants import Grant, grant_id_for

    scope, now = {"customer_id": uuid.uuid4().hex}, utc_now()
    grant = Grant(
        grant_id=grant_id_for(tenant, "issue_refund", scope, uuid.uuid4().hex),
        tenant=tenant,
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


def test_grants_page_with_a_cursor_and_refuse_an_audit_cursor(table):
    tenant = f"t{uuid.uuid4().hex[:8]}"  # its own grants only: others may share their millisecond
    first, second = _grant(table, tenant=tenant), _grant(table, tenant=tenant)
    page, cursor = table.list_grants(tenant, 1, None)
    assert len(page) == 1 and cursor
    rest, last = table.list_grants(tenant, 1, cursor)
    assert len(rest) == 1 and (last is None or table.list_grants(tenant, 1, last)[0] == [])
    assert {first.grant_id, second.grant_id} == {page[0].grant_id, rest[0].grant_id}
    _paused(table, calls=2)  # two approvals: the audit trail hands out a cursor after the first
    _, audit_cursor = table.list_approvals(AuditQuery(utc_now() - timedelta(days=1), utc_now(), limit=1))
    assert audit_cursor
    with pytest.raises(InvalidCursor):
        table.list_grants("default", 1, audit_cursor)


# -- the turn state machine ----------------------------------------------------------------------
def _tenant_conversation(table: SignoffStore, tenant: str) -> tuple[str, str]:
    """A conversation of ``tenant`` whose first turn has completed (idle)."""
    cid, tid, now = f"conv_{uuid.uuid4().hex}", f"turn_{uuid.uuid4().hex}", iso(utc_now())
    table.create_conversation(
        Conversation(
            conversation_id=cid, status=ConversationStatus.RUNNING, active_turn_id=tid, created_at=now, tenant=tenant
        ),
        Turn(conversation_id=cid, turn_id=tid, status=TurnStatus.QUEUED, created_at=now, input="hi", tenant=tenant),
        Message(role="user", content="hi", created_at=now),
    )
    assert table.claim_turn_start(cid, tid)
    assert table.complete_turn(cid, tid, Message(role="assistant", content="hello", created_at=now))
    return cid, tid


def _new_turn(cid: str, tenant: str = "default") -> tuple[Turn, Message]:
    now = iso(utc_now())
    turn = Turn(conversation_id=cid, turn_id=f"turn_{uuid.uuid4().hex}", status=TurnStatus.QUEUED, created_at=now)
    return turn.model_copy(update={"tenant": tenant}), Message(role="user", content="next", created_at=now)


def test_a_conversation_id_is_created_once(table):
    cid, tid = queued_conversation(table)
    now = iso(utc_now())
    with pytest.raises(ConversationBusy):
        table.create_conversation(
            Conversation(conversation_id=cid, status=ConversationStatus.RUNNING, active_turn_id="t2", created_at=now),
            Turn(conversation_id=cid, turn_id="t2", status=TurnStatus.QUEUED, created_at=now),
            Message(role="user", content="again", created_at=now),
        )
    assert table.get_conversation(cid).active_turn_id == tid
    assert table.get_turn(cid, "t2") is None


def test_a_new_turn_opens_only_for_the_conversations_own_tenant(table):
    cid, _ = _tenant_conversation(table, "acme")
    for other in ("globex", "default"):
        turn, message = _new_turn(cid, other)
        with pytest.raises(ConversationNotFound):
            table.open_turn(cid, turn, message, tenant=other)
        assert table.get_turn(cid, turn.turn_id) is None
    turn, message = _new_turn(cid, "acme")
    table.open_turn(cid, turn, message, tenant="acme")
    conversation = table.get_conversation(cid)
    assert conversation.status is ConversationStatus.RUNNING and conversation.active_turn_id == turn.turn_id
    assert table.get_turn(cid, turn.turn_id).status is TurnStatus.QUEUED
    again, message = _new_turn(cid, "acme")
    with pytest.raises(ConversationBusy):
        table.open_turn(cid, again, message, tenant="acme")


def test_a_turn_completes_once_only_from_running_and_leaves_the_due_list(table):
    cid, tid = queued_conversation(table)
    reply = Message(role="assistant", content="done", created_at=iso(utc_now() + timedelta(milliseconds=5)))
    assert not table.complete_turn(cid, tid, reply)  # still queued
    assert table.claim_turn_start(cid, tid)
    assert any(t.turn_id == tid for t in table.due_work(utc_now() + timedelta(hours=1), limit=1000).turns)
    assert table.complete_turn(cid, tid, reply)
    assert not table.complete_turn(cid, tid, reply)
    conversation, messages, _ = table.load_conversation(cid)
    assert conversation.status is ConversationStatus.IDLE and table.get_turn(cid, tid).status is TurnStatus.COMPLETED
    assert [m.content for m in messages] == ["hi", "done"]
    assert not any(t.turn_id == tid for t in table.due_work(utc_now() + timedelta(days=1), limit=1000).turns)
    assert not table.fail_turn(cid, tid, "too late")


def test_a_released_turn_counts_its_attempts_and_can_be_claimed_again(table):
    cid, tid = queued_conversation(table)
    assert table.release_turn(cid, tid, for_resume=False) is None  # not running
    assert table.claim_turn_start(cid, tid)
    assert table.release_turn(cid, tid, for_resume=False) == 1
    assert table.get_turn(cid, tid).status is TurnStatus.QUEUED
    assert table.release_turn(cid, tid, for_resume=False) is None
    assert table.claim_turn_start(cid, tid)
    assert table.release_turn(cid, tid, for_resume=True) == 2
    assert table.get_turn(cid, tid).status is TurnStatus.AWAITING_APPROVAL


def test_a_pause_is_recorded_once_and_only_while_the_turn_runs(table):
    cid, tid, approvals = _paused(table, calls=1)
    turn = table.get_turn(cid, tid)
    assert turn.status is TurnStatus.AWAITING_APPROVAL and turn.pause_ref == "resp_1" and turn.pending == 1
    action = table.get_action(cid, tid, "call_0")
    changed = action.model_copy(update={"arguments": {"amount": 1}})
    assert not table.record_pause(turn, "resp_2", [changed], [], pending=0)  # not running any more
    assert table.get_action(cid, tid, "call_0").arguments == {"amount": 340}  # the first write kept
    assert not table.put_approval(approvals[0][0], utc_now())


def test_a_pause_without_gated_calls_keeps_the_turn_running(table):
    cid, tid = queued_conversation(table)
    assert table.claim_turn_start(cid, tid)
    call = Action(
        conversation_id=cid, turn_id=tid, call_id="c", seq=0, tool="lookup", arguments={}, digest="d", gated=False
    )
    assert table.record_pause(table.get_turn(cid, tid), "resp_u", [call], [], pending=0)
    turn = table.get_turn(cid, tid)
    assert turn.status is TurnStatus.RUNNING and turn.pause_ref == "resp_u" and turn.pending == 0
    assert not table.show_awaiting_approval(cid, tid, "resp_u")  # nothing pending: nothing to show


def test_the_conversation_shows_awaiting_approval_only_for_a_pause_with_calls_pending(table):
    cid, tid, _ = _paused(table, calls=1)
    assert not table.show_awaiting_approval(cid, tid, "resp_other")
    assert table.show_awaiting_approval(cid, tid, "resp_1")
    assert table.get_conversation(cid).status is ConversationStatus.AWAITING_APPROVAL
    action = table.get_action(cid, tid, "call_0")
    assert table.record_verdict(action, DecisionRef(id="d", status="denied"), "denied", None)
    assert not table.show_awaiting_approval(cid, tid, "resp_1")


def test_the_last_binding_of_a_pause_shows_it_awaiting_approval_or_binds_nothing(table):
    cid, tid, [[first], [second]] = _paused(table, calls=2, bind=False)
    assert table.get_conversation(cid).status is ConversationStatus.RUNNING
    assert table.attach_decision(first, "dec_1")  # no show: the conversation is unchanged
    assert table.get_conversation(cid).status is ConversationStatus.RUNNING
    assert not table.attach_decision(second, "dec_2", show_pause="resp_other")  # another pause: nothing
    assert table.get_approval(second.approval_id).decision_id is None
    assert table.get_action(cid, tid, "call_1").decision is None
    assert table.attach_decision(second, "dec_2", show_pause="resp_1")
    assert table.get_approval(second.approval_id).decision_id == "dec_2"
    assert table.get_action(cid, tid, "call_1").decision.id == "dec_2"
    assert table.get_conversation(cid).status is ConversationStatus.AWAITING_APPROVAL


def test_a_binding_that_would_show_a_settled_pause_binds_nothing(table):
    cid, tid, [[approval]] = _paused(table, calls=1, bind=False)
    action = table.get_action(cid, tid, "call_0")
    assert table.record_verdict(action, DecisionRef(id=None, status="not_requested"), None, None)
    assert not table.attach_decision(approval, "dec_1", show_pause="resp_1")  # nothing pending
    assert table.get_approval(approval.approval_id).decision_id is None
    assert table.get_conversation(cid).status is ConversationStatus.RUNNING


def test_a_pause_with_the_client_hands_the_turn_back(table):
    cid, tid, _ = _paused(table, calls=1)
    assert not table.show_awaiting_client(cid, tid, "resp_1")  # a call still waits on its approver
    action = table.get_action(cid, tid, "call_0")
    assert table.record_verdict(action, DecisionRef(id="d", status="approved"), "approved", None)
    assert table.claim_turn_resume(cid, tid, "resp_1")
    assert not table.show_awaiting_client(cid, tid, "resp_other")
    assert table.show_awaiting_client(cid, tid, "resp_1")
    assert table.get_turn(cid, tid).status is TurnStatus.AWAITING_APPROVAL
    assert table.get_conversation(cid).status is ConversationStatus.AWAITING_CLIENT
    assert table.claim_turn_resume(cid, tid, "resp_1")  # the last result posted resumes it
    assert table.get_conversation(cid).status is ConversationStatus.RUNNING


def test_only_the_active_turn_moves_the_conversation(table):
    cid, old = _tenant_conversation(table, "default")
    turn, message = _new_turn(cid)
    table.open_turn(cid, turn, message)
    # The old turn is completed; a late resume or failure of it must not touch the conversation.
    assert not table.fail_turn(cid, old, "late")
    assert table.get_conversation(cid).status is ConversationStatus.RUNNING
    assert table.claim_turn_start(cid, turn.turn_id)
    assert table.fail_turn(cid, turn.turn_id, "x" * 600)
    assert len(table.get_turn(cid, turn.turn_id).error) == 500
    assert not table.clear_unanswered_turn(cid, old)
    assert table.clear_unanswered_turn(cid, turn.turn_id)
    assert not table.clear_unanswered_turn(cid, turn.turn_id)


def test_a_due_turn_is_postponed_or_dropped_and_a_dropped_one_stays_dropped(table):
    cid, tid = queued_conversation(table)
    far = utc_now() + timedelta(days=3)

    def due(at):
        return any(t.turn_id == tid for t in table.due_work(at, limit=1000).turns)

    assert due(utc_now() + timedelta(hours=1))
    assert table.postpone_turn(cid, tid, far)
    assert not due(utc_now() + timedelta(hours=1)) and due(far)
    assert table.postpone_turn(cid, tid, None)
    assert not due(far + timedelta(days=1))
    assert not table.postpone_turn(cid, tid, far)  # no longer due: stays out


def test_backend_state_is_kept_on_the_conversation(table):
    cid, _ = queued_conversation(table)
    table.set_backend_state(cid, {"previous_response_id": "resp_9", "n": 3})
    assert table.get_conversation(cid).backend_state == {"previous_response_id": "resp_9", "n": 3}
    assert table.load_conversation(f"conv_{uuid.uuid4().hex}") is None


# -- approvals ------------------------------------------------------------------------------------
def test_a_decision_is_bound_once_and_only_to_a_pending_approval(table):
    cid, tid, [[approval]] = _paused(table, calls=1)  # bound to dec_<id> already
    assert not table.attach_decision(approval, "dec_other", "2030-01-01T00:00:00.000Z")
    stored = table.get_approval(approval.approval_id)
    assert stored.decision_id == f"dec_{approval.approval_id}" and stored.expires_at is None
    later = Approval.for_call(table.get_action(cid, tid, "call_0"), "ap" + uuid.uuid4().hex[:10], "x", iso(utc_now()))
    assert table.put_approval(later, utc_now())
    assert table.attach_decision(later, "dec_x", "2030-01-01T00:00:00.000Z")
    assert table.get_approval(later.approval_id).expires_at == "2030-01-01T00:00:00.000Z"
    assert table.get_action(cid, tid, "call_0").decision.id == f"dec_{approval.approval_id}"
    assert table.get_approvals(["missing", approval.approval_id]) == [table.get_approval(approval.approval_id)]


def test_an_unbound_settled_approval_takes_no_decision(table):
    cid, tid = queued_conversation(table)
    assert table.claim_turn_start(cid, tid)
    action = Action(
        conversation_id=cid,
        turn_id=tid,
        call_id="c",
        seq=0,
        tool="t",
        arguments={},
        digest="d",
        gated=True,
        approval_ids=["ap_" + uuid.uuid4().hex],
    )
    approval = Approval.for_call(action, action.approval_ids[0], "a@x.io", iso(utc_now()))
    assert table.record_pause(table.get_turn(cid, tid), "p", [action], [(approval, utc_now())], pending=1)
    settled = table.settle_approval(approval, None)  # nobody could be asked
    assert settled.outcome is None and settled.resolved_at
    assert not table.attach_decision(approval, "dec_late")
    assert table.get_action(cid, tid, "c").decision is None


def test_an_unreadable_look_is_counted_and_a_retired_approval_is_not_postponed(table):
    _, _, [[approval]] = _paused(table, calls=1)
    later = utc_now() + timedelta(minutes=30)
    assert table.postpone_approval(approval.approval_id, later, unreadable=True)
    assert table.postpone_approval(approval.approval_id, later, unreadable=True)
    assert table.get_approval(approval.approval_id).read_failures == 2
    assert approval.approval_id not in {a.approval_id for a in table.due_work(utc_now(), limit=1000).approvals}
    assert approval.approval_id in {a.approval_id for a in table.due_work(later, limit=1000).approvals}
    table.retire_approval(approval.approval_id)
    assert not table.postpone_approval(approval.approval_id, later)
    assert approval.approval_id not in {a.approval_id for a in table.due_work(later, limit=1000).approvals}


def test_an_expired_approval_escalates_once_to_the_next_rung(table):
    cid, tid, [[expired]] = _paused(table, calls=1)
    action = table.get_action(cid, tid, "call_0")
    next_rung = Approval.for_call(action, "ap_" + uuid.uuid4().hex, "boss@x.io", iso(utc_now()), rung=1)
    assert not table.escalate(action, expired, next_rung, utc_now())  # not settled yet
    table.settle_approval(expired, Decision(id="dec", status=DecisionStatus.EXPIRED))
    assert table.escalate(action, expired, next_rung, utc_now())
    moved = table.get_action(cid, tid, "call_0")
    assert moved.approval_ids == [next_rung.approval_id] and moved.decision is None
    due = {a.approval_id for a in table.due_work(utc_now() + timedelta(seconds=1), limit=1000).approvals}
    assert next_rung.approval_id in due and expired.approval_id not in due
    other = next_rung.model_copy(update={"approval_id": "ap_" + uuid.uuid4().hex})
    assert not table.escalate(action, expired, other, utc_now())  # the call no longer waits on it
    assert table.get_approval(other.approval_id) is None


def test_a_call_with_a_verdict_does_not_escalate(table):
    cid, tid, [[expired]] = _paused(table, calls=1)
    table.settle_approval(expired, Decision(id="dec", status=DecisionStatus.EXPIRED))
    action = table.get_action(cid, tid, "call_0")
    assert table.record_verdict(action, DecisionRef(id="dec", status="expired"), "expired", None)
    next_rung = Approval.for_call(action, "ap_" + uuid.uuid4().hex, "boss@x.io", iso(utc_now()), rung=1)
    assert not table.escalate(action, expired, next_rung, utc_now())
    assert table.get_approval(next_rung.approval_id) is None


def test_a_modified_verdict_keeps_what_runs_and_what_changed(table):
    cid, tid, _ = _paused(table, calls=1)
    action = table.get_action(cid, tid, "call_0")
    ref = DecisionRef(id="d", status="modified", resolved_by="a@x.io")
    assert table.record_verdict(action, ref, "modified", None, {"amount": 300}, "digest2", {"amount": [340, 300]})
    stored = table.get_action(cid, tid, "call_0")
    assert stored.verdict is DecisionStatus.MODIFIED and stored.arguments_to_run == {"amount": 300}
    assert stored.approved_digest == "digest2" and stored.changes == {"amount": [340, 300]}
    assert stored.decision == ref
    assert table.claim_execution(stored)


# -- executions -----------------------------------------------------------------------------------
def _ungated(table: SignoffStore, tenant: str = "default", created_at: str | None = None) -> Action:
    cid, tid = queued_conversation(table)
    assert table.claim_turn_start(cid, tid)
    action = Action(
        conversation_id=cid,
        turn_id=tid,
        call_id="c_" + uuid.uuid4().hex[:6],
        seq=0,
        tool="t",
        arguments={"n": 1},
        digest="d",
        gated=False,
        tenant=tenant,
        created_at=created_at or iso(utc_now()),
    )
    assert table.record_pause(table.get_turn(cid, tid), "p", [action], [], pending=0)
    return action


def test_a_call_handed_to_the_client_takes_one_result(table):
    action = _ungated(table)
    assert table.claim_execution(action)
    handed = Execution(
        status=ExecutionStatus.AWAITING_CLIENT, result={"arguments": {"n": 1}}, claimed_at=iso(utc_now())
    )
    assert not table.settle_client_call(action, Execution(status=ExecutionStatus.EXECUTED))  # still executing
    assert table.finish_execution(action, handed)
    assert not table.finish_execution(action, Execution(status=ExecutionStatus.EXECUTED))
    assert table.settle_client_call(action, Execution(status=ExecutionStatus.EXECUTED, result={"ok": True}))
    assert not table.settle_client_call(action, Execution(status=ExecutionStatus.FAILED))
    stored = table.get_action(action.conversation_id, action.turn_id, action.call_id)
    assert stored.execution.status is ExecutionStatus.EXECUTED and stored.execution.result == {"ok": True}


# -- receipts -------------------------------------------------------------------------------------
DONE = Execution(status=ExecutionStatus.EXECUTED, result={"ok": 1})


def _settled_receipts(table: SignoffStore, tenant: str, count: int) -> list[str]:
    """``count`` calls of ``tenant`` finished with a receipt each (queued for the log)."""
    receipts = []
    for n in range(count):
        action = _ungated(table, tenant)
        assert table.claim_execution(action)
        receipts.append(f"jws-{n}-{uuid.uuid4().hex[:6]}")
        assert table.finish_with_receipt(action, DONE, receipts[-1])
    return receipts


def _write_chain(table: SignoffStore, tenant: str, receipts: list[str]) -> None:
    """Chain-mode receipts as a version before the log wrote them (HEAD and SEQ# items)."""
    from tests.fakes.memory_table import _Row

    rows = [("HEAD", {"seq": len(receipts), "hash": "h"})] + [
        (f"SEQ#{seq:012d}", {"jws": jws}) for seq, jws in enumerate(receipts, 1)
    ]
    for sk, record in rows:
        if isinstance(table, MemoryTable):
            table._rows[(f"RECEIPTS#{tenant}", sk)] = _Row(record)
        else:
            item = {"pk": {"S": f"RECEIPTS#{tenant}"}, "sk": {"S": sk}}
            item |= {k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in record.items()}
            table._db.put_item(TableName=table._table, Item=item)


def test_a_receipt_is_queued_in_the_write_that_records_its_execution_once(table):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    first, second = _ungated(table, tenant), _ungated(table, tenant)
    assert table.claim_execution(first) and table.claim_execution(second)
    assert table.finish_with_receipt(first, DONE, "jws-1")
    assert not table.finish_with_receipt(first, DONE, "jws-again")  # no longer executing: nothing written
    assert table.finish_with_receipt(second, DONE, "jws-2")  # no other call's receipt in its way
    assert table.get_action(first.conversation_id, first.turn_id, first.call_id).receipt == "jws-1"
    assert sorted(q.jws for q in table.queued_receipts(tenant, 10)) == ["jws-1", "jws-2"]
    assert tenant in table.tenants_with_queued_receipts(100)
    assert table.queued_receipts(f"other{tenant}", 10) == []


def test_a_checkpoint_moves_receipts_into_the_log_all_or_nothing(table):
    from signoff.domain.receipts import LogEntry, LogHead

    tenant = f"t{uuid.uuid4().hex[:8]}"
    _settled_receipts(table, tenant, 3)
    queued = table.queued_receipts(tenant, 10)
    old = table.receipt_log(tenant)
    assert old == LogHead()
    new = LogHead(3, (b"\x01" * 32, b"\x02" * 32), "c" * 64, 0)
    entries = [LogEntry(i, q, {0: bytes([i]) * 32}) for i, q in enumerate(queued)]
    assert not table.append_to_log(tenant, LogHead(1), new, entries, "cp-3")  # the log is not at 1
    assert table.queued_receipts(tenant, 10) == queued and table.receipt_log(tenant) == old
    assert table.append_to_log(tenant, old, new, entries, "cp-3")
    assert table.receipt_log(tenant) == new and table.queued_receipts(tenant, 10) == []
    assert table.list_log(tenant, 0, 10) == ([(i, q.jws) for i, q in enumerate(queued)], None)
    assert table.checkpoint_at(tenant, 3) == "cp-3" and table.log_entry(tenant, 2) == queued[2].jws
    assert table.log_nodes(tenant, {(0, 1), (0, 7)}) == {(0, 1): bytes([1]) * 32}
    assert not table.append_to_log(tenant, old, new, entries, "cp-3")  # a second checkpointer loses
    assert tenant not in table.tenants_with_queued_receipts(100)
    [more] = _settled_receipts(table, tenant, 1)
    [pending] = table.queued_receipts(tenant, 1)
    gone = LogEntry(3, pending.__class__(jws=more, key="QUEUED#never"), {0: b"\x03" * 32})
    assert not table.append_to_log(tenant, new, LogHead(4, (), "d" * 64), [gone], "cp-4")  # not queued: refused
    assert table.receipt_log(tenant) == new and table.log_entry(tenant, 3) is None


def test_the_log_pages_and_lists_checkpoints_in_order(table):
    from signoff.logic.checkpoints import Checkpointer
    from tests.fakes.gate import FixedSigner

    tenant = f"t{uuid.uuid4().hex[:8]}"
    checkpointer = Checkpointer(table, FixedSigner(), "iss", batch=2)
    written = _settled_receipts(table, tenant, 5)
    assert checkpointer.checkpoint(tenant).appended == 5
    seen, after = [], 0
    while after is not None:
        page, after = table.list_log(tenant, after, 2)
        seen += page
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4] and sorted(j for _, j in seen) == sorted(written)
    assert table.list_log(tenant, 3, 10)[0] == seen[3:]
    sizes, after = [], 0
    while after is not None:
        page, after = table.list_checkpoints(tenant, after, 1)
        sizes += [decode_claims(c)["size"] for c in page]
    assert sizes == [2, 4, 5]
    assert table.list_checkpoints(tenant, 2, 10)[0] == [table.checkpoint_at(tenant, 4), table.checkpoint_at(tenant, 5)]
    assert table.list_log(f"other{tenant}", 0, 10) == ([], None)


def decode_claims(jws: str) -> dict:
    from signoff.domain.receipts import decode

    return decode(jws).claims


def test_chain_mode_receipts_are_listed_until_the_log_takes_them_in_first(table):
    from signoff.logic.checkpoints import Checkpointer
    from tests.fakes.gate import FixedSigner

    tenant = f"t{uuid.uuid4().hex[:8]}"
    _write_chain(table, tenant, ["old-1", "old-2", "old-3"])
    assert table.list_log(tenant, 0, 10) == ([(0, "old-1"), (1, "old-2"), (2, "old-3")], None)
    assert table.list_log(tenant, 1, 10) == ([(1, "old-2"), (2, "old-3")], None)
    assert [p.chain_seq for p in table.chain_receipts(tenant, 1, 10)] == [2, 3]
    [new] = _settled_receipts(table, tenant, 1)
    assert Checkpointer(table, FixedSigner(), "iss").checkpoint(tenant).appended == 4
    assert table.list_log(tenant, 0, 10) == ([(0, "old-1"), (1, "old-2"), (2, "old-3"), (3, new)], None)
    assert table.receipt_log(tenant).chain_seq == 3 and table.chain_receipts(tenant, 3, 10) == []


def _approved_and_claimed(table: SignoffStore, calls: int = 1) -> tuple[str, str, Action]:
    """A paused turn whose first call is approved and claimed for execution (the others still wait)."""
    cid, tid, _ = _paused(table, calls=calls)
    action = table.get_action(cid, tid, "call_0")
    assert table.record_verdict(action, DecisionRef(id="d", status="approved"), "approved", None)
    action = table.get_action(cid, tid, "call_0")
    assert table.claim_execution(action)
    return cid, tid, action


def test_the_last_calls_receipt_claims_the_turns_resume_in_the_same_write(table):
    from signoff.domain.stores import ResumeRefused

    cid, tid, action = _approved_and_claimed(table)
    done = Execution(status=ExecutionStatus.EXECUTED, result={"ok": 1})
    queued_before = table.queued_receipts(action.tenant, 100)
    with pytest.raises(ResumeRefused):  # another pause's resume: nothing is written
        table.finish_with_receipt(action, done, f"jws-{uuid.uuid4().hex}", resume_pause="resp_other")
    assert table.get_action(cid, tid, "call_0").execution.status is ExecutionStatus.EXECUTING
    assert table.queued_receipts(action.tenant, 100) == queued_before
    assert table.finish_with_receipt(action, done, f"jws-{uuid.uuid4().hex}", resume_pause="resp_1")
    assert table.get_action(cid, tid, "call_0").execution.status is ExecutionStatus.EXECUTED
    assert table.get_turn(cid, tid).status is TurnStatus.RUNNING
    assert table.get_conversation(cid).status is ConversationStatus.RUNNING
    assert not table.claim_turn_resume(cid, tid, "resp_1")  # claimed once


def test_a_receipt_cannot_claim_the_resume_of_a_pause_still_waiting_on_a_verdict(table):
    from signoff.domain.stores import ResumeRefused

    cid, tid, action = _approved_and_claimed(table, calls=2)  # call_1 has no verdict yet
    done = Execution(status=ExecutionStatus.EXECUTED, result={"ok": 1})
    with pytest.raises(ResumeRefused):
        table.finish_with_receipt(action, done, f"jws-{uuid.uuid4().hex}", resume_pause="resp_1")
    assert table.get_turn(cid, tid).status is TurnStatus.AWAITING_APPROVAL
    assert table.finish_with_receipt(action, done, f"jws-{uuid.uuid4().hex}")  # the receipt alone
    assert not table.finish_with_receipt(action, done, "jws-again", resume_pause="resp_1")  # not executing


# -- the audit index ------------------------------------------------------------------------------
def test_the_audit_trail_lists_a_tenants_approvals_newest_first_each_once(table):
    tenant, now = f"aud{uuid.uuid4().hex[:8]}", utc_now()
    made = []
    for n in range(7):
        action = Action(
            conversation_id=f"conv_{tenant}",
            turn_id="t",
            call_id=f"c{n}",
            seq=n,
            tool="a" if n % 2 else "b",
            arguments={},
            digest="d",
            gated=True,
            tenant=tenant,
        )
        approval = Approval.for_call(action, f"ap_{tenant}_{n}", "x@y.io", iso(now - timedelta(minutes=10 - n)))
        assert table.put_approval(approval, now)
        made.append(approval)
    table.settle_approval(made[0], Decision(id="d0", status=DecisionStatus.DENIED))
    table.settle_approval(made[1], None)
    window = (now - timedelta(hours=1), now + timedelta(minutes=1))

    def listed(**filters) -> list[str]:
        ids, cursor = [], None
        while True:
            page, cursor = table.list_approvals(AuditQuery(*window, limit=2, cursor=cursor, tenant=tenant, **filters))
            ids += [a.approval_id for a in page]
            if cursor is None:
                return ids

    newest_first = [a.approval_id for a in reversed(made)]
    assert listed() == newest_first
    assert listed(tool="a") == [i for i in newest_first if int(i[-1]) % 2]
    assert listed(status="denied") == [made[0].approval_id]
    assert listed(status="not_requested") == [made[1].approval_id]
    assert listed(status="pending") == newest_first[:-2]
    assert listed(conversation_id="conv_other") == []
    other = AuditQuery(*window, tenant=f"x{tenant}")
    assert table.list_approvals(other) == ([], None)
    with pytest.raises(InvalidCursor):
        table.list_approvals(AuditQuery(*window, cursor="not-a-cursor", tenant=tenant))
    _, cursor = table.list_approvals(AuditQuery(*window, limit=1, tenant=tenant))
    with pytest.raises(InvalidCursor):  # a cursor from another time range
        table.list_approvals(
            AuditQuery(now - timedelta(days=90), now - timedelta(days=60), cursor=cursor, tenant=tenant)
        )


def test_calls_are_listed_by_time_per_tenant(table):
    tenant = f"calls{uuid.uuid4().hex[:8]}"
    start = utc_now()  # one millisecond apart: calls in the same millisecond are listed by call id
    made = [_ungated(table, tenant, iso(start + timedelta(milliseconds=n))) for n in range(3)]
    _ungated(table, f"other{tenant}")
    since, until = utc_now() - timedelta(minutes=5), utc_now() + timedelta(minutes=1)
    assert [a.call_id for a in table.calls_between(tenant, since, until, 10)] == [a.call_id for a in made]
    assert [a.call_id for a in table.calls_between(tenant, since, until, 2)] == [a.call_id for a in made[:2]]
    assert table.calls_between(tenant, since - timedelta(days=2), since - timedelta(days=1), 10) == []


def test_grants_are_listed_for_their_tenant_only_each_once(table):
    mine = {_grant(table).grant_id for _ in range(3)}
    listed, cursor = [], None
    while True:
        page, cursor = table.list_grants("default", 2, cursor)
        listed += [g.grant_id for g in page]
        if cursor is None:
            break
    assert mine <= set(listed) and len(listed) == len(set(listed))
    assert all(g.tenant == "default" for g in table.list_grants("default", 100, None)[0])
    assert table.list_grants(f"nobody{uuid.uuid4().hex[:6]}", 100, None)[0] == []


def test_a_grant_is_found_by_its_scope_and_by_its_id(table):
    grant = _grant(table)
    assert table.grants_for_scope("default", "issue_refund", grant.scope) == [grant]
    assert table.grants_for_scope("globex", "issue_refund", grant.scope) == []
    assert table.get_grant(grant.grant_id) == grant
    assert table.get_grant("grt_not_an_id") is None
    assert not table.revoke_grant("default", "grt_not_an_id", "ops", utc_now())


def test_due_work_is_oldest_first_and_bounded(table):
    _paused(table, calls=3)
    at = utc_now() + timedelta(days=30)
    work = table.due_work(at, limit=2)
    assert len(work.approvals) + len(work.turns) + len(work.actions) == 2
    everything = table.due_work(at, limit=10_000)
    assert work.oldest_due_at == everything.oldest_due_at is not None


# -- both implement the whole protocol ------------------------------------------------------------
def test_both_tables_implement_every_store_method_with_its_signature():
    import inspect

    from signoff.domain import stores

    protocols = [stores.SignoffStore, *stores.SignoffStore.__mro__[1:]]
    methods = {
        name
        for proto in protocols
        if getattr(proto, "_is_protocol", False)
        for name, value in vars(proto).items()
        if callable(value) and not name.startswith("_")
    }
    assert len(methods) > 40
    for name in sorted(methods):
        want = inspect.signature(getattr(stores.SignoffStore, name))
        for impl in (SignoffTable, MemoryTable):
            got = inspect.signature(getattr(impl, name))
            assert list(got.parameters) == list(want.parameters), f"{impl.__name__}.{name}{got} != {want}"


def test_a_long_conversation_is_read_a_page_at_a_time_each_item_once(table):
    from signoff.domain.stores import READ_TO_END

    cid, tid = queued_conversation(table)  # the first message: "hi"
    start = utc_now()

    def at(n: int) -> str:
        return iso(start + timedelta(milliseconds=10 * n))

    for n in range(4):  # four turns: a reply each, then a new question (three of them)
        assert table.claim_turn_start(cid, tid)
        if n == 0:
            calls = [
                Action(
                    conversation_id=cid,
                    turn_id=tid,
                    call_id=f"c{k}",
                    seq=k,
                    tool="t",
                    arguments={},
                    digest="d",
                    gated=False,
                )
                for k in range(5)
            ]
            assert table.record_pause(table.get_turn(cid, tid), "p", calls, [], pending=0)
        assert table.complete_turn(cid, tid, Message(role="assistant", content=f"a{n}", created_at=at(2 * n + 1)))
        if n < 3:
            tid = f"turn_{uuid.uuid4().hex}"
            turn = Turn(conversation_id=cid, turn_id=tid, status=TurnStatus.QUEUED, created_at=at(2 * n + 2))
            table.open_turn(cid, turn, Message(role="user", content=f"q{n + 1}", created_at=at(2 * n + 2)))
    messages, actions, after, pages = [], [], (None, None), 0
    while True:
        page = table.conversation_page(cid, after[0], after[1], 3)
        pages += 1
        assert len(page.messages) <= 3 and len(page.actions) <= 3
        messages += [m.content for m in page.messages]
        actions += [a.call_id for a in page.actions]
        if page.after_message is None and page.after_action is None:
            break
        after = (page.after_message or READ_TO_END, page.after_action or READ_TO_END)
    assert messages == ["hi", "a0", "q1", "a1", "q2", "a2", "q3", "a3"]
    assert sorted(actions) == [f"c{k}" for k in range(5)] and len(actions) == 5
    assert pages in (3, 4)  # 8 messages, 3 a page (DynamoDB may hand out one last, empty page)
    assert table.conversation_page(f"conv_{uuid.uuid4().hex}", None, None, 3) is None
    rest = table.conversation_page(cid, None, READ_TO_END, 500)
    assert len(rest.messages) == 8 and rest.actions == [] and rest.after_message is None
