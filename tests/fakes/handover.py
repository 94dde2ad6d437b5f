"""MemoryHandover: the ApprovalService port in memory (decisions asked, answered by the test)."""

from __future__ import annotations

import itertools
from typing import Any

from signoff.domain.models import Decision, DecisionStatus, iso, utc_now
from signoff.domain.ports import ApprovalServiceError, DecisionRequest, UnreadableDecision


class MemoryHandover:
    def __init__(self) -> None:
        self.requests: dict[str, DecisionRequest] = {}
        self.decisions: dict[str, Decision] = {}
        self.fetches = 0
        self.refuse_asks = False  # create_decision fails (Handover down)
        self.unreadable: set[str] = set()  # decisions whose answer cannot be read
        self.unreachable = False  # get_decision fails
        self._ids = itertools.count(1)

    def create_decision(self, request: DecisionRequest) -> str:
        if self.refuse_asks:
            raise ApprovalServiceError("handover is down")
        decision_id = f"dec_{next(self._ids)}"
        self.requests[decision_id] = request
        self.decisions[decision_id] = Decision(id=decision_id, status=DecisionStatus.PENDING)
        return decision_id

    def get_decision(self, decision_id: str) -> Decision:
        self.fetches += 1
        if self.unreachable:
            raise ApprovalServiceError("handover is down")
        if decision_id in self.unreadable:
            raise UnreadableDecision("decision has the wrong shape")
        return self.decisions[decision_id]

    def answer(self, decision_id: str, status: str, **fields: Any) -> Decision:
        fields.setdefault("resolved_by", "approver@example.com")
        fields.setdefault("resolved_at", iso(utc_now()))
        decision = Decision(id=decision_id, status=DecisionStatus(status), **fields)
        self.decisions[decision_id] = decision
        return decision

    def asked(self, approver: str | None = None) -> list[str]:
        """Decision ids asked (of one approver), oldest first."""
        return [d for d, r in self.requests.items() if approver is None or r.approver == approver]

    def token(self, decision_id: str) -> str:
        """The callback token the decision's callback URL carries."""
        return self.requests[decision_id].callback_url.rsplit("/", 1)[1]
