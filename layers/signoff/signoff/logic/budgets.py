"""BudgetKeeper: the budgets of the policy, applied to calls as they are gated, approved and end.

At the gate, a call no rule gates is let through only if every budget of its tool has room for
it, and its reservation is taken then (so the calls of one pause, and of concurrent
conversations, are counted one after another, never together unseen). A call a human approved
counts too, at the amount that runs; only a hard cap can still refuse it. A call that ends
without running, or fails, gives its reservations back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from signoff.domain.budgets import BudgetCharge, BudgetWrite, UnreadableCharge, charge_for, money, reserve
from signoff.domain.models import Action, utc_now
from signoff.domain.policy import ApprovalPolicy
from signoff.observability import count

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore

logger = Logger(child=True)


@dataclass(frozen=True)
class Admission:
    """What the budgets say of a call: refused (a hard cap), needs sign-off (why), or let through."""

    refused: str | None = None
    needs_sign_off: list[str] = field(default_factory=list)

    @property
    def let_through(self) -> bool:
        return self.refused is None and not self.needs_sign_off


def call_key_of(conversation_id: str, turn_id: str, call_id: str) -> str:
    """A call's key in the budgets it counts on: taking it twice counts once."""
    return f"{conversation_id}#{turn_id}#{call_id}"


def call_key(action: Action) -> str:
    return call_key_of(action.conversation_id, action.turn_id, action.call_id)


class BudgetKeeper:
    def __init__(self, table: SignoffStore, policy: Callable[[], ApprovalPolicy]):
        self._table = table
        self._policy = policy

    def admit_ungated(self, key: str, tool: str, arguments: dict[str, Any], tenant: str) -> Admission:
        """At the gate, for a call no rule gates: reserve it on every budget of its tool, or say why not."""
        budgets = self._policy().budgets_for(tool)
        if not budgets:
            return Admission()
        now = utc_now()
        taken: list[BudgetCharge] = []
        refused, needs = None, []
        for budget in budgets:
            try:
                charge = charge_for(budget, arguments, tenant)
            except UnreadableCharge as exc:
                why = f"budget {budget.name!r} cannot count this call: {exc}"
                if budget.hard:
                    refused = why
                else:
                    needs.append(why)
                continue
            reservation = self._table.reserve_budget(charge, key, now, enforce_limit=True)
            if reservation.taken:
                taken.append(charge)
                continue
            why = _over(charge, reservation.total_before)
            if budget.hard:
                refused = f"over the hard cap of {why}"
            else:
                needs.append(why)
        if refused or needs:
            for charge in taken:
                self._table.release_budget(charge, key, now)
            count("BudgetCapRefusals" if refused else "BudgetGated")
            logger.info("budget stops a call", extra={"tool": tool, "refused": bool(refused)})
        return Admission(refused=refused, needs_sign_off=needs)

    def admit_approved(self, key: str, tool: str, arguments: dict[str, Any], tenant: str) -> str | None:
        """A human (or their standing approval) signed the call off at these arguments: it counts on
        every budget. None when it may run; otherwise why a hard cap refuses it."""
        refusal, charges = self._approved_charges(tool, arguments, tenant)
        if refusal:
            return refusal
        now = utc_now()
        taken: list[BudgetCharge] = []
        for charge in charges:
            reservation = self._table.reserve_budget(charge, key, now, enforce_limit=charge.budget.hard)
            if not reservation.taken:
                self._release_all(taken, key)
                count("BudgetCapRefusals")
                return f"over the hard cap of {_over(charge, reservation.total_before)}"
            taken.append(charge)
        return None

    def plan_approved(
        self, key: str, tool: str, arguments: dict[str, Any], tenant: str
    ) -> tuple[str | None, list[BudgetWrite]]:
        """``admit_approved`` without writing: why a hard cap refuses the call (None: it may run), and
        the reservations its verdict writes in the same transaction, each only if its counter has
        not moved since this read (else BudgetMoved, and the verdict is planned again)."""
        refusal, charges = self._approved_charges(tool, arguments, tenant)
        if refusal:
            return refusal, []
        now, writes = utc_now(), []
        for charge in charges:
            reservations, version = self._table.budget_state(charge.group_id)
            reservation, changed = reserve(reservations, charge, key, now, enforce_limit=charge.budget.hard)
            if not reservation.taken:
                count("BudgetCapRefusals")
                return f"over the hard cap of {_over(charge, reservation.total_before)}", []
            if changed is not None:
                writes.append(BudgetWrite(charge.group_id, changed, version, now + charge.budget.window()))
        return None, writes

    def _approved_charges(
        self, tool: str, arguments: dict[str, Any], tenant: str
    ) -> tuple[str | None, list[BudgetCharge]]:
        """What a signed-off call counts on: a charge per budget that can count it (a soft budget that
        cannot is skipped: a human approved it), or why a hard cap cannot count it at all."""
        charges = []
        for budget in self._policy().budgets_for(tool):
            try:
                charges.append(charge_for(budget, arguments, tenant))
            except UnreadableCharge as exc:
                if budget.hard:
                    return f"budget {budget.name!r} cannot count this call: {exc}", []
        return None, charges

    def release(self, action: Action) -> None:
        """The call did not run, or failed: its reservations go back (at whichever arguments took them)."""
        for arguments in _argument_sets(action):
            self.release_call(call_key(action), action.tool, arguments, action.tenant)

    def release_call(self, key: str, tool: str, arguments: dict[str, Any], tenant: str) -> None:
        charges = []
        for budget in self._policy().budgets_for(tool):
            try:
                charges.append(charge_for(budget, arguments, tenant))
            except UnreadableCharge:
                continue
        self._release_all(charges, key)

    def standing(self, tool: str, arguments: dict[str, Any], tenant: str) -> list[str]:
        """For the approver: each budget of the call, its group's total and limit, and the call's amount."""
        lines, now = [], utc_now()
        for budget in self._policy().budgets_for(tool):
            try:
                charge = charge_for(budget, arguments, tenant)
            except UnreadableCharge as exc:
                lines.append(f"Budget {budget.name}: cannot count this call ({exc}).")
                continue
            total = self._table.budget_total(charge, now)
            cap = "hard cap" if budget.hard else "limit"
            group = ", ".join(f"{k}={v}" for k, v in charge.group.items()) or "all calls"
            lines.append(
                f"Budget {budget.name} ({group}, last {budget.window_hours} h): "
                f"{money(total)} used of {money(budget.limit)} ({cap}); this call adds {money(charge.amount)}."
            )
        return lines

    def _release_all(self, charges: list[BudgetCharge], key: str) -> None:
        now = utc_now()
        for charge in charges:
            self._table.release_budget(charge, key, now)


def _over(charge: BudgetCharge, total: Decimal) -> str:
    return (
        f"{charge.describe()}: {money(total)} already used of {money(charge.budget.limit)}; "
        f"this call would make {money(total + charge.amount)}"
    )


def _argument_sets(action: Action) -> list[dict[str, Any]]:
    sets = [action.arguments]
    if action.approved_arguments is not None and action.approved_arguments != action.arguments:
        sets.append(action.approved_arguments)
    return sets
