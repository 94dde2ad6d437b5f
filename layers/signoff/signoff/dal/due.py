"""DueWork: what the reconciler must look at, read from the sparse ``due-index``."""

from __future__ import annotations

import math
from datetime import datetime

from signoff.dal.base import DUE_BUCKETS, DUE_INDEX, TableBase, _record
from signoff.dal.codec import from_item
from signoff.domain.models import iso
from signoff.domain.stores import DueWork

__all__ = ["DueRecords", "DueWork"]


class DueRecords(TableBase):
    def due_work(self, now: datetime, limit: int = 100) -> DueWork:
        """At most ``limit`` items due by ``now``, oldest first, from an even share of each shard of
        the index (one query each), so a backlog in one shard never hides the others'. ``more``:
        some were left for the next pass."""
        share = max(1, math.ceil(limit / len(DUE_BUCKETS)))
        found: list[dict] = []
        more = False
        for bucket in DUE_BUCKETS:
            page = self._db.query(
                TableName=self._table,
                IndexName=DUE_INDEX,
                KeyConditionExpression="due_bucket = :b AND due_at <= :now",
                ExpressionAttributeValues={":b": {"S": bucket}, ":now": {"S": iso(now)}},
                Limit=share,
            )
            more = more or "LastEvaluatedKey" in page
            found += [from_item(item) for item in page.get("Items", [])]
        found.sort(key=lambda data: (data["due_at"], data["pk"], data["sk"]))
        work = DueWork(more=more or len(found) > limit)
        lists = {"approval": work.approvals, "turn": work.turns, "action": work.actions}
        for data in found[:limit]:
            work.oldest_due_at = work.oldest_due_at or data["due_at"]
            lists[data["type"]].append(_record(data))
        return work
