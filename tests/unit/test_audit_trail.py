"""AuditTrail in memory: each entry says who decided what, for which arguments, and what ran."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from signoff.domain.models import utc_now
from signoff.logic.audit import AuditTrail, InvalidAuditQuery, time_range
from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import Gate


def _list(gate: Gate, **query):
    base = {
        "since": None,
        "until": None,
        "status": None,
        "tool": None,
        "conversation_id": None,
        "limit": 10,
        "cursor": None,
        "tenant": "default",
    }
    return AuditTrail(gate.table).list(**(base | query))


def test_an_entry_shows_the_decision_the_arguments_used_and_the_execution():
    gate = Gate(ScriptedAgent(pause(("issue_refund", {"customer_id": "c1", "amount": 340})), reply()), receipts=True)
    cid = gate.ask()
    [decision] = gate.handover.asked()
    [entry] = _list(gate)["approvals"]
    assert entry["status"] == "pending" and entry["resolved_at"] is None and entry["execution"] is None
    assert entry["verdict"] is None and entry["receipt"] is None
    gate.answer(decision, "modified", response_data={"amount": 300}, notes="less", resolved_by="ann@x.io")
    [entry] = _list(gate)["approvals"]
    action, approval = gate.action(cid), gate.approvals(cid)[0]
    assert entry == {
        "approval_id": approval.approval_id,
        "tenant": "default",
        "conversation_id": cid,
        "call_id": action.call_id,
        "tool": "issue_refund",
        "action": action.summary,
        "arguments_digest": action.digest,
        "approver": "approver@example.com",
        "decision_id": decision,
        "status": "modified",
        "resolved_by": "ann@x.io",
        "notes": "less",
        "resolved_at": approval.resolved_at,
        "created_at": approval.created_at,
        "verdict": "modified",
        "arguments_used": {"customer_id": "c1", "amount": 300},
        "execution": {"status": "executed", "result": {"refund_id": "re_300"}},
        "receipt": action.receipt,
    }
    assert action.receipt


def test_an_approval_nobody_could_be_asked_for_is_listed_as_not_requested():
    gate = Gate(ScriptedAgent(pause(("send_email", {})), reply()))
    gate.handover.refuse_asks = True
    gate.ask()
    [entry] = _list(gate)["approvals"]
    assert entry["status"] == "not_requested" and entry["execution"]["status"] == "not_executed"
    assert _list(gate, status="not_requested")["approvals"] == [entry]
    assert _list(gate, status="pending")["approvals"] == []


def test_a_bad_cursor_or_range_is_a_query_error():
    gate = Gate()
    with pytest.raises(InvalidAuditQuery, match="cursor is not valid"):
        _list(gate, cursor="!!")
    now = utc_now()
    with pytest.raises(InvalidAuditQuery, match="since must be before until"):
        _list(gate, since=now, until=now - timedelta(seconds=1))
    with pytest.raises(InvalidAuditQuery, match="at most 366 days"):
        _list(gate, since=now - timedelta(days=367), until=now)


def test_the_default_range_is_the_last_30_days_up_to_now():
    moment = datetime(2026, 11, 26, 12, tzinfo=UTC)
    with time_machine.travel(moment, tick=False):
        assert time_range(None, None) == (moment - timedelta(days=30), moment)
    assert time_range(None, moment) == (moment - timedelta(days=30), moment)
    assert time_range(moment - timedelta(days=366), moment) == (moment - timedelta(days=366), moment)
