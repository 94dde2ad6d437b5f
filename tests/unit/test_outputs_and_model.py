"""What the model is told, and how the scripted model reads it back."""

import json

from local.scripted_model import describe_outputs, plan_tool_calls
from signoff.domain.models import Action, DecisionRef, DecisionStatus, Execution, ExecutionStatus
from signoff.domain.outputs import render_output


def _action(**overrides) -> Action:
    base = {
        "conversation_id": "conv_1",
        "turn_id": "turn_1",
        "call_id": "call_1",
        "seq": 0,
        "tool": "issue_refund",
        "arguments": {"customer_id": "4821", "amount": 340, "currency": "EUR"},
        "digest": "d",
        "gated": True,
        "approval_ids": ["a" * 32],
    }
    return Action(**{**base, **overrides})


def test_approved_and_executed_output():
    action = _action(
        decision=DecisionRef(id="dec_1", status="approved", resolved_by="maria@example.com", notes="VIP"),
        verdict=DecisionStatus.APPROVED,
        execution=Execution(status=ExecutionStatus.EXECUTED, result={"refund_id": "rf_1"}),
    )
    out = json.loads(render_output(action).output)
    assert out["decision"] == "approved" and out["approver"] == "maria@example.com" and out["notes"] == "VIP"
    assert out["execution"] == "executed" and out["result"] == {"refund_id": "rf_1"}


def test_denied_expired_and_unrequested_outputs_say_not_executed():
    for status, phrase in (("denied", "Denied by"), ("expired", "No approval came in time")):
        action = _action(
            decision=DecisionRef(id="dec_1", status=status, resolved_by="lee@example.com"),
            verdict=DecisionStatus(status),
            execution=Execution(status=ExecutionStatus.NOT_EXECUTED),
        )
        out = json.loads(render_output(action).output)
        assert out["execution"] == "not_executed" and phrase in out["message"]
    unrequested = _action(decision=DecisionRef(id=None, status="not_requested"), verdict=None, execution=None)
    out = json.loads(render_output(unrequested).output)
    assert out["execution"] == "not_executed" and "No usable approval could be obtained" in out["message"]


def test_voluntary_tool_output_keeps_the_seed_wording():
    action = _action(
        tool="request_human_approval",
        decision=DecisionRef(id="d", status="denied", notes="Not now"),
        verdict=DecisionStatus.DENIED,
    )
    assert render_output(action).output == "Decision: denied. Approver notes: Not now"
    action = _action(
        tool="request_human_approval", decision=DecisionRef(id="d", status="approved"), verdict=DecisionStatus.APPROVED
    )
    assert render_output(action).output == "Decision: approved. Approver notes: none"


def test_scripted_model_plans_the_seed_and_parallel_refunds():
    [seed] = plan_tool_calls("Issue a €340 refund to customer #4821.")
    assert seed.name == "issue_refund"
    assert seed.arguments["amount"] == 340 and seed.arguments["currency"] == "EUR"
    assert seed.arguments["customer_id"] == "4821"
    two = plan_tool_calls("Refund €340 to customer #4821 and €120 to customer #4822.")
    assert [(c.arguments["customer_id"], c.arguments["amount"]) for c in two] == [("4821", 340), ("4822", 120)]
    [iso] = plan_tool_calls("Please refund 55.50 USD to customer #9")
    assert iso.arguments == {"customer_id": "9", "amount": 55.5, "currency": "USD"}  # no reason given: none sent
    [why] = plan_tool_calls("Refund €20 to customer #9 because the parcel was lost.")
    assert why.arguments["reason"] == "the parcel was lost"


def test_scripted_model_other_intents():
    assert [c.name for c in plan_tool_calls("Look up customer #1")] == ["lookup_customer"]
    assert [c.name for c in plan_tool_calls("lookup #1")] == ["lookup_customer"]
    assert [c.name for c in plan_tool_calls("Email customer #1 about the delay")] == ["send_customer_email"]
    assert [c.name for c in plan_tool_calls("Delete customer #1's data")] == ["delete_customer_data"]
    assert plan_tool_calls("What's the weather?") == []


def test_scripted_model_quotes_notes_verbatim():
    output = json.dumps(
        {"tool": "issue_refund", "decision": "denied", "approver": "lee@x", "notes": 'Say "no" <b>', "execution": "n"}
    )
    text = describe_outputs([("issue_refund", output)])
    assert "denied by lee@x" in text and 'Approver notes: "Say "no" <b>"' in text


def test_modified_and_scheduled_outputs_say_what_changed_and_when():
    modified = _action(
        decision=DecisionRef(id="d", status="modified", resolved_by="m@x.io"),
        verdict=DecisionStatus.MODIFIED,
        approved_arguments={"customer_id": "4821", "amount": 200, "currency": "EUR"},
        approved_digest="x",
        changes={"amount": {"from": 340, "to": 200}},
        execution=Execution(status=ExecutionStatus.EXECUTED, result={"refund_id": "rf"}),
    )
    out = json.loads(render_output(modified).output)
    assert out["changes"] == {"amount": {"from": 340, "to": 200}} and out["arguments_used"]["amount"] == 200
    assert "amount from 340 to 200" in out["message"]
    scheduled = _action(
        decision=DecisionRef(id="d", status="scheduled", resolved_by="m@x.io"),
        verdict=DecisionStatus.SCHEDULED,
        execution=Execution(status=ExecutionStatus.SCHEDULED, execute_at="2026-12-01T09:00:00.000Z"),
    )
    out = json.loads(render_output(scheduled).output)
    assert out["execution"] == "scheduled" and out["execute_at"] == "2026-12-01T09:00:00.000Z"
    assert "not before" in out["message"]


def test_scripted_model_calls_any_offered_tool_it_is_told_to():
    from local.scripted_model import explicit_calls

    [call] = plan_tool_calls('call create_invoice with {"amount": 5}', {"create_invoice"})
    assert (call.name, call.arguments) == ("create_invoice", {"amount": 5})
    two = plan_tool_calls('call a with {"x": 1} and call b with {"y": {"z": 2}}', {"a", "b"})
    assert [(c.name, c.arguments) for c in two] == [("a", {"x": 1}), ("b", {"y": {"z": 2}})]
    assert explicit_calls('call a with {"x": 1}', {"b"}) == []  # not offered: no call
    assert explicit_calls("call a with {not json}", {"a"}) == []
    assert explicit_calls('call a with {"x": 1}', None)[0].name == "a"  # offered unknown: taken as asked


def test_a_long_chat_sends_its_newest_turns_from_a_user_message_on():
    from signoff.adapters.openai_chat import recent

    history = []
    for n in range(5):
        history += [
            {"role": "user", "content": f"question {n} " + "x" * 100},
            {"role": "assistant", "content": None, "tool_calls": [{"id": f"c{n}"}]},
            {"role": "tool", "tool_call_id": f"c{n}", "content": "y" * 100},
            {"role": "assistant", "content": "answer"},
        ]
    assert recent(history, 10_000) == history  # it fits: all of it
    kept = recent(history, 500)
    assert kept[0]["role"] == "user" and kept == history[-len(kept) :] and len(kept) < len(history)
    assert recent(history, 1) == history[-4:]  # the last question and what follows it, always
