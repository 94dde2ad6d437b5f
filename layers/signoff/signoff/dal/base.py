"""TableBase: keys, codecs and the conditional-write helpers every record module shares."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from signoff.dal.codec import from_item, to_attr
from signoff.domain.models import Action, Approval, Conversation, Message, Turn, iso, utc_now

DUE_INDEX = "due-index"
# The due index is split over DUE_SHARDS partitions by the item's pk, so no single index partition
# takes every write of a busy stack (one partition takes about 1,000 writes a second). "DUE", the
# one bucket of earlier versions, is still read until what it holds has been handled.
DUE_SHARDS = 16
LEGACY_DUE_BUCKET = "DUE"
DUE_BUCKETS = (*(f"DUE#{n:x}" for n in range(DUE_SHARDS)), LEGACY_DUE_BUCKET)


def due_bucket(pk: str) -> str:
    """The due-index partition of the item whose pk is ``pk`` (stable across processes)."""
    return f"DUE#{zlib.crc32(pk.encode()) % DUE_SHARDS:x}"


def _conv_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def _approval_key(approval_id: str) -> dict:
    return {"pk": {"S": f"APPROVAL#{approval_id}"}, "sk": {"S": "APPROVAL"}}


def _key(pk: str, sk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _action_key(conversation_id: str, turn_id: str, call_id: str) -> dict:
    return _key(_conv_pk(conversation_id), f"ACTION#{turn_id}#{call_id}")


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


# What each item type loads as, and which of its fields are stored as JSON text (client and
# model data whose numbers must survive exactly, whatever DynamoDB's number range and spelling).
_RECORDS: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "conversation": (Conversation, ("metadata",)),
    "turn": (Turn, ()),
    "message": (Message, ()),
    "action": (Action, ("arguments", "approved_arguments")),
    "approval": (Approval, ("response_data", "call")),
}


MAX_BATCH_READ = 100  # keys in one BatchGetItem


def _record(data: dict[str, Any]) -> Any:
    """An item read from the table, as the domain record its ``type`` names."""
    model, json_fields = _RECORDS[data["type"]]
    fields = _strip_keys(data)
    for name in json_fields:
        if isinstance(fields.get(name), str):
            fields[name] = json.loads(fields[name])
    return model.model_validate(fields)


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
    def _conditional(self, operation: Callable[..., dict], **kwargs: Any) -> dict | None:
        """Run a conditional write: its response, or None when a condition failed (someone else won)."""
        try:
            return operation(**kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise

    def _transact(self, items: list[dict]) -> bool:
        return self._transact_reasons(items) is None

    def _transact_reasons(self, items: list[dict]) -> list[str] | None:
        """A transaction: None when written, else why each item was refused, in order
        (``ConditionalCheckFailed`` for an item whose condition failed, ``None`` for one that passed)."""
        for entry in items:
            next(iter(entry.values()))["TableName"] = self._table
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            reasons = exc.response.get("CancellationReasons") or []
            return [str(r.get("Code", "None")) for r in reasons] or ["Unknown"] * len(items)
        return None

    def _update(
        self, key: dict, expression: str, condition: str, values: dict | None = None, names: dict | None = None
    ) -> bool:
        return self._update_returning(key, expression, condition, values, names, returning="NONE") is not None

    def _update_returning(
        self,
        key: dict,
        expression: str,
        condition: str,
        values: dict | None = None,
        names: dict | None = None,
        returning: str = "ALL_NEW",
    ) -> dict | None:
        """A conditional update: the attributes ``returning`` names ({} for NONE), or None when the
        condition failed (someone else won)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": condition,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = {k: to_attr(v) for k, v in values.items()}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if returning != "NONE":
            kwargs["ReturnValues"] = returning
        response = self._conditional(self._db.update_item, **kwargs)
        return None if response is None else from_item(response.get("Attributes") or {})

    def _put_new(self, item: dict) -> bool:
        return (
            self._conditional(
                self._db.put_item, TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
            is not None
        )

    def _get(self, key: dict) -> dict | None:
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def _get_many(self, keys: list[dict]) -> list[dict]:
        """Consistent reads, MAX_BATCH_READ items a request (BatchGetItem), in no set order; a key
        DynamoDB leaves unprocessed (throttling) is asked again."""
        found: list[dict] = []
        for start in range(0, len(keys), MAX_BATCH_READ):
            chunk = keys[start : start + MAX_BATCH_READ]
            request: dict[str, Any] = {self._table: {"Keys": chunk, "ConsistentRead": True}}
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                found += [from_item(item) for item in response.get("Responses", {}).get(self._table, [])]
                request = response.get("UnprocessedKeys") or {}
        return found

    def _query_partition(self, pk: str) -> Iterator[dict]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        yield from self._pages(kwargs)

    def _pages(self, kwargs: dict[str, Any]) -> Iterator[dict]:
        while True:
            page = self._db.query(**kwargs)
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _query_prefix(self, pk: str, prefix: str) -> Iterator[dict]:
        """The items of one partition whose sort key starts with ``prefix``, all pages."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        yield from self._pages(kwargs)

    def _remove_due(self, key: dict) -> bool:
        return self._update(key, "REMOVE due_bucket, due_at", "attribute_exists(pk)")
