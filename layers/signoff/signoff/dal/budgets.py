"""Budget counters: one item per budget and group, holding the reservations of its window.

A reservation is keyed by the call it is for, so taking it twice counts once. Every change is a
read, then a write conditioned on the version read (optimistic concurrency): two calls racing
for the last of a budget cannot both see room for themselves. Reservations older than the
window are dropped at each write; the item expires (TTL) a day after its window if nothing
touches it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

from signoff import backoff
from signoff.dal.base import TableBase, _key
from signoff.dal.codec import to_attr
from signoff.domain.budgets import BudgetCharge, BudgetWrite, Reservations, live_total, release, reserve
from signoff.domain.stores import BudgetContention, Reservation

__all__ = ["BudgetContention", "BudgetRecords", "Reservation"]


def _budget_key(group_id: str) -> dict:
    return _key(f"BUDGET#{group_id}", "BUDGET")


class BudgetRecords(TableBase):
    def budget_state(self, group_id: str) -> tuple[Reservations, int]:
        item = self._get(_budget_key(group_id))
        if item is None:
            return {}, 0
        return json.loads(item.get("reservations") or "{}"), int(item.get("version", 0))

    def budget_total(self, charge: BudgetCharge, now: datetime) -> Decimal:
        reservations, _ = self.budget_state(charge.group_id)
        return live_total(reservations, now, charge.budget.window())

    def reserve_budget(self, charge: BudgetCharge, call_key: str, now: datetime, enforce_limit: bool) -> Reservation:
        """Add the call's amount to its group; with ``enforce_limit``, only if the total stays within."""
        for attempt in range(backoff.ATTEMPTS):
            reservations, version = self.budget_state(charge.group_id)
            reservation, changed = reserve(reservations, charge, call_key, now, enforce_limit)
            if changed is None or self._write_budget(charge.group_id, changed, version, now + charge.budget.window()):
                return reservation
            backoff.pause(attempt)
        raise BudgetContention(charge.group_id)

    def release_budget(self, charge: BudgetCharge, call_key: str, now: datetime) -> bool:
        """Take the call's reservation back (it did not run); False if it held none."""
        for attempt in range(backoff.ATTEMPTS):
            reservations, version = self.budget_state(charge.group_id)
            changed = release(reservations, charge, call_key, now)
            if changed is None:
                return False
            if self._write_budget(charge.group_id, changed, version, now + charge.budget.window()):
                return True
            backoff.pause(attempt)
        raise BudgetContention(charge.group_id)

    def _write_budget(self, group_id: str, reservations: dict, version: int, window_end: datetime) -> bool:
        update = self._budget_write_item(BudgetWrite(group_id, reservations, version, window_end))["Update"]
        return self._conditional(self._db.update_item, TableName=self._table, **update) is not None

    def _budget_write_item(self, write: BudgetWrite) -> dict:
        """The counter's new reservations, only if it is still at the version read (a transaction item)."""
        values = {
            ":r": json.dumps(write.reservations, sort_keys=True),
            ":next": write.version + 1,
            ":ttl": int((write.window_end + timedelta(days=1)).timestamp()),
            ":type": "budget",
        }
        if write.version:
            values[":read"] = write.version
        return {
            "Update": {
                "Key": _budget_key(write.group_id),
                "UpdateExpression": "SET reservations = :r, version = :next, #ttl = :ttl, #type = :type",
                "ConditionExpression": "attribute_not_exists(pk)" if write.version == 0 else "version = :read",
                "ExpressionAttributeNames": {"#ttl": "ttl", "#type": "type"},
                "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
            }
        }
