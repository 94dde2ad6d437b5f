"""ReceiptIssuer in memory: what a receipt says, and how it joins a chain other calls keep moving."""

from __future__ import annotations

import time

import pytest
import time_machine

from signoff.domain.models import Action, Approval, ApprovalState, DecisionStatus, Execution, ExecutionStatus, GrantRef
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.receipts import GENESIS, decode, policy_version, receipt_hash
from signoff.logic.receipts import APPEND_ATTEMPTS, ChainBusy, ReceiptIssuer, receipt_needed
from tests.fakes.gate import FixedSigner
from tests.fakes.memory_table import MemoryTable

POLICY = ApprovalPolicy.model_validate({"tools": {"t": {"approval": "always"}}})
DONE = Execution(status=ExecutionStatus.EXECUTED, result={"ok": True})


def _claimed(table: MemoryTable, n: int = 1, tenant: str = "acme", **kw) -> Action:
    action = Action(
        conversation_id=f"conv_{n}",
        turn_id="turn_1",
        call_id=f"call_{n}",
        seq=0,
        tool="t",
        arguments={"amount": 340, "to": "x"},
        digest="d" * 64,
        gated=False,  # claimable without a verdict; the receipt below reads what it is given
        tenant=tenant,
        **kw,
    )
    assert table.put_action(action) and table.claim_execution(action)
    return action.model_copy(update={"gated": True, "verdict": DecisionStatus.APPROVED, "approval_ids": ["ap1"]})


def _approval() -> Approval:
    return Approval(
        approval_id="ap1",
        conversation_id="conv_1",
        turn_id="turn_1",
        call_id="call_1",
        tool="t",
        digest="d" * 64,
        approver="boss@x.io",
        state=ApprovalState.SETTLED,
        outcome=DecisionStatus.APPROVED,
        decision_id="dec_9",
        resolved_by="boss@x.io",
        resolved_at="2026-11-26T10:05:00.000Z",
        created_at="2026-11-26T10:00:00.000Z",
    )


def test_a_receipt_says_who_approved_what_ran_under_which_policy_and_where_it_sits():
    table, signer = MemoryTable(), FixedSigner()
    issuer = ReceiptIssuer(table, signer, lambda: POLICY, "https://signoff.example")
    action = _claimed(table)
    with time_machine.travel(1_790_000_000, tick=False):
        assert issuer.finish(action, DONE, [_approval()])
    [jws] = table.list_receipts("acme", 0, 10)[0]
    receipt = decode(jws)
    assert receipt.header == {"alg": "ES256", "kid": "test-key", "typ": "signoff-receipt+jwt"}
    assert receipt.claims == {
        "iss": "https://signoff.example",
        "iat": 1_790_000_000,
        "tenant": "acme",
        "conversation_id": "conv_1",
        "turn_id": "turn_1",
        "call_id": "call_1",
        "tool": "t",
        "arguments": '{"amount":340,"to":"x"}',
        "args_digest": "d" * 64,
        "verdict": "approved",
        "approvals": [
            {
                "decision_id": "dec_9",
                "approver": "boss@x.io",
                "resolved_by": "boss@x.io",
                "outcome": "approved",
                "answered_at": "2026-11-26T10:05:00.000Z",
            }
        ],
        "policy_version": policy_version(POLICY.model_dump(mode="json")),
        "execution": "executed",
        "executed_at": "2026-09-21T14:13:20.000Z",
        "seq": 1,
        "prev": GENESIS,
    }
    assert table.get_action("conv_1", "turn_1", "call_1").receipt == jws
    assert table.receipt_head("acme") == (1, receipt_hash(jws))


def test_a_modified_call_receipts_the_arguments_that_ran_and_a_granted_one_its_grant():
    table = MemoryTable()
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss")
    modified = _claimed(table, 1).model_copy(
        update={"verdict": DecisionStatus.MODIFIED, "approved_arguments": {"amount": 5}, "approved_digest": "e" * 64}
    )
    granted = _claimed(table, 2).model_copy(
        update={"verdict": None, "approval_ids": [], "grant": GrantRef(id="grt_1", uses_left=3)}
    )
    assert issuer.finish(modified, DONE, [])
    assert issuer.finish(granted, DONE)  # its approvals are read (there are none)
    first, second = (decode(j).claims for j in table.list_receipts("acme", 0, 10)[0])
    assert first["arguments"] == '{"amount":5}' and first["args_digest"] == "e" * 64 and first["verdict"] == "modified"
    assert second["verdict"] == "granted" and second["grant"] == {"id": "grt_1"} and "grant" not in first
    assert second["seq"] == 2 and second["prev"] == receipt_hash(table.list_receipts("acme", 0, 1)[0][0])


def test_the_approvals_are_read_when_not_given():
    table = MemoryTable()
    from datetime import UTC, datetime

    table.put_approval(_approval(), datetime.now(UTC))
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss")
    assert issuer.finish(_claimed(table), DONE)
    claims = decode(table.list_receipts("acme", 0, 1)[0][0]).claims
    assert [a["decision_id"] for a in claims["approvals"]] == ["dec_9"]


def test_a_chain_moved_by_another_call_is_signed_again_at_its_new_head():
    table = MemoryTable()
    naps: list[float] = []
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss", sleep=naps.append)
    ours, theirs = _claimed(table, 1), _claimed(table, 2)
    original = table.receipt_head
    moved: list[bool] = []

    def head_then_move(tenant):
        head = original(tenant)
        if not moved:  # another call of the tenant appends between our read and our write
            moved.append(False)
            table.receipt_head = original
            moved[0] = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss").finish(theirs, DONE, []) is not None
            table.receipt_head = head_then_move
        return head

    table.receipt_head = head_then_move
    written = issuer.finish(ours, DONE, [])
    assert written == table.get_action(ours.conversation_id, ours.turn_id, ours.call_id).receipt  # the one kept
    assert moved == [True] and len(naps) == 1 and 0 <= naps[0] <= 0.02
    claims = [decode(j).claims for j in table.list_receipts("acme", 0, 10)[0]]
    assert [(c["call_id"], c["seq"]) for c in claims] == [("call_2", 1), ("call_1", 2)]


def test_a_head_read_before_the_tool_ran_is_only_a_first_guess():
    """The executor reads the chain's head with the approvals, before the tool runs: if another call
    appended meanwhile, the receipt is signed again at the head as it now is, never at the old one."""
    table = MemoryTable()
    naps: list[float] = []
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss", sleep=naps.append)
    ours, theirs = _claimed(table, 1), _claimed(table, 2)
    guess = table.receipt_head("acme")
    assert ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss").finish(theirs, DONE, [])
    written = issuer.finish(ours, DONE, [], head=guess)
    assert written == table.get_action(ours.conversation_id, ours.turn_id, ours.call_id).receipt
    assert len(naps) == 1  # the guess lost once, then the head was read
    claims = [decode(j).claims for j in table.list_receipts("acme", 0, 10)[0]]
    assert [(c["call_id"], c["seq"], c["prev"]) for c in claims] == [
        ("call_2", 1, GENESIS),
        ("call_1", 2, receipt_hash(table.list_receipts("acme", 0, 10)[0][0])),
    ]


def test_a_current_head_read_with_the_approvals_is_not_read_again():
    table = MemoryTable()
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss")
    ours = _claimed(table)
    reads: list[str] = []
    original = table.receipt_head
    table.receipt_head = lambda tenant: reads.append(tenant) or original(tenant)
    assert issuer.finish(ours, DONE, [], head=original("acme"))
    assert reads == []


def test_a_call_someone_else_settled_gets_no_receipt_and_is_not_retried():
    table = MemoryTable()
    naps: list[float] = []
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss", sleep=naps.append)
    action = _claimed(table)
    assert table.finish_execution(action, Execution(status=ExecutionStatus.FAILED))
    assert not issuer.finish(action, DONE, [])
    assert naps == [] and table.receipt_head("acme") == (0, GENESIS)


def test_a_chain_that_never_stops_moving_leaves_the_call_claimed(counted):
    table = MemoryTable()
    naps: list[float] = []
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss", sleep=naps.append)
    action = _claimed(table)
    table.finish_with_receipt = lambda *args: False  # every append loses the race
    with pytest.raises(ChainBusy):
        issuer.finish(action, DONE, [])
    assert len(naps) == APPEND_ATTEMPTS - 0 and max(naps) <= 0.02 * APPEND_ATTEMPTS
    assert table.get_action("conv_1", "turn_1", "call_1").execution.status is ExecutionStatus.EXECUTING
    assert "ReceiptsIssued" not in counted()


@pytest.mark.parametrize(
    ("gated", "grant", "status", "needed"),
    [
        (True, None, ExecutionStatus.EXECUTED, True),
        (True, None, ExecutionStatus.AWAITING_CLIENT, True),
        (False, "g", ExecutionStatus.EXECUTED, True),
        (False, None, ExecutionStatus.EXECUTED, False),
        (True, None, ExecutionStatus.FAILED, False),
        (True, None, ExecutionStatus.NOT_EXECUTED, False),
    ],
)
def test_which_calls_need_a_receipt(gated, grant, status, needed):
    action = Action(
        conversation_id="c",
        turn_id="t",
        call_id="x",
        seq=0,
        tool="t",
        arguments={},
        digest="d",
        gated=gated,
        grant=GrantRef(id=grant, uses_left=0) if grant else None,
    )
    assert receipt_needed(action, Execution(status=status)) is needed


def test_iat_is_the_signing_time():
    table = MemoryTable()
    before = int(time.time())
    ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss").finish(_claimed(table), DONE, [])
    assert before <= decode(table.list_receipts("acme", 0, 1)[0][0]).claims["iat"] <= int(time.time())
