"""What the OpenAI-compatible server refuses before any work, as the real API would: malformed
input with a 400 that names the parameter, and the features this stand-in does not implement
(streaming, structured output, several choices) with a 400 too, never silently ignored. And the
tool-choice rules every emulated API applies to the calls the scripted model plans.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal in the OpenAI error shape: status, message, and the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


MESSAGE_ROLES = {"system", "developer", "user", "assistant", "tool"}
INPUT_ITEM_TYPES = {"message", "function_call", "function_call_output"}


def _not_supported(param: str, what: str) -> ApiError:
    return ApiError(400, f"This server does not support {what}; remove '{param}'.", param)


def refuse_unsupported(body: dict[str, Any]) -> None:
    """Streaming, structured output and several choices are refused by name."""
    if body.get("stream"):
        raise _not_supported("stream", "streaming")
    n = body.get("n")
    if n is not None and n != 1:
        raise _not_supported("n", "more than one choice")
    text_format = (
        ((body.get("text") or {}).get("format") or {}).get("type") if isinstance(body.get("text"), dict) else None
    )
    if text_format not in (None, "text"):
        raise _not_supported("text.format", f"the {text_format!r} output format")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise _not_supported("response_format", f"the {response_format.get('type')!r} response format")


def _require_object(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise ApiError(400, f"Invalid type for '{param}': expected an object, but got a {type(value).__name__}.", param)


def check_input_items(items: Any, param: str) -> None:
    """Responses ``input`` (or Conversation ``items``): text, or a list of typed items."""
    if isinstance(items, str):
        return
    if not isinstance(items, list):
        raise ApiError(400, f"Invalid type for '{param}': expected a string or an array of input items.", param)
    for n, item in enumerate(items):
        _require_object(item, f"{param}[{n}]")
        kind = item.get("type", "message" if "role" in item else None)
        if kind not in INPUT_ITEM_TYPES:
            raise ApiError(
                400,
                f"Invalid value for '{param}[{n}].type': expected one of {sorted(INPUT_ITEM_TYPES)}.",
                f"{param}[{n}].type",
            )
        if kind == "message" and (item.get("role") not in MESSAGE_ROLES or "content" not in item):
            raise ApiError(
                400, f"Missing required parameter: '{param}[{n}].role' or '{param}[{n}].content'.", f"{param}[{n}]"
            )
        if kind == "function_call_output" and (not isinstance(item.get("call_id"), str) or "output" not in item):
            raise ApiError(
                400, f"Missing required parameter: '{param}[{n}].call_id' or '{param}[{n}].output'.", f"{param}[{n}]"
            )


def check_chat_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "[] is too short - 'messages'", "messages")
    for n, message in enumerate(messages):
        _require_object(message, f"messages[{n}]")
        if message.get("role") not in MESSAGE_ROLES:
            raise ApiError(
                400,
                f"Invalid value for 'messages[{n}].role': expected one of {sorted(MESSAGE_ROLES)}.",
                f"messages[{n}].role",
            )


def _tool_name(tool: dict[str, Any]) -> str | None:
    return tool.get("name") or (tool.get("function") or {}).get("name")


def offered_names(tools: list[dict[str, Any]] | None) -> set[str]:
    """The function names a request offers (either API's tool shape)."""
    return {name for name in (_tool_name(t) for t in tools or []) if name}


def select_calls(calls: list, tools: list[dict[str, Any]], body: dict[str, Any]) -> list:
    """The planned calls as ``tools``, ``tool_choice`` and ``parallel_tool_calls`` allow them: only
    offered tools; none for ``"none"``; only the named one when a function is forced (called with
    no arguments if the plan had none for it); at least one for ``"required"``; one at most when
    parallel calls are off."""
    from local.scripted_model import PlannedCall

    offered = [name for name in (_tool_name(t) for t in tools or []) if name]
    calls = [c for c in calls if c.name in offered]
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return []
    if isinstance(choice, dict):
        forced = choice.get("name") or (choice.get("function") or {}).get("name")
        if forced not in offered:
            raise ApiError(
                400, f"Invalid value for 'tool_choice': no tool named {forced!r} was offered.", "tool_choice"
            )
        calls = [c for c in calls if c.name == forced] or [PlannedCall(forced, {})]
    elif choice == "required" and not calls:
        if not offered:
            raise ApiError(400, "'tool_choice' is 'required' but no tools were offered.", "tool_choice")
        calls = [PlannedCall(offered[0], {})]
    if body.get("parallel_tool_calls") is False:
        calls = calls[:1]
    return calls
