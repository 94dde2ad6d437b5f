"""Bound approvals: a call runs only with a verdict granted for exactly that call."""

from __future__ import annotations

from signoff.domain.canonical import action_digest
from signoff.domain.grants import Grant
from signoff.domain.models import Action, Approval, ApprovalState, DecisionStatus
from signoff.domain.verdict import verdict_of


def approval_matches(action: Action, approvals: list[Approval]) -> bool:
    """Re-derive the verdict from the approvals and check each deciding one against the call:
    same approval ids, conversation, tool, call id, and the digest of the arguments as stored
    now; for a modified call, the digest of the changed arguments too."""
    if not action.gated or action.verdict is None or not action.verdict.permits_execution:
        return False
    if {a.approval_id for a in approvals} - set(action.approval_ids):
        return False
    verdict = verdict_of(approvals, action.quorum_required)
    if verdict is None or verdict.status is not action.verdict:
        return False
    digest = action_digest(action.tool, action.arguments, action.call_id)
    for approval in verdict.deciding:
        if not (
            approval.state is ApprovalState.SETTLED
            and approval.call_id == action.call_id
            and approval.conversation_id == action.conversation_id
            and approval.tool == action.tool
            and approval.digest == digest == action.digest
        ):
            return False
    if action.verdict is DecisionStatus.MODIFIED:
        if action.approved_arguments is None or action.approved_digest is None:
            return False
        return action_digest(action.tool, action.approved_arguments, action.call_id) == action.approved_digest
    return True


def grant_matches(action: Action, grant: Grant) -> bool:
    """A call runs under a grant only if the grant recorded a use by exactly this call (same ids, same
    digest of the arguments as stored now) for its tool."""
    if action.grant is None or action.grant.id != grant.grant_id or grant.tool != action.tool:
        return False
    digest = action_digest(action.tool, action.arguments, action.call_id)
    return digest == action.digest and any(
        use.conversation_id == action.conversation_id
        and use.turn_id == action.turn_id
        and use.call_id == action.call_id
        and use.digest == digest
        for use in grant.uses
    )
