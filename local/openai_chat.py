"""Chat Completions emulation: stateless, with the tool round-trip rule the real API enforces.

An assistant message with ``tool_calls`` must be followed by one ``tool`` message per call id,
else 400 (the real API's wording).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from local.openai_requests import (
    ApiError,
    check_chat_messages,
    effective_tools,
    offered_names,
    refuse_unsupported,
    select_calls,
)
from local.scripted_model import describe_outputs, respond_to_user


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def chat_completion(
    body: dict[str, Any], *, sequential_call_ids: bool = False, ending: str | None = None, context_chars: int = 0
) -> dict[str, Any]:
    """One completion. ``ending``: how the emulator is told to end this answer (``length``,
    ``content_filter``, ``refusal``, ``empty``); ``context_chars``: the context window, in
    characters of the request (0: none)."""
    refuse_unsupported(body)
    messages = body.get("messages")
    check_chat_messages(messages)
    tools = effective_tools(body.get("tools"), "chat")
    if context_chars and len(json.dumps(messages)) > context_chars:
        raise ApiError(
            400,
            "This model's maximum context length has been exceeded. Please reduce the length of the messages.",
            "messages",
            code="context_length_exceeded",
        )
    names: dict[str, str] = {}
    open_calls: list[str] = []
    for message in messages:
        role = message.get("role")
        if open_calls and role != "tool":
            raise ApiError(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(open_calls)}",
                "messages",
            )
        if role == "assistant" and message.get("tool_calls"):
            for call in message["tool_calls"]:
                names[call["id"]] = call["function"]["name"]
            open_calls = [c["id"] for c in message["tool_calls"]]
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls:
                raise ApiError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                    "messages",
                )
            open_calls.remove(call_id)
    if open_calls:
        raise ApiError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(open_calls)}",
            "messages",
        )

    trailing_tools = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing_tools.append(message)
    reply: str | None
    calls: list = []
    if trailing_tools:
        trailing_tools.reverse()
        reply = describe_outputs(
            [(names.get(m["tool_call_id"], "tool"), _text(m.get("content"))) for m in trailing_tools]
        )
    else:
        users = [m for m in messages if m.get("role") == "user"]
        text = _text(users[-1].get("content")) if users else ""
        reply, planned = respond_to_user(text, offered_names(tools))
        calls = select_calls(planned, tools, body)
        if calls and reply is not None and body.get("tool_choice", "auto") == "auto":
            calls = []
        if not calls:
            reply = reply or "I can't do that with the tools I have."
    finish_reason = "tool_calls" if calls else "stop"
    if ending in ("length", "content_filter") and not calls:
        finish_reason, reply = ending, (reply or "")[: len(reply or "") // 2] if ending == "length" else None
    refusal = None
    if ending == "refusal" and not calls:
        reply, refusal = None, "I'm sorry, I can't help with that."
    if ending == "empty" and not calls:
        reply = ""
    message: dict[str, Any] = {"role": "assistant", "content": reply, "refusal": refusal, "annotations": []}
    if calls:
        message["tool_calls"] = [
            {
                # Some compatible servers number calls per response (call_0, call_1, ...), reusing ids.
                "id": f"call_{n}" if sequential_call_ids else f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for n, c in enumerate(calls)
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        "system_fingerprint": None,
    }
