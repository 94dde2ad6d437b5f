"""Standing approvals (grants): an approver's "and similar calls, for a while".

Approving with ``response_data`` ``{"allow_similar": {"hours": H, "max_uses": N}}`` creates a
grant for the same tool, the same values of the arguments the policy lists as the tool's
``grant_scope``, and every numeric argument capped at the approved value. A later call it covers
runs without a new decision, one use each; an expired, exhausted or revoked grant covers
nothing. A grant is a sign-off: it satisfies a rule or a budget, never a hard cap. Tools that
need a quorum or are critical, tools without a ``grant_scope``, and the model's own request for
sign-off cannot be granted.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from signoff.domain.models import GrantRef, Record

__all__ = ["AllowSimilar", "Grant", "GrantRef", "GrantUse", "caps_of", "grant_id_for", "scope_hash", "scope_values"]

MAX_GRANT_HOURS = 30 * 24
MAX_GRANT_USES = 1000
GRANT_ID_PATTERN = r"^grt_[0-9a-f]{24}_[0-9a-f]{12}$"


class AllowSimilar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: int = Field(ge=1, le=MAX_GRANT_HOURS)
    max_uses: int = Field(ge=1, le=MAX_GRANT_USES)


class GrantUse(BaseModel):
    conversation_id: str
    turn_id: str
    call_id: str
    digest: str
    at: str


class Grant(Record):
    grant_id: str
    tool: str
    scope: dict[str, str]
    caps: dict[str, str]  # numeric argument → the most a covered call may ask (as text: exact)
    approved_by: str | None = None
    decision_id: str | None = None
    origin_conversation_id: str
    origin_call_id: str
    created_at: str
    expires_at: str
    max_uses: int
    uses_left: int
    uses: list[GrantUse] = Field(default_factory=list)
    revoked_at: str | None = None
    revoked_by: str | None = None
    tenant: str = "default"  # covers only its own tenant's calls

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and self.uses_left > 0 and datetime.fromisoformat(self.expires_at) > now

    def covers(self, tenant: str, tool: str, arguments: dict[str, Any]) -> bool:
        """Same tenant and tool, same scope values, and no numeric argument above its cap (a missing
        one fails)."""
        if tenant != self.tenant or tool != self.tool or scope_values(list(self.scope), arguments) != self.scope:
            return False
        for name, cap in self.caps.items():
            value = _number(arguments.get(name))
            if value is None or value > Decimal(cap):
                return False
        return True


def scope_values(names: list[str], arguments: dict[str, Any]) -> dict[str, str] | None:
    """The scope arguments' values as text (currency codes upper-cased); None when one is missing."""
    values = {}
    for name in names:
        value = arguments.get(name)
        if value is None or isinstance(value, dict | list) or str(value).strip() == "":
            return None
        values[name] = str(value).strip().upper() if name == "currency" else str(value).strip()
    return values


def caps_of(arguments: dict[str, Any], scope: list[str]) -> dict[str, str]:
    """Every numeric argument of the approved call (but the scope's), as the cap for the calls the
    grant covers."""
    return {k: str(n) for k, v in arguments.items() if k not in scope and (n := _number(v)) is not None}


def scope_hash(tenant: str, tool: str, scope: dict[str, str]) -> str:
    canonical = "\x1f".join([tenant, tool, *(f"{k}={scope[k]}" for k in sorted(scope))])
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def grant_id_for(tenant: str, tool: str, scope: dict[str, str], decision_id: str) -> str:
    """One grant per decision (a retry makes the same id), locatable from its id alone."""
    return f"grt_{scope_hash(tenant, tool, scope)}_{hashlib.sha256(decision_id.encode()).hexdigest()[:12]}"


def _number(value: Any) -> Decimal | None:
    """A JSON number (not a numeric-looking string: "1001" may be an order id, not a quantity)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        return None
    return parsed if parsed.is_finite() else None
