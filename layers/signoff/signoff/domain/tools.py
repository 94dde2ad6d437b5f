"""Tools the agent may call: their schemas, how their arguments are checked, how a call is
described to an approver, and what runs them (bound by the adapters)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from signoff.domain.strict_schema import absent_nulls, strict_form

# Executor kinds (see domain/catalog.py); "client" calls are run by the client, not by Signoff.
CLIENT_EXECUTOR = "client"
# A hosted MCP server's tool: OpenAI runs the call once Signoff approves it (approve or deny only).
HOSTED_EXECUTOR = "hosted_mcp"
HOSTED_APPROVE_OR_DENY = "a hosted MCP call can only be approved or denied; the change was not applied"


class InvalidToolArguments(ValueError):
    """The model sent arguments that are not JSON or do not fit the tool's schema."""


class ToolFailed(RuntimeError):
    """The tool certainly did not do the call: it said no (an HTTP 4xx, an MCP error result), or the
    request never reached it (no connection could be made). Not retried; its budget reservation is
    given back.

    ``detail`` is what the tool said, passed on to the model."""

    def __init__(self, message: str, detail: Any = None):
        super().__init__(message)
        self.detail = detail


class ToolUnreachable(RuntimeError):
    """The outcome is unknown: the request may have reached the tool (a timeout after sending, a
    dropped connection, a 5xx, a function that raised, an answer that cannot be read), so the call is
    failed with an unknown outcome, never sent again, and keeps its budget reservation.

    ``detail`` is what the tool said, if anything (a Lambda function's error type), passed on."""

    def __init__(self, message: str, detail: Any = None):
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class ToolContext:
    """What a tool gets besides its arguments: a key to make its side effect idempotent."""

    idempotency_key: str
    conversation_id: str
    call_id: str
    tool: str = ""


def _unrunnable(arguments: Any, ctx: ToolContext) -> Any:
    raise ToolFailed(f"{ctx.tool} has no executor Signoff can run")


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the gate sees it.

    ``check`` validates a call's arguments (a dict) and returns what ``run`` is given (the dict, or a
    typed model for a python tool); it raises InvalidToolArguments with every problem it found.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    check: Callable[[dict[str, Any]], Any]
    run: Callable[[Any, ToolContext], Any] = _unrunnable
    summary_template: str | None = None
    executor: str = "python"
    # A sign-off tool the model calls of its own accord: nothing runs, the decision is the output.
    # Which other calls need sign-off is the approval policy's business (domain/policy.py).
    is_sign_off_request: bool = False
    client_timeout_minutes: int = 60
    # Sent in strict form (domain/strict_schema.py), the model's nulls for optional fields undone
    # before the check. False: the schema as written, and arguments as the model sends them.
    strict: bool = False

    @property
    def runs_on_client(self) -> bool:
        return self.executor == CLIENT_EXECUTOR

    def parse_arguments(self, raw: str | dict[str, Any]) -> Any:
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except (json.JSONDecodeError, TypeError) as exc:
            raise InvalidToolArguments(f"arguments for {self.name} are not valid JSON") from exc
        if not isinstance(data, dict):
            raise InvalidToolArguments(f"arguments for {self.name} must be a JSON object")
        if self.strict:
            data = absent_nulls(data, self.parameters)
        return self.check(data)

    def summary(self, parsed: Any) -> str:
        """The approver's one line: the catalog's template filled from the checked arguments."""
        values = _as_mapping(parsed)
        if self.summary_template:
            try:
                return self.summary_template.format_map(dict(values))
            except (KeyError, ValueError, IndexError, AttributeError, TypeError):
                pass  # an argument the template names is absent: fall back, never fail the call
        return f"Run {self.name} with {json.dumps(arguments_of(parsed), sort_keys=True, default=str)}"

    def openai_schema(self) -> dict[str, Any]:
        """The function definition the agent API is given: ``strict`` always stated (the APIs differ
        on what its absence means), the schema in strict form when it is."""
        parameters = strict_form(self.parameters) if self.strict else self.parameters
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": parameters,
            "strict": self.strict,
        }


def _as_mapping(parsed: Any) -> Mapping[str, Any]:
    if isinstance(parsed, Mapping):
        return parsed
    return {name: getattr(parsed, name) for name in type(parsed).model_fields}


def arguments_of(parsed: Any) -> dict[str, Any]:
    """The checked arguments as JSON values (a typed model dumped, a dict as it is): what the gate,
    the budgets, the grants, the digest, the approver, the receipt and the tool all see. Numbers stay
    numbers (a Decimal becomes an int when integral, else a float when one spells it exactly)."""
    if isinstance(parsed, Mapping):
        return dict(parsed)
    return _json_value(parsed.model_dump(mode="python"))


def _json_value(value: Any) -> Any:
    from decimal import Decimal

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value.normalize() else str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def json_schema_check(name: str, schema: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A check from a JSON Schema (Draft 2020-12): the arguments pass unchanged or are refused."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)

    def check(data: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err.absolute_path) or 'arguments'}: {err.message}" for err in errors[:10]
            )
            raise InvalidToolArguments(f"arguments for {name} do not fit its schema: {problems}")
        return data

    return check


def model_check(name: str, model: Any) -> Callable[[dict[str, Any]], Any]:
    """A check from a pydantic model (python tools): the call gets the typed model."""
    from pydantic import ValidationError

    def check(data: dict[str, Any]) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
            )
            raise InvalidToolArguments(f"arguments for {name} do not fit its schema: {problems}") from exc

    return check


@dataclass
class ToolRegistry:
    """The tools Signoff knows by name; ``resolve`` finds one not listed up front (an MCP tool)."""

    tools: Iterable[ToolSpec] = ()
    resolve: Callable[[str], ToolSpec | None] | None = None
    _by_name: dict[str, ToolSpec] = field(init=False)

    def __post_init__(self) -> None:
        self._by_name = {tool.name: tool for tool in self.tools}

    def get(self, name: str) -> ToolSpec | None:
        spec = self._by_name.get(name)
        if spec is None and self.resolve is not None:
            spec = self.resolve(name)
        return spec

    def names(self) -> list[str]:
        return list(self._by_name)

    def definitions(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        chosen = self._by_name.values() if names is None else [s for n in names if (s := self.get(n))]
        return [tool.openai_schema() for tool in chosen]
