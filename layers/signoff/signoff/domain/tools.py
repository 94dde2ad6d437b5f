"""Tools the agent may call: their schemas, what they do, and how they describe a call to an approver."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError


class InvalidToolArguments(ValueError):
    """The model sent arguments that are not JSON or do not fit the tool's schema."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool gets besides its arguments: a key to make its side effect idempotent."""

    idempotency_key: str
    conversation_id: str
    call_id: str


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    arguments_model: type[BaseModel]
    run: Callable[[BaseModel, ToolContext], dict[str, Any]]
    describe: Callable[[BaseModel], str] | None = None
    # A sign-off tool the model calls of its own accord: nothing runs, the decision is the output.
    # Which other calls need sign-off is the approval policy's business (domain/policy.py).
    is_sign_off_request: bool = False

    def parse_arguments(self, raw: str | dict[str, Any]) -> BaseModel:
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except (json.JSONDecodeError, TypeError) as exc:
            raise InvalidToolArguments(f"arguments for {self.name} are not valid JSON") from exc
        if not isinstance(data, dict):
            raise InvalidToolArguments(f"arguments for {self.name} must be a JSON object")
        try:
            return self.arguments_model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
            )
            raise InvalidToolArguments(f"arguments for {self.name} do not fit its schema: {problems}") from exc

    def summary(self, args: BaseModel) -> str:
        if self.describe:
            return self.describe(args)
        return f"Run {self.name} with {args.model_dump_json()}"

    def openai_schema(self) -> dict[str, Any]:
        """The function definition the agent API is given."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.arguments_model.model_json_schema(),
        }


class ToolRegistry:
    def __init__(self, tools: Iterable[ToolSpec]):
        self._tools = {tool.name: tool for tool in tools}

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.openai_schema() for tool in self._tools.values()]
