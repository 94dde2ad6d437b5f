"""GrantRecords: standing approvals, found by the scope they cover, listed newest first.

A grant lives in the partition of its scope (``GRANTSCOPE#<hash of tool and scope values>``),
so the calls it may cover find it with one query; its id carries that hash, so it is found by
id too. Listed through the audit index under the bucket ``GRANTS``. A use is one conditional
write that takes it only from a live grant (uses left, not expired, not revoked) and records
which call took it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from signoff.dal.audit import AUDIT_INDEX, InvalidCursor
from signoff.dal.audit import _decode as decode_cursor
from signoff.dal.audit import _encode as encode_cursor
from signoff.dal.base import TableBase, _key, _strip_keys
from signoff.dal.codec import from_item, to_item
from signoff.domain.grants import GRANT_ID_PATTERN, Grant, GrantUse, scope_hash
from signoff.domain.models import iso

GRANTS_BUCKET = "GRANTS"
_GRANT_ID = re.compile(GRANT_ID_PATTERN)


def _grant_key(grant_id: str) -> dict:
    return _key(f"GRANTSCOPE#{grant_id.split('_')[1]}", f"GRANT#{grant_id}")


class GrantRecords(TableBase):
    def put_grant(self, grant: Grant) -> bool:
        """Stored once (the id comes from the decision, so a retry finds it there)."""
        item = to_item(
            {
                **grant.model_dump(mode="json"),
                "type": "grant",
                "audit_bucket": GRANTS_BUCKET,
                "audit_at": f"{grant.created_at}#{grant.grant_id}",
                "ttl": self._expiry(),
            }
        )
        item.update(_grant_key(grant.grant_id))
        return self._put_new(item)

    def get_grant(self, grant_id: str) -> Grant | None:
        if not _GRANT_ID.fullmatch(grant_id):
            return None
        data = self._get(_grant_key(grant_id))
        return Grant.model_validate(_strip_keys(data)) if data else None

    def grants_for_scope(self, tenant: str, tool: str, scope: dict[str, str]) -> list[Grant]:
        return [
            Grant.model_validate(_strip_keys(data))
            for data in self._query_prefix(f"GRANTSCOPE#{scope_hash(tenant, tool, scope)}", "GRANT#")
        ]

    def take_grant_use(self, grant: Grant, use: GrantUse, now: datetime) -> int | None:
        """One use of a live grant for this call: the uses left after it, or None if it had none."""
        left = self._update_returning(
            _grant_key(grant.grant_id),
            "SET uses_left = uses_left - :one, uses = list_append(uses, :use)",
            "uses_left > :zero AND expires_at > :now AND attribute_not_exists(revoked_at)",
            {":one": 1, ":zero": 0, ":now": iso(now), ":use": [use.model_dump(mode="json")]},
            returning="UPDATED_NEW",
        )
        return None if left is None else int(left["uses_left"])

    def revoke_grant(self, tenant: str, grant_id: str, by: str, now: datetime) -> bool:
        """Revoked at once, for good, by its own tenant only; False when it already was (or is not
        this tenant's, or does not exist)."""
        if not _GRANT_ID.fullmatch(grant_id):
            return False
        return self._update(
            _grant_key(grant_id),
            "SET revoked_at = :at, revoked_by = :by",
            "attribute_exists(pk) AND tenant = :tenant AND attribute_not_exists(revoked_at)",
            {":at": iso(now), ":by": by, ":tenant": tenant},
        )

    def list_grants(self, tenant: str, limit: int, cursor: str | None) -> tuple[list[Grant], str | None]:
        """A page of the tenant's grants, newest first (a page may hold fewer than ``limit``: the
        others were another tenant's; follow the cursor)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": AUDIT_INDEX,
            "KeyConditionExpression": "audit_bucket = :b",
            "FilterExpression": "tenant = :tenant",
            "ExpressionAttributeValues": {":b": {"S": GRANTS_BUCKET}, ":tenant": {"S": tenant}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            bucket, start_key = decode_cursor(cursor)  # the audit trail's cursors, for another bucket
            if bucket != GRANTS_BUCKET:
                raise InvalidCursor("cursor is not valid")
            kwargs["ExclusiveStartKey"] = start_key
        page = self._db.query(**kwargs)
        grants = [Grant.model_validate(_strip_keys(from_item(item))) for item in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        return grants, encode_cursor(GRANTS_BUCKET, last) if last else None
