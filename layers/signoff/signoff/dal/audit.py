"""AuditRecords: approvals listed newest first by month, for ``GET /approvals``.

The sparse ``audit-index`` (``audit_bucket`` = ``AUDIT#<yyyy-mm>``, ``audit_at`` =
``<created_at>#<approval id>``) gives time-ordered pages; status, tool and conversation
filters apply within them. Records carry a ``ttl`` no earlier than the retention period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from signoff.dal.actions import calls_bucket
from signoff.dal.base import TableBase, _record
from signoff.dal.codec import from_item
from signoff.domain.models import Action, Approval, iso
from signoff.domain.stores import AuditQuery, InvalidCursor, decode_cursor, encode_cursor, months_newest_first

__all__ = ["AuditQuery", "AuditRecords", "CallRecords", "InvalidCursor"]

AUDIT_INDEX = "audit-index"
MAX_PAGES_PER_REQUEST = 10  # index pages one audit request reads at most; past that, a cursor


def _encode(bucket: str, key: dict) -> str:
    return encode_cursor({"b": bucket, "k": key})


_INDEX_KEY = frozenset({"pk", "sk", "audit_bucket", "audit_at"})


def _decode(cursor: str) -> tuple[str, dict]:
    """A position this store encoded: a bucket and an index key of string attributes (the API seals
    cursors, so another shape is a bug or a forgery: refused before it reaches the table)."""
    fields = decode_cursor(cursor, {"b": str, "k": dict})
    key = fields["k"]
    if key and (
        set(key) != _INDEX_KEY
        or not all(isinstance(v, dict) and list(v) == ["S"] and isinstance(v["S"], str) for v in key.values())
    ):
        raise InvalidCursor("cursor is not valid")
    return fields["b"], key


class AuditRecords(TableBase):
    def list_approvals(self, query: AuditQuery) -> tuple[list[Approval], str | None]:
        months = months_newest_first(query.since, query.until)
        start_key: dict | None = None
        if query.cursor:
            bucket, start_key = _decode(query.cursor)
            if not bucket.startswith("AUDIT#"):
                raise InvalidCursor("cursor is not valid")
            month = bucket.removeprefix("AUDIT#")
            if month not in months:
                raise InvalidCursor("cursor does not belong to this time range")
            months = months[months.index(month) :]
        filters, values, names = self._filters(query)
        found: list[Approval] = []
        pages = 0
        for month in months:
            bucket = f"AUDIT#{month}"
            while True:
                if pages == MAX_PAGES_PER_REQUEST:
                    # Bounded: a filter that matches little never reads the whole index in one request;
                    # the cursor goes on from here (mid-month, or from the start of this month).
                    return found, _encode(bucket, start_key or {})
                kwargs: dict[str, Any] = {
                    "TableName": self._table,
                    "IndexName": AUDIT_INDEX,
                    "KeyConditionExpression": "audit_bucket = :b AND audit_at BETWEEN :from AND :to",
                    "ExpressionAttributeValues": {
                        ":b": {"S": bucket},
                        ":from": {"S": iso(query.since)},
                        ":to": {"S": iso(query.until) + "~"},
                        **values,
                    },
                    "ScanIndexForward": False,
                    "Limit": max(query.limit, 25),
                }
                if filters:
                    kwargs["FilterExpression"] = " AND ".join(filters)
                if names:
                    kwargs["ExpressionAttributeNames"] = names
                if start_key:
                    kwargs["ExclusiveStartKey"] = start_key
                page = self._db.query(**kwargs)
                pages += 1
                for item in page.get("Items", []):
                    found.append(_record(from_item(item)))
                    if len(found) == query.limit:
                        last = {k: item[k] for k in ("pk", "sk", "audit_bucket", "audit_at")}
                        more = (
                            bool(page.get("LastEvaluatedKey")) or item is not page["Items"][-1] or (month != months[-1])
                        )
                        return found, _encode(bucket, last) if more else None
                start_key = page.get("LastEvaluatedKey")
                if not start_key:
                    break
        return found, None

    @staticmethod
    def _filters(query: AuditQuery) -> tuple[list[str], dict, dict]:
        # The tenant first: never another tenant's record, whatever else the query asks.
        if query.tenant == "default":  # approvals stored before tenants had none: the default tenant's
            filters: list[str] = ["(tenant = :tenant OR attribute_not_exists(tenant))"]
        else:
            filters = ["tenant = :tenant"]
        values: dict[str, Any] = {":tenant": {"S": query.tenant}}
        names: dict[str, str] = {}
        if query.status == "pending":
            filters.append("#st = :pending")
            values[":pending"] = {"S": "pending"}
            names["#st"] = "state"
        elif query.status == "not_requested":
            filters.append("#st = :settled AND attribute_type(outcome, :null)")
            values.update({":settled": {"S": "settled"}, ":null": {"S": "NULL"}})
            names["#st"] = "state"
        elif query.status:
            filters.append("outcome = :status")
            values[":status"] = {"S": query.status}
        if query.tool:
            filters.append("tool = :tool")
            values[":tool"] = {"S": query.tool}
        if query.conversation_id:
            filters.append("conversation_id = :cid")
            values[":cid"] = {"S": query.conversation_id}
        return filters, values, names


class CallRecords(TableBase):
    def calls_between(self, tenant: str, since: datetime, until: datetime, most: int) -> list[Action]:
        """The tenant's tool calls made in the range (at most ``most``), from the audit index."""
        found: list[Action] = []
        for month in reversed(months_newest_first(since, until)):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": AUDIT_INDEX,
                "KeyConditionExpression": "audit_bucket = :b AND audit_at BETWEEN :from AND :to",
                "ExpressionAttributeValues": {
                    ":b": {"S": calls_bucket(tenant, month)},
                    ":from": {"S": iso(since)},
                    ":to": {"S": iso(until) + "~"},
                },
            }
            for item in self._pages(kwargs):
                found.append(_record(item))
                if len(found) >= most:
                    return found
        return found
