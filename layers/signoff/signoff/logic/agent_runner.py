"""AgentRunner: drives a turn from the work queue, never waiting on a human.

start_turn: claim the queued turn, call the model, and either store the reply or gate the
tool calls of the pause. resume_turn: once every approval of the pause is settled, claim the
turn back, make sure each approved call ran, and submit all outputs in one go.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff.chaos import crash_point
from signoff.domain.canonical import action_digest
from signoff.domain.models import (
    Action,
    AgentStep,
    Conversation,
    Execution,
    ExecutionStatus,
    Message,
    Pause,
    Reply,
    ToolCall,
    Turn,
    TurnStatus,
    iso,
    utc_now,
)
from signoff.domain.outputs import render_output
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.ports import AgentBackend, BackendRejected, BackendUnavailable, WorkMessage, WorkQueue
from signoff.domain.tools import InvalidToolArguments, ToolRegistry
from signoff.logic.approvals import ApprovalRequester
from signoff.logic.executor import ActionExecutor
from signoff.logic.ids import new_approval_id

if TYPE_CHECKING:
    from signoff.dal.table import SignoffTable

logger = Logger(child=True)

MAX_STEPS_PER_TURN = 8
MAX_ATTEMPTS = 5
RETRY_DELAYS_SECONDS = (5, 15, 45, 120, 300)


class AgentRunner:
    def __init__(
        self,
        table: SignoffTable,
        backend: AgentBackend,
        tools: ToolRegistry,
        policy: Callable[[], ApprovalPolicy],
        executor: ActionExecutor,
        requester: ApprovalRequester,
        queue: WorkQueue,
    ):
        self._policy = policy
        self._queue = queue
        self._table = table
        self._backend = backend
        self._tools = tools
        self._executor = executor
        self._requester = requester

    def handle(self, message: WorkMessage) -> None:
        logger.append_keys(conversation_id=message.conversation_id, turn_id=message.turn_id)
        if message.kind == "start_turn":
            self.start(message.conversation_id, message.turn_id)
        else:
            assert message.pause_ref is not None
            self.resume(message.conversation_id, message.turn_id, message.pause_ref)

    def start(self, conversation_id: str, turn_id: str) -> None:
        if not self._table.claim_turn_start(conversation_id, turn_id):
            logger.info("turn already started; message ignored")
            return
        conversation = self._table.get_conversation(conversation_id)
        turn = self._table.get_turn(conversation_id, turn_id)
        assert conversation is not None and turn is not None
        try:
            state = self._backend.prepare(conversation)
            if state != conversation.backend_state:
                self._table.set_backend_state(conversation_id, state)
                conversation = conversation.model_copy(update={"backend_state": state})
            step = self._backend.start_turn(conversation, turn.input)
        except BackendUnavailable as exc:
            self._retry_later(turn, "start_turn", exc)
            return
        except Exception as exc:
            self._fail(turn, exc)
            return
        self._advance(conversation, turn, step, steps=1)

    def resume(self, conversation_id: str, turn_id: str, pause_ref: str) -> None:
        turn = self._table.get_turn(conversation_id, turn_id)
        if turn is None or turn.pause_ref != pause_ref or turn.status is not TurnStatus.AWAITING_APPROVAL:
            logger.info("nothing to resume")
            return
        actions = self._executor.settle_turn(conversation_id, turn_id)
        if not all(a.settled for a in actions):
            raise RuntimeError("an approved call is still executing; the message will be redelivered")
        if not self._table.claim_turn_resume(conversation_id, turn_id, pause_ref):
            logger.info("turn already resumed; message ignored")
            return
        self._submit(turn, actions, steps=1)

    # -- the loop ------------------------------------------------------------------------
    def _advance(self, conversation: Conversation, turn: Turn, step: AgentStep, steps: int) -> None:
        if isinstance(step, Reply):
            reply = Message(role="assistant", content=step.text, created_at=iso(utc_now()))
            if self._table.complete_turn(turn.conversation_id, turn.turn_id, reply):
                logger.info("turn completed")
            return
        assert isinstance(step, Pause)
        actions = [self._to_action(turn, seq, call) for seq, call in enumerate(step.tool_calls)]
        gated = [a for a in actions if a.gated and a.error is None]
        turn = turn.model_copy(update={"pause_ref": step.pause_ref})
        if not self._table.record_pause(turn, step.pause_ref, actions, pending=len(gated)):
            logger.info("pause already recorded")
            return
        for action in actions:
            if not action.gated and action.error is None:
                self._executor.run_ungated(action)
        for action in gated:
            self._requester.request(conversation, action)
        logger.info("turn paused", extra={"calls": len(actions), "gated": len(gated)})
        if gated:
            self._table.show_awaiting_approval(turn.conversation_id, turn.turn_id, step.pause_ref)
            # Settled already when every decision failed to be created; otherwise a callback resumes it.
            current = self._table.get_turn(turn.conversation_id, turn.turn_id)
            if (
                current
                and current.pending == 0
                and self._table.claim_turn_resume(turn.conversation_id, turn.turn_id, step.pause_ref)
            ):
                self._submit(current, self._executor.settle_turn(turn.conversation_id, turn.turn_id), steps)
            return
        self._submit(turn, self._table.list_actions(turn.conversation_id, turn.turn_id), steps)

    def _submit(self, turn: Turn, actions: list[Action], steps: int) -> None:
        """All outputs of the pause in one submission, never two: after a retry, look first whether
        an earlier attempt already got them to the model."""
        if steps >= MAX_STEPS_PER_TURN:
            self._fail(turn, RuntimeError("too many tool rounds in one turn"))
            return
        conversation = self._table.get_conversation(turn.conversation_id)
        assert conversation is not None and turn.pause_ref is not None
        outputs = [render_output(a) for a in actions]
        call_ids = [o.call_id for o in outputs]
        try:
            step = self._backend.step_after(conversation, turn.pause_ref, call_ids) if turn.attempts else None
            if step is None:
                crash_point("before_submission")
                step = self._submit_once(conversation, turn.pause_ref, outputs, call_ids)
            crash_point("after_submission")
        except BackendUnavailable as exc:
            self._retry_later(turn, "resume_turn", exc)
            return
        except Exception as exc:
            self._fail(turn, exc)
            return
        self._advance(conversation, turn, step, steps + 1)

    def _submit_once(self, conversation: Conversation, pause_ref: str, outputs, call_ids: list[str]) -> AgentStep:
        try:
            return self._backend.submit_tool_outputs(conversation, pause_ref, outputs)
        except BackendRejected:
            # Refused, perhaps because a timed-out attempt got through after all.
            step = self._backend.step_after(conversation, pause_ref, call_ids)
            if step is None:
                raise
            return step

    def _to_action(self, turn: Turn, seq: int, call: ToolCall) -> Action:
        """A tool call as Signoff keeps it: validated, digested, and gated by the policy (not the model)."""
        try:
            raw = json.loads(call.arguments)
            arguments = raw if isinstance(raw, dict) else {}
        except (json.JSONDecodeError, TypeError):
            arguments = {}
        spec = self._tools.get(call.name)
        error, summary, gated, approval_ids, required = None, "", False, [], 1
        if spec is None:
            error = f"unknown tool {call.name!r}"
        else:
            try:
                parsed = spec.parse_arguments(call.arguments)
            except InvalidToolArguments as exc:
                error = str(exc)
            else:
                summary = spec.summary(parsed)
                policy = self._policy()
                gated = spec.is_sign_off_request or policy.requires_approval(call.name, arguments)
                if gated:
                    approvers, required = policy.approvers(call.name, "-")
                    approval_ids = [new_approval_id() for _ in approvers]
        return Action(
            conversation_id=turn.conversation_id,
            turn_id=turn.turn_id,
            call_id=call.call_id,
            seq=seq,
            created_at=iso(utc_now()),
            tool=call.name,
            arguments=arguments,
            digest=action_digest(call.name, arguments, call.call_id),
            gated=gated,
            summary=summary,
            approval_ids=approval_ids,
            quorum_required=required,
            execution=Execution(status=ExecutionStatus.NOT_EXECUTED) if error else None,
            error=error,
        )

    def _retry_later(self, turn: Turn, kind: str, exc: Exception) -> None:
        """Hand the turn back (running → queued or awaiting_approval) and retry with a delay, a few times."""
        attempts = self._table.release_turn(turn.conversation_id, turn.turn_id, for_resume=kind == "resume_turn")
        if attempts is None:
            return
        if attempts >= MAX_ATTEMPTS:
            self._fail(turn, exc)
            return
        delay = RETRY_DELAYS_SECONDS[min(attempts, len(RETRY_DELAYS_SECONDS)) - 1]
        logger.warning("agent API unavailable; retrying", extra={"attempt": attempts, "delay_seconds": delay})
        self._queue.send(
            WorkMessage(
                kind=kind,
                conversation_id=turn.conversation_id,
                turn_id=turn.turn_id,
                pause_ref=turn.pause_ref,
            ),
            delay_seconds=delay,
        )

    def _fail(self, turn: Turn, exc: Exception) -> None:
        logger.warning("turn failed", extra={"error": type(exc).__name__})
        self._table.fail_turn(turn.conversation_id, turn.turn_id, type(exc).__name__)
