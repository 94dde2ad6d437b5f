"""AssistantsBackend: threads, runs, ``requires_action`` and ``submit_tool_outputs``.

OpenAI sunset the Assistants API on 2026-08-26; Assistants-compatible endpoints remain
(Azure, self-hosted), reached through ``OpenAIBaseUrl``. A thread per conversation; the
assistant id comes from configuration (``python -m signoff.adapters.assistant_setup`` makes one).

A run expires about ten minutes after it was created, and approvals take longer. When the
outputs come after the run expired (or it was cancelled or failed), they are handed to the model
in a new run on the same thread, so a late approval still reaches the model and the user.
Polling here waits on the model, never on a human: it is bounded and ends with the run.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import openai
from openai import OpenAI

from signoff import deadline as invocation_deadline
from signoff.adapters.openai_errors import translated_errors
from signoff.domain.endings import CUT_SHORT, EMPTY, REFUSED
from signoff.domain.models import AgentStep, Conversation, Pause, Reply, ToolCall, ToolOutput
from signoff.domain.ports import AgentSetup, BackendRejected, BackendUnavailable, ContextFull, NotConfigured

TERMINAL = {"completed", "requires_action", "cancelled", "failed", "expired", "incomplete"}
_ACTIVE_RUN = re.compile(r"\b(run_[A-Za-z0-9]+)\b")

CONTINUATION_PREFIX = (
    "Signoff: the run that asked for these tool calls ended before they were settled, so here are their "
    "results. Continue from them and tell the user what happened."
)


class AssistantsBackend:
    def __init__(
        self,
        client: OpenAI,
        agent: Callable[[Conversation], AgentSetup],
        *,
        poll_timeout_seconds: float = 90.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._client = client
        self._agent = agent  # the conversation's agent: its assistant, instructions and tools
        self._poll_timeout = poll_timeout_seconds
        self._sleep = sleep

    @property
    def _threads(self):
        return self._client.beta.threads

    def prepare(self, conversation: Conversation) -> dict[str, Any]:
        if conversation.backend_state.get("thread"):
            return conversation.backend_state
        with translated_errors("create thread"):
            thread = self._threads.create(metadata={"signoff_conversation": conversation.conversation_id})
        return {**conversation.backend_state, "api": "assistants", "thread": thread.id}

    def start_turn(self, conversation: Conversation, text: str) -> AgentStep:
        thread_id = conversation.backend_state["thread"]
        self._add_user_message(thread_id, text)
        return self._run(conversation)

    def submit_tool_outputs(self, conversation: Conversation, pause_ref: str, outputs: list[ToolOutput]) -> AgentStep:
        thread_id = conversation.backend_state["thread"]
        with translated_errors("retrieve run"):
            run = self._threads.runs.retrieve(pause_ref, thread_id=thread_id)
        if run.status == "requires_action":
            try:
                with translated_errors("submit tool outputs"):
                    self._threads.runs.submit_tool_outputs(
                        pause_ref,
                        thread_id=thread_id,
                        tool_outputs=[{"tool_call_id": o.call_id, "output": o.output} for o in outputs],
                    )
            except BackendRejected:
                # Expired between our look and the submission: fall through to a continuation.
                run = self._threads.runs.retrieve(pause_ref, thread_id=thread_id)
                if run.status == "requires_action":
                    raise
            else:
                return self._step(conversation, self._poll(thread_id, pause_ref))
        return self._continue_after(conversation, outputs)

    def step_after(self, conversation: Conversation, pause_ref: str, call_ids: list[str]) -> AgentStep | None:
        """The paused run still asks for exactly these calls: not submitted. Otherwise follow the run
        that took them (the same run, or the continuation started after it expired)."""
        thread_id = conversation.backend_state["thread"]
        with translated_errors("retrieve run"):
            run = self._threads.runs.retrieve(pause_ref, thread_id=thread_id)
        if run.status == "requires_action":
            asked = {c.id for c in run.required_action.submit_tool_outputs.tool_calls}
            return None if asked == set(call_ids) else self._step(conversation, run)
        if run.status in ("queued", "in_progress", "completed"):
            return self._step(conversation, self._poll(thread_id, run.id))
        with translated_errors("list runs"):
            runs = self._threads.runs.list(thread_id, order="desc", limit=10).data
        newer = [r for r in runs if r.id != run.id and r.created_at >= run.created_at]
        if not newer:
            return None
        return self._step(conversation, self._poll(thread_id, newer[0].id))

    def open_calls(self, conversation: Conversation) -> list[ToolCall]:
        """The calls of the thread's latest run, if it still waits for tool outputs."""
        thread_id = conversation.backend_state.get("thread")
        if not thread_id:
            return []
        with translated_errors("list runs"):
            runs = self._threads.runs.list(thread_id, order="desc", limit=1).data
        if not runs or runs[0].status != "requires_action":
            return []
        return [
            ToolCall(call_id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in runs[0].required_action.submit_tool_outputs.tool_calls
        ]

    def close_calls(self, conversation: Conversation, outputs: list[ToolOutput]) -> None:
        """A run waiting for outputs locks its thread; the turn is over, so the run is cancelled."""
        thread_id = conversation.backend_state["thread"]
        with translated_errors("list runs"):
            runs = self._threads.runs.list(thread_id, order="desc", limit=1).data
        if runs and runs[0].status == "requires_action":
            self._cancel(thread_id, runs[0].id)

    # -- internals -----------------------------------------------------------------------
    def _continue_after(self, conversation: Conversation, outputs: list[ToolOutput]) -> AgentStep:
        """The run is over (expired, cancelled, failed): tell the model in a new run on the same thread."""
        results = [{"call_id": o.call_id, "tool": o.tool, "output": o.output} for o in outputs]
        text = f"{CONTINUATION_PREFIX}\n```json\n{json.dumps(results, ensure_ascii=False)}\n```"
        self._add_user_message(conversation.backend_state["thread"], text)
        return self._run(conversation)

    def _add_user_message(self, thread_id: str, text: str) -> None:
        for attempt in range(2):
            try:
                with translated_errors("add message"):
                    self._threads.messages.create(thread_id, role="user", content=text)
                return
            except BackendRejected as exc:
                active = _active_run_in(exc)
                if attempt or active is None:
                    raise
                self._cancel(thread_id, active)

    def _cancel(self, thread_id: str, run_id: str) -> None:
        """A run left active by an earlier failure locks the thread: cancel it and wait for the end."""
        try:
            with translated_errors("cancel run"):
                self._threads.runs.cancel(run_id, thread_id=thread_id)
        except BackendRejected:
            pass  # it ended on its own meanwhile
        self._poll(thread_id, run_id)

    def _run(self, conversation: Conversation) -> AgentStep:
        thread_id = conversation.backend_state["thread"]
        agent = self._agent(conversation)
        if not agent.assistant_id:
            raise BackendRejected(
                f"agent {agent.name} has no assistant: set OPENAI_ASSISTANT_ID or the agent's assistant_id "
                "(create one with python -m signoff.adapters.assistant_setup)"
            )
        with translated_errors("create run"):
            run = self._threads.runs.create(
                thread_id=thread_id,
                assistant_id=agent.assistant_id,
                model=agent.model,
                instructions=agent.instructions,
                tools=[nested_function(t) for t in agent.tools],
            )
        return self._step(conversation, self._poll(thread_id, run.id))

    def _poll(self, thread_id: str, run_id: str) -> Any:
        deadline = time.monotonic() + min(self._poll_timeout, invocation_deadline.remaining())
        while True:
            with translated_errors("retrieve run"):
                raw = self._threads.runs.with_raw_response.retrieve(run_id, thread_id=thread_id)
            run = raw.parse()
            if run.status in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise BackendUnavailable(f"run {run.status} for too long")
            try:
                wait_ms = int(raw.headers.get("openai-poll-after-ms", "500"))
            except ValueError:
                wait_ms = 500
            self._sleep(min(max(wait_ms, 10), 2000) / 1000)

    def _step(self, conversation: Conversation, run: Any) -> AgentStep:
        if run.status == "requires_action":
            calls = [
                ToolCall(call_id=c.id, name=c.function.name, arguments=c.function.arguments)
                for c in run.required_action.submit_tool_outputs.tool_calls
            ]
            return Pause(pause_ref=run.id, tool_calls=calls)
        incomplete = getattr(run.incomplete_details, "reason", None) if run.status == "incomplete" else None
        if incomplete == "max_prompt_tokens":
            raise ContextFull("run incomplete: the thread exceeds the prompt budget")
        if run.status not in ("completed", "incomplete"):
            reason = getattr(run.last_error, "message", None) or run.status
            raise BackendRejected(f"run ended {run.status}: {reason}")
        with translated_errors("list messages"):
            messages = self._threads.messages.list(conversation.backend_state["thread"], order="desc", limit=20)
        parts = [
            part
            for message in reversed(messages.data)
            if message.role == "assistant" and message.run_id == run.id
            for part in message.content
        ]
        text = "\n\n".join(part.text.value for part in parts if part.type == "text")
        refusals = [part.refusal for part in parts if part.type == "refusal"]
        if run.status == "incomplete":
            return Reply(text=text, ending=CUT_SHORT, detail=incomplete)
        if refusals:
            return Reply(text=text, ending=REFUSED, detail=" ".join(refusals))
        if not text.strip():
            return Reply(text="", ending=EMPTY)
        return Reply(text=text)


def nested_function(definition: dict[str, Any]) -> dict[str, Any]:
    """A Responses-style function tool as Assistants and Chat Completions spell it."""
    if definition.get("type") == "mcp":
        raise NotConfigured("a hosted MCP server (hosted_mcp in the catalog) needs the Responses API (AgentApi)")
    return {
        "type": "function",
        "function": {k: v for k, v in definition.items() if k in ("name", "description", "parameters", "strict")},
    }


def _active_run_in(exc: BaseException) -> str | None:
    cause = exc.__cause__
    if isinstance(cause, openai.BadRequestError):
        match = _ACTIVE_RUN.search(str(cause.message))
        if match and "active" in str(cause.message):
            return match.group(1)
    return None
