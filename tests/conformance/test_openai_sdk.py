"""The OpenAI-compatible server, pointed at by the official `openai` SDK as a user would: every
answer the product relies on validates against the SDK's own response types (the fields the real
API always sends are there), every malformed request is a 400 in OpenAI's error shape naming the
parameter (never an HTML page, never a 500 the SDK would retry), and what the server does not
implement is refused by name rather than silently ignored."""

from __future__ import annotations

import openai
import pytest
import requests
from openai import OpenAI
from openai.types.beta import Assistant, Thread
from openai.types.beta.threads import Message, Run
from openai.types.chat import ChatCompletion
from openai.types.conversations import Conversation, ConversationItemList
from openai.types.responses import Response

from tests.support import assistant_for

TOOLS = [
    {
        "type": "function",
        "name": "lookup_customer",
        "description": "Look up a customer.",
        "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"}}},
    },
    {
        "type": "function",
        "name": "issue_refund",
        "description": "Refund.",
        "parameters": {"type": "object", "properties": {"amount": {"type": "number"}}},
    },
]
CHAT_TOOLS = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in TOOLS]
TWO_CALLS = "Refund €340 to customer #4821 and look up customer #4821."


@pytest.fixture
def sdk(stack) -> OpenAI:
    return OpenAI(api_key="sk-test", base_url=stack.openai_url, max_retries=0)


def _raw(stack, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        stack.openai_url.removesuffix("/v1") + path,
        headers={"Authorization": "Bearer sk-test"},
        timeout=10,
        **kwargs,
    )


def test_responses_and_conversations_validate_as_the_sdk_types(sdk, stack):
    conversation = sdk.conversations.create(metadata={"k": "v"})
    raw = _raw(stack, "GET", f"/v1/conversations/{conversation.id}").json()
    Conversation.model_validate(raw)
    response = sdk.responses.create(model="gpt-4.1", conversation=conversation.id, input=TWO_CALLS, tools=TOOLS)
    Response.model_validate(_raw(stack, "GET", f"/v1/responses/{response.id}").json())
    assert [o.type for o in response.output] == ["function_call", "function_call"]
    outputs = [{"type": "function_call_output", "call_id": o.call_id, "output": "{}"} for o in response.output]
    reply = sdk.responses.create(model="gpt-4.1", conversation=conversation.id, input=outputs, tools=TOOLS)
    assert reply.output_text
    items = _raw(stack, "GET", f"/v1/conversations/{conversation.id}/items?order=asc&limit=100").json()
    ConversationItemList.model_validate(items)


def test_conversation_items_page_with_limit_and_after(sdk):
    conversation = sdk.conversations.create()
    sdk.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": f"note {n}"} for n in range(5)]
    )
    first = sdk.conversations.items.list(conversation.id, limit=2, order="asc")
    assert len(first.data) == 2 and first.has_more
    everything = list(sdk.conversations.items.list(conversation.id, limit=2, order="asc"))  # the SDK follows pages
    assert [i.content[0].text for i in everything] == [f"note {n}" for n in range(5)]


def test_chat_completions_validate_as_the_sdk_type(sdk, stack):
    completion = sdk.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": TWO_CALLS}], tools=CHAT_TOOLS
    )
    raw = _raw(
        stack,
        "POST",
        "/v1/chat/completions",
        json={"model": "gpt-4.1", "messages": [{"role": "user", "content": "hello"}]},
    ).json()
    ChatCompletion.model_validate(raw)
    assert len(completion.choices[0].message.tool_calls) == 2


def test_assistants_objects_validate_as_the_sdk_types(sdk, stack):
    assistant_id = assistant_for(stack)
    Assistant.model_validate(_raw(stack, "GET", f"/v1/assistants/{assistant_id}").json())
    thread = sdk.beta.threads.create()
    Thread.model_validate(_raw(stack, "POST", "/v1/threads", json={}).json())
    run = sdk.beta.threads.runs.create(
        thread_id=thread.id,
        assistant_id=assistant_id,
        additional_messages=[{"role": "user", "content": "Please look up customer #9."}],
    )
    polled = sdk.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=20)
    Run.model_validate(_raw(stack, "GET", f"/v1/threads/{thread.id}/runs/{run.id}").json())
    assert polled.status == "requires_action"  # the additional message reached the model
    assert polled.required_action.submit_tool_outputs.tool_calls[0].function.name == "lookup_customer"
    messages = _raw(stack, "GET", f"/v1/threads/{thread.id}/messages?limit=1").json()
    assert len(messages["data"]) == 1 and messages["has_more"] is False
    Message.model_validate(messages["data"][0])


def test_parallel_tool_calls_false_and_tool_choice_are_obeyed(sdk):
    def names(**kwargs):
        response = sdk.responses.create(model="gpt-4.1", input=TWO_CALLS, tools=TOOLS, **kwargs)
        return [o.name for o in response.output if o.type == "function_call"]

    assert names() == ["issue_refund", "lookup_customer"]
    assert names(parallel_tool_calls=False) == ["issue_refund"]
    assert names(tool_choice="none") == []
    assert names(tool_choice={"type": "function", "name": "lookup_customer"}) == ["lookup_customer"]
    forced = sdk.responses.create(model="gpt-4.1", input="hello", tools=TOOLS, tool_choice="required")
    assert [o.type for o in forced.output] == ["function_call"]
    chat = sdk.chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": TWO_CALLS}],
        tools=CHAT_TOOLS,
        parallel_tool_calls=False,
    )
    assert len(chat.choices[0].message.tool_calls) == 1


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda c: c.responses.create(model="m", input=[{"content": "x"}]), "input[0].type"),
        (lambda c: c.responses.create(model="m", input=["hello"]), "input[0]"),
        (lambda c: c.chat.completions.create(model="m", messages=["hi"]), "messages[0]"),
        (lambda c: c.chat.completions.create(model="m", messages=[]), "messages"),
        (lambda c: c.responses.create(model="m", input="hi", stream=True), "stream"),
        (
            lambda c: c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True),
            "stream",
        ),
        (lambda c: c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], n=2), "n"),
        (
            lambda c: c.responses.create(
                model="m", input="hi", text={"format": {"type": "json_schema", "name": "x", "schema": {}}}
            ),
            "text.format",
        ),
        (
            lambda c: c.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            ),
            "response_format",
        ),
        (lambda c: c.conversations.items.list("conv_nope_and_never", limit=0), None),
    ],
    ids=[
        "item-without-type",
        "bare-string-item",
        "chat-bare-string",
        "chat-empty",
        "responses-stream",
        "chat-stream",
        "chat-n",
        "json-schema",
        "chat-json-schema",
        "bad-limit",
    ],
)
def test_malformed_and_unsupported_requests_are_a_400_naming_the_parameter(sdk, call, param):
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as refused:
        call(sdk)
    error = refused.value.body
    assert isinstance(error, dict) and error.get("message")
    if param is not None:
        assert error.get("param") == param, error


def test_an_assistants_run_asked_to_stream_is_refused_and_leaves_the_thread_free(sdk, stack):
    assistant_id = assistant_for(stack)
    thread = sdk.beta.threads.create()
    with pytest.raises(openai.BadRequestError):
        sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, stream=True)
    sdk.beta.threads.messages.create(thread.id, role="user", content="hello")  # not locked by a queued run


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nope"), ("DELETE", "/v1/responses"), ("PUT", "/v1/chat/completions"), ("GET", "/v1/embeddings")],
)
def test_unknown_routes_and_methods_answer_openais_json_error(stack, method, path):
    response = _raw(stack, method, path)
    assert response.status_code in (404, 405)
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
