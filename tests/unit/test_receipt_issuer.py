"""ReceiptIssuer in memory: what a receipt says, and that it is signed once and queued, whatever other calls do."""

from __future__ import annotations

import time

import pytest
import time_machine

from signoff.domain.models import Action, Approval, ApprovalState, DecisionStatus, Execution, ExecutionStatus, GrantRef
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.receipts import decode, policy_version
from signoff.logic.receipts import ReceiptIssuer, receipt_needed
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
    [queued] = table.queued_receipts("acme", 10)
    jws = queued.jws
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
    }
    assert table.get_action("conv_1", "turn_1", "call_1").receipt == jws
    assert table.receipt_log("acme").size == 0  # queued: in the log at the next checkpoint


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
    by_call = {c["call_id"]: c for c in (decode(q.jws).claims for q in table.queued_receipts("acme", 10))}
    first, second = by_call["call_1"], by_call["call_2"]
    assert first["arguments"] == '{"amount":5}' and first["args_digest"] == "e" * 64 and first["verdict"] == "modified"
    assert second["verdict"] == "granted" and second["grant"] == {"id": "grt_1"} and "grant" not in first


def test_the_approvals_are_read_when_not_given():
    table = MemoryTable()
    from datetime import UTC, datetime

    table.put_approval(_approval(), datetime.now(UTC))
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss")
    assert issuer.finish(_claimed(table), DONE)
    claims = decode(table.queued_receipts("acme", 1)[0].jws).claims
    assert [a["decision_id"] for a in claims["approvals"]] == ["dec_9"]


def test_calls_of_one_tenant_settling_at_once_are_each_signed_once():
    """No chain head to race for: ten calls finishing together cost ten signatures, ten writes."""
    from concurrent.futures import ThreadPoolExecutor

    table, signer = MemoryTable(), FixedSigner()
    issuer = ReceiptIssuer(table, signer, lambda: POLICY, "iss")
    actions = [_claimed(table, n) for n in range(1, 11)]
    with ThreadPoolExecutor(10) as pool:
        written = list(pool.map(lambda a: issuer.finish(a, DONE, []), actions))
    assert all(written) and signer.signed == 10
    assert sorted(decode(q.jws).claims["call_id"] for q in table.queued_receipts("acme", 20)) == sorted(
        f"call_{n}" for n in range(1, 11)
    )


def test_a_call_someone_else_settled_gets_no_receipt(counted):
    table = MemoryTable()
    issuer = ReceiptIssuer(table, FixedSigner(), lambda: POLICY, "iss")
    action = _claimed(table)
    assert table.finish_execution(action, Execution(status=ExecutionStatus.FAILED))
    assert not issuer.finish(action, DONE, [])
    assert table.queued_receipts("acme", 10) == [] and "ReceiptsIssued" not in counted()


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
    assert before <= decode(table.queued_receipts("acme", 1)[0].jws).claims["iat"] <= int(time.time())
