"""Reconciler: the safety net for callbacks and queue messages that never came.

Runs on a schedule. Each approval still pending past its check-up time is re-fetched from
Handover; an answered one is settled exactly as a callback would, an unanswered one is looked
at again later. Each turn left queued, or settled but not resumed, is sent to the worker again.
It never waits on a human: one pass, then it exits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff.domain.models import Turn, TurnStatus, iso, utc_now
from signoff.domain.ports import ApprovalService, ApprovalServiceError, WorkMessage, WorkQueue
from signoff.logic.approvals import ApprovalSettler, SettleResult

if TYPE_CHECKING:
    from signoff.dal.table import SignoffTable

logger = Logger(child=True)


@dataclass
class ReconcileReport:
    checked: int = 0
    settled: int = 0
    still_pending: int = 0
    errors: int = 0
    turns_redriven: int = 0
    settled_ids: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        table: SignoffTable,
        service: ApprovalService,
        settler: ApprovalSettler,
        queue: WorkQueue,
        recheck_after_seconds: int,
        unbound_grace_seconds: int = 300,
    ):
        self._queue = queue
        self._table = table
        self._service = service
        self._settler = settler
        self._recheck = timedelta(seconds=recheck_after_seconds)
        self._grace = timedelta(seconds=unbound_grace_seconds)

    def run_once(self, limit: int = 100) -> ReconcileReport:
        report = ReconcileReport()
        now = utc_now()
        approvals, turns = self._table.due_items(now, limit=limit)
        for turn in turns:
            self._redrive(turn, now, report)
        for approval in approvals:
            report.checked += 1
            if approval.decision_id is None:
                # The worker died between storing the approval and binding its decision: nobody was
                # asked, so the call must not run. Give it a grace period first.
                if approval.created_at < iso(now - self._grace):
                    self._settler.settle(approval, None)
                    report.settled += 1
                    report.settled_ids.append(approval.approval_id)
                else:
                    self._table.postpone_approval(approval.approval_id, now + self._recheck)
                continue
            try:
                decision = self._service.get_decision(approval.decision_id)
            except ApprovalServiceError as exc:
                report.errors += 1
                logger.warning("decision fetch failed", extra={"error": type(exc).__name__})
                self._table.postpone_approval(approval.approval_id, now + self._recheck)
                continue
            result = self._settler.settle(approval, decision)
            if result is SettleResult.PENDING:
                report.still_pending += 1
                self._table.postpone_approval(approval.approval_id, now + self._recheck)
            else:
                report.settled += 1
                report.settled_ids.append(approval.approval_id)
        return report

    def _redrive(self, turn: Turn, now, report: ReconcileReport) -> None:
        """A turn nobody picked up: its queue message was lost (or is late). Send it again; the
        worker's claims make a duplicate harmless."""
        if turn.status is TurnStatus.QUEUED:
            message = WorkMessage(kind="start_turn", conversation_id=turn.conversation_id, turn_id=turn.turn_id)
        elif turn.status is TurnStatus.AWAITING_APPROVAL and turn.pending == 0 and turn.pause_ref:
            message = WorkMessage(
                kind="resume_turn", conversation_id=turn.conversation_id, turn_id=turn.turn_id, pause_ref=turn.pause_ref
            )
        else:
            self._table.postpone_turn(turn.conversation_id, turn.turn_id, None)
            return
        self._queue.send(message)
        self._table.postpone_turn(turn.conversation_id, turn.turn_id, now + self._recheck)
        report.turns_redriven += 1
        logger.info("turn re-driven", extra={"turn_id": turn.turn_id, "kind": message.kind})
