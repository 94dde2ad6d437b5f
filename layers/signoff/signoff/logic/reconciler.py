"""Reconciler: the safety net for callbacks and queue messages that never came, and the clock
for calls approved to run later.

Runs on a schedule, pass after pass until nothing is due (or its time is nearly up), never
waiting on a human:
- an approval still pending past its check-up time is re-fetched from Handover and settled
  exactly as a callback would; an unanswered one is looked at again later;
- an approval answered but whose call has no verdict yet (a crash in between) is finished;
- a decision Handover answers in a shape we cannot read is looked at again with backoff and,
  after ``MAX_READ_FAILURES`` looks, settled as not executed (fail closed, never stranded);
- a turn left queued, or with every verdict in but not resumed, is sent to the worker again;
- a turn waiting on approvals is checked for calls whose approvals are missing (settled as not
  requested), then looked at again much later: its approvals carry it;
- a call approved for later (``scheduled``) runs once its ``execute_at`` has come.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff import deadline
from signoff.domain.models import Approval, ApprovalState, Turn, TurnStatus, iso, parse_iso, utc_now
from signoff.domain.ports import (
    ApprovalService,
    ApprovalServiceError,
    UnreadableDecision,
    WorkMessage,
    WorkQueue,
)
from signoff.logic.approvals import ApprovalSettler, SettleResult
from signoff.logic.executor import ActionExecutor
from signoff.logic.turn_failure import fail_turn

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore

logger = Logger(child=True)

MAX_READ_FAILURES = 6  # with backoff from the recheck interval: about 63 intervals before giving up
WAITING_TURN_RECHECK_FACTOR = 12  # a turn waiting on approvals is carried by them; look rarely
MAX_PENDING_RECHECK = timedelta(hours=1)  # the longest a pending decision goes unlooked at
PASS_LIMIT = 400  # due items one pass lists: about 24 from each shard of the due index
MAX_PASSES = 100  # passes of one invocation at most (about 40,000 due items)
PASS_RESERVE_SECONDS = 20.0  # no new pass with less time than this left (a pass's Handover reads)


@dataclass
class ReconcileReport:
    checked: int = 0
    settled: int = 0
    still_pending: int = 0
    errors: int = 0
    turns_redriven: int = 0
    scheduled_run: int = 0
    unreadable_settled: int = 0
    missing_approvals_settled: int = 0
    oldest_due_age_seconds: float = 0.0  # how long the longest-waiting due item had waited (alarmed on)
    passes: int = 0
    more: bool = False  # the last pass left due items for the next

    def add_counts(self, other: ReconcileReport) -> None:
        """Add what ``other`` did (its counts; not its passes, age or ``more``)."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def absorb(self, other: ReconcileReport) -> None:
        """Add a later pass: counts summed, the first pass's oldest age (the backlog's), its ``more``."""
        self.add_counts(other)
        self.passes += other.passes
        self.oldest_due_age_seconds = self.oldest_due_age_seconds or other.oldest_due_age_seconds
        self.more = other.more


_COUNTS = tuple(f.name for f in fields(ReconcileReport) if f.name not in ("oldest_due_age_seconds", "passes", "more"))


class Reconciler:
    def __init__(
        self,
        table: SignoffStore,
        service: ApprovalService,
        settler: ApprovalSettler,
        executor: ActionExecutor,
        queue: WorkQueue,
        recheck_after_seconds: int,
        unbound_grace_seconds: int = 300,
        workers: int = 1,
    ):
        # workers: due approvals of a pass handled at once (each waits mostly on a Handover GET); every
        # step is a conditional write, so two at once on the same call still settle it once.
        self._workers = max(1, workers)
        self._table = table
        self._service = service
        self._settler = settler
        self._executor = executor
        self._queue = queue
        self._recheck = timedelta(seconds=recheck_after_seconds)
        self._grace = timedelta(seconds=unbound_grace_seconds)

    def run(self, limit: int = PASS_LIMIT, max_passes: int = MAX_PASSES) -> ReconcileReport:
        """Passes until nothing more is due, the invocation's time is nearly up (a pass is left the
        time one takes at most), or ``max_passes``: a backlog drains in one invocation, not one page
        of it every schedule."""
        total = ReconcileReport()
        for _ in range(max_passes):
            report = self.run_once(limit)
            total.absorb(report)
            if not report.more or deadline.remaining() < PASS_RESERVE_SECONDS:
                break
        return total

    def run_once(self, limit: int = PASS_LIMIT) -> ReconcileReport:
        report = ReconcileReport()
        now = utc_now()
        work = self._table.due_work(now, limit=limit)
        report.passes, report.more = 1, work.more
        if work.oldest_due_at:
            fell_due = datetime.fromisoformat(work.oldest_due_at.replace("Z", "+00:00"))
            report.oldest_due_age_seconds = max(0.0, (now - fell_due).total_seconds())
        for part in self._map(lambda approval: self._one_approval(approval, now), work.approvals):
            report.add_counts(part)
        for action in work.actions:
            self._executor.run_scheduled(action)
            report.scheduled_run += 1
        for turn in work.turns:
            self._redrive(turn, now, report)
        return report

    def _map(self, step: Callable[[Approval], ReconcileReport], approvals: list[Approval]) -> list[ReconcileReport]:
        """``step`` over the approvals, ``workers`` at a time, each in a copy of this context (the
        invocation's deadline, its log keys)."""
        if self._workers == 1 or len(approvals) < 2:
            return [step(a) for a in approvals]
        contexts = [contextvars.copy_context() for _ in approvals]  # copied here, in the invocation's thread
        with ThreadPoolExecutor(min(self._workers, len(approvals))) as pool:
            return list(pool.map(lambda context, approval: context.run(step, approval), contexts, approvals))

    def _one_approval(self, approval: Approval, now: datetime) -> ReconcileReport:
        report = ReconcileReport(checked=1)
        self._approval(approval, now, report)
        return report

    def _approval(self, approval: Approval, now: datetime, report: ReconcileReport) -> None:
        if approval.state is ApprovalState.SETTLED:
            self._settler.finish(approval.approval_id)  # its call may still lack a verdict
            self._table.retire_approval(approval.approval_id)
            return
        if approval.decision_id is None:
            # The worker died between storing the approval and binding its decision: nobody was
            # asked, so the call must not run. Give it a grace period first.
            if approval.created_at < iso(now - self._grace):
                self._settler.settle(approval, None)
                report.settled += 1
            else:
                self._table.postpone_approval(approval.approval_id, now + self._recheck)
            return
        try:
            decision = self._service.get_decision(approval.decision_id)
        except UnreadableDecision:
            report.errors += 1
            failures = approval.read_failures + 1
            if failures >= MAX_READ_FAILURES:
                logger.error(
                    "decision unreadable; settled as not executed",
                    extra={"decision_id": approval.decision_id, "looks": failures},
                )
                self._settler.settle(approval, None)
                report.unreadable_settled += 1
                report.settled += 1
            else:
                logger.warning("decision unreadable; looking again later", extra={"looks": failures})
                self._table.postpone_approval(approval.approval_id, now + self._recheck * 2**failures, unreadable=True)
            return
        except ApprovalServiceError as exc:
            report.errors += 1
            logger.warning("decision fetch failed", extra={"error": type(exc).__name__})
            self._table.postpone_approval(approval.approval_id, now + self._recheck)
            return
        if self._settler.settle(approval, decision) is SettleResult.PENDING:
            report.still_pending += 1
            self._table.postpone_approval(approval.approval_id, self._next_look(approval, now))
        else:
            report.settled += 1

    def _next_look(self, approval: Approval, now: datetime) -> datetime:
        """When to look at a decision still pending. Its callback carries it, so the looks thin out:
        half its age from now, at least the recheck interval, at most MAX_PENDING_RECHECK; but once
        just after it should have expired (a lost expiry callback must not hold an escalation
        ladder back), and at the recheck interval while it is past that and still pending."""
        expires = parse_iso(approval.expires_at)
        if expires is not None and now >= expires:
            return now + self._recheck
        created = parse_iso(approval.created_at) or now
        later = now + min(max(self._recheck, (now - created) / 2), MAX_PENDING_RECHECK)
        return min(later, expires + self._recheck) if expires is not None else later

    def _redrive(self, turn: Turn, now: datetime, report: ReconcileReport) -> None:
        """A turn nobody picked up: its queue message was lost (or is late). Send it again; the
        worker's claims make a duplicate harmless."""
        if turn.status is TurnStatus.QUEUED:
            message = WorkMessage(
                kind="start_turn", conversation_id=turn.conversation_id, turn_id=turn.turn_id, tenant=turn.tenant
            )
        elif turn.status is TurnStatus.AWAITING_APPROVAL and turn.pending == 0 and turn.pause_ref:
            message = WorkMessage.resume(turn)
        elif turn.status is TurnStatus.RUNNING:
            # Running past its lease: the worker died. With its calls settled, hand the turn back
            # (the next attempt checks whether the outputs already reached the model); before any
            # pause, the model's answer is unknown, so the turn fails and the user can send again.
            if not turn.pause_ref:
                fail_turn(
                    self._table,
                    self._executor,
                    turn.conversation_id,
                    turn.turn_id,
                    "the worker stopped before it finished",
                )
                report.turns_redriven += 1
                return
            if self._table.release_turn(turn.conversation_id, turn.turn_id, for_resume=True) is None:
                return
            message = WorkMessage.resume(turn)
        elif turn.status is TurnStatus.AWAITING_APPROVAL:
            settled = self._settle_missing_approvals(turn)
            report.missing_approvals_settled += settled
            current = self._table.get_turn(turn.conversation_id, turn.turn_id) if settled else None
            if current is None or current.pending or current.status is not TurnStatus.AWAITING_APPROVAL:
                self._table.postpone_turn(
                    turn.conversation_id, turn.turn_id, now + self._recheck * WAITING_TURN_RECHECK_FACTOR
                )
                return
            message = WorkMessage.resume(current)  # its last missing verdict is in: go on now, not in an hour
        else:
            self._table.postpone_turn(turn.conversation_id, turn.turn_id, None)
            return
        self._queue.send(message)
        self._table.postpone_turn(turn.conversation_id, turn.turn_id, now + self._recheck)
        report.turns_redriven += 1
        logger.info("turn re-driven", extra={"turn_id": turn.turn_id, "kind": message.kind})

    def _settle_missing_approvals(self, turn: Turn) -> int:
        """Every call still without a verdict must have all its approvals in the table; one that is
        missing is stored as settled with no answer (not requested), so the call can be decided."""
        settled = 0
        for action in self._table.list_actions(turn.conversation_id, turn.turn_id):
            if not action.gated or action.verdict_recorded:
                continue
            present = {a.approval_id for a in self._table.get_approvals(action.approval_ids)}
            for approval_id in action.approval_ids:
                if approval_id in present:
                    continue
                missing = Approval.for_call(action, approval_id, "", iso(utc_now()), state=ApprovalState.SETTLED)
                if self._table.put_approval(missing, utc_now()):
                    logger.warning("approval missing; settled as not requested", extra={"call_id": action.call_id})
                    settled += 1
            if settled:
                self._settler.decide(action)
        return settled
