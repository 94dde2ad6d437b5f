"""GrantKeeper: standing approvals made from an approver's answer, used by the calls they cover.

Made once per decision (its id derives from the decision), after the verdict that carries the
``allow_similar`` request is recorded. Used at the gate: a gated call a live grant covers takes
one of its uses (a conditional write, so N racing calls use at most the uses left) and runs
without a new decision. Revoked at once; every grant keeps who approved it, each use (which
call, when) and who revoked it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from signoff.domain.grants import AllowSimilar, Grant, GrantRef, GrantUse, caps_of, grant_id_for, scope_values
from signoff.domain.models import Action, Approval, iso, utc_now
from signoff.domain.policy import ApprovalPolicy
from signoff.observability import count

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore

logger = Logger(child=True)


class GrantKeeper:
    def __init__(self, table: SignoffStore, policy: Callable[[], ApprovalPolicy]):
        self._table = table
        self._policy = policy

    def note_for_approver(self, tool: str, arguments: dict[str, Any]) -> str:
        policy = self._policy()
        why_not = policy.ungrantable(tool)
        if why_not:
            return f"A standing approval cannot cover this tool: {why_not}."
        scope = policy.for_tool(tool).grant_scope
        capped = sorted(caps_of(arguments, scope))
        limits = f"; {', '.join(capped)} up to this call's" if capped else ""
        return (
            'To approve similar calls for a while, approve with response_data {"allow_similar": '
            f'{{"hours": H, "max_uses": N}}}}: same {", ".join(scope)}{limits}.'
        )

    def create_from(self, action: Action, approval: Approval) -> Grant | None:
        """The grant an approval asks for, if it asks and the tool may have one."""
        request = (approval.response_data or {}).get("allow_similar")
        if request is None:
            return None
        policy = self._policy()
        why_not = policy.ungrantable(action.tool)
        try:
            allowed = AllowSimilar.model_validate(request)
        except ValidationError:
            why_not = why_not or "allow_similar needs hours (1-720) and max_uses (1-1000)"
            allowed = None
        scope_names = policy.for_tool(action.tool).grant_scope
        scope = scope_values(scope_names, action.arguments)
        if why_not or allowed is None or scope is None or approval.decision_id is None:
            logger.warning("standing approval not created", extra={"call_id": action.call_id, "why": why_not})
            return None
        now = utc_now()
        grant = Grant(
            grant_id=grant_id_for(action.tenant, action.tool, scope, approval.decision_id),
            tenant=action.tenant,
            tool=action.tool,
            scope=scope,
            caps=caps_of(action.arguments, scope_names),
            approved_by=approval.resolved_by,
            decision_id=approval.decision_id,
            origin_conversation_id=action.conversation_id,
            origin_call_id=action.call_id,
            created_at=iso(now),
            expires_at=iso(now + timedelta(hours=allowed.hours)),
            max_uses=allowed.max_uses,
            uses_left=allowed.max_uses,
        )
        if self._table.put_grant(grant):
            count("GrantsCreated")
            logger.info("standing approval created", extra={"grant_id": grant.grant_id, "call_id": action.call_id})
        return grant

    def covering(self, tenant: str, tool: str, arguments: dict[str, Any]) -> list[Grant]:
        """Live grants that cover the call, soonest to expire first."""
        policy = self._policy()
        if policy.ungrantable(tool):
            return []
        scope = scope_values(policy.for_tool(tool).grant_scope, arguments)
        if scope is None:
            return []
        now = utc_now()
        found = [
            g
            for g in self._table.grants_for_scope(tenant, tool, scope)
            if g.live(now) and g.covers(tenant, tool, arguments)
        ]
        return sorted(found, key=lambda g: g.expires_at)

    def take_use(self, grants: list[Grant], use: GrantUse) -> GrantRef | None:
        now = utc_now()
        for grant in grants:
            left = self._table.take_grant_use(grant, use, now)
            if left is not None:
                count("GrantUses")
                logger.info("standing approval used", extra={"grant_id": grant.grant_id, "call_id": use.call_id})
                return GrantRef(id=grant.grant_id, uses_left=left)
        return None

    def revoke(self, tenant: str, grant_id: str, by: str) -> Grant | None:
        """None when the tenant has no such grant; revoking twice leaves the first revocation."""
        if self._table.revoke_grant(tenant, grant_id, by, utc_now()):
            count("GrantsRevoked")
            logger.info("standing approval revoked", extra={"grant_id": grant_id, "tenant": tenant})
        grant = self._table.get_grant(grant_id)
        return grant if grant is not None and grant.tenant == tenant else None

    def list(self, tenant: str, limit: int, cursor: str | None) -> dict[str, Any]:
        grants, next_cursor = self._table.list_grants(tenant, limit, cursor)
        return {"grants": [grant_view(g) for g in grants], "next_cursor": next_cursor}


def grant_view(grant: Grant) -> dict[str, Any]:
    return grant.model_dump(mode="json") | {"live": grant.live(utc_now())}
