"""Strict mode as the real APIs treat it, on the OpenAI-compatible server through the official SDK,
and what it means for Signoff: the approver sees what the model meant, never an invented value.

- Responses: a function that does not say is strict, its schema normalised (every property
  required, so the model fills the optional ones with something); ``strict: true`` needs the
  strict form; ``strict: false`` is taken as written.
- Chat Completions and Assistants: not strict unless a function says so; ``strict: true`` needs
  the strict form. Chat Completions refuses an empty ``tools``.
"""

from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

from local.environment import settings_changed
from signoff.domain.strict_schema import strict_form
from tests.support import SignoffClient, assistant_for

REFUND = {
    "type": "object",
    "properties": {
        "customer_id": {"type": "string"},
        "amount": {"type": "number"},
        "currency": {"type": "string"},
        "reason": {"type": "string"},
    },
    "required": ["customer_id", "amount", "currency"],
}
ASK = "Refund €340 to customer #4821."


def _tool(strict: bool | None, parameters: dict = REFUND) -> dict:
    tool = {"type": "function", "name": "issue_refund", "description": "Refund.", "parameters": parameters}
    return tool if strict is None else {**tool, "strict": strict}


def _chat_tool(strict: bool | None, parameters: dict = REFUND) -> dict:
    return {"type": "function", "function": {k: v for k, v in _tool(strict, parameters).items() if k != "type"}}


@pytest.fixture
def sdk(stack) -> OpenAI:
    return OpenAI(api_key="sk-test", base_url=stack.openai_url, max_retries=0)


def _responses_call(sdk: OpenAI, tool: dict) -> tuple[dict, dict]:
    response = sdk.responses.create(model="m", input=ASK, tools=[tool])
    [call] = [item for item in response.output if item.type == "function_call"]
    return json.loads(call.arguments), response.tools[0].model_dump()


def test_responses_takes_a_tool_that_does_not_say_as_strict_and_the_model_invents_the_optional(sdk):
    arguments, echoed = _responses_call(sdk, _tool(None))
    assert echoed["strict"] is True and echoed["parameters"]["additionalProperties"] is False
    assert arguments["reason"] == "unspecified"  # what an approver would have read before Signoff said strict


def test_a_strict_form_tool_gets_null_for_what_the_model_has_nothing_for(sdk):
    arguments, echoed = _responses_call(sdk, _tool(True, strict_form(REFUND)))
    assert echoed["strict"] is True and arguments["reason"] is None
    arguments, echoed = _responses_call(sdk, _tool(False))
    assert echoed["strict"] is False and "reason" not in arguments


@pytest.mark.parametrize("api", ["responses", "chat", "assistants"])
def test_strict_true_with_a_schema_not_in_strict_form_is_a_400_naming_the_field(sdk, stack, api):
    with pytest.raises(openai.BadRequestError) as refused:
        if api == "responses":
            sdk.responses.create(model="m", input=ASK, tools=[_tool(True)])
        elif api == "chat":
            sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": ASK}], tools=[_chat_tool(True)]
            )
        else:
            sdk.beta.assistants.create(model="m", tools=[_chat_tool(True)])
    assert "Missing 'reason'" in refused.value.message or "additionalProperties" in refused.value.message


def test_chat_is_not_strict_unless_told_and_refuses_an_empty_tools(sdk):
    completion = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": ASK}], tools=[_chat_tool(None)]
    )
    [call] = completion.choices[0].message.tool_calls
    assert "reason" not in json.loads(call.function.arguments)
    strict = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": ASK}], tools=[_chat_tool(True, strict_form(REFUND))]
    )
    assert json.loads(strict.choices[0].message.tool_calls[0].function.arguments)["reason"] is None
    with pytest.raises(openai.BadRequestError, match="empty array"):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": ASK}], tools=[])


@pytest.mark.parametrize("api", ["responses", "chat", "assistants"])
def test_signoff_sends_every_tool_strict_and_the_approver_sees_no_placeholder(stack, api):
    """The seed refund gives no reason: the model sends null for it, Signoff removes it again, and
    the approver, the digest and the receipt read the call without one."""
    client = SignoffClient(stack)
    with settings_changed(AGENT_API=api, OPENAI_ASSISTANT_ID=assistant_for(stack)):
        before = len(stack.openai.log.entries())
        cid = client.start(ASK)["conversation_id"]
        [decision_id] = client.pending_decision_ids(cid)
        decision = stack.handover.decisions[decision_id]
        sent = [e for e in stack.openai.log.entries()[before:] if e["method"] == "POST"]
        client.resolve(decision_id, "approve")
        view = client.wait_status(cid, "idle")
    tools = [t for e in sent for t in (e["body"] or {}).get("tools") or []]
    assert tools, [e["path"] for e in sent]
    for tool in tools:
        function = tool.get("function", tool)
        assert function["strict"] is True, function["name"]
        assert function["parameters"]["additionalProperties"] is False
    [action] = view["actions"]
    assert action["arguments"].get("reason", "") == ""  # the model's null, gone
    text = json.dumps({k: v for k, v in decision.items() if not k.startswith("_")})
    assert "unspecified" not in text and '"reason": null' not in text
