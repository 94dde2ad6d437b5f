"""From the approvers' answers to one verdict per tool call.

One approver (the usual case): their answer is the verdict. A quorum (M of N): any denial
denies; M plain approvals approve; once M can no longer be reached the call does not run.
In a quorum only a plain approval counts as a yes: a modify or a schedule from one of several
approvers is not a yes from the group.
"""

from __future__ import annotations

from dataclasses import dataclass

from signoff.domain.models import Approval, ApprovalState, DecisionStatus

YES_FOR_ONE = {DecisionStatus.APPROVED, DecisionStatus.MODIFIED, DecisionStatus.SCHEDULED}


@dataclass(frozen=True)
class Verdict:
    status: DecisionStatus | None  # None: no decision could be requested at all
    deciding: tuple[Approval, ...]  # whose answers made the verdict

    @property
    def resolved_by(self) -> str | None:
        names = [a.resolved_by for a in self.deciding if a.resolved_by]
        return ", ".join(names) if names else None

    @property
    def notes(self) -> str | None:
        notes = [a.notes for a in self.deciding if a.notes]
        return " / ".join(notes) if notes else None


def verdict_of(approvals: list[Approval], required: int) -> Verdict | None:
    """The verdict once it is decided, else None (still waiting on someone)."""
    settled = [a for a in approvals if a.state is ApprovalState.SETTLED]
    pending = [a for a in approvals if a.state is ApprovalState.PENDING]
    denials = [a for a in settled if a.outcome is DecisionStatus.DENIED]
    if denials:
        return Verdict(DecisionStatus.DENIED, (denials[0],))
    if required == 1 and len(approvals) == 1:
        if pending:
            return None
        only = settled[0]
        return Verdict(only.outcome, (only,))
    yes = [a for a in settled if a.outcome is DecisionStatus.APPROVED]
    if len(yes) >= required:
        return Verdict(DecisionStatus.APPROVED, tuple(yes[:required]))
    if len(yes) + len(pending) < required:
        lapsed = [a for a in settled if a.outcome is not None and a.outcome.lapsed]
        others = [a for a in settled if a.outcome is not None and a not in yes]
        status = DecisionStatus.EXPIRED if lapsed else (others[0].outcome if others else None)
        return Verdict(status, tuple(lapsed or others))
    return None
