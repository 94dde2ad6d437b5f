"""ReceiptIssuer: every gated call that runs gets a signed receipt, in the same write that records
its execution, signed once and queued for the tenant's log (see domain/receipts.py for what a
receipt proves, and logic/checkpoints.py for how the log takes it in)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from signoff.domain.canonical import canonical_json
from signoff.domain.models import Action, Approval, Execution, ExecutionStatus, iso, utc_now
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.ports import ReceiptSigner
from signoff.domain.receipts import compact, policy_version, signing_input
from signoff.domain.stores import ResumeRefused
from signoff.observability import count

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore


def receipt_needed(action: Action, execution: Execution) -> bool:
    """A call that needed sign-off and ran (or went to the client to run)."""
    ran = execution.status in (ExecutionStatus.EXECUTED, ExecutionStatus.AWAITING_CLIENT)
    return ran and (action.gated or action.grant is not None)


def receipt_claims(
    action: Action,
    execution: Execution,
    approvals: list[Approval],
    *,
    issuer: str,
    policy: str,
) -> dict[str, Any]:
    arguments = action.arguments_to_run
    claims: dict[str, Any] = {
        "iss": issuer,
        "iat": int(time.time()),
        "tenant": action.tenant,
        "conversation_id": action.conversation_id,
        "turn_id": action.turn_id,
        "call_id": action.call_id,
        "tool": action.tool,
        "arguments": canonical_json(arguments),
        "args_digest": action.approved_digest or action.digest,
        "verdict": action.verdict.value if action.verdict else ("granted" if action.grant else None),
        "approvals": [
            {
                "decision_id": a.decision_id,
                "approver": a.approver,
                "resolved_by": a.resolved_by,
                "outcome": a.outcome.value if a.outcome else None,
                "answered_at": a.resolved_at,
            }
            for a in approvals
        ],
        "policy_version": policy,
        "execution": execution.status.value,
        "executed_at": iso(utc_now()),
    }
    if action.grant is not None:
        claims["grant"] = {"id": action.grant.id}
    return claims


class ReceiptIssuer:
    def __init__(self, table: SignoffStore, signer: ReceiptSigner, policy: Callable[[], ApprovalPolicy], issuer: str):
        self._table = table
        self._signer = signer
        self._policy = policy
        self._issuer = issuer

    def finish(
        self,
        action: Action,
        execution: Execution,
        approvals: list[Approval] | None = None,
        from_status: ExecutionStatus = ExecutionStatus.EXECUTING,
    ) -> str | None:
        """Record ``execution`` with the call's receipt. The receipt written; None when the call is
        no longer executing (someone else settled it). ``approvals``: the call's, if already read;
        ``from_status``: delegated, for a hosted MCP call OpenAI reported."""
        return self.finish_resuming(action, execution, approvals, None, from_status)[0]

    def finish_resuming(
        self,
        action: Action,
        execution: Execution,
        approvals: list[Approval] | None,
        resume_pause: str | None,
        from_status: ExecutionStatus = ExecutionStatus.EXECUTING,
    ) -> tuple[str | None, bool]:
        """``finish``, and with ``resume_pause`` (the call is its pause's last to settle) the turn's
        resume claimed in the same write, while that claim is this write's to make. The receipt, and
        whether the resume was claimed with it. One signature, whatever other calls do."""
        if approvals is None:
            approvals = self._table.get_approvals(action.approval_ids) if action.approval_ids else []
        version = policy_version(self._policy().model_dump(mode="json"))
        claims = receipt_claims(action, execution, approvals, issuer=self._issuer, policy=version)
        message = signing_input(self._signer.key_id, claims)
        jws = compact(message, self._signer.sign(message))
        try:
            written = self._table.finish_with_receipt(action, execution, jws, resume_pause, from_status)
        except ResumeRefused:  # another invocation resumes the turn, or it is not ready: just the receipt
            written = self._table.finish_with_receipt(action, execution, jws, None, from_status)
            resume_pause = None
        if not written:
            return None, False
        count("ReceiptsIssued")
        return jws, resume_pause is not None
