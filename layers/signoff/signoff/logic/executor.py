"""ActionExecutor: runs a tool call exactly once, and a gated one only with its own approval."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff.chaos import crash_point
from signoff.domain.binding import approval_matches
from signoff.domain.models import Action, DecisionStatus, Execution, ExecutionStatus
from signoff.domain.tools import InvalidToolArguments, ToolContext, ToolRegistry

if TYPE_CHECKING:
    from signoff.dal.table import SignoffTable

logger = Logger(child=True)


class ActionExecutor:
    def __init__(self, table: SignoffTable, tools: ToolRegistry, lease_seconds: int = 300):
        self._table = table
        self._tools = tools
        self._lease = lease_seconds

    def run_ungated(self, action: Action) -> None:
        if action.gated:
            raise ValueError("a gated action needs its approval")
        if not action.settled and self._table.claim_execution(action.conversation_id, action.call_id, self._lease):
            self._finish(action, self._invoke(action))

    def run_approved(self, action: Action) -> None:
        """Run a call whose verdict is approved or modified, after re-checking what was approved."""
        if action.settled or action.verdict not in (DecisionStatus.APPROVED, DecisionStatus.MODIFIED):
            return
        if self._table.claim_execution(action.conversation_id, action.call_id, self._lease):
            self._run_claimed(action)

    def run_scheduled(self, action: Action) -> None:
        """Run a call approved for later, once its time has come (the reconciler calls this)."""
        if action.verdict is DecisionStatus.SCHEDULED and self._table.claim_scheduled_execution(
            action.conversation_id, action.call_id
        ):
            self._run_claimed(action)

    def settle_turn(self, conversation_id: str, turn_id: str) -> list[Action]:
        """Run every approved call of a turn that has not run yet; return the turn's actions as they now are."""
        for action in self._table.list_actions(conversation_id, turn_id):
            if action.gated and not action.settled:
                self.run_approved(action)
        return self._table.list_actions(conversation_id, turn_id)

    def _run_claimed(self, action: Action) -> None:
        """The claim is ours: run the call if its approvals still cover exactly it, else record why not."""
        if approval_matches(action, self._table.get_approvals(action.approval_ids)):
            self._finish(action, self._invoke(action))
            return
        logger.warning("approval does not match the call; not executed", extra={"call_id": action.call_id})
        self._finish(
            action, Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": "approval does not match"})
        )

    def _finish(self, action: Action, execution: Execution) -> None:
        self._table.finish_execution(action.conversation_id, action.call_id, execution)
        crash_point("after_execution")
        logger.info(
            "action settled",
            extra={"tool": action.tool, "call_id": action.call_id, "execution": execution.status.value},
        )

    def _invoke(self, action: Action) -> Execution:
        spec = self._tools.get(action.tool)
        if spec is None:
            return Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": "unknown tool"})
        try:
            args = spec.parse_arguments(action.arguments_to_run)
        except InvalidToolArguments as exc:
            return Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": str(exc)})
        ctx = ToolContext(
            idempotency_key=f"{action.conversation_id}:{action.call_id}",
            conversation_id=action.conversation_id,
            call_id=action.call_id,
        )
        try:
            result = spec.run(args, ctx)
        except Exception as exc:  # a tool's failure is an outcome the model should hear about
            logger.exception("tool failed", extra={"tool": action.tool, "call_id": action.call_id})
            return Execution(status=ExecutionStatus.FAILED, result={"error": type(exc).__name__})
        return Execution(status=ExecutionStatus.EXECUTED, result=result)
