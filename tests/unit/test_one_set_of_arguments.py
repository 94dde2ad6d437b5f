"""One set of arguments from gate to tool: what the tool's input check returns is what the policy
evaluates, the budgets charge, the grants match, the digest binds, the approver reads, the receipt
signs and the tool runs with. Two spellings of one customer are one customer, to every one of them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from signoff.domain.canonical import action_digest
from signoff.domain.models import ExecutionStatus
from signoff.domain.receipts import decode
from signoff.domain.tools import ToolFailed, ToolUnreachable
from signoff.tools.demo import IssueRefundArgs
from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import Gate


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LowerCased(_Args):
    """Case: a customer id the tool reads without regard to case."""

    customer_id: Annotated[str, AfterValidator(str.lower)]
    amount: Decimal = Field(gt=0)


class Numbered(_Args):
    """Numeric coercion: an integer id sent as "007" or 7.0, an amount sent as "90.0"."""

    customer_id: int
    amount: Decimal = Field(gt=0)


# Strip: the demo refund tool's own model ("#h" is customer "h").
MODELS = {"pay_stripped": IssueRefundArgs, "pay_lowered": LowerCased, "pay_numbered": Numbered}


def _policy(over_limit: str) -> dict:
    return {
        "version": 1,
        "tools": {name: {"approval": "never"} for name in MODELS},
        "budgets": [
            {
                "name": f"cap-{name}",
                "tools": [name],
                "sum": "amount",
                "group_by": ["customer_id"],
                "window_hours": 24,
                "limit": 100,
                "over_limit": over_limit,
            }
            for name in MODELS
        ],
    }


SPELLINGS = {
    "pay_stripped": (
        {"customer_id": "h", "amount": 90, "currency": "EUR"},
        {"customer_id": "#h", "amount": 90, "currency": "EUR"},
    ),
    "pay_lowered": ({"customer_id": "acme", "amount": 90}, {"customer_id": "ACME", "amount": 90}),
    "pay_numbered": ({"customer_id": 7, "amount": 90}, {"customer_id": "007", "amount": "90.0"}),
}


@pytest.mark.parametrize("tool", list(MODELS))
def test_two_spellings_of_one_customer_share_one_hard_cap(tool):
    first, second = SPELLINGS[tool]
    gate = Gate(ScriptedAgent(pause((tool, first), (tool, second)), reply()), _policy("deny"), models=MODELS)
    cid = gate.ask()
    ran, refused = gate.actions(cid)
    assert len(gate.ran(tool)) == 1  # the tool was invoked once: 90 + 90 is over the cap of 100
    assert ran.execution.status is ExecutionStatus.EXECUTED
    assert refused.execution.status is ExecutionStatus.NOT_EXECUTED and "over the hard cap" in refused.error
    assert refused.arguments == ran.arguments  # one customer, one spelling


@pytest.mark.parametrize("tool", list(MODELS))
def test_two_spellings_of_one_customer_share_one_soft_budget(tool):
    first, second = SPELLINGS[tool]
    gate = Gate(ScriptedAgent(pause((tool, first), (tool, second)), reply()), _policy("approve"), models=MODELS)
    cid = gate.ask()
    ran, asked = gate.actions(cid)
    assert len(gate.ran(tool)) == 1 and ran.execution.status is ExecutionStatus.EXECUTED
    assert asked.gated and "90 already used of 100" in asked.gated_by_budget
    assert len(gate.handover.asked()) == 1


def test_the_approver_the_digest_the_receipt_and_the_tool_see_the_validated_arguments():
    policy = {
        "version": 1,
        "tools": {
            "refund": {
                "approval": "rules",
                "rules": [{"kind": "amount_over", "field": "amount", "thresholds": {"*": 100}}],
                "modifiable": ["amount"],
            }
        },
    }
    sent = {"customer_id": "#4821", "amount": "340.0", "currency": "EUR"}
    gate = Gate(
        ScriptedAgent(pause(("refund", sent)), reply()), policy, models={"refund": IssueRefundArgs}, receipts=True
    )
    cid = gate.ask()
    action = gate.action(cid)
    validated = {"customer_id": "4821", "amount": 340, "currency": "EUR", "reason": ""}
    assert action.arguments == validated
    assert action.digest == action_digest("refund", validated, action.call_id)
    [decision] = gate.handover.asked()
    context = gate.handover.requests[decision].context
    assert '"customer_id": "4821"' in context and "#4821" not in context and '"340.0"' not in context
    [approval] = gate.approvals(cid)
    assert approval.digest == action.digest
    gate.answer(decision, "approved")
    assert gate.ran("refund") == [validated]
    claims = decode(gate.action(cid).receipt).claims
    assert json.loads(claims["arguments"]) == validated


def test_a_modification_runs_as_the_tools_check_reads_it():
    policy = {"version": 1, "tools": {"refund": {"approval": "always", "modifiable": ["amount", "customer_id"]}}}
    sent = {"customer_id": "c1", "amount": 340, "currency": "EUR"}
    gate = Gate(ScriptedAgent(pause(("refund", sent)), reply()), policy, models={"refund": IssueRefundArgs})
    cid = gate.ask()
    gate.answer(gate.handover.asked()[0], "modified", response_data={"amount": "150.0", "customer_id": "#c2"})
    action = gate.action(cid)
    assert action.approved_arguments == {"customer_id": "c2", "amount": 150, "currency": "EUR", "reason": ""}
    assert gate.ran("refund") == [action.approved_arguments]


def test_arguments_that_fail_the_check_are_refused_before_anyone_is_asked():
    policy = {"version": 1, "tools": {"refund": {"approval": "always"}}}
    sent = {"customer_id": "#4821", "amount": -5, "currency": "EUR"}
    gate = Gate(ScriptedAgent(pause(("refund", sent)), reply()), policy, models={"refund": IssueRefundArgs})
    cid = gate.ask()
    action = gate.action(cid)
    assert gate.handover.asked() == [] and gate.ran() == []
    assert action.execution.status is ExecutionStatus.NOT_EXECUTED and "amount" in action.error
    [heard] = gate.agent.outputs().values()
    assert heard["status"] == "not_executed" and "amount" in heard["error"]


# -- unknown outcomes keep their reservation ----------------------------------------------------
class Payment(_Args):
    customer_id: str
    amount: Decimal = Field(gt=0)
    mode: str = "fine"


def _pay(arguments: Payment) -> dict:
    if arguments.mode == "late":
        raise ToolUnreachable("the tool did not answer in time")  # it paid, and answered too late
    if arguments.mode == "refused":
        raise ToolFailed("card declined")  # the tool said no: nothing was paid
    if arguments.mode == "crashed":
        raise RuntimeError("mid-call")
    return {"paid": str(arguments.amount)}


def _capped() -> dict:
    return {
        "version": 1,
        "tools": {"pay": {"approval": "never"}},
        "budgets": [
            {
                "name": "payments",
                "tools": ["pay"],
                "sum": "amount",
                "group_by": ["customer_id"],
                "window_hours": 24,
                "limit": 100,
                "over_limit": "deny",
            }
        ],
    }


@pytest.mark.parametrize(("mode", "kept"), [("late", True), ("crashed", True), ("refused", False)])
def test_only_a_call_that_certainly_did_not_act_gives_its_reservation_back(mode, kept):
    first = {"customer_id": "c1", "amount": 80, "mode": mode}
    second = {"customer_id": "c1", "amount": 80}
    gate = Gate(
        ScriptedAgent(pause(("pay", first)), reply(), pause(("pay", second)), reply()),
        _capped(),
        models={"pay": (Payment, _pay)},
    )
    cid = gate.ask()
    failed = gate.action(cid)
    assert failed.execution.status is ExecutionStatus.FAILED
    assert bool(failed.execution.outcome_unknown) is kept
    gate.conversations.post_message(cid, "again", "default")
    gate.drain()
    later = gate.action(cid)
    if kept:  # 80 may have been paid: another 80 would make 160 against a cap of 100
        assert later.execution.status is ExecutionStatus.NOT_EXECUTED and "over the hard cap" in later.error
        assert len(gate.ran("pay")) == 1
    else:
        assert later.execution.status is ExecutionStatus.EXECUTED and len(gate.ran("pay")) == 2
    view = gate.conversations.view(cid, "default")
    shown = next(a["execution"] for a in view["actions"] if a["call_id"] == failed.call_id)
    assert shown.get("outcome") == ("unknown" if kept else None)


def test_a_standing_approval_for_one_spelling_covers_the_other():
    """The grant is scoped to customer_id: given for "#h" it is a grant for customer "h", and a
    later call to "h" (or "#h") matches it, because both are customer "h" once checked."""
    from datetime import timedelta

    import time_machine

    from signoff.domain.models import utc_now

    policy = {"version": 1, "tools": {"refund": {"approval": "always", "grant_scope": ["customer_id"]}}}
    first = {"customer_id": "#h", "amount": 50, "currency": "EUR"}
    gate = Gate(ScriptedAgent(pause(("refund", first)), reply()), policy, models={"refund": IssueRefundArgs})
    gate.ask()
    [decision] = gate.handover.asked()
    gate.answer(decision, "approved", response_data={"allow_similar": {"hours": 1, "max_uses": 5}})
    gate.agent.will(pause(("refund", {"customer_id": "h", "amount": 40, "currency": "EUR"})), reply())
    with time_machine.travel(utc_now() + timedelta(seconds=1), tick=False):
        later = gate.ask()
    assert gate.action(later).grant is not None and len(gate.handover.asked()) == 1
    assert [a["customer_id"] for a in gate.ran("refund")] == ["h", "h"]
