"""What the OpenAI-compatible server refuses before any work, as the real API would: malformed
input with a 400 that names the parameter, and the features this stand-in does not implement
(streaming, structured output, several choices) with a 400 too, never silently ignored. And the
tool-choice rules every emulated API applies to the calls the scripted model plans.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal in the OpenAI error shape: status, message, and the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


MESSAGE_ROLES = {"system", "developer", "user", "assistant", "tool"}
INPUT_ITEM_TYPES = {"message", "function_call", "function_call_output", "mcp_approval_response"}


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
        if kind == "mcp_approval_response" and (
            not isinstance(item.get("approval_request_id"), str) or not isinstance(item.get("approve"), bool)
        ):
            raise ApiError(
                400,
                f"Missing required parameter: '{param}[{n}].approval_request_id' or '{param}[{n}].approve'.",
                f"{param}[{n}]",
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
    return [PlannedCall(c.name, strict_arguments(c.name, c.arguments, tools or [])) for c in calls]


# -- function tools and strict mode ---------------------------------------------------------
# What strict mode cannot express (the structured-outputs subset of JSON Schema).
_NOT_STRICT = ("allOf", "oneOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
               "patternProperties", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
               "minProperties", "maxProperties", "contains")  # fmt: skip


def _function(tool: dict[str, Any]) -> dict[str, Any] | None:
    """The function definition of a tool in either API's shape (None for other tool types)."""
    if tool.get("type") != "function":
        return None
    return tool["function"] if isinstance(tool.get("function"), dict) else tool


def _strict_problem(schema: Any, where: str = "()") -> str | None:
    """Why ``schema`` is not in strict form, in the real API's words; None when it is."""
    if not isinstance(schema, dict):
        return None
    for keyword in _NOT_STRICT:
        if keyword in schema:
            return f"In context={where}, '{keyword}' is not permitted."
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return f"In context={where}, 'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        missing = [name for name in properties if name not in (schema.get("required") or [])]
        if missing:
            return (
                f"In context={where}, 'required' is required to be supplied and to be an array including every "
                f"key in properties. Missing '{missing[0]}'."
            )
        for name, sub in properties.items():
            if problem := _strict_problem(sub, f"('properties', '{name}')"):
                return problem
    for key in ("items",):
        if problem := _strict_problem(schema.get(key), f"('{key}',)"):
            return problem
    for n, sub in enumerate(schema.get("anyOf") or []):
        if problem := _strict_problem(sub, f"('anyOf', {n})"):
            return problem
    for name, sub in (schema.get("$defs") or {}).items():
        if problem := _strict_problem(sub, f"('$defs', '{name}')"):
            return problem
    return None


def _uses_unsupported(schema: Any) -> bool:
    if isinstance(schema, dict):
        return any(k in schema for k in _NOT_STRICT) or any(_uses_unsupported(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_uses_unsupported(v) for v in schema)
    return False


def _normalised(schema: Any) -> Any:
    """What the Responses API makes of a schema sent without ``strict``: every object closed and
    every property required, optional or not (the model then fills each one)."""
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    if schema.get("type") == "object" or "properties" in schema:
        schema["properties"] = {k: _normalised(v) for k, v in (schema.get("properties") or {}).items()}
        schema["required"] = list(schema["properties"])
        schema["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        schema["items"] = _normalised(schema["items"])
    if isinstance(schema.get("anyOf"), list):
        schema["anyOf"] = [_normalised(s) for s in schema["anyOf"]]
    return schema


def effective_tools(tools: Any, api: str) -> list[dict[str, Any]]:
    """The tools as the API takes them, ``strict`` stated on each function. Responses: a function
    that does not say is strict, its schema normalised (unless strict mode cannot express it);
    Chat Completions and Assistants: not strict unless it says so. ``strict: true`` with a schema
    not in strict form is a 400 on every API; so is an empty ``tools`` on Chat Completions."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ApiError(400, "Invalid type for 'tools': expected an array.", "tools")
    if api == "chat" and not tools:
        raise ApiError(
            400, "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array.",
            "tools",
        )  # fmt: skip
    taken = []
    for n, tool in enumerate(tools):
        _require_object(tool, f"tools[{n}]")
        function = _function(tool)
        if function is None:
            taken.append(tool)
            continue
        function = dict(function)
        strict = function.get("strict")
        if strict is None and api == "responses":
            parameters = function.get("parameters") or {"type": "object", "properties": {}}
            if not _uses_unsupported(parameters):
                function["parameters"], strict = _normalised(parameters), True
        if strict:
            problem = _strict_problem(function.get("parameters") or {})
            if problem:
                raise ApiError(
                    400, f"Invalid schema for function '{function.get('name')}': {problem}", f"tools[{n}].parameters"
                )
        function["strict"] = bool(strict)
        taken.append({"type": "function", "function": function} if "function" in tool else function)
    return taken


def strict_arguments(name: str, arguments: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A strict tool's arguments as the model writes them: every property present, in order; one
    it has nothing for is null where the schema allows it, else something it makes up."""
    for tool in tools:
        function = _function(tool)
        if function is None or function.get("name") != name or not function.get("strict"):
            continue
        properties = (function.get("parameters") or {}).get("properties") or {}
        return {key: arguments[key] if key in arguments else _filler(spec) for key, spec in properties.items()}
    return arguments


def _filler(spec: Any) -> Any:
    kinds = spec.get("type") if isinstance(spec, dict) else None
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "null" in kinds or any(isinstance(s, dict) and s.get("type") == "null" for s in (spec or {}).get("anyOf", [])):
        return None
    if isinstance(spec, dict) and spec.get("enum"):
        return spec["enum"][0]
    return {"string": "unspecified", "number": 0, "integer": 0, "boolean": False, "array": [], "object": {}}.get(
        kinds[0], "unspecified"
    )
