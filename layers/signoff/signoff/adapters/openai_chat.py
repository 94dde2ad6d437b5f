"""ChatCompletionsBackend: the stateless Chat Completions API, with the message list kept by Signoff.

Each call sends the whole list (system prompt first). Assistant messages with ``tool_calls``
pause the turn; the outputs go back as one ``tool`` message per call, in the order of the calls.
Appends are idempotent: a retried step finds its messages already stored and does not add them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openai import OpenAI

from signoff.adapters.openai_assistants import nested_function
from signoff.adapters.openai_errors import translated_errors
from signoff.domain.endings import CUT_SHORT, EMPTY, FILTERED, REFUSED
from signoff.domain.models import AgentStep, Conversation, Pause, Reply, ToolCall, ToolOutput
from signoff.domain.ports import AgentSetup, BackendRejected, ChatHistory

# What is sent of a long chat: about 100k tokens of text, well inside today's context windows.
MAX_HISTORY_CHARS = 400_000


class ChatCompletionsBackend:
    def __init__(
        self,
        client: OpenAI,
        agent: Callable[[Conversation], AgentSetup],
        history: ChatHistory,
        max_chars: int = MAX_HISTORY_CHARS,
    ):
        self._client = client
        self._agent = agent  # the conversation's agent: model, instructions, tools
        self._history = history
        self._max_chars = max_chars

    def prepare(self, conversation: Conversation) -> dict[str, Any]:
        if conversation.backend_state.get("api") == "chat":
            return conversation.backend_state
        return {**conversation.backend_state, "api": "chat"}

    def start_turn(self, conversation: Conversation, text: str) -> AgentStep:
        cid = conversation.conversation_id
        messages = self._history.load(cid)
        user = {"role": "user", "content": text}
        if not messages or messages[-1] != user:
            self._history.append(cid, len(messages), [user])
            messages.append(user)
        return self._complete(conversation, messages)

    def submit_tool_outputs(self, conversation: Conversation, pause_ref: str, outputs: list[ToolOutput]) -> AgentStep:
        cid = conversation.conversation_id
        messages = self._history.load(cid)
        position = int(pause_ref.removeprefix("chat:"))
        if position >= len(messages) or not messages[position].get("tool_calls"):
            raise BackendRejected("the paused assistant message is not in the history")
        order = [call["id"] for call in messages[position]["tool_calls"]]
        by_id = {o.call_id: o.output for o in outputs}
        if set(order) != set(by_id):
            raise BackendRejected("outputs do not answer exactly the paused calls")
        answered = messages[position + 1 :]
        tool_messages = [{"role": "tool", "tool_call_id": call_id, "content": by_id[call_id]} for call_id in order]
        stored = answered[: len(tool_messages)]
        if stored != tool_messages[: len(stored)]:
            raise BackendRejected("the history moved on past this pause")
        if len(stored) < len(tool_messages):
            # None stored yet, or a worker died half-way through storing them: add the rest.
            self._history.append(cid, len(messages), tool_messages[len(stored) :])
        messages = [*messages[: position + 1], *tool_messages]
        return self._complete(conversation, messages)

    def step_after(self, conversation: Conversation, pause_ref: str, call_ids: list[str]) -> AgentStep | None:
        """Tool messages for these calls in the stored history mean they were submitted; the assistant
        message after them (or a fresh completion, if the worker died before one) is what follows."""
        messages = self._history.load(conversation.conversation_id)
        position = int(pause_ref.removeprefix("chat:"))
        answered = messages[position + 1 : position + 1 + len(call_ids)]
        if {m.get("tool_call_id") for m in answered if m.get("role") == "tool"} != set(call_ids):
            return None
        rest = messages[position + 1 + len(call_ids) :]
        if not rest:
            return self._complete(conversation, messages)
        reply = rest[0]
        next_position = position + 1 + len(call_ids)
        if reply.get("tool_calls"):
            calls = [
                ToolCall(call_id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
                for c in reply["tool_calls"]
            ]
            return Pause(pause_ref=f"chat:{next_position}", tool_calls=calls)
        return Reply(text=reply.get("content") or "")

    def open_calls(self, conversation: Conversation) -> list[ToolCall]:
        """The calls of the last assistant message that asked for tools, if no tool message answers them."""
        messages = self._history.load(conversation.conversation_id)
        answered: set[str] = set()
        for message in reversed(messages):
            if message.get("role") == "user":
                return []
            if message.get("role") == "tool":
                answered.add(message.get("tool_call_id"))
            elif message.get("tool_calls"):
                return [
                    ToolCall(call_id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
                    for c in message["tool_calls"]
                    if c["id"] not in answered
                ]
        return []

    def close_calls(self, conversation: Conversation, outputs: list[ToolOutput]) -> None:
        messages = self._history.load(conversation.conversation_id)
        tool_messages = [{"role": "tool", "tool_call_id": o.call_id, "content": o.output} for o in outputs]
        self._history.append(conversation.conversation_id, len(messages), tool_messages)

    def _complete(self, conversation: Conversation, messages: list[dict[str, Any]]) -> AgentStep:
        agent = self._agent(conversation)
        # An agent without tools sends none: Chat Completions refuses an empty array.
        tools = {"tools": [nested_function(t) for t in agent.tools]} if agent.tools else {}
        with translated_errors("chat completion"):
            completion = self._client.chat.completions.create(
                model=agent.model,
                messages=[{"role": "system", "content": agent.instructions}, *recent(messages, self._max_chars)],
                **tools,
            )
        choice = completion.choices[0]
        message = choice.message
        stored: dict[str, Any] = {"role": "assistant", "content": message.content}
        calls = [c for c in message.tool_calls or [] if getattr(c, "type", "function") == "function"]
        if calls:
            stored["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in calls
            ]
        position = len(messages)
        self._history.append(conversation.conversation_id, position, [stored])
        if calls:
            return Pause(
                pause_ref=f"chat:{position}",
                tool_calls=[
                    ToolCall(call_id=c.id, name=c.function.name, arguments=c.function.arguments) for c in calls
                ],
                said=message.content or "",  # text beside the calls, shown to the user
            )
        return _reply(choice.finish_reason, message.content or "", getattr(message, "refusal", None))


def _reply(finish_reason: str | None, text: str, refusal: str | None) -> Reply:
    """An answer and how it ended (domain/endings.py)."""
    if finish_reason == "length":
        return Reply(text=text, ending=CUT_SHORT, detail="length")
    if finish_reason == "content_filter":
        return Reply(text=text, ending=FILTERED, detail="content_filter")
    if refusal:
        return Reply(text=text, ending=REFUSED, detail=refusal)
    if not text.strip():
        return Reply(text="", ending=EMPTY)
    return Reply(text=text)


def recent(messages: list[dict[str, Any]], max_chars: int) -> list[dict[str, Any]]:
    """The newest messages that fit in ``max_chars``, starting at a user message so no tool answer
    is sent without the call it answers: the stored history grows without bound, the model's
    context does not. The last user message and what follows it are always sent."""
    total, start = 0, len(messages)
    for position in range(len(messages) - 1, -1, -1):
        total += len(str(messages[position].get("content") or "")) + len(
            str(messages[position].get("tool_calls") or "")
        )
        if messages[position].get("role") == "user":
            if total > max_chars and start < len(messages):
                break
            start = position
    return messages[start:] if start < len(messages) else messages
