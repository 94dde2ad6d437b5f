"""Every request Signoff sends to the agent APIs, as captured at the OpenAI-compatible server, fits
the openai SDK's own param types (pydantic over its TypedDicts: a missing required key such as a
function tool's ``strict`` fails, so does a key the type does not have); and every answer the
server gives fits the SDK's response models in strict validation, with no field the real API does
not send (the models keep unknown fields aside: there must be none)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import pydantic
import pytest
from openai import BaseModel as OpenAIModel
from openai.types import beta, chat, conversations, responses
from openai.types.beta import threads
from openai.types.beta.threads import runs

from local.environment import settings_changed
from tests.support import SignoffClient, assistant_for

# (method, path pattern) → (the request's param type, the answer's model)
SHAPES: list[tuple[str, str, Any, Any]] = [
    ("POST", r"/v1/responses", responses.response_create_params.ResponseCreateParamsNonStreaming, responses.Response),
    ("POST", r"/v1/chat/completions", chat.completion_create_params.CompletionCreateParamsNonStreaming,
     chat.ChatCompletion),
    ("POST", r"/v1/conversations", conversations.conversation_create_params.ConversationCreateParams,
     conversations.Conversation),
    ("POST", r"/v1/conversations/[^/]+/items", conversations.item_create_params.ItemCreateParams,
     conversations.ConversationItemList),
    ("GET", r"/v1/conversations/[^/]+/items", None, conversations.ConversationItemList),
    ("POST", r"/v1/assistants", beta.assistant_create_params.AssistantCreateParams, beta.Assistant),
    ("POST", r"/v1/threads", beta.thread_create_params.ThreadCreateParams, beta.Thread),
    ("POST", r"/v1/threads/(?P<thread_id>[^/]+)/messages", threads.message_create_params.MessageCreateParams,
     threads.Message),
    ("POST", r"/v1/threads/(?P<thread_id>[^/]+)/runs", threads.run_create_params.RunCreateParamsNonStreaming,
     threads.Run),
    ("GET", r"/v1/threads/[^/]+/runs/[^/]+", None, threads.Run),
    ("POST", r"/v1/threads/(?P<thread_id>[^/]+)/runs/[^/]+/submit_tool_outputs",
     threads.run_submit_tool_outputs_params.RunSubmitToolOutputsParamsNonStreaming, threads.Run),
    ("GET", r"/v1/threads/[^/]+/messages", None, None),
    ("GET", r"/v1/threads/[^/]+/runs/[^/]+/steps", None, None),
    ("GET", r"/v1/threads/[^/]+/runs", None, None),
    ("POST", r"/v1/threads/[^/]+/runs/[^/]+/cancel", None, threads.Run),
]  # fmt: skip
_ = runs  # run steps are listed, not checked: the product reads only their ids


def _shape(method: str, path: str) -> tuple[Any, Any, dict[str, str]] | None:
    """The param type and answer model of a request, and the parameters its path carries."""
    for verb, pattern, params, model in SHAPES:
        if verb == method and (found := re.fullmatch(pattern, path)):
            return params, model, found.groupdict()
    return None


def _consumed(value: Any) -> Any:
    """A validated TypedDict with its lazily checked iterables (``tools``, ``input``) run through."""
    if isinstance(value, dict):
        return {k: _consumed(v) for k, v in value.items()}
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Iterable):
        return [_consumed(v) for v in value]
    return value


@functools.cache
def _adapter(params: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(params)


def request_problems(params: Any, body: dict[str, Any], in_path: dict[str, str] | None = None) -> list[str]:
    """Why ``body`` does not fit ``params`` (the SDK's TypedDict), or nothing. ``in_path``: what the
    URL carries, for the types that declare it (a run's ``thread_id``)."""
    known = set(params.__required_keys__) | set(params.__optional_keys__)
    body = {**body, **{k: v for k, v in (in_path or {}).items() if k in known}}
    problems = [f"unknown parameter {key!r}" for key in body if key not in known]
    adapter = _adapter(params)  # kept alive while its lazy iterators are read
    try:
        _consumed(adapter.validate_python(body))
    except pydantic.ValidationError as exc:
        problems += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()][:5]
    return problems


def _extras(model: Any, where: str = "") -> list[str]:
    """Fields of an answer that the SDK's models do not have (what the real API does not send)."""
    found: list[str] = []
    if isinstance(model, OpenAIModel):
        found += [f"{where}.{key}".lstrip(".") for key in (model.model_extra or {})]
        for name in type(model).model_fields:
            found += _extras(getattr(model, name), f"{where}.{name}")
    elif isinstance(model, list):
        for n, item in enumerate(model):
            found += _extras(item, f"{where}[{n}]")
    return found


def answer_problems(model: Any, answer: Any) -> list[str]:
    try:
        parsed = model.model_validate(answer, strict=True)
    except pydantic.ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()][:5]
    return [f"{extra}: not a field of {model.__name__}" for extra in _extras(parsed)]


def _traffic(stack) -> list[dict[str, Any]]:
    """What the product sends on each API: a gated refund approved, a lookup, a second message."""
    client = SignoffClient(stack)
    before = len(stack.openai.log.entries())
    for api in ("responses", "chat", "assistants"):
        with settings_changed(AGENT_API=api, OPENAI_ASSISTANT_ID=assistant_for(stack)):
            cid = client.start("Issue a €340 refund to customer #4821.")["conversation_id"]
            [decision] = client.pending_decision_ids(cid)
            client.resolve(decision, "approve")
            client.wait_status(cid, "idle")
            client.post(f"/conversations/{cid}/messages", json={"message": "Please look up customer #7."})
            client.wait_status(cid, "idle")
    with settings_changed(AGENT_API="responses"):  # a hosted MCP call, approved: the mcp items both ways
        ticket = 'call helpdesk__create_ticket with {"title": "Printer", "body": "It jams."}'
        cid = client.post("/conversations", json={"message": ticket, "agent": "helpdesk"}).json()["conversation_id"]
        [decision] = client.pending_decision_ids(cid)
        client.resolve(decision, "approve")
        client.wait_status(cid, "idle")
    return stack.openai.log.entries()[before:]


@pytest.fixture(scope="module")
def traffic(stack) -> list[dict[str, Any]]:
    return _traffic(stack)


def test_every_request_the_product_sends_fits_the_sdks_param_types(traffic):
    checked = 0
    for entry in traffic:
        shape = _shape(entry["method"], entry["path"])
        assert shape is not None, f"no SDK type known for {entry['method']} {entry['path']}"
        params, _model, in_path = shape
        if params is None or entry["method"] != "POST":
            continue
        assert request_problems(params, entry["body"] or {}, in_path) == [], (entry["path"], entry["body"])
        checked += 1
    paths = {e["path"] for e in traffic}
    assert checked >= 10 and "/v1/responses" in paths and "/v1/chat/completions" in paths
    sent = [i.get("type") for e in traffic if e["path"] == "/v1/responses" for i in e["body"].get("input") or []]
    assert "mcp_approval_response" in sent


def test_every_answer_fits_the_sdks_models_strictly_with_no_field_the_api_does_not_send(traffic):
    checked = 0
    for entry in traffic:
        _params, model, _ = _shape(entry["method"], entry["path"]) or (None, None, {})
        if model is None or entry["status"] != 200:
            continue
        assert answer_problems(model, entry["answer"]) == [], entry["path"]
        checked += 1
    assert checked >= 10
    kinds = {i["type"] for e in traffic if e["path"] == "/v1/responses" for i in (e["answer"] or {}).get("output", [])}
    assert {"mcp_list_tools", "mcp_approval_request", "mcp_call"} <= kinds


def test_a_function_tool_without_strict_does_not_fit():
    """The check can fail: Signoff's own tool definitions, with ``strict`` removed."""
    from signoff import runtime

    tools = runtime.tools().definitions()
    body = {"model": "m", "input": "hi", "tools": tools}
    assert request_problems(responses.response_create_params.ResponseCreateParamsNonStreaming, body) == []
    loose = [{k: v for k, v in t.items() if k != "strict"} for t in tools]
    problems = request_problems(
        responses.response_create_params.ResponseCreateParamsNonStreaming, {**body, "tools": loose}
    )
    assert any("strict" in p for p in problems), problems
