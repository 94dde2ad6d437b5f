"""Asking for sign-off and recording the answers.

``ApprovalRequester`` asks each approver the policy names (one Handover decision per approver,
each with a callback URL carrying a token signed for that approval). ``ApprovalSettler``
records an answer exactly once (callback and reconciler share it), turns the answers into the
call's verdict once they decide it, runs an approved call, and hands the turn back to the
worker when its last call has a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from signoff import backoff
from signoff.domain.budgets import BudgetWrite
from signoff.domain.canonical import action_digest
from signoff.domain.models import (
    Action,
    Approval,
    ApprovalState,
    Conversation,
    Decision,
    DecisionRef,
    DecisionStatus,
    Execution,
    ExecutionStatus,
    TurnStatus,
    iso,
    parse_iso,
    utc_now,
)
from signoff.domain.modification import InvalidModification, apply_modification
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.ports import ApprovalService, DecisionRequest, NotConfigured, WorkMessage, WorkQueue
from signoff.domain.stores import BudgetContention, BudgetMoved
from signoff.domain.tokens import CALLBACK_PATH, issue_token
from signoff.domain.tools import HOSTED_APPROVE_OR_DENY, ToolRegistry, arguments_of
from signoff.domain.verdict import Verdict, verdict_of
from signoff.logic.budgets import call_key
from signoff.logic.executor import ActionExecutor
from signoff.logic.ids import new_approval_id
from signoff.logic.turn_failure import NOT_RUN_BECAUSE_TURN_ENDED
from signoff.observability import count, seconds

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore
    from signoff.logic.budgets import BudgetKeeper
    from signoff.logic.grants import GrantKeeper

logger = Logger(child=True)

MAX_CONTEXT_CHARS = 4000
URGENCIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class RequestSettings:
    default_approver: str
    default_timeout_minutes: int
    public_api_url: str
    reconcile_after_seconds: int


@dataclass(frozen=True)
class VerdictPlan:
    """What a verdict sets on the call: its first execution state (None: it is to run now), and for a
    "modified" answer the arguments to run, their digest and what changed."""

    execution: Execution | None = None
    approved_arguments: dict[str, Any] | None = None
    approved_digest: str | None = None
    changes: dict[str, Any] | None = None

    @classmethod
    def refused(cls, why: str) -> VerdictPlan:
        return cls(Execution(status=ExecutionStatus.NOT_EXECUTED, result={"error": why}))


class SettleResult(StrEnum):
    SETTLED = "settled"  # this invocation recorded the answer
    ALREADY_SETTLED = "already_settled"  # someone else did; nothing changed
    PENDING = "pending"  # the approver has not answered yet


class ApprovalSettler:
    def __init__(
        self,
        table: SignoffStore,
        executor: ActionExecutor,
        queue: WorkQueue,
        tools: ToolRegistry,
        policy: Callable[[], ApprovalPolicy],
        budgets: BudgetKeeper | None = None,
        grants: GrantKeeper | None = None,
        escalate: Callable[[Action, Approval], bool] | None = None,
        hand_off: bool = False,
    ):
        # hand_off: an approved call is run by the worker (a run_calls message), not here: the callback
        # has API Gateway's 30 seconds, and a tool must never be cut off by them.
        self._hand_off = hand_off
        self._escalate = escalate  # asks the next rung of the tool's ladder (ApprovalRequester.escalate)
        self._table = table
        self._executor = executor
        self._queue = queue
        self._tools = tools
        self._policy = policy
        self._budgets = budgets
        self._grants = grants

    def settle(self, approval: Approval, decision: Decision | None) -> SettleResult:
        if decision is not None and not decision.status.is_terminal:
            return SettleResult.PENDING
        decided = self._answer_decides(approval, decision)
        if decided is not None:
            self._counted(approval, decision)
            action, answered = decided
            self._carry_out(action, answered, decided_now=True)
            return SettleResult.SETTLED
        settled = self._table.settle_approval(approval, decision)
        if settled is not None and decision is not None:
            self._counted(approval, decision)
        self.finish(approval.approval_id, settled)
        return SettleResult.SETTLED if settled is not None else SettleResult.ALREADY_SETTLED

    def _answer_decides(self, approval: Approval, decision: Decision | None) -> tuple[Action, Approval] | None:
        """The answer of a call's only approver decides it: settle the approval and record the
        call's verdict (with its budgets' reservations) in one write, with the call the approval
        carries. The call as written and the approval as settled; None when this cannot be done in
        one write (an escalation, a quorum, an approval without its call) or when that write was
        refused: someone else settled the approval, or the call or its turn moved on. The general
        way (settle, then decide) then finds out which and does what is left."""
        call = approval.call
        if (
            call is None
            or decision is None
            or decision.status.lapsed
            or call.approval_ids != [approval.approval_id]
            or call.quorum_required != 1
            or call.verdict_recorded
        ):
            return None
        answered = approval.answered(decision)
        decided = self._decide(call, answered, answering=True)
        return None if decided is None else (decided, answered)

    @staticmethod
    def _counted(approval: Approval, decision: Decision) -> None:
        count("ApprovalsAnswered")
        waited = _seconds_between(approval.created_at, decision.resolved_at)
        if waited is not None:
            seconds("TimeToDecisionSeconds", waited)

    def finish(self, approval_id: str, settled: Approval | None = None) -> None:
        """After an answer is recorded: decide the call's verdict, run it if approved (or hand it to the
        worker), resume the turn once every call has its verdict. Idempotent, so a retry after a crash
        completes what was left. ``settled``: the approval as this invocation just settled it (else it is read)."""
        approval = settled if settled is not None else self._table.get_approval(approval_id)
        if approval is None or approval.state is not ApprovalState.SETTLED:
            return
        action = self._call_of(approval, just_settled=settled is not None)
        if action is None:
            return
        if self._escalates(action, approval):
            return  # the next rung is asked; the call waits on its answer
        decided: Action | None = None
        if not action.verdict_recorded:
            known = settled if settled is not None and settled.approval_id in action.approval_ids else None
            decided = self._decide(action, known)
            if decided is not None:
                action = decided  # as this invocation just recorded it
            else:
                current = self._table.get_action(approval.conversation_id, approval.turn_id, approval.call_id)
                assert current is not None
                action = current
        if not action.verdict_recorded:
            if not action.settled and self._turn_has_ended(action):
                # Its turn failed (or was given up on) before the answer came: it never runs.
                self._executor.abandon(action, NOT_RUN_BECAUSE_TURN_ENDED)
                action = self._table.get_action(approval.conversation_id, approval.turn_id, approval.call_id)
                assert action is not None
            if action.settled:
                # An answer can no longer change this call: out of the reconciler's list.
                for other in action.approval_ids:
                    self._table.retire_approval(other)
            return  # otherwise a quorum still waits on others
        self._carry_out(action, approval, decided_now=decided is not None)

    def _carry_out(self, action: Action, approval: Approval, decided_now: bool) -> None:
        """The call has its verdict: grant what the answer grants, then run the call if it may (or hand
        it to the worker) and resume the turn when it is ready."""
        if self._grants and action.verdict is DecisionStatus.APPROVED and approval.outcome is DecisionStatus.APPROVED:
            # Before the call runs, and again on any retry: one grant per decision, never two.
            self._grants.create_from(action, approval)
        if self._hand_off:
            self._hand_over(action, decided_now=decided_now)
            return
        self._executor.run_approved(action)
        self._resume_if_ready(action.conversation_id, action.turn_id)

    def _call_of(self, approval: Approval, just_settled: bool) -> Action | None:
        """The call ``approval`` is for. An answer this invocation just settled goes on with the call as
        its pause wrote it: a verdict is recorded only while the call has none and waits on exactly
        these approvals, so a call that moved on since costs a read then, not on every answer. An
        unanswered decision (expired, escalated) may ask the next rung first: it reads the call."""
        if just_settled and approval.call is not None and not (approval.outcome and approval.outcome.lapsed):
            return approval.call
        return self._table.get_action(approval.conversation_id, approval.turn_id, approval.call_id)

    def _hand_over(self, action: Action, decided_now: bool) -> None:
        """The worker runs the approved call and resumes the turn when it is ready (a call with nothing
        to run only resumes it, as without a hand-off). A lost message is made up for: the verdict made
        the turn due, and the reconciler's resume runs the call first. ``decided_now``: this invocation
        recorded the verdict, so the turn was waiting on the call's pause a moment ago (the worker
        checks again)."""
        if decided_now and not action.settled and action.pause_ref:
            self._queue.send(WorkMessage.run_calls(action))
            return
        turn = self._table.get_turn(action.conversation_id, action.turn_id)
        if turn is None or turn.status is not TurnStatus.AWAITING_APPROVAL or not turn.pause_ref:
            return
        if not action.settled:
            self._queue.send(WorkMessage.run_calls(turn))
        elif turn.pending == 0:
            self._queue.send(WorkMessage.resume(turn))

    def _escalates(self, action: Action, approval: Approval) -> bool:
        """An unanswered decision (expired, or escalated by Handover) of a call still waiting on it
        goes to the next rung of the tool's ladder, if there is one and the turn is still live."""
        if (
            self._escalate is None
            or action.verdict_recorded
            or approval.approval_id not in action.approval_ids
            or not (approval.outcome and approval.outcome.lapsed)
            or self._turn_has_ended(action)
        ):
            return False
        return self._escalate(action, approval)

    def _turn_has_ended(self, action: Action) -> bool:
        turn = self._table.get_turn(action.conversation_id, action.turn_id)
        return turn is None or turn.status in (TurnStatus.FAILED, TurnStatus.COMPLETED)

    def decide(self, action: Action) -> bool:
        """Record the call's verdict if the answers so far decide it; True if this call did."""
        return self._decide(action, None) is not None

    def _decide(self, action: Action, settled: Approval | None, answering: bool = False) -> Action | None:
        """The call as its verdict left it, if this invocation recorded the verdict. ``settled``: an
        approval as this invocation just settled it (the others are read); with ``answering``, as it
        is to be settled, in the verdict's own write."""
        known = {settled.approval_id: settled} if settled is not None else {}
        unknown = [i for i in action.approval_ids if i not in known]
        found = {a.approval_id: a for a in self._table.get_approvals(unknown)} if unknown else {}
        found |= known
        approvals = [found[i] for i in action.approval_ids if i in found]
        verdict = verdict_of(approvals, action.quorum_required)
        if verdict is None:
            return None
        ref = DecisionRef(
            id=verdict.deciding[0].decision_id if verdict.deciding else None,
            status=verdict.status.value if verdict.status else "not_requested",
            resolved_by=verdict.resolved_by,
            notes=verdict.notes,
        )
        status = verdict.status.value if verdict.status else None  # None: nobody could be asked
        for attempt in range(backoff.ATTEMPTS):
            plan, budgets = self._plan(action, verdict)
            try:
                # Its approvals leave the reconciler's list with the verdict: answers still to come (a
                # quorum's late ones) change nothing.
                recorded = self._table.record_verdict(
                    action,
                    ref,
                    status,
                    plan.execution,
                    plan.approved_arguments,
                    plan.approved_digest,
                    plan.changes,
                    retire=action.approval_ids,
                    answered=settled if answering else None,
                    budgets=budgets,
                )
                break
            except BudgetMoved:
                backoff.pause(attempt)  # another call took from the same budget meanwhile: plan again
        else:
            raise BudgetContention(action.call_id)
        logger.info("verdict recorded", extra={"call_id": action.call_id, "verdict": status, "won": recorded})
        if not recorded:
            return None
        written: dict[str, Any] = {"decision": ref, "verdict": status, "verdict_recorded": True}
        if plan.execution is not None:
            written["execution"] = plan.execution
        if plan.approved_arguments is not None:
            written |= {"approved_arguments": plan.approved_arguments, "approved_digest": plan.approved_digest}
        if plan.changes is not None:
            written["changes"] = plan.changes
        return action.as_written(**written)

    def _plan(self, action: Action, verdict: Verdict) -> tuple[VerdictPlan, list[BudgetWrite]]:
        """What a verdict means for the call before anything runs, and the budget reservations the
        verdict writes (a call allowed to run counts on its budgets from its verdict; only a hard cap
        can still refuse it)."""
        plan = self._plan_verdict(action, verdict)
        allowed = plan.execution is None or plan.execution.status is ExecutionStatus.SCHEDULED
        if allowed and self._budgets:
            arguments = plan.approved_arguments if plan.approved_arguments is not None else action.arguments
            refusal, budgets = self._budgets.plan_approved(call_key(action), action.tool, arguments, action.tenant)
            if refusal:
                return VerdictPlan.refused(refusal), []
            return plan, budgets
        return plan, []

    def _plan_verdict(self, action: Action, verdict: Verdict) -> VerdictPlan:
        if verdict.status is DecisionStatus.APPROVED:
            return VerdictPlan()
        if verdict.status is DecisionStatus.MODIFIED and action.hosted:
            return VerdictPlan.refused(HOSTED_APPROVE_OR_DENY)
        if verdict.status is DecisionStatus.MODIFIED:
            spec = self._tools.get(action.tool)
            if spec is None:
                return VerdictPlan.refused("unknown tool")
            modifiable = self._policy().for_tool(action.tool).modifiable
            try:
                approved, changes = apply_modification(
                    spec, action.arguments, verdict.deciding[0].response_data, modifiable
                )
            except InvalidModification as exc:
                return VerdictPlan.refused(str(exc))
            return VerdictPlan(None, approved, action_digest(action.tool, approved, action.call_id), changes)
        if verdict.status is DecisionStatus.SCHEDULED:
            execute_at = parse_iso(verdict.deciding[0].execute_at)
            if execute_at is None:
                return VerdictPlan.refused("no execute_at")
            when = iso(execute_at)
            return VerdictPlan(
                Execution(status=ExecutionStatus.SCHEDULED, execute_at=when, result={"execute_at": when})
            )
        return VerdictPlan(Execution(status=ExecutionStatus.NOT_EXECUTED))

    def _resume_if_ready(self, conversation_id: str, turn_id: str) -> None:
        turn = self._table.get_turn(conversation_id, turn_id)
        if turn and turn.status is TurnStatus.AWAITING_APPROVAL and turn.pending == 0 and turn.pause_ref:
            self._queue.send(WorkMessage.resume(turn))


class ApprovalRequester:
    def __init__(
        self,
        table: SignoffStore,
        service: ApprovalService,
        tools: ToolRegistry,
        policy: Callable[[], ApprovalPolicy],
        settler: ApprovalSettler,
        signing_key: bytes,
        settings: RequestSettings,
        budgets: BudgetKeeper | None = None,
        grants: GrantKeeper | None = None,
    ):
        self._grants = grants
        self._table = table
        self._service = service
        self._tools = tools
        self._policy = policy
        self._settler = settler
        self._key = signing_key
        self._settings = settings
        self._budgets = budgets

    def approvals_for(self, action: Action) -> list[tuple[Approval, datetime]]:
        """The approvals a gated call needs (one per approver), each with when the reconciler should
        first look at it; written with the pause, before any decision is asked for."""
        approvers, _required = self._policy().approvers(action.tool, self._settings.default_approver)
        now = utc_now()
        due = now + timedelta(seconds=self._settings.reconcile_after_seconds)
        return [
            (Approval.for_call(action, approval_id, approver, iso(now), call=action), due)
            for approver, approval_id in zip(approvers, action.approval_ids, strict=False)
        ]

    def request(
        self,
        conversation: Conversation,
        action: Action,
        approvals: list[Approval],
        show_pause: str | None = None,
        user_request: str = "",
    ) -> bool:
        """Ask each approver of the call (its approvals are already stored). An approver who cannot be
        asked counts as no answer, and a call whose approvals can no longer be had is settled as not
        executed. ``show_pause``: the call is the pause's last to ask about, and its last binding also
        shows the conversation as awaiting approval; True if that happened and nothing was decided
        after it (else the caller shows it, or finds the pause settled)."""
        bound, shown = [], False
        for n, approval in enumerate(approvals):
            last = n == len(approvals) - 1
            was_bound, shown = self._ask(
                conversation, action, approval, show_pause=show_pause if last else None, user_request=user_request
            )
            bound.append(was_bound)
        if not all(bound):
            # An approver could not be asked (or answered before the binding): that may decide the
            # call. Bound approvals all decide it through their own answer's settlement instead.
            self._settler.decide(action)
            return False
        return shown

    def escalate(self, action: Action, expired: Approval) -> bool:
        """Ask the next rung of the tool's ladder about the same call (same digest, new decision);
        False when the ladder has no next rung (the expiry then decides the call)."""
        approver = self._policy().rung_approver(action.tool, expired.rung + 1)
        if approver is None:
            return False
        now = utc_now()
        next_rung = Approval.for_call(action, new_approval_id(), approver, iso(now), rung=expired.rung + 1)
        due = now + timedelta(seconds=self._settings.reconcile_after_seconds)
        if not self._table.escalate(action, expired, next_rung, due):
            return True  # another invocation moved the ladder on, or the call got its verdict
        count("ApprovalsEscalated")
        logger.info("decision escalated", extra={"call_id": action.call_id, "rung": next_rung.rung})
        conversation = self._table.get_conversation(action.conversation_id)
        current = self._table.get_action(action.conversation_id, action.turn_id, action.call_id)
        if conversation is None or current is None:
            return True
        turn = self._table.get_turn(action.conversation_id, action.turn_id)
        asked = turn.input if turn is not None else ""
        if not self._ask(conversation, current, next_rung, escalated_from=expired, user_request=asked)[0]:
            self._settler.decide(current)
        return True

    def _ask(
        self,
        conversation: Conversation,
        action: Action,
        approval: Approval,
        escalated_from: Approval | None = None,
        show_pause: str | None = None,
        user_request: str = "",
    ) -> tuple[bool, bool]:
        """Ask the approver: whether the decision is bound to the approval (still pending), and whether
        the binding also showed the conversation as awaiting approval for ``show_pause``."""
        try:
            token = issue_token(self._key, approval.approval_id)
            request = self._decision_request(conversation, action, approval, token, escalated_from, user_request)
            expires_at = iso(utc_now() + timedelta(minutes=request.timeout_minutes))
            decision_id = self._service.create_decision(request)
        except Exception as exc:  # any failure to ask means this approver's yes never comes
            logger.warning(
                "decision could not be created",
                extra={"call_id": action.call_id, "error": type(exc).__name__},
            )
            self._table.settle_approval(approval, None)
            return False, False
        shown = show_pause is not None and self._table.attach_decision(approval, decision_id, expires_at, show_pause)
        # Not shown (the pause settled meanwhile, or the turn ended): bind it alone.
        bound = shown or self._table.attach_decision(approval, decision_id, expires_at)
        count("ApprovalsRequested")
        logger.info("decision requested", extra={"call_id": action.call_id, "decision_id": decision_id})
        return bound, shown

    def _decision_request(
        self,
        conversation: Conversation,
        action: Action,
        approval: Approval,
        token: str,
        escalated_from: Approval | None = None,
        user_request: str = "",
    ) -> DecisionRequest:
        """What the approver reads, most useful first: what will happen, the user's own words, why a
        person is asked, what each answer does; the technical binding last."""
        spec = self._tools.get(action.tool)
        assert spec is not None
        policy = self._policy()
        # A sign-off request may say how urgent it is and why; a typed (python) tool's model and a
        # JSON-schema tool's dict both give their values here.
        asked = arguments_of(spec.parse_arguments(action.arguments)) if spec.is_sign_off_request else {}
        urgency = asked.get("urgency") if asked.get("urgency") in URGENCIES else None
        modifiable = policy.for_tool(action.tool).modifiable
        options = ["approve", "deny"] if action.hosted else policy.options(action.tool)
        parts: list[str] = []
        if escalated_from is not None:
            parts.append(
                f"Escalated: {escalated_from.approver or 'the approver before you'} did not answer in time "
                f"(step {approval.rung} of this tool's escalation ladder)."
            )
        parts.append(f"What will happen: {action.summary}.".replace("..", "."))
        if user_request.strip():
            parts.append(f'The user asked: "{_quoted(user_request)}"')
        if asked.get("context"):
            parts.append(f"The agent says: {asked['context']}")
        if action.gated_by_budget:
            parts.append(f"Why you are asked: no rule asks for sign-off here; a budget does: {action.gated_by_budget}.")
        elif not spec.is_sign_off_request:
            parts.append(f"Why you are asked: {policy.why_asked(action.tool, action.arguments)}.")
        if action.quorum_required > 1:
            parts.append(
                f"{action.quorum_required} of {len(action.approval_ids)} approvers must approve; any denial denies."
            )
        if self._budgets:
            parts += self._budgets.standing(action.tool, action.arguments, action.tenant)
        if self._grants and not spec.is_sign_off_request:
            parts.append(self._grants.note_for_approver(action.tool, action.arguments))
        parts.append(_what_answers_do(action, options, modifiable))
        parts.append(
            f"Technical: tool {action.tool}, conversation {conversation.conversation_id}, call {action.call_id}, "
            f"arguments {json.dumps(action.arguments, ensure_ascii=False, sort_keys=True)}, "
            f"digest {action.digest[:16]}."
        )
        return DecisionRequest(
            action=action.summary[:500],
            context="\n".join(parts)[:MAX_CONTEXT_CHARS],
            approver=approval.approver,
            urgency=urgency or policy.urgency(action.tool),
            timeout_minutes=policy.decision_minutes(action.tool, approval.rung, self._settings.default_timeout_minutes),
            callback_url=_callback_url(self._settings.public_api_url, token),
            options=options,
        )


MAX_QUOTED_REQUEST = 500  # characters of the user's own words an approver is shown


def _quoted(text: str) -> str:
    """The user's request as one bounded line (an approver reads it, a long paste is cut)."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_QUOTED_REQUEST else line[: MAX_QUOTED_REQUEST - 1] + "…"


def _what_answers_do(action: Action, options: list[str], modifiable: list[str]) -> str:
    if action.hosted:
        return (
            "Approve: OpenAI runs this call on the hosted MCP server, once. Deny: it does not run; the agent "
            "reads your notes. It cannot be changed or scheduled."
        )
    said = f"Approve: {action.tool} runs once, with exactly these arguments. Deny: it does not run; the agent reads "
    said += "your notes."
    if "modify" in options:
        said += f" Modify: send new values of {', '.join(modifiable)}; it runs with them, checked first."
    return said


def _callback_url(public_api_url: str, token: str) -> str:
    """Where Handover calls back: absolute, or no decision is asked for (a relative URL would never
    call back, and the call would wait for the reconciler's safety net instead of its approver)."""
    if not public_api_url.startswith(("https://", "http://")):
        raise NotConfigured("the API's public URL is not known here (PUBLIC_API_URL): no callback URL")
    return f"{public_api_url}{CALLBACK_PATH}{token}"


def _seconds_between(start: str, end: str | None) -> float | None:
    began, ended = parse_iso(start), parse_iso(end) if end else utc_now()
    return max(0.0, (ended - began).total_seconds()) if began and ended else None
