"""AgentRunner: drives a turn from the work queue, never waiting on a human.

start_turn: claim the queued turn, answer whatever a failed turn before it left open, call the
model, and either store the reply or gate the tool calls of the pause. resume_turn: once every
approval of the pause is settled, claim the turn back, make sure each call that may run ran, and
submit all outputs in one go. A turn that fails says so in an assistant message, and its calls
that never ran can never run afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff import deadline
from signoff.domain.canonical import action_digest
from signoff.domain.endings import COMPLETED, ending_message
from signoff.domain.grants import GrantUse
from signoff.domain.limits import MAX_ARGUMENTS_BYTES, truncated
from signoff.domain.models import (
    Action,
    AgentStep,
    Conversation,
    Execution,
    ExecutionStatus,
    GrantRef,
    Message,
    Pause,
    Reply,
    ToolCall,
    ToolOutput,
    Turn,
    TurnStatus,
    iso,
    of_pause,
    parse_iso,
    utc_now,
)
from signoff.domain.outputs import render_output
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.ports import (
    AgentBackend,
    BackendRejected,
    BackendUnavailable,
    ContextFull,
    NotConfigured,
    WorkMessage,
    WorkQueue,
)
from signoff.domain.tools import InvalidToolArguments, ToolRegistry, arguments_of
from signoff.logic.approvals import ApprovalRequester
from signoff.logic.budgets import call_key_of
from signoff.logic.executor import ActionExecutor
from signoff.logic.ids import new_approval_id
from signoff.logic.turn_failure import NOT_RUN_BECAUSE_TURN_ENDED, fail_turn
from signoff.observability import count

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore
    from signoff.logic.budgets import BudgetKeeper
    from signoff.logic.grants import GrantKeeper

logger = Logger(child=True)

MAX_STEPS_PER_TURN = 8
MAX_ATTEMPTS = 5
RETRY_DELAYS_SECONDS = (5, 15, 45, 120, 300)


class OutOfTime(BackendUnavailable):
    """Too little of the invocation is left for a model call; the turn is handed back and retried."""


class CallStillRunning(BackendUnavailable):
    """A call of the failed turn before is still held by a live claim: the new turn waits its turn."""


class AgentRunner:
    def __init__(
        self,
        table: SignoffStore,
        backend: AgentBackend,
        tools: ToolRegistry,
        policy: Callable[[], ApprovalPolicy],
        executor: ActionExecutor,
        requester: ApprovalRequester,
        queue: WorkQueue,
        model_call_seconds: float = 0.0,
        budgets: BudgetKeeper | None = None,
        grants: GrantKeeper | None = None,
        recheck_seconds: int = 10,
        offered: Callable[[str | None], list[str]] | None = None,
    ):
        self._offered = offered  # agent → the tool names it is offered (None: every tool)
        self._recheck_seconds = recheck_seconds
        self._budgets = budgets
        self._grants = grants
        self._model_call_seconds = model_call_seconds
        self._policy = policy
        self._queue = queue
        self._table = table
        self._backend = backend
        self._tools = tools
        self._executor = executor
        self._requester = requester

    def handle(self, message: WorkMessage) -> None:
        if message.kind == "start_turn":
            self.start(message.conversation_id, message.turn_id)
        elif message.kind == "run_calls":
            assert message.pause_ref is not None
            self.run_calls(message.conversation_id, message.turn_id, message.pause_ref, message.calls or [])
        else:
            assert message.pause_ref is not None
            self.resume(message.conversation_id, message.turn_id, message.pause_ref)

    def run_calls(self, conversation_id: str, turn_id: str, pause_ref: str, calls: list[str]) -> None:
        """Run the calls of this pause that may run (a callback handed them over: a tool has this
        invocation's time, not the gateway's 30 seconds), then go on if no call was left waiting.
        ``pending`` only falls: a verdict recorded after the turn was read sends its own message.
        ``calls``: the pause's call ids, if the message knew them (read with the turn, by key)."""
        stored, conversation, known = self._table.get_pause(conversation_id, turn_id, calls)
        turn = self._waiting(stored, pause_ref)
        if turn is None or conversation is None:
            return
        if known is not None and len(of_pause(known, pause_ref)) != len(known):
            known = None  # not this pause's calls after all: list them
        # With every verdict in, the call that settles last claims the resume in its own write.
        actions, resumed = self._executor.settle_pause(conversation_id, turn_id, pause_ref, known, turn.pending == 0)
        if resumed:
            self._submit(turn, actions, steps=1, conversation=conversation)
        elif turn.pending == 0:
            self._go_on(turn, actions, conversation)

    def start(self, conversation_id: str, turn_id: str) -> None:
        turn = self._table.claim_turn_start(conversation_id, turn_id)
        if turn is None:
            logger.info("turn already started; message ignored")
            return
        conversation = self._table.get_conversation(conversation_id)
        assert conversation is not None
        try:
            self._ensure_time()
            state = self._backend.prepare(conversation)
            if state != conversation.backend_state:
                self._table.set_backend_state(conversation_id, state)
                conversation = conversation.model_copy(update={"backend_state": state})
            if conversation.unanswered_turn_id:
                self._answer_open_calls(conversation, conversation.unanswered_turn_id)
            self._ensure_time()
            step = self._backend.start_turn(conversation, turn.input)
        except BackendUnavailable as exc:
            self._retry_later(turn, "start_turn", exc)
            return
        except Exception as exc:
            self._fail(turn, exc)
            return
        self._advance(conversation, turn, step, steps=1)

    def resume(self, conversation_id: str, turn_id: str, pause_ref: str) -> None:
        turn = self._waiting_turn(conversation_id, turn_id, pause_ref)
        if turn is not None:
            self._go_on(turn, self._executor.settle_turn(conversation_id, turn_id, pause_ref))

    def _waiting_turn(self, conversation_id: str, turn_id: str, pause_ref: str) -> Turn | None:
        return self._waiting(self._table.get_turn(conversation_id, turn_id), pause_ref)

    @staticmethod
    def _waiting(turn: Turn | None, pause_ref: str) -> Turn | None:
        """The turn, if it still waits on this pause (else the message is a late or duplicate one)."""
        if turn is None or turn.pause_ref != pause_ref or turn.status is not TurnStatus.AWAITING_APPROVAL:
            logger.info("the turn no longer waits on this pause; message ignored")
            return None
        return turn

    def _go_on(self, turn: Turn, actions: list[Action], conversation: Conversation | None = None) -> None:
        """Every call of the pause has its verdict and whatever could run ran: hand the outputs on.
        ``conversation``: the turn's, if already read."""
        conversation_id, turn_id, pause_ref = turn.conversation_id, turn.turn_id, turn.pause_ref
        assert pause_ref is not None
        if _awaiting_client(actions):
            self._wait_for_client(turn, actions, steps=1)
            return
        if not all(a.settled for a in actions):
            # Its tool is still running (or its invocation died and the lease has yet to run out):
            # look again shortly, without spending the message's receives on a normal wait.
            logger.info("an approved call is still executing; resume rechecked shortly")
            self._queue.send(WorkMessage.resume(turn), delay_seconds=self._recheck_seconds)
            return
        if not self._table.claim_turn_resume(conversation_id, turn_id, pause_ref):
            logger.info("turn already resumed; message ignored")
            return
        self._submit(turn, actions, steps=1, conversation=conversation)

    # -- the loop ------------------------------------------------------------------------
    def _advance(self, conversation: Conversation, turn: Turn, step: AgentStep, steps: int) -> None:
        for hosted in step.hosted:  # hosted MCP calls OpenAI ran after our approval: settled, receipted
            action = self._table.get_action(turn.conversation_id, turn.turn_id, hosted.approval_request_id)
            if action is not None and action.hosted:
                self._executor.record_hosted(action, hosted)
        if isinstance(step, Reply):
            ended = None if step.ending == COMPLETED else step.ending
            text = ending_message(step.ending, step.text, step.detail)
            reply = Message(role="assistant", content=text, created_at=iso(utc_now()), ending=ended)
            if self._table.complete_turn(turn.conversation_id, turn.turn_id, reply):
                count("TurnsCompleted")
                if ended:
                    count(f"TurnsEnded{ended.title().replace('_', '')}")  # TurnsEndedRefused, ...
                logger.info("turn completed", extra={"ending": step.ending})
            return
        assert isinstance(step, Pause)
        offered = set(self._offered(conversation.agent)) if self._offered else None
        turn = turn.model_copy(update={"pause_ref": step.pause_ref})
        calls = [call.call_id for call in step.tool_calls]
        actions = [
            self._to_action(turn, seq, call, conversation.tenant, offered).model_copy(update={"pause_calls": calls})
            for seq, call in enumerate(step.tool_calls)
        ]
        gated = [a for a in actions if a.gated and a.error is None and a.grant is None]
        approvals = {a.call_id: self._requester.approvals_for(a) for a in gated}
        stored = [entry for entries in approvals.values() for entry in entries]
        said = Message(role="assistant", content=step.said, created_at=iso(utc_now())) if step.said.strip() else None
        if not self._table.record_pause(turn, step.pause_ref, actions, stored, pending=len(gated), said=said):
            logger.info("pause already recorded")
            return
        for action in actions:
            if action.error is None and action.grant is not None:
                self._executor.run_granted(action)
            elif not action.gated and action.error is None:
                self._executor.run_ungated(action)
        shown = False
        for n, action in enumerate(gated):
            # The pause's last binding shows the conversation as awaiting approval: one write, not two.
            show = step.pause_ref if n == len(gated) - 1 else None
            asked = [approval for approval, _ in approvals[action.call_id]]
            shown = self._requester.request(conversation, action, asked, show_pause=show, user_request=turn.input)
        logger.info("turn paused", extra={"calls": len(actions), "gated": len(gated)})
        if gated:
            if shown or self._table.show_awaiting_approval(turn.conversation_id, turn.turn_id, step.pause_ref):
                return  # calls still wait on approvers: the answer that settles the last one goes on
            # Settled already: every decision failed to be created, or the approvers were quicker.
            current = self._table.get_turn(turn.conversation_id, turn.turn_id)
            if (
                current
                and current.pending == 0
                and self._table.claim_turn_resume(turn.conversation_id, turn.turn_id, step.pause_ref)
            ):
                settled = self._executor.settle_turn(turn.conversation_id, turn.turn_id, step.pause_ref)
                self._submit_or_wait(current, settled, steps)
            return
        actions = of_pause(self._table.list_actions(turn.conversation_id, turn.turn_id), step.pause_ref)
        self._submit_or_wait(turn, actions, steps)

    def _submit_or_wait(self, turn: Turn, actions: list[Action], steps: int) -> None:
        if _awaiting_client(actions):
            self._wait_for_client(turn, actions, steps)
            return
        self._submit(turn, actions, steps)

    def _wait_for_client(self, turn: Turn, actions: list[Action], steps: int) -> None:
        """Calls of the pause are with the client (return of control). The turn is handed back
        (awaiting, nothing pending) and the conversation shows ``awaiting_client``; the last result
        posted resumes it. A call whose result is overdue is failed, so the turn can go on."""
        assert turn.pause_ref is not None
        for action in actions:
            spec = self._tools.get(action.tool)
            timeout = spec.client_timeout_minutes if spec else 60
            if _client_overdue(action, timeout):
                self._executor.expire_client_call(action, timeout)
        self._table.show_awaiting_client(turn.conversation_id, turn.turn_id, turn.pause_ref)
        # Results posted meanwhile saw the turn still ours and resumed nothing: look once more.
        current = of_pause(self._table.list_actions(turn.conversation_id, turn.turn_id), turn.pause_ref)
        if all(a.settled for a in current) and self._table.claim_turn_resume(
            turn.conversation_id, turn.turn_id, turn.pause_ref
        ):
            refreshed = self._table.get_turn(turn.conversation_id, turn.turn_id)
            self._submit(refreshed or turn, current, steps)
            return
        logger.info("turn waits for the client's results", extra={"calls": sum(1 for a in current if not a.settled)})

    def _submit(self, turn: Turn, actions: list[Action], steps: int, conversation: Conversation | None = None) -> None:
        """All outputs of the pause in one submission, never two: after a retry, look first whether
        an earlier attempt already got them to the model. ``conversation``: the turn's, if already read
        (only this turn's worker changes it while the turn is active)."""
        if steps >= MAX_STEPS_PER_TURN:
            self._fail(turn, TooManySteps("too many tool rounds in one turn"))
            return
        if conversation is None:
            conversation = self._table.get_conversation(turn.conversation_id)
        assert conversation is not None and turn.pause_ref is not None
        outputs = [render_output(a) for a in actions]
        call_ids = [o.call_id for o in outputs]
        try:
            self._ensure_time()
            step = self._backend.step_after(conversation, turn.pause_ref, call_ids) if turn.attempts else None
            if step is None:
                step = self._submit_once(conversation, turn.pause_ref, outputs, call_ids)
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

    def _to_action(self, turn: Turn, seq: int, call: ToolCall, tenant: str, offered: set[str] | None) -> Action:
        """A tool call as Signoff keeps it: validated, digested, and gated by the policy (not the model)."""
        try:
            raw = json.loads(call.arguments)
            arguments = raw if isinstance(raw, dict) else {}
        except (json.JSONDecodeError, TypeError):
            arguments = {}
        spec = self._tools.get(call.name)
        error, summary, gated, approval_ids, required, budget_note = None, "", False, [], 1, None
        grant: GrantRef | None = None
        if len(call.arguments.encode("utf-8")) > MAX_ARGUMENTS_BYTES:
            arguments = truncated(call.arguments, MAX_ARGUMENTS_BYTES)[0]
            error = f"the arguments are larger than {MAX_ARGUMENTS_BYTES} bytes; not executed"
        elif spec is None or (offered is not None and not _is_offered(call, offered)):
            error = f"unknown tool {call.name!r}"
        else:
            try:
                parsed = spec.parse_arguments(call.arguments)
            except InvalidToolArguments as exc:
                error = str(exc)
            else:
                # One set of arguments from here on: what the tool's input check returned (a "#4821"
                # it strips, a "90.0" it reads as 90) is what the policy, the budgets, the grants,
                # the digest, the approver, the receipt and the tool see; never the model's spelling.
                arguments = arguments_of(parsed)
                summary = spec.summary(parsed)
                policy = self._policy()
                gated = spec.is_sign_off_request or policy.requires_approval(call.name, arguments)
                key = call_key_of(turn.conversation_id, turn.turn_id, call.call_id)
                if not gated and self._budgets:
                    # Taken now, one call after another: the calls of this pause and of other
                    # conversations never pass a budget together unseen.
                    admission = self._budgets.admit_ungated(key, call.name, arguments, tenant)
                    if admission.refused:
                        error = f"not executed: {admission.refused}"
                    elif admission.needs_sign_off:
                        gated, budget_note = True, "; ".join(admission.needs_sign_off)
                if gated and error is None and not spec.is_sign_off_request and self._grants:
                    grant, error = self._under_grant(key, turn, call, arguments, tenant)
                if gated and grant is None and error is None:
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
            gated_by_budget=budget_note,
            grant=grant,
            tenant=tenant,
            pause_ref=turn.pause_ref,
            hosted=call.kind == "mcp_approval",
        )

    def _under_grant(
        self, key: str, turn: Turn, call: ToolCall, arguments: dict, tenant: str
    ) -> tuple[GrantRef | None, str | None]:
        """A standing approval that covers the call takes the place of a decision: one of its uses,
        and the call counts on its budgets as signed off (a hard cap can still refuse it)."""
        assert self._grants is not None
        grants = self._grants.covering(tenant, call.name, arguments)
        if not grants:
            return None, None
        refusal = self._budgets.admit_approved(key, call.name, arguments, tenant) if self._budgets else None
        if refusal:
            return None, f"not executed: {refusal}"
        use = GrantUse(
            conversation_id=turn.conversation_id,
            turn_id=turn.turn_id,
            call_id=call.call_id,
            digest=action_digest(call.name, arguments, call.call_id),
            at=iso(utc_now()),
        )
        taken = self._grants.take_use(grants, use)
        if taken is None and self._budgets:
            self._budgets.release_call(key, call.name, arguments, tenant)
        return taken, None

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
                tenant=turn.tenant,
            ),
            delay_seconds=delay,
        )

    def _ensure_time(self) -> None:
        if deadline.remaining() < self._model_call_seconds:
            raise OutOfTime("too little time left in this invocation for a model call")

    def _fail(self, turn: Turn, exc: Exception) -> None:
        if isinstance(exc, NotConfigured):
            logger.error("not configured", extra={"why": str(exc)})
        fail_turn(self._table, self._executor, turn.conversation_id, turn.turn_id, _why(exc))

    def _answer_open_calls(self, conversation: Conversation, failed_turn_id: str) -> None:
        """Before a new turn: the agent API may still hold calls of the failed turn open (a model
        refuses to go on until every call has an output). Answer each with what became of it."""
        open_calls = self._backend.open_calls(conversation)
        if open_calls:
            known = {a.call_id: a for a in self._table.list_actions(conversation.conversation_id, failed_turn_id)}
            outputs = []
            for call in open_calls:
                action = known.get(call.call_id)
                if action is not None and action.execution is None:
                    self._executor.abandon(action, NOT_RUN_BECAUSE_TURN_ENDED)
                    action = self._table.get_action(action.conversation_id, action.turn_id, action.call_id)
                if action is not None and not action.settled:
                    # Someone holds its claim: settle it once their lease runs out, then answer.
                    self._executor.settle_turn(action.conversation_id, action.turn_id, action.pause_ref or "")
                    action = self._table.get_action(action.conversation_id, action.turn_id, action.call_id)
                    if action is None or not action.settled:
                        raise CallStillRunning("a call of the failed turn is still executing; retried later")
                outputs.append(
                    render_output(action)
                    if action is not None
                    else ToolOutput(
                        call_id=call.call_id,
                        tool=call.name,
                        output=json.dumps(
                            {"tool": call.name, "execution": "not_executed", "error": NOT_RUN_BECAUSE_TURN_ENDED}
                        ),
                    )
                )
            self._backend.close_calls(conversation, outputs)
            logger.info("open calls of a failed turn answered", extra={"calls": len(outputs)})
        self._table.clear_unanswered_turn(conversation.conversation_id, failed_turn_id)


def _is_offered(call: ToolCall, offered: set[str]) -> bool:
    """A call to a tool the agent is offered; a hosted MCP call, to a server the agent is offered
    (``<label>__*``: OpenAI lists that server's tools itself)."""
    if call.name in offered:
        return True
    label = call.name.partition("__")[0]
    return call.kind == "mcp_approval" and f"{label}__*" in offered


def _why(exc: Exception) -> str:
    """What the user is told when a turn fails (never internal details)."""
    if isinstance(exc, BackendUnavailable):
        return "the agent service was unavailable for too long"
    if isinstance(exc, ContextFull):
        return "the conversation has grown longer than the model can read; please start a new conversation"
    if isinstance(exc, BackendRejected):
        return "the agent service refused the request"
    if isinstance(exc, TooManySteps):
        return "it took more tool rounds than one turn allows"
    if isinstance(exc, NotConfigured):
        return "Signoff is not fully set up yet (a key or the agent catalog is missing or invalid; see the logs)"
    return f"an unexpected error occurred ({type(exc).__name__})"


class TooManySteps(RuntimeError):
    pass


def _awaiting_client(actions: list[Action]) -> bool:
    return any(a.execution is not None and a.execution.status is ExecutionStatus.AWAITING_CLIENT for a in actions)


def _client_overdue(action: Action, timeout_minutes: int) -> bool:
    execution = action.execution
    if execution is None or execution.status is not ExecutionStatus.AWAITING_CLIENT or not execution.claimed_at:
        return False
    handed = parse_iso(execution.claimed_at)
    return handed is not None and utc_now() - handed > timedelta(minutes=timeout_minutes)
