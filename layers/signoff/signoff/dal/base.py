"""TableBase: keys, codecs and the conditional-write helpers every record module shares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from signoff.dal.codec import from_item, to_attr
from signoff.domain.models import Action, iso, utc_now

DUE_INDEX = "due-index"
DUE_BUCKET = "DUE"


def _conv_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def _approval_key(approval_id: str) -> dict:
    return {"pk": {"S": f"APPROVAL#{approval_id}"}, "sk": {"S": "APPROVAL"}}


def _key(pk: str, sk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _is_condition_failure(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons") or []
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons
    return False


_KEY_ATTRIBUTES = ("pk", "sk", "type", "due_bucket", "due_at", "ttl", "audit_bucket", "audit_at")


def _strip_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in _KEY_ATTRIBUTES}


def _action(data: dict[str, Any]) -> Action:
    fields = _strip_keys(data)
    for name in ("arguments", "approved_arguments"):
        if isinstance(fields.get(name), str):
            fields[name] = json.loads(fields[name])
    return Action.model_validate(fields)


class TableBase:
    """``stall_seconds``: how long a turn may sit queued, or settled-but-not-resumed, before the
    reconciler re-drives it (a lost queue message must not lose a conversation).
    ``running_lease_seconds``: how long a turn may be running before its worker counts as dead."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        stall_seconds: int = 120,
        retention_days: int = 400,
        running_lease_seconds: int = 600,
    ):
        self._db = client
        self._table = table_name
        self._stall = timedelta(seconds=stall_seconds)
        self._retention = timedelta(days=retention_days)
        self._lease = timedelta(seconds=running_lease_seconds)

    def _stall_due(self) -> str:
        return iso(utc_now() + self._stall)

    def _lease_due(self) -> str:
        """When a running turn counts as abandoned (longer than any worker invocation can last)."""
        return iso(utc_now() + self._lease)

    def _expiry(self) -> int:
        """The ``ttl`` of audit records: never deleted before the retention period."""
        return int((utc_now() + self._retention).timestamp())

    # -- generic helpers -------------------------------------------------------------------
    def _transact(self, items: list[dict]) -> bool:
        """Run a transaction; False when a condition failed (someone else won), raise otherwise."""
        for entry in items:
            next(iter(entry.values()))["TableName"] = self._table
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _update(self, key: dict, expression: str, condition: str, values: dict, names: dict | None = None) -> bool:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._db.update_item(**kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _get(self, key: dict) -> dict | None:
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def _query_partition(self, pk: str) -> Iterator[dict]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**kwargs)
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put_new(self, item: dict) -> bool:
        try:
            self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _remove_due(self, key: dict) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="REMOVE due_bucket, due_at",
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True
