"""ActionExecutor: runs a tool call at most once, and a gated one only with its own approval.

A call is claimed (no execution → executing) by one invocation before its tool is invoked, and
a claim is never taken twice. A claim whose invocation died (its lease ran out) is settled as
failed with an unknown outcome rather than run again: the tool may already have acted, and the
idempotency key it was given is its own defence, not a licence for us to call it twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from signoff.domain.binding import approval_matches, grant_matches
from signoff.domain.canonical import canonical_json
from signoff.domain.limits import bounded_result
from signoff.domain.models import (
    Action,
    Approval,
    DecisionStatus,
    Execution,
    ExecutionStatus,
    HostedCall,
    iso,
    of_pause,
    utc_now,
)
from signoff.domain.tools import (
    HOSTED_APPROVE_OR_DENY,
    InvalidToolArguments,
    ToolContext,
    ToolFailed,
    ToolRegistry,
    ToolUnreachable,
    arguments_of,
)
from signoff.logic.receipts import receipt_needed
from signoff.observability import count, traced

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore
    from signoff.logic.budgets import BudgetKeeper
    from signoff.logic.receipts import ReceiptIssuer

logger = Logger(child=True)


class ActionExecutor:
    def __init__(
        self,
        table: SignoffStore,
        tools: ToolRegistry,
        lease_seconds: int = 300,
        budgets: BudgetKeeper | None = None,
        receipts: ReceiptIssuer | None = None,
    ):
        self._receipts = receipts
        self._table = table
        self._tools = tools
        self._lease = lease_seconds
        self._budgets = budgets

    def abandon(self, action: Action, why: str) -> bool:
        """A call that never started will never run (its turn ended): settled as not executed, and
        whatever budget it held is given back. True if this call settled it."""
        abandoned = self._table.abandon_action(action, why)
        if abandoned and self._budgets:
            self._budgets.release(action)
        return abandoned

    def record_client_result(self, action: Action, output: object) -> bool:
        """The client's result of a call handed to it: awaiting_client → executed, once. False when
        the call is not (or no longer) waiting for the client."""
        execution = Execution(status=ExecutionStatus.EXECUTED, result=bounded_result(output))
        recorded = self._table.settle_client_call(action, execution)
        if recorded:
            count("ActionsExecuted")
            logger.info("client result recorded", extra={"tool": action.tool, "call_id": action.call_id})
        return recorded

    def expire_client_call(self, action: Action, timeout_minutes: int) -> bool:
        """No result from the client in time: failed, outcome unknown (the client may have run it)."""
        execution = Execution(
            status=ExecutionStatus.FAILED,
            result={"error": f"the client sent no result within {timeout_minutes} minutes; outcome unknown"},
            outcome_unknown=True,
        )
        expired = self._table.settle_client_call(action, execution)
        if expired:
            count("ActionsFailed")
            logger.warning("client result overdue; call failed", extra={"call_id": action.call_id})
        return expired

    # run_ungated, run_approved and run_granted return the call as it now is when they know it (they
    # settled it, or it was not theirs to run and is as given); None when someone else holds it.
    def run_ungated(self, action: Action) -> Action | None:
        if action.gated:
            raise ValueError("a gated action needs its approval")
        if action.settled:
            return action
        if action.execution is None and self._table.claim_execution(action):
            return self._finish(action, self._invoke(action))
        self._settle_if_stale(action)
        return None

    def run_approved(self, action: Action) -> Action | None:
        """Run a call whose verdict is approved or modified, after re-checking what was approved."""
        return self._run_approved(action, None)[0]

    def _run_approved(self, action: Action, resume_pause: str | None) -> tuple[Action | None, bool]:
        """``run_approved``; with ``resume_pause`` (every other call of the pause is settled), the
        call's receipt also claims the turn's resume when it can: whether it did."""
        if action.settled or action.verdict not in (DecisionStatus.APPROVED, DecisionStatus.MODIFIED):
            return action, False
        if action.execution is None and self._table.claim_execution(action):
            return self._run_claimed(action, resume_pause)
        self._settle_if_stale(action)
        return None, False

    def run_granted(self, action: Action) -> Action | None:
        """Run a call signed off by a standing approval, after checking the grant's use is this call's."""
        if action.settled or action.grant is None:
            return action
        if action.execution is None and self._table.claim_execution(action):
            grant = self._table.get_grant(action.grant.id)
            if grant is not None and grant_matches(action, grant):
                return self._finish(action, self._invoke(action))
            logger.warning("grant does not match the call; not executed", extra={"call_id": action.call_id})
            return self._finish(
                action, Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": "grant does not match"})
            )
        self._settle_if_stale(action)
        return None

    def record_hosted(self, action: Action, call: HostedCall) -> Action | None:
        """What OpenAI reports of a hosted MCP call it ran after Signoff approved it: executed (with
        its receipt, made now from what really ran) or failed. Once; None if already recorded."""
        if action.execution is None or action.execution.status is not ExecutionStatus.DELEGATED:
            return None
        if call.error:
            execution = Execution(status=ExecutionStatus.FAILED, result={"error": call.error[:2000]})
        else:
            execution = Execution(status=ExecutionStatus.EXECUTED, result={"output": (call.output or "")[:20_000]})
        execution = execution.model_copy(update={"result": bounded_result(execution.result)})
        if self._receipts is not None and receipt_needed(action, execution):
            written = self._receipts.finish(action, execution, from_status=ExecutionStatus.DELEGATED) is not None
        else:
            written = self._table.settle_delegated_call(action, execution)
        if not written:
            return None
        count(f"Actions{execution.status.value.title()}")
        logger.info("hosted call settled", extra={"call_id": action.call_id, "execution": execution.status.value})
        return self._table.get_action(action.conversation_id, action.turn_id, action.call_id)

    def run_scheduled(self, action: Action) -> None:
        """Run a call approved for later, once its time has come (the reconciler calls this)."""
        if action.verdict is DecisionStatus.SCHEDULED and self._table.claim_scheduled_execution(action):
            self._run_claimed(action)

    def settle_turn(
        self, conversation_id: str, turn_id: str, pause_ref: str, calls: list[Action] | None = None
    ) -> list[Action]:
        """Run every call of the turn's pause that may run and has not (ungated, or approved); settle
        the ones a dead invocation left claimed; return the pause's calls as they now are (read again
        only when another invocation held one of them). ``calls``: the pause's calls, if just read."""
        return self.settle_pause(conversation_id, turn_id, pause_ref, calls)[0]

    def settle_pause(
        self,
        conversation_id: str,
        turn_id: str,
        pause_ref: str,
        calls: list[Action] | None = None,
        resume: bool = False,
    ) -> tuple[list[Action], bool]:
        """``settle_turn``; with ``resume`` (the pause has every verdict), an approved call that settles
        last also claims the turn's resume in its receipt's write. The calls, and whether it did."""
        if calls is None:
            calls = of_pause(self._table.list_actions(conversation_id, turn_id), pause_ref)
        now: list[Action] = []
        resumed = False
        for n, action in enumerate(calls):
            current: Action | None = action
            if action.settled:
                pass
            elif action.grant is not None:
                current = self.run_granted(action)
            elif action.gated:
                last = resume and all(a.settled for a in now) and all(a.settled for a in calls[n + 1 :])
                current, resumed = self._run_approved(action, pause_ref if last else None)
            elif action.error is None:
                current = self.run_ungated(action)
            if current is None:
                return of_pause(self._table.list_actions(conversation_id, turn_id), pause_ref), False
            now.append(current)
        return now, resumed

    def _settle_if_stale(self, action: Action) -> None:
        """Someone holds the claim: if their lease ran out they died mid-call, and we say so."""
        current = self._table.get_action(action.conversation_id, action.turn_id, action.call_id)
        if current is None or current.settled or current.execution is None:
            return
        if current.execution.status is ExecutionStatus.EXECUTING and self._table.settle_stale_execution(
            current, self._lease
        ):
            logger.warning("a claimed call's invocation died; outcome unknown, not retried")

    def _run_claimed(self, action: Action, resume_pause: str | None = None) -> tuple[Action | None, bool]:
        """The claim is ours: run the call if its approvals still cover exactly it, else record why not.
        The call as written, and whether its write also claimed the turn's resume (``resume_pause``)."""
        approvals = self._table.get_approvals(action.approval_ids)
        if approval_matches(action, approvals):
            return self._finish_resuming(action, self._invoke(action), approvals, resume_pause)
        logger.warning("approval does not match the call; not executed", extra={"call_id": action.call_id})
        refused = Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": "approval does not match"})
        return self._finish(action, refused), False

    def _finish(self, action: Action, execution: Execution) -> Action | None:
        """Record what the call came to; the call as written, or None if someone else settled it first."""
        return self._finish_resuming(action, execution, None, None)[0]

    def _finish_resuming(
        self,
        action: Action,
        execution: Execution,
        approvals: list[Approval] | None,
        resume_pause: str | None,
    ) -> tuple[Action | None, bool]:
        """``_finish``; a call that ran (not one handed to the client) may claim its turn's resume in
        its receipt's write (``resume_pause``): whether it did."""
        execution = execution.model_copy(update={"result": bounded_result(execution.result)})
        receipt, resumed = None, False
        if self._receipts is not None and receipt_needed(action, execution):
            if not execution.status.is_final:
                resume_pause = None  # with the client: the turn waits for its result
            receipt, resumed = self._receipts.finish_resuming(action, execution, approvals, resume_pause)
            written = receipt is not None
        else:
            written = self._table.finish_execution(action, execution)
        if self._budgets and execution.certainly_did_not_act:
            # Only a call that certainly did not act gives its reservation back: one that timed out
            # or lost its connection may have paid, and keeps counting (outcome unknown).
            self._budgets.release(action)
        count(f"Actions{execution.status.value.title().replace('_', '')}")  # ActionsExecuted, ActionsFailed, ...
        logger.info(
            "action settled",
            extra={"tool": action.tool, "call_id": action.call_id, "execution": execution.status.value},
        )
        if not written:
            return None, False
        stored = execution.model_dump(mode="json", exclude_none=True)  # as the table keeps it
        return action.as_written(execution=stored, receipt=receipt or action.receipt), resumed

    def _invoke(self, action: Action) -> Execution:
        spec = self._tools.get(action.tool)
        if spec is None:
            return Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": "unknown tool"})
        try:
            args = spec.parse_arguments(action.arguments_to_run)
        except InvalidToolArguments as exc:
            return Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": str(exc)})
        if canonical_json(arguments_of(args)) != canonical_json(action.arguments_to_run):
            # The gate kept the validated arguments; a check that changes them again (one that is not
            # idempotent, or a call kept before the gate validated) would run something nobody saw.
            logger.warning("the tool's check changes the approved arguments; not executed", extra={"tool": action.tool})
            return Execution(
                status=ExecutionStatus.NOT_EXECUTED,
                result={"error": "the tool's input check changes the arguments that were gated; not executed"},
            )
        if action.hosted:
            if action.verdict is DecisionStatus.MODIFIED:
                # The Responses API takes approve or deny for a hosted call, never other arguments.
                return Execution(
                    status=ExecutionStatus.NOT_EXECUTED,
                    result={"error": HOSTED_APPROVE_OR_DENY},
                )
            # OpenAI runs it once the approval goes back with the turn's outputs; the response's
            # mcp_call item settles it (record_hosted).
            return Execution(status=ExecutionStatus.DELEGATED, result={"delegated_to": "openai"})
        if spec.runs_on_client:
            # Return of control: the client runs it and posts the result (ConversationService).
            return Execution(
                status=ExecutionStatus.AWAITING_CLIENT,
                result={"arguments": arguments_of(args)},
                claimed_at=iso(utc_now()),
            )
        ctx = ToolContext(
            idempotency_key=f"{action.conversation_id}:{action.turn_id}:{action.call_id}",
            conversation_id=action.conversation_id,
            call_id=action.call_id,
            tool=action.tool,
        )
        try:
            with traced(f"tool {action.tool}", tool=action.tool, call_id=action.call_id):
                result = spec.run(args, ctx)
        except ToolFailed as exc:  # the tool said it did not do it: the model hears what it said
            logger.warning("tool refused the call", extra={"tool": action.tool, "call_id": action.call_id})
            failure = {"error": str(exc)} if exc.detail is None else {"error": str(exc), "detail": exc.detail}
            return Execution(status=ExecutionStatus.FAILED, result=failure)
        except ToolUnreachable as exc:
            logger.warning("tool did not answer", extra={"tool": action.tool, "call_id": action.call_id})
            unknown: dict[str, Any] = {"error": f"{exc}; not retried, outcome unknown"}
            if exc.detail is not None:
                unknown["detail"] = exc.detail
            return Execution(status=ExecutionStatus.FAILED, result=unknown, outcome_unknown=True)
        except Exception as exc:  # it may have acted before it raised: an outcome the model should hear
            logger.exception("tool failed", extra={"tool": action.tool, "call_id": action.call_id})
            return Execution(
                status=ExecutionStatus.FAILED,
                result={"error": f"{type(exc).__name__}; outcome unknown"},
                outcome_unknown=True,
            )
        return Execution(status=ExecutionStatus.EXECUTED, result=result)
