"""AgentBackendRouter: one AgentBackend over the three APIs.

A new conversation uses the configured API (``AgentApi``); an existing one keeps the API it
started on (its backend state says which), so changing the parameter never strands a chat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signoff.domain.models import AgentStep, Conversation, ToolCall, ToolOutput
from signoff.domain.ports import AgentBackend
from signoff.observability import traced

APIS = ("responses", "assistants", "chat")


class AgentBackendRouter:
    def __init__(self, default_api: str, factories: dict[str, Callable[[], AgentBackend]]):
        if default_api not in factories:
            raise ValueError(f"unknown agent API {default_api!r}; choose one of {', '.join(factories)}")
        self._default = default_api
        self._factories = factories
        self._built: dict[str, AgentBackend] = {}

    def _for(self, conversation: Conversation) -> AgentBackend:
        api = self._api(conversation)
        if api not in self._built:
            self._built[api] = self._factories[api]()
        return self._built[api]

    def prepare(self, conversation: Conversation) -> dict[str, Any]:
        return self._for(conversation).prepare(conversation)

    def _api(self, conversation: Conversation) -> str:
        return conversation.backend_state.get("api") or self._default

    def start_turn(self, conversation: Conversation, text: str) -> AgentStep:
        with traced("agent start_turn", api=self._api(conversation), conversation_id=conversation.conversation_id):
            return self._for(conversation).start_turn(conversation, text)

    def submit_tool_outputs(self, conversation: Conversation, pause_ref: str, outputs: list[ToolOutput]) -> AgentStep:
        with traced(
            "agent submit_tool_outputs", api=self._api(conversation), conversation_id=conversation.conversation_id
        ):
            return self._for(conversation).submit_tool_outputs(conversation, pause_ref, outputs)

    def step_after(self, conversation: Conversation, pause_ref: str, call_ids: list[str]) -> AgentStep | None:
        with traced("agent step_after", api=self._api(conversation), conversation_id=conversation.conversation_id):
            return self._for(conversation).step_after(conversation, pause_ref, call_ids)

    def open_calls(self, conversation: Conversation) -> list[ToolCall]:
        return self._for(conversation).open_calls(conversation)

    def close_calls(self, conversation: Conversation, outputs: list[ToolOutput]) -> None:
        self._for(conversation).close_calls(conversation, outputs)
