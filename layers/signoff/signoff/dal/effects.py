"""EffectRecords: what the demo tools did, written once per idempotency key."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from signoff.dal.base import TableBase, _is_condition_failure, _key
from signoff.dal.codec import to_item
from signoff.domain.models import iso, utc_now


class EffectRecords(TableBase):
    # -- effects of demo tools -------------------------------------------------------------
    def record_effect(self, key: str, tool: str, arguments: dict[str, Any], result: dict[str, Any]) -> dict:
        item = {
            "pk": f"EFFECT#{key}",
            "sk": "EFFECT",
            "type": "effect",
            "tool": tool,
            "arguments": arguments,
            "result": result,
            "created_at": iso(utc_now()),
        }
        try:
            self._db.put_item(TableName=self._table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            existing = self._get(_key(f"EFFECT#{key}", "EFFECT")) or {}
            return existing.get("result", result)
        return result
