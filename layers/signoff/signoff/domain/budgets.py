"""Budgets: a sum of one argument of some tools, over a rolling window, per group of argument values.

A call that would take its group's total over the limit needs sign-off even when no rule of its
tool asks for it (``over_limit: "approve"``), or is refused (``"deny"``, a hard cap no sign-off
lifts). What counts is what was allowed to run: a reservation is taken when a call may run
(ungated, approved, modified — at the modified amount) and released when it ends without
running or fails. A call whose amount or group cannot be read is not let through on the budget:
it needs sign-off (or, under a hard cap, is refused).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from signoff.domain.models import iso

MAX_WINDOW_HOURS = 31 * 24


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    tools: list[str] = Field(min_length=1)
    sum: str = Field(min_length=1)
    group_by: list[str] = Field(default_factory=list)
    window_hours: int = Field(ge=1, le=MAX_WINDOW_HOURS)
    limit: Decimal = Field(ge=0)
    over_limit: Literal["approve", "deny"] = "approve"

    @model_validator(mode="after")
    def _distinct(self) -> Budget:
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by has duplicates")
        return self

    @property
    def hard(self) -> bool:
        return self.over_limit == "deny"

    def window(self) -> timedelta:
        return timedelta(hours=self.window_hours)


@dataclass(frozen=True)
class BudgetCharge:
    """What one call would add to one budget: its group (readable values), and the amount."""

    budget: Budget
    group: dict[str, str]
    amount: Decimal
    tenant: str = "default"  # each tenant's calls count on their own counters

    @property
    def group_id(self) -> str:
        """The counter's key: the tenant, the budget and its group's values, hashed (values may hold
        anything)."""
        canonical = "\x1f".join([self.tenant, *(f"{k}={self.group[k]}" for k in self.budget.group_by)])
        return f"{self.budget.name}#{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"

    def describe(self) -> str:
        group = ", ".join(f"{k}={v}" for k, v in self.group.items()) or "all calls"
        return f"budget {self.budget.name!r} ({group}, {self.budget.window_hours} h)"


class UnreadableCharge(ValueError):
    """The call's amount or a group value is missing or not usable: the budget cannot vouch for it."""


def charge_for(budget: Budget, arguments: dict[str, Any], tenant: str = "default") -> BudgetCharge:
    try:
        amount = Decimal(str(arguments[budget.sum]))
    except (KeyError, InvalidOperation, ValueError) as exc:
        raise UnreadableCharge(f"{budget.sum!r} is missing or not a number") from exc
    if not amount.is_finite() or amount < 0:
        raise UnreadableCharge(f"{budget.sum!r} must be a non-negative number")
    group = {}
    for key in budget.group_by:
        value = arguments.get(key)
        if value is None or isinstance(value, dict | list) or str(value).strip() == "":
            raise UnreadableCharge(f"{key!r} is missing")
        group[key] = str(value).strip().upper() if key == "currency" else str(value).strip()
    return BudgetCharge(budget, group, amount, tenant)


def money(value: Decimal) -> str:
    """An amount as people write it: 100, 99.5 (not 1E+2 or 100.0)."""
    return f"{value.normalize():f}"


def live_total(reservations: dict[str, dict[str, str]], now: datetime, window: timedelta) -> Decimal:
    """The sum of the reservations taken within the window before ``now``."""
    return sum(
        (Decimal(r["amount"]) for r in reservations.values() if datetime.fromisoformat(r["at"]) > now - window),
        Decimal(0),
    )


def prune(reservations: dict[str, dict[str, str]], now: datetime, window: timedelta) -> dict[str, dict[str, str]]:
    return {k: r for k, r in reservations.items() if datetime.fromisoformat(r["at"]) > now - window}


@dataclass(frozen=True)
class Reservation:
    taken: bool
    total_before: Decimal  # the group's live total without this call


Reservations = dict[str, dict[str, str]]  # call key → {"amount", "at"}: one budget group's, in its window


@dataclass(frozen=True)
class BudgetWrite:
    """A group's reservations as a verdict leaves them: written with the verdict, and only if the
    group is still at the ``version`` they were computed from (0: it had no counter yet)."""

    group_id: str
    reservations: Reservations
    version: int
    window_end: datetime


def reserve(
    reservations: Reservations, charge: BudgetCharge, call_key: str, now: datetime, enforce_limit: bool
) -> tuple[Reservation, Reservations | None]:
    """What taking the call's amount does to its group: the answer, and the reservations to store
    (None: nothing to store). A call that holds a reservation already keeps it and adds nothing."""
    window = charge.budget.window()
    live = prune(reservations, now, window)
    if call_key in live:
        rest = {k: v for k, v in live.items() if k != call_key}
        return Reservation(True, live_total(rest, now, window)), None
    total = live_total(live, now, window)
    if enforce_limit and total + charge.amount > charge.budget.limit:
        return Reservation(False, total), None
    live[call_key] = {"amount": str(charge.amount), "at": iso(now)}
    return Reservation(True, total), live


def release(reservations: Reservations, charge: BudgetCharge, call_key: str, now: datetime) -> Reservations | None:
    """The group's reservations without the call's (None: it held none)."""
    if call_key not in reservations:
        return None
    return prune({k: v for k, v in reservations.items() if k != call_key}, now, charge.budget.window())
