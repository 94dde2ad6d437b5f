"""What an approver is asked (ApprovalRequester): the decision request Handover gets, field by field."""

from __future__ import annotations

import copy

from signoff.logic.approvals import MAX_CONTEXT_CHARS
from tests.fakes.agent import ScriptedAgent, pause, reply
from tests.fakes.gate import POLICY, Gate


def _asked(gate: Gate, n: int = 0):
    return gate.handover.requests[gate.handover.asked()[n]]


def test_a_gated_call_is_described_with_its_arguments_ids_and_how_to_modify_it():
    gate = Gate(ScriptedAgent(pause(("issue_refund", {"customer_id": "c1", "amount": 340})), reply()))
    cid = gate.ask()
    action = gate.action(cid)
    request = _asked(gate)
    # Most useful first: what happens, the user's own words, why a person is asked, what each answer
    # does; the technical binding last.
    assert (
        request.context.split("\n")
        == [
            'What will happen: Run issue_refund with {"amount": 340, "customer_id": "c1"}.',
            'The user asked: "please"',
            "Why you are asked: the policy asks for sign-off when amount over 100.",  # the rule that fired
            'To approve similar calls for a while, approve with response_data {"allow_similar": '
            '{"hours": H, "max_uses": N}}: same customer_id; amount up to this call\'s.',
            "Approve: issue_refund runs once, with exactly these arguments. Deny: it does not run; the agent reads "
            "your notes. Modify: send new values of amount; it runs with them, checked first.",
            f"Technical: tool issue_refund, conversation {cid}, call {action.call_id}, "
            f'arguments {{"amount": 340, "customer_id": "c1"}}, digest {action.digest[:16]}.',
        ]
    )
    assert request.options == ["approve", "deny", "modify"] and request.urgency == "medium"
    token = request.callback_url.removeprefix("https://signoff.test/callbacks/handover/")
    assert token.startswith("v1.") and gate.table.get_approval(token.split(".")[1]) is not None


def test_a_quorum_request_says_how_many_must_approve_and_offers_no_modify():
    gate = Gate(ScriptedAgent(pause(("deploy", {})), reply()))
    gate.ask()
    request = _asked(gate)
    assert "2 of 3 approvers must approve; any denial denies." in request.context
    assert request.options == ["approve", "deny"]
    assert "Modify:" not in request.context


def test_a_budget_gated_call_says_which_budget_asks_and_where_it_stands():
    policy = copy.deepcopy(POLICY)
    policy["budgets"] = [
        {
            "name": "daily",
            "tools": ["issue_refund"],
            "sum": "amount",
            "group_by": ["customer_id"],
            "window_hours": 24,
            "limit": 50,
        }
    ]
    gate = Gate(ScriptedAgent(pause(("issue_refund", {"customer_id": "c1", "amount": 60})), reply()), policy)
    gate.ask()
    lines = _asked(gate).context.split("\n")
    assert lines[2].startswith(
        "Why you are asked: no rule asks for sign-off here; a budget does: budget 'daily' (customer_id=c1, 24 h)"
    )
    assert lines[3] == "Budget daily (customer_id=c1, last 24 h): 0 used of 50 (limit); this call adds 60."


def test_a_sign_off_request_leads_with_its_own_context_and_urgency():
    gate = Gate(
        ScriptedAgent(pause(("request_human_approval", {"context": "Ship it?", "urgency": "critical"})), reply())
    )
    gate.ask()
    request = _asked(gate)
    assert request.context.split("\n")[2] == "The agent says: Ship it?"
    assert "standing approval" not in request.context and "allow_similar" not in request.context
    assert request.urgency == "critical"


def test_a_sign_off_request_with_an_urgency_handover_does_not_know_falls_back_to_the_policys():
    gate = Gate(ScriptedAgent(pause(("request_human_approval", {"context": "Ship?", "urgency": "asap"})), reply()))
    gate.ask()
    assert _asked(gate).urgency == "medium" and len(gate.handover.asked()) == 1  # asked, not refused


def test_policy_urgency_timeout_and_approver_are_the_tools():
    policy = copy.deepcopy(POLICY)
    policy["tools"]["send_email"] = {
        "approval": "always",
        "urgency": "high",
        "timeout_minutes": 15,
        "approver": "m@x.io",
    }
    gate = Gate(ScriptedAgent(pause(("send_email", {"to": "x"})), reply()), policy)
    gate.ask()
    request = _asked(gate)
    assert (request.urgency, request.timeout_minutes, request.approver) == ("high", 15, "m@x.io")
    assert "A standing approval cannot cover this tool: the policy gives it no grant_scope." in request.context


def test_a_huge_call_is_cut_to_what_handover_takes():
    gate = Gate(ScriptedAgent(pause(("send_email", {"body": "é" * 5_000})), reply()))
    gate.ask()
    request = _asked(gate)
    assert len(request.context) == MAX_CONTEXT_CHARS and len(request.action) <= 500
