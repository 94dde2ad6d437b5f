"""ReceiptIssuer: every gated call that runs gets a signed receipt, in the same write that records
its execution (see domain/receipts.py for what a receipt proves)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from signoff.domain.canonical import canonical_json
from signoff.domain.models import Action, Approval, Execution, ExecutionStatus, iso, utc_now
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.ports import ReceiptSigner
from signoff.domain.receipts import compact, policy_version, signing_input
from signoff.domain.stores import ResumeRefused
from signoff.observability import count

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore

logger = Logger(child=True)

APPEND_ATTEMPTS = 25  # tries against a chain other calls of the tenant keep moving


class ChainBusy(RuntimeError):
    """The tenant's chain kept moving under every attempt; the call stays claimed and is settled later."""


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
    seq: int,
    prev: str,
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
        "seq": seq,
        "prev": prev,
    }
    if action.grant is not None:
        claims["grant"] = {"id": action.grant.id}
    return claims


class ReceiptIssuer:
    def __init__(
        self,
        table: SignoffStore,
        signer: ReceiptSigner,
        policy: Callable[[], ApprovalPolicy],
        issuer: str,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._table = table
        self._signer = signer
        self._policy = policy
        self._issuer = issuer
        self._sleep = sleep

    def finish(
        self,
        action: Action,
        execution: Execution,
        approvals: list[Approval] | None = None,
        head: tuple[int, str] | None = None,
    ) -> str | None:
        """Record ``execution`` with the call's receipt, signed against the chain's head as it is;
        signed again if another call of the tenant moved the head first. The receipt written; None
        when the call is no longer executing (someone else settled it). ``approvals``: the call's,
        if already read; ``head``: the chain's head as read with them (a first guess: if the chain
        moved since, the head is read again, as after any lost race)."""
        return self.finish_resuming(action, execution, approvals, head, None)[0]

    def finish_resuming(
        self,
        action: Action,
        execution: Execution,
        approvals: list[Approval] | None,
        head: tuple[int, str] | None,
        resume_pause: str | None,
    ) -> tuple[str | None, bool]:
        """``finish``, and with ``resume_pause`` (the call is its pause's last to settle) the turn's
        resume claimed in the same write, while that claim is this write's to make. The receipt, and
        whether the resume was claimed with it."""
        if approvals is None:
            approvals = self._table.get_approvals(action.approval_ids) if action.approval_ids else []
        version = policy_version(self._policy().model_dump(mode="json"))
        for attempt in range(APPEND_ATTEMPTS):
            seq, prev = head if head is not None and attempt == 0 else self._table.receipt_head(action.tenant)
            claims = receipt_claims(
                action, execution, approvals, issuer=self._issuer, policy=version, seq=seq + 1, prev=prev
            )
            message = signing_input(self._signer.key_id, claims)
            jws = compact(message, self._signer.sign(message))
            try:
                written = self._table.finish_with_receipt(action, execution, seq + 1, jws, resume_pause)
            except ResumeRefused:
                resume_pause = None  # another invocation resumes the turn, or it is not ready: just the receipt
                continue
            if written:
                count("ReceiptsIssued")
                return jws, resume_pause is not None
            current = self._table.get_action(action.conversation_id, action.turn_id, action.call_id)
            if (
                current is None
                or current.execution is None
                or current.execution.status is not ExecutionStatus.EXECUTING
            ):
                return None, False
            self._sleep(random.uniform(0, 0.02 * (attempt + 1)))  # noqa: S311 - jitter, not security
        logger.error("receipt chain kept moving; call left claimed", extra={"call_id": action.call_id})
        raise ChainBusy(action.call_id)
