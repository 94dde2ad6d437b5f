"""ResponsesBackend: the Responses API with one Conversation per chat.

A Conversation has no 30-day TTL, so an approval that takes days still continues the same
chat. "Paused" means the latest response holds ``function_call`` items; the run continues by
sending one ``function_call_output`` per call into the same Conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openai import OpenAI

from signoff.adapters.openai_errors import translated_errors
from signoff.domain.endings import CUT_SHORT, EMPTY, FILTERED, REFUSED
from signoff.domain.models import AgentStep, Conversation, HostedCall, Pause, Reply, ToolCall, ToolOutput
from signoff.domain.ports import AgentSetup, BackendRejected


class ResponsesBackend:
    def __init__(self, client: OpenAI, agent: Callable[[Conversation], AgentSetup]):
        self._client = client
        self._agent = agent  # the conversation's agent: model, instructions, tools

    def prepare(self, conversation: Conversation) -> dict[str, Any]:
        """The backend state for this chat, creating the OpenAI Conversation on first use."""
        if conversation.backend_state.get("conversation"):
            return conversation.backend_state
        with translated_errors("create conversation"):
            created = self._client.conversations.create(metadata={"signoff_conversation": conversation.conversation_id})
        return {**conversation.backend_state, "api": "responses", "conversation": created.id}

    def start_turn(self, conversation: Conversation, text: str) -> AgentStep:
        return self._respond(conversation, [{"role": "user", "content": text}])

    def submit_tool_outputs(self, conversation: Conversation, pause_ref: str, outputs: list[ToolOutput]) -> AgentStep:
        return self._respond(conversation, [input_item(o) for o in outputs])

    def step_after(self, conversation: Conversation, pause_ref: str, call_ids: list[str]) -> AgentStep | None:
        """Read the Conversation: outputs for these calls there mean they were submitted; what follows
        them is the model's answer."""
        with translated_errors("list conversation items"):
            items = list(self._client.conversations.items.list(conversation.backend_state["conversation"], order="asc"))
        wanted = set(call_ids)
        positions = [n for n, item in enumerate(items) if _answers(item) in wanted]
        if not positions:
            return None
        after = items[max(positions) + 1 :]
        answered = {_answers(item) for item in after} - {None}
        open_items = [item for item in after if (call := _call_of(item)) is not None and call.call_id not in answered]
        hosted = _hosted_of(after)
        if open_items:
            calls = [call for item in open_items if (call := _call_of(item)) is not None]
            return Pause(pause_ref=f"item:{open_items[0].id}", tool_calls=calls, hosted=hosted)
        texts = [
            part.text
            for item in after
            if item.type == "message" and item.role == "assistant"
            for part in item.content
            if getattr(part, "type", None) == "output_text"
        ]
        if not texts:
            raise BackendRejected("the outputs were submitted but no answer followed them")
        return Reply(text="\n\n".join(texts), hosted=hosted)

    def open_calls(self, conversation: Conversation) -> list[ToolCall]:
        """Function calls after the last user message with no output after them (newest first, so
        only the tail of the Conversation is read: a new message is only ever sent with none open)."""
        conv_id = conversation.backend_state.get("conversation")
        if not conv_id:
            return []
        calls, answered = [], set()
        with translated_errors("list conversation items"):
            for item in self._client.conversations.items.list(conv_id, order="desc"):
                if item.type == "message" and item.role == "user":
                    break
                if item.type == "function_call_output":
                    answered.add(item.call_id)
                elif item.type == "mcp_approval_response":
                    answered.add(item.approval_request_id)
                elif (call := _call_of(item)) is not None and call.call_id not in answered:
                    calls.append(call)
        return list(reversed(calls))

    def close_calls(self, conversation: Conversation, outputs: list[ToolOutput]) -> None:
        items = [input_item(o) for o in outputs]
        with translated_errors("add conversation items"):
            self._client.conversations.items.create(conversation.backend_state["conversation"], items=items)

    def _respond(self, conversation: Conversation, items: list[dict[str, Any]]) -> AgentStep:
        conv_id = conversation.backend_state.get("conversation")
        if not conv_id:
            raise ValueError("backend state has no conversation; call prepare() first")
        agent = self._agent(conversation)
        tools = {"tools": agent.tools} if agent.tools else {}
        with translated_errors("create response"):
            response = self._client.responses.create(
                model=agent.model,
                conversation=conv_id,
                instructions=agent.instructions,
                input=items,
                # A long chat drops its oldest items rather than failing with a 400 nobody can act on.
                truncation="auto",
                **tools,
            )
        return step_of(response)


def input_item(output: ToolOutput) -> dict[str, Any]:
    """A call's answer as a Responses input item: a function's output, or a hosted MCP call's
    approval (``approve``, with the approver's reason when denied)."""
    if output.approve is None:
        return {"type": "function_call_output", "call_id": output.call_id, "output": output.output}
    item: dict[str, Any] = {"type": "mcp_approval_response", "approval_request_id": output.call_id}
    item["approve"] = output.approve
    if output.reason:
        item["reason"] = output.reason[:1000]
    return item


def _answers(item: Any) -> str | None:
    """The call an input item answers: a function's output, or a hosted call's approval."""
    kind = getattr(item, "type", None)
    if kind == "function_call_output":
        return item.call_id
    if kind == "mcp_approval_response":
        return item.approval_request_id
    return None


def _call_of(item: Any) -> ToolCall | None:
    kind = getattr(item, "type", None)
    if kind == "function_call":
        return ToolCall(call_id=item.call_id, name=item.name, arguments=item.arguments)
    if kind == "mcp_approval_request":
        name = f"{item.server_label}__{item.name}"
        return ToolCall(call_id=item.id, name=name, arguments=item.arguments, kind="mcp_approval")
    return None


def _hosted_of(output: list[Any]) -> list[HostedCall]:
    """The hosted MCP calls a response reports, by the approval that let them run."""
    return [
        HostedCall(approval_request_id=item.approval_request_id, output=item.output, error=_text(item.error))
        for item in output
        if getattr(item, "type", None) == "mcp_call" and getattr(item, "approval_request_id", None)
    ]


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def step_of(response: Any) -> AgentStep:
    """A response as the turn's next step: its calls (with any text beside them), or its answer
    and how it ended (domain/endings.py); and the hosted MCP calls it reports."""
    calls = [call for item in response.output if (call := _call_of(item)) is not None]
    hosted = _hosted_of(response.output)
    texts, refusals = [], []
    for item in response.output:
        if getattr(item, "type", None) != "message":
            continue
        for part in item.content:
            if part.type == "output_text":
                texts.append(part.text)
            elif part.type == "refusal":
                refusals.append(part.refusal)
    text = "\n\n".join(t for t in texts if t)
    if calls:
        return Pause(pause_ref=response.id, tool_calls=calls, said=text, hosted=hosted)
    if response.status == "incomplete":
        reason = getattr(response.incomplete_details, "reason", None)
        ending = FILTERED if reason == "content_filter" else CUT_SHORT
        return Reply(text=text, ending=ending, detail=reason, hosted=hosted)
    if refusals:
        return Reply(text=text, ending=REFUSED, detail=" ".join(refusals), hosted=hosted)
    if not text.strip():
        return Reply(text="", ending=EMPTY, hosted=hosted)
    return Reply(text=text, hosted=hosted)
