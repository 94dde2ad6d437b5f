"""EffectRecords: what the demo tools did, written once per idempotency key.

Each run of a tool also counts itself (``invocations``), so drills can tell an idempotent
repeat (two runs, one effect) from a true single execution.
"""

from __future__ import annotations

from typing import Any

from signoff.dal.base import TableBase, _key
from signoff.dal.codec import from_item, to_attr
from signoff.domain.models import iso, utc_now


class EffectRecords(TableBase):
    def record_effect(self, key: str, tool: str, arguments: dict[str, Any], result: dict[str, Any]) -> dict:
        """Keep the first result for ``key``; a repeat returns it unchanged (and is counted)."""
        response = self._db.update_item(
            TableName=self._table,
            Key=_key(f"EFFECT#{key}", "EFFECT"),
            UpdateExpression=(
                "SET #type = if_not_exists(#type, :type), tool = if_not_exists(tool, :tool), "
                "arguments = if_not_exists(arguments, :args), #result = if_not_exists(#result, :result), "
                "created_at = if_not_exists(created_at, :now) ADD invocations :one"
            ),
            ExpressionAttributeNames={"#type": "type", "#result": "result"},
            ExpressionAttributeValues={
                ":type": to_attr("effect"),
                ":tool": to_attr(tool),
                ":args": to_attr(arguments),
                ":result": to_attr(result),
                ":now": to_attr(iso(utc_now())),
                ":one": to_attr(1),
            },
            ReturnValues="ALL_NEW",
        )
        return from_item(response["Attributes"])["result"]
