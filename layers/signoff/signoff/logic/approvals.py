"""Asking for sign-off and recording the answer.

``ApprovalRequester`` turns each gated call into an approval bound to that call plus a Handover
decision whose callback URL carries a signed token. ``ApprovalSettler`` records an answer
exactly once (callback and reconciler share it), runs the approved call and, when the last
approval of a pause is settled, hands the turn back to the worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff.domain.models import Action, Approval, Conversation, Decision, TurnStatus, iso, utc_now
from signoff.domain.ports import ApprovalService, DecisionRequest, WorkMessage, WorkQueue
from signoff.domain.tokens import issue_token
from signoff.domain.tools import ToolRegistry
from signoff.logic.executor import ActionExecutor

if TYPE_CHECKING:
    from signoff.dal.table import SignoffTable

logger = Logger(child=True)

MAX_CONTEXT_CHARS = 4000


@dataclass(frozen=True)
class ApprovalPolicy:
    approver: str
    timeout_minutes: int
    public_api_url: str
    reconcile_after_seconds: int


class ApprovalRequester:
    def __init__(
        self,
        table: SignoffTable,
        service: ApprovalService,
        tools: ToolRegistry,
        signing_key: bytes,
        policy: ApprovalPolicy,
    ):
        self._table = table
        self._service = service
        self._tools = tools
        self._key = signing_key
        self._policy = policy

    def request(self, conversation: Conversation, action: Action) -> None:
        """Create the approval and its decision; when no decision can be had, settle it as not requested."""
        assert action.approval_id is not None
        approval = Approval(
            approval_id=action.approval_id,
            conversation_id=action.conversation_id,
            turn_id=action.turn_id,
            call_id=action.call_id,
            tool=action.tool,
            digest=action.digest,
            created_at=iso(utc_now()),
        )
        self._table.put_approval(approval, utc_now() + timedelta(seconds=self._policy.reconcile_after_seconds))
        token = issue_token(self._key, approval.approval_id)
        try:
            decision_id = self._service.create_decision(self._decision_request(conversation, action, token))
        except Exception as exc:  # any failure to ask means the call does not run
            logger.warning(
                "decision could not be created; call not executed",
                extra={"call_id": action.call_id, "error": type(exc).__name__},
            )
            self._table.settle_approval(approval, None)
            return
        self._table.attach_decision(approval, decision_id)
        logger.info("decision requested", extra={"call_id": action.call_id, "decision_id": decision_id})

    def _decision_request(self, conversation: Conversation, action: Action, token: str) -> DecisionRequest:
        spec = self._tools.get(action.tool)
        assert spec is not None
        args = spec.parse_arguments(action.arguments)
        urgency = getattr(args, "urgency", spec.urgency) if spec.is_sign_off_request else spec.urgency
        context_parts = [
            f"The agent asks to call `{action.tool}` in conversation {conversation.conversation_id}.",
            f"Arguments: {json.dumps(action.arguments, ensure_ascii=False, sort_keys=True)}",
            f"Call id: {action.call_id}; arguments digest: {action.digest[:16]}",
        ]
        if spec.is_sign_off_request and getattr(args, "context", ""):
            context_parts.insert(0, args.context)
        return DecisionRequest(
            action=spec.summary(args)[:500],
            context="\n".join(context_parts)[:MAX_CONTEXT_CHARS],
            approver=self._policy.approver,
            urgency=urgency,
            timeout_minutes=self._policy.timeout_minutes,
            callback_url=f"{self._policy.public_api_url}/callbacks/handover/{token}",
        )


class SettleResult(StrEnum):
    SETTLED = "settled"  # this invocation recorded the outcome
    ALREADY_SETTLED = "already_settled"  # someone else did; nothing changed
    PENDING = "pending"  # the approver has not answered yet


class ApprovalSettler:
    def __init__(self, table: SignoffTable, executor: ActionExecutor, queue: WorkQueue):
        self._table = table
        self._executor = executor
        self._queue = queue

    def settle(self, approval: Approval, decision: Decision | None) -> SettleResult:
        if decision is not None and not decision.status.is_terminal:
            return SettleResult.PENDING
        won = self._table.settle_approval(approval, decision)
        self.finish(approval.approval_id)
        return SettleResult.SETTLED if won else SettleResult.ALREADY_SETTLED

    def finish(self, approval_id: str) -> None:
        """After an outcome is recorded: run the call if approved, resume the turn if it was the last one.

        Idempotent, so a retry after a crash at any point completes what was left.
        """
        approval = self._table.get_approval(approval_id)
        if approval is None or approval.outcome is None:
            return
        action = self._table.get_action(approval.conversation_id, approval.call_id)
        if action is not None and approval.outcome.permits_execution:
            self._executor.run_approved(action, approval)
        turn = self._table.get_turn(approval.conversation_id, approval.turn_id)
        if turn and turn.status is TurnStatus.AWAITING_APPROVAL and turn.pending == 0 and turn.pause_ref:
            self._queue.send(
                WorkMessage(
                    kind="resume_turn",
                    conversation_id=turn.conversation_id,
                    turn_id=turn.turn_id,
                    pause_ref=turn.pause_ref,
                )
            )
