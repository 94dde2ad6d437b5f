"""DueWork: what the reconciler must look at, read from the sparse ``due-index``."""

from __future__ import annotations

from datetime import datetime

from signoff.dal.base import DUE_BUCKET, DUE_INDEX, TableBase, _record
from signoff.dal.codec import from_item
from signoff.domain.models import iso
from signoff.domain.stores import DueWork

__all__ = ["DueRecords", "DueWork"]


class DueRecords(TableBase):
    def due_work(self, now: datetime, limit: int = 100) -> DueWork:
        page = self._db.query(
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_bucket = :b AND due_at <= :now",
            ExpressionAttributeValues={":b": {"S": DUE_BUCKET}, ":now": {"S": iso(now)}},
            Limit=limit,
        )
        work = DueWork()
        lists = {"approval": work.approvals, "turn": work.turns, "action": work.actions}
        for item in page.get("Items", []):
            data = from_item(item)
            work.oldest_due_at = work.oldest_due_at or data.get("due_at")
            lists[data["type"]].append(_record(data))
        return work
