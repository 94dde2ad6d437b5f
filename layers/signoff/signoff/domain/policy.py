"""ApprovalPolicy: which tool calls need sign-off, from whom, how urgently and for how long.

Declared per tool in a JSON document (``signoff/policy.json`` ships the default; see
docs/policy.md). The gate is enforced here, in code: the model cannot talk its way past it.
Anything the policy does not cover fails closed: a tool it does not name needs approval,
a rule that cannot be evaluated (missing argument, unknown currency) needs approval.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signoff.domain.budgets import Budget

Urgency = Literal["low", "medium", "high", "critical"]
MAX_TIMEOUT_MINUTES = 7 * 24 * 60  # Handover decisions and our continuations both cover a week


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AmountOver(_Strict):
    """Needs approval when ``arguments[field]`` is over the threshold for its currency."""

    kind: Literal["amount_over"]
    field: str
    currency_field: str | None = None
    thresholds: dict[str, Decimal]  # ISO code → threshold; "*" for any other currency

    def applies(self, arguments: dict[str, Any]) -> bool:
        try:
            amount = Decimal(str(arguments[self.field]))
        except (KeyError, InvalidOperation, ValueError):
            return True
        currency = str(arguments.get(self.currency_field, "")).upper() if self.currency_field else "*"
        threshold = self.thresholds.get(currency, self.thresholds.get("*"))
        return threshold is None or amount > threshold

    def describe(self, arguments: dict[str, Any]) -> str:
        """The rule in words, for the call in hand ("amount over 100 EUR")."""
        currency = str(arguments.get(self.currency_field, "")).upper() if self.currency_field else ""
        threshold = self.thresholds.get(currency or "*", self.thresholds.get("*"))
        if threshold is None:
            return f"{self.field} in a currency with no threshold set"
        plain = format(threshold, "f")
        plain = plain.rstrip("0").rstrip(".") if "." in plain else plain
        return f"{self.field} over {plain}" + (f" {currency}" if currency else "")


MAX_PATTERN_LENGTH = 512
_PATTERN_MEMORY = 1 << 20  # bytes RE2 may use for one compiled pattern: a pattern that needs more is refused


@lru_cache(maxsize=256)
def linear_pattern(pattern: str) -> Any:
    """The pattern compiled by RE2, whose matching takes time linear in the input whatever the
    pattern (no backtracking: ``^(1+)+$`` cannot explode). What RE2 cannot run in linear time it
    does not accept (backreferences, lookaround), nor a pattern whose automaton would be too large:
    ValueError, naming why."""
    import re2

    options = re2.Options()
    options.max_mem = _PATTERN_MEMORY
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"pattern cannot be matched in linear time ({why}); use RE2 syntax: no backreferences or lookaround"
        ) from exc


class Matches(_Strict):
    """Needs approval when ``arguments[field]`` matches (or, with ``not_matches``, does not match) a
    regular expression, matched by RE2 in linear time (see ``linear_pattern``)."""

    kind: Literal["matches", "not_matches"]
    field: str
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_LENGTH)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        linear_pattern(value)
        return value

    def applies(self, arguments: dict[str, Any]) -> bool:
        if self.field not in arguments:
            return True
        found = linear_pattern(self.pattern).search(str(arguments[self.field])) is not None
        return found if self.kind == "matches" else not found

    def describe(self, arguments: dict[str, Any]) -> str:
        verb = "matches" if self.kind == "matches" else "does not match"
        return f"{self.field} {verb} {self.pattern!r}"


Rule = Annotated[AmountOver | Matches, Field(discriminator="kind")]


class Quorum(_Strict):
    """M of N: one decision per approver; any denial denies; the M-th approval lets the call run."""

    required: int = Field(ge=1)
    approvers: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _reachable(self) -> Quorum:
        if self.required > len(self.approvers):
            raise ValueError("quorum.required is more than the number of approvers")
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError("quorum.approvers has duplicates")
        return self


class Rung(_Strict):
    """One step of an escalation ladder: whom to ask next when the decision before expired."""

    approver: str = Field(min_length=1, max_length=320)
    after_minutes: int = Field(ge=1, le=MAX_TIMEOUT_MINUTES)


class ToolPolicy(_Strict):
    approval: Literal["never", "always", "rules"] = "always"
    rules: list[Rule] = Field(default_factory=list)
    urgency: Urgency | None = None
    timeout_minutes: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_MINUTES)
    approver: str | None = None
    quorum: Quorum | None = None
    modifiable: list[str] = Field(default_factory=list)  # arguments an approver may change
    grant_scope: list[str] = Field(default_factory=list)  # arguments a standing approval is tied to
    # Who is asked next, in order, when a decision expires unanswered (or Handover escalates it).
    escalation: list[Rung] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _rules_only_with_rules(self) -> ToolPolicy:
        if self.approval == "rules" and not self.rules:
            raise ValueError('approval "rules" needs at least one rule')
        if self.approver and self.quorum:
            raise ValueError("give either approver or quorum, not both")
        if self.escalation and self.quorum:
            raise ValueError("an escalation ladder is for one approver at a time, not a quorum")
        if self.escalation and self.approval == "never":
            raise ValueError("a tool that is never gated has no decisions to escalate")
        return self


class PolicyDefaults(_Strict):
    urgency: Urgency = "medium"
    timeout_minutes: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_MINUTES)  # else DecisionTimeoutMinutes
    approver: str | None = None  # else the deployment's ApproverEmail


class ApprovalPolicy(_Strict):
    version: Literal[1] = 1
    defaults: PolicyDefaults = Field(default_factory=PolicyDefaults)
    tools: dict[str, ToolPolicy] = Field(default_factory=dict)
    budgets: list[Budget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_budget_names(self) -> ApprovalPolicy:
        names = [b.name for b in self.budgets]
        if len(set(names)) != len(names):
            raise ValueError("budget names must be unique")
        return self

    def budgets_for(self, name: str) -> list[Budget]:
        return [b for b in self.budgets if name in b.tools]

    def for_tool(self, name: str) -> ToolPolicy:
        """A tool the policy does not name needs approval (fail closed)."""
        return self.tools.get(name) or ToolPolicy(approval="always")

    def requires_approval(self, name: str, arguments: dict[str, Any]) -> bool:
        policy = self.for_tool(name)
        if policy.approval == "never":
            return False
        if policy.approval == "always":
            return True
        return any(rule.applies(arguments) for rule in policy.rules)

    def why_asked(self, name: str, arguments: dict[str, Any]) -> str:
        """Why this call needs a person, in words an approver reads: the rule that fired, by name."""
        policy = self.for_tool(name)
        if policy.approval == "always":
            return f"every call to {name} needs sign-off (the policy says always)"
        fired = [rule.describe(arguments) for rule in policy.rules if rule.applies(arguments)]
        return f"the policy asks for sign-off when {' or '.join(fired)}" if fired else "the policy asks for sign-off"

    def approvers(self, name: str, fallback: str) -> tuple[list[str], int]:
        """Whom to ask and how many must say yes."""
        policy = self.for_tool(name)
        if policy.quorum:
            return list(policy.quorum.approvers), policy.quorum.required
        return [policy.approver or self.defaults.approver or fallback], 1

    def rung_approver(self, name: str, rung: int) -> str | None:
        """Who is asked at ``rung`` (1 = the first escalation); None past the ladder's end."""
        ladder = self.for_tool(name).escalation
        return ladder[rung - 1].approver if 1 <= rung <= len(ladder) else None

    def decision_minutes(self, name: str, rung: int, fallback: int) -> int:
        """How long the decision at ``rung`` (0 = the first approver) may wait: until the next rung
        takes over, and for the last one the tool's timeout."""
        ladder = self.for_tool(name).escalation
        if rung < len(ladder):
            return ladder[rung].after_minutes
        return self.timeout_minutes(name, fallback)

    def urgency(self, name: str) -> Urgency:
        return self.for_tool(name).urgency or self.defaults.urgency

    def timeout_minutes(self, name: str, fallback: int) -> int:
        minutes = self.for_tool(name).timeout_minutes or self.defaults.timeout_minutes or fallback
        return max(1, min(MAX_TIMEOUT_MINUTES, minutes))

    def ungrantable(self, name: str) -> str | None:
        """Why no standing approval may cover this tool's calls (None: it may)."""
        policy = self.for_tool(name)
        if policy.quorum:
            return "it needs a quorum"
        if self.urgency(name) == "critical":
            return "it is critical"
        if not policy.grant_scope:
            return "the policy gives it no grant_scope"
        return None

    def options(self, name: str) -> list[str]:
        """What the approver may answer; modify only where arguments may change and one person decides."""
        policy = self.for_tool(name)
        return ["approve", "deny", "modify"] if policy.modifiable and not policy.quorum else ["approve", "deny"]
