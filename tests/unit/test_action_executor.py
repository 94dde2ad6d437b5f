"""ActionExecutor in memory: which calls it runs, and what it records when it does not."""

from __future__ import annotations

import copy

import pytest

from signoff.domain.grants import Grant, GrantUse
from signoff.domain.limits import MAX_RESULT_BYTES
from signoff.domain.models import Action, Execution, ExecutionStatus, GrantRef
from signoff.domain.tools import ToolRegistry
from tests.fakes.agent import ScriptedAgent, pause
from tests.fakes.gate import POLICY, Gate


def _ungated(gate: Gate, tool: str = "lookup_customer", arguments: dict | None = None, **kw) -> Action:
    fields = {"digest": "d", "gated": False} | kw
    action = Action(
        conversation_id="conv_x",
        turn_id="turn_x",
        call_id=fields.pop("call_id", "call_1"),
        seq=0,
        tool=tool,
        arguments=arguments if arguments is not None else {},
        **fields,
    )
    assert gate.table.put_action(action)
    return action


def test_a_gated_call_is_never_run_as_ungated():
    gate = Gate()
    action = _ungated(gate, gated=True)
    with pytest.raises(ValueError, match="needs its approval"):
        gate.executor.run_ungated(action)
    assert gate.ran() == []


def test_an_ungated_call_runs_once_and_a_settled_one_not_again():
    gate = Gate()
    action = _ungated(gate, arguments={"customer_id": "c"})
    gate.executor.run_ungated(action)
    gate.executor.run_ungated(action)  # a stale read: the claim refuses
    settled = gate.table.get_action("conv_x", "turn_x", "call_1")
    gate.executor.run_ungated(settled)
    assert gate.ran() == [{"customer_id": "c"}] and settled.execution.result == {"customer": "c"}


def test_a_call_whose_verdict_does_not_let_it_run_is_left_alone():
    gate = Gate()
    for verdict in (None, "denied", "expired", "scheduled"):
        action = _ungated(gate, call_id=f"call_{verdict}", gated=True, verdict=verdict)
        gate.executor.run_approved(action)
        assert gate.table.get_action("conv_x", "turn_x", action.call_id).execution is None, verdict
    assert gate.ran() == []


def test_a_tool_gone_from_the_catalog_or_arguments_it_no_longer_takes_are_not_run():
    gate = Gate()
    gone = _ungated(gate, tool="vanished", call_id="c1")
    bad = _ungated(gate, tool="issue_refund", arguments={"amount": "x"}, call_id="c2")
    gate.executor.run_ungated(gone)
    gate.executor.run_ungated(bad)
    assert gate.table.get_action("conv_x", "turn_x", "c1").execution == Execution(
        status=ExecutionStatus.NOT_EXECUTED, result={"error": "unknown tool"}
    )
    refused = gate.table.get_action("conv_x", "turn_x", "c2").execution
    assert refused.status is ExecutionStatus.NOT_EXECUTED and "do not fit its schema" in refused.result["error"]
    assert gate.ran() == []


def test_a_large_result_is_kept_bounded():
    gate = Gate()
    huge = {"blob": "x" * (MAX_RESULT_BYTES * 2)}
    gate.tools = ToolRegistry([gate._tool("lookup_customer", {"type": "object"}, lambda a: huge)])
    gate.executor._tools = gate.tools
    gate.executor.run_ungated(_ungated(gate))
    result = gate.table.get_action("conv_x", "turn_x", "call_1").execution.result
    assert len(str(result)) < MAX_RESULT_BYTES * 2 and result != huge


def test_a_refusal_without_detail_says_only_its_message():
    gate = Gate()
    from signoff.domain.tools import ToolFailed

    def refuse(arguments):
        raise ToolFailed("nope")

    gate.tools = ToolRegistry([gate._tool("lookup_customer", {"type": "object"}, refuse)])
    gate.executor._tools = gate.tools
    gate.executor.run_ungated(_ungated(gate))
    assert gate.table.get_action("conv_x", "turn_x", "call_1").execution.result == {"error": "nope"}


def _granted(gate: Gate, *, recorded: bool = True) -> tuple[Action, Grant]:
    from datetime import timedelta

    from signoff.domain.canonical import action_digest
    from signoff.domain.grants import grant_id_for
    from signoff.domain.models import iso, utc_now

    arguments = {"customer_id": "c1", "amount": 200}
    digest = action_digest("issue_refund", arguments, "call_g")
    grant = Grant(
        grant_id=grant_id_for("default", "issue_refund", {"customer_id": "c1"}, "dec"),
        tool="issue_refund",
        scope={"customer_id": "c1"},
        caps={"amount": "300"},
        origin_conversation_id="conv_0",
        origin_call_id="call_0",
        created_at=iso(utc_now()),
        expires_at=iso(utc_now() + timedelta(hours=1)),
        max_uses=2,
        uses_left=2,
    )
    assert gate.table.put_grant(grant)
    if recorded:
        use = GrantUse(conversation_id="conv_x", turn_id="turn_x", call_id="call_g", digest=digest, at="t")
        assert gate.table.take_grant_use(grant, use, utc_now()) == 1
    action = _ungated(
        gate,
        tool="issue_refund",
        arguments=arguments,
        call_id="call_g",
        gated=True,
        digest=digest,
        grant=GrantRef(id=grant.grant_id, uses_left=1),
    )
    return action, grant


def test_a_call_under_a_grant_runs_only_with_the_use_it_recorded():
    gate = Gate()
    action, _ = _granted(gate)
    gate.executor.run_granted(action)
    gate.executor.run_granted(action)
    assert gate.ran() == [{"customer_id": "c1", "amount": 200}]
    other = Gate()
    unrecorded, _ = _granted(other, recorded=False)
    other.executor.run_granted(unrecorded)
    assert other.ran() == []
    assert other.table.get_action("conv_x", "turn_x", "call_g").execution.result == {"error": "grant does not match"}
    plain = _ungated(other, call_id="call_p", gated=True)
    other.executor.run_granted(plain)  # no grant: nothing to do
    assert other.table.get_action("conv_x", "turn_x", "call_p").execution is None


def test_settle_turn_runs_what_may_run_and_leaves_the_rest():
    gate = Gate(policy=copy.deepcopy(POLICY))
    free = _ungated(gate, call_id="a", arguments={"customer_id": "c"})
    broken = _ungated(
        gate, call_id="b", error="bad arguments", execution=Execution(status=ExecutionStatus.NOT_EXECUTED)
    )
    waiting = _ungated(gate, call_id="c", gated=True)
    granted, _ = _granted(gate)
    actions = gate.executor.settle_turn("conv_x", "turn_x", "resp_x")
    by_id = {a.call_id: a for a in actions}
    assert by_id[free.call_id].execution.status is ExecutionStatus.EXECUTED
    assert by_id[granted.call_id].execution.status is ExecutionStatus.EXECUTED
    assert by_id[broken.call_id].execution.status is ExecutionStatus.NOT_EXECUTED
    assert by_id[waiting.call_id].execution is None
    assert len(gate.ran()) == 2


def test_abandoning_a_call_gives_its_budget_back_once(counted):
    policy = copy.deepcopy(POLICY)
    policy["budgets"] = [{"name": "b", "tools": ["issue_refund"], "sum": "amount", "window_hours": 1, "limit": 100}]
    gate = Gate(ScriptedAgent(pause(("issue_refund", {"customer_id": "c", "amount": 90}))), policy)
    cid = gate.ask()  # ran unasked: 90 of 100 taken
    gate2 = Gate(policy=policy)
    action = _ungated(gate2, tool="issue_refund", arguments={"customer_id": "c", "amount": 90})
    assert gate2.budgets.admit_ungated("conv_x#turn_x#call_1", "issue_refund", action.arguments, "default").let_through
    assert gate2.executor.abandon(action, "turn ended")
    assert not gate2.executor.abandon(action, "again")
    assert gate2.budgets.admit_ungated(
        "other", "issue_refund", {"customer_id": "c", "amount": 95}, "default"
    ).let_through
    assert gate.action(cid).execution.status is ExecutionStatus.EXECUTED


def test_a_scheduled_call_runs_once_and_only_as_scheduled():
    gate = Gate()
    action = _ungated(gate, gated=True, tool="issue_refund", arguments={"customer_id": "c", "amount": 1})
    gate.executor.run_scheduled(action)  # no verdict: nothing
    assert gate.ran() == [] and gate.table.get_action("conv_x", "turn_x", "call_1").execution is None
