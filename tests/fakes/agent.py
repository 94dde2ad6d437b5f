"""ScriptedAgent: an agent API (the AgentBackend port) that answers from a script, in memory.

Each model call (``start_turn`` or ``submit_tool_outputs``) takes the next step of the script; a
step may be an exception, raised instead. It keeps what it was sent, so tests can count model
calls and read the outputs it got; like the real APIs it remembers which calls of a pause were
answered (``step_after``) and which calls are still open (``open_calls``).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from signoff.domain.models import AgentStep, Conversation, Pause, Reply, ToolCall, ToolOutput

_refs = itertools.count(1)


def pause(*calls: tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]) -> Pause:
    """A pause on ``(tool, arguments[, call_id])`` calls, with a fresh pause reference."""
    n = next(_refs)
    tool_calls = [
        ToolCall(call_id=c[2] if len(c) > 2 else f"call_{n}_{i}", name=c[0], arguments=json.dumps(c[1]))
        for i, c in enumerate(calls)
    ]
    return Pause(pause_ref=f"resp_{n}", tool_calls=tool_calls)


def reply(text: str = "done") -> Reply:
    return Reply(text=text)


class ScriptedAgent:
    def __init__(self, *steps: AgentStep | Exception):
        self.script: list[AgentStep | Exception] = list(steps)
        self.started: list[str] = []  # the user's text of each turn started
        self.submitted: list[list[ToolOutput]] = []  # each submission of a pause's outputs
        self.closed: list[list[ToolOutput]] = []  # outputs given to open calls of a failed turn
        self._answered: dict[str, AgentStep] = {}  # pause_ref → what the model did after its outputs
        self._open: dict[str, list[ToolCall]] = {}  # conversation → calls asked, never answered
        self.prepared = 0

    def will(self, *steps: AgentStep | Exception) -> ScriptedAgent:
        self.script.extend(steps)
        return self

    def _next(self, conversation: Conversation) -> AgentStep:
        if not self.script:
            raise AssertionError("the agent was called more often than the test scripted")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, Pause):
            self._open[conversation.conversation_id] = list(step.tool_calls)
        return step

    def prepare(self, conversation: Conversation) -> dict[str, Any]:
        self.prepared += 1
        return conversation.backend_state or {"thread": f"th_{conversation.conversation_id}"}

    def start_turn(self, conversation: Conversation, text: str) -> AgentStep:
        step = self._next(conversation)
        self.started.append(text)
        return step

    def submit_tool_outputs(self, conversation: Conversation, pause_ref: str, outputs: list[ToolOutput]) -> AgentStep:
        step = self._next(conversation)
        self.submitted.append(list(outputs))
        self._answered[pause_ref] = step
        if not isinstance(step, Pause):
            self._open.pop(conversation.conversation_id, None)
        return step

    def step_after(self, conversation: Conversation, pause_ref: str, call_ids: list[str]) -> AgentStep | None:
        return self._answered.get(pause_ref)

    def open_calls(self, conversation: Conversation) -> list[ToolCall]:
        return list(self._open.get(conversation.conversation_id, []))

    def close_calls(self, conversation: Conversation, outputs: list[ToolOutput]) -> None:
        self.closed.append(list(outputs))
        self._open.pop(conversation.conversation_id, None)

    def outputs(self, submission: int = -1) -> dict[str, Any]:
        """One submission's outputs by call id, parsed (JSON) or as the text they are."""
        return {o.call_id: _parsed(o.output) for o in self.submitted[submission]}


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
