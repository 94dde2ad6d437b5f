"""ApprovalCallback: what happens when Handover calls back.

The callback is only a trigger. The token must verify (constant time, no I/O before that),
the decision is re-fetched from Handover with our API key, and the outcome is recorded with a
conditional write, so forged, duplicate, late and reordered callbacks change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff import deadline
from signoff.domain.models import Approval, ApprovalState
from signoff.domain.ports import ApprovalService
from signoff.domain.tokens import InvalidCallbackToken, verify_token
from signoff.logic.approvals import ApprovalSettler, SettleResult

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore

logger = Logger(child=True)


class CallbackOutcome(StrEnum):
    SETTLED = "settled"
    ALREADY_SETTLED = "already_settled"
    PENDING = "pending"
    NOT_READY = "not_ready"  # the decision id is not bound yet; the reconciler will settle it


class ForgedCallback(PermissionError):
    """The token is malformed or was not signed by us."""


class UnknownApproval(LookupError):
    """The token is genuine but names no approval we hold."""


BINDING_WAITS = (0.1, 0.3, 0.6)  # seconds between looks for a binding the worker is about to write


class ApprovalCallback:
    def __init__(
        self,
        table: SignoffStore,
        service: ApprovalService,
        settler: ApprovalSettler,
        signing_key: bytes,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._table = table
        self._service = service
        self._settler = settler
        self._key = signing_key
        self._sleep = sleep

    def handle(self, token: str) -> CallbackOutcome:
        try:
            approval_id = verify_token(self._key, token)
        except InvalidCallbackToken as exc:
            raise ForgedCallback(str(exc)) from exc
        approval = self._table.get_approval(approval_id)
        if approval is None:
            raise UnknownApproval(approval_id)
        if approval.state is ApprovalState.SETTLED:
            self._settler.finish(approval_id)  # completes work a crashed invocation left, if any
            return CallbackOutcome.ALREADY_SETTLED
        if approval.decision_id is None:
            bound = self._bound_soon(approval_id)
            if bound is None:
                return CallbackOutcome.NOT_READY
            approval = bound
        decision = self._service.get_decision(approval.decision_id)
        if decision.id != approval.decision_id:
            raise ForgedCallback("decision id mismatch")
        result = self._settler.settle(approval, decision)
        logger.info(
            "callback handled",
            extra={
                "approval_id": approval_id,
                "tenant": approval.tenant,
                "conversation_id": approval.conversation_id,
                "turn_id": approval.turn_id,
                "call_id": approval.call_id,
                "decision_id": approval.decision_id,
                "decision_status": decision.status.value,
                "result": result.value,
            },
        )
        return {
            SettleResult.SETTLED: CallbackOutcome.SETTLED,
            SettleResult.ALREADY_SETTLED: CallbackOutcome.ALREADY_SETTLED,
            SettleResult.PENDING: CallbackOutcome.PENDING,
        }[result]

    def _bound_soon(self, approval_id: str) -> Approval | None:
        """The approval once its decision is bound, if that happens within a second: an approver (a
        bot, a test) can answer before the worker has written the decision id it just got back.
        Otherwise None: the reconciler settles it (the answer is not lost, only later)."""
        for wait in BINDING_WAITS:
            if deadline.remaining() < wait + 5:
                return None
            self._sleep(wait)
            approval = self._table.get_approval(approval_id)
            if approval is None or approval.state is not ApprovalState.PENDING:
                return None
            if approval.decision_id is not None:
                return approval
        return None
