"""ActionExecutor: runs a tool call exactly once, and a gated one only with its own approval."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff.domain.canonical import action_digest
from signoff.domain.models import Action, Approval, ApprovalState, Execution, ExecutionStatus
from signoff.domain.tools import InvalidToolArguments, ToolContext, ToolRegistry

if TYPE_CHECKING:
    from signoff.dal.table import SignoffTable

logger = Logger(child=True)


def approval_matches(action: Action, approval: Approval) -> bool:
    """The approval was granted for exactly this call: same id, tool, canonical arguments and call id."""
    digest = action_digest(action.tool, action.arguments, action.call_id)
    return (
        approval.state is ApprovalState.SETTLED
        and approval.outcome is not None
        and approval.outcome.permits_execution
        and action.approval_id == approval.approval_id
        and approval.call_id == action.call_id
        and approval.conversation_id == action.conversation_id
        and approval.tool == action.tool
        and approval.digest == digest == action.digest
    )


class ActionExecutor:
    def __init__(self, table: SignoffTable, tools: ToolRegistry, lease_seconds: int = 300):
        self._table = table
        self._tools = tools
        self._lease = lease_seconds

    def run_ungated(self, action: Action) -> None:
        if action.gated:
            raise ValueError("a gated action needs its approval")
        self._run(action)

    def run_approved(self, action: Action, approval: Approval) -> None:
        if not approval_matches(action, approval):
            logger.warning("approval does not match the call; not executed", extra={"call_id": action.call_id})
            if self._table.claim_execution(action.conversation_id, action.call_id, self._lease):
                self._table.finish_execution(
                    action.conversation_id,
                    action.call_id,
                    Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": "approval does not match"}),
                )
            return
        self._run(action)

    def settle_turn(self, conversation_id: str, turn_id: str) -> list[Action]:
        """Run every approved call of a turn that has not run yet; return the turn's actions as they now are."""
        for action in self._table.list_actions(conversation_id, turn_id):
            if action.settled or not action.gated or action.approval_id is None:
                continue
            approval = self._table.get_approval(action.approval_id)
            if approval and approval.state is ApprovalState.SETTLED:
                self.run_approved(action, approval)
        return self._table.list_actions(conversation_id, turn_id)

    def _run(self, action: Action) -> None:
        if action.settled:
            return
        if not self._table.claim_execution(action.conversation_id, action.call_id, self._lease):
            return  # another invocation holds it, or it is already done
        execution = self._invoke(action)
        self._table.finish_execution(action.conversation_id, action.call_id, execution)
        logger.info(
            "action settled",
            extra={"tool": action.tool, "call_id": action.call_id, "execution": execution.status.value},
        )

    def _invoke(self, action: Action) -> Execution:
        spec = self._tools.get(action.tool)
        if spec is None:
            return Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": "unknown tool"})
        try:
            args = spec.parse_arguments(action.arguments)
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
