"""SerializedMotoServer: moto's server with one DynamoDB request at a time.

moto's DynamoDB backend is not safe under concurrent requests (a transaction deep-copies the
table while another request changes it). A real table is; so the local stack serialises
requests to moto, which keeps every conditional write atomic as DynamoDB's are.

moto also keeps every model object it ever made (for its dashboard and ``reset``), and a DynamoDB
transaction makes a copy of the whole table as its rollback point: kept forever, a long run of
the local stack grew by gigabytes (a scale-20 reliability run was killed for memory). The server
here never resets, so nothing needs that list: models are not tracked. And a transaction's
rollback point is the items it touches, not a copy of the table (whose cost grew with the table).
And a query reads its partition (a table query) or the unsorted items (an index query), not the
whole table sorted, so a read's cost follows the work rather than the table's size.
"""

from __future__ import annotations

import contextvars
import copy
import threading
from typing import Any

import moto.dynamodb.models as _moto_models
from moto.core.common_models import BaseModel
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


def _untracked(cls, *args: Any, **kwargs: Any) -> Any:
    return super(BaseModel, cls).__new__(cls)


BaseModel.__new__ = _untracked  # type: ignore[method-assign,assignment]


class _TablesNotCopied:
    """moto's ``copy`` module as ``transact_write_items`` sees it: a Table is not deep-copied as the
    rollback point (``_transact_with_item_rollback`` keeps the touched items instead)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _key_of(table: Table, operation: dict[str, Any], op_type: str) -> tuple[DynamoType, DynamoType | None]:
    key = operation["Item"] if op_type == "Put" else operation["Key"]
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _transact_with_item_rollback(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """DynamoDB's all-or-nothing with a rollback point of the items the transaction touches.

    moto deep-copies every table a transaction names as its rollback point: a cost that grows
    with the table, so a long test session slowed down transaction by transaction. The items
    and the stream length are all a failed transaction can have changed.
    """
    touched: list[tuple[Table, DynamoType, DynamoType | None, Any]] = []
    streams: dict[int, tuple[Any, int]] = {}
    for entry in transact_items:
        op_type, operation = next(iter(entry.items()))
        table = self.tables.get(operation.get("TableName", ""))
        if table is None or op_type not in ("Put", "Update", "Delete", "ConditionCheck"):
            continue
        try:
            hash_value, range_value = _key_of(table, operation, op_type)
        except KeyError:
            continue  # moto refuses the request itself
        touched.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
        if table.stream_shard is not None:
            streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
    try:
        _moto_transact(self, transact_items)
    except BaseException:
        for table, hash_value, range_value, original in reversed(touched):
            store = table.items[hash_value] if range_value is not None else table.items
            key = range_value if range_value is not None else hash_value
            if original is None:
                store.pop(key, None)
            else:
                store[key] = original
            if range_value is not None and not table.items[hash_value]:
                table.items.pop(hash_value, None)
        for shard, length in streams.values():
            del shard.items[length:]
        raise


_moto_models.copy = _TablesNotCopied()  # type: ignore[attr-defined]
_moto_transact = DynamoDBBackend.transact_write_items
DynamoDBBackend.transact_write_items = _transact_with_item_rollback  # type: ignore[method-assign]


# What a query of moto's reads: the whole table, sorted, for every query (a partition's too), so a
# long test session slowed down read by read. A query of the table reads its partition only; a
# query of an index the items of its partition that meet its sort key condition, unsorted (moto
# checks both again and sorts what it keeps).
_QUERYING: contextvars.ContextVar[tuple[str | None, DynamoType | None, str | None, list] | None] = (
    contextvars.ContextVar("moto_query", default=None)
)
_moto_query = Table.query
_moto_all_items = Table.all_items


def _query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    token = _QUERYING.set((index_name, hash_key, args[0] if args else None, args[1] if len(args) > 1 else []))
    try:
        return _moto_query(self, hash_key, *args, **kwargs)
    finally:
        _QUERYING.reset(token)


def _items_for_query(self: Table) -> list[Any]:
    querying = _QUERYING.get()
    if querying is None:
        return _moto_all_items(self)  # a scan: in key order, which its paging relies on
    index_name, hash_key, range_comparison, range_values = querying
    if index_name is None and hash_key is not None and self.range_key_attr:
        return list(self.items.get(hash_key, {}).values())
    items = (
        [item for partition in self.items.values() for item in partition.values()]
        if self.range_key_attr
        else list(self.items.values())
    )
    index = self.get_index(index_name) if index_name else None
    keys = {key["KeyType"]: key["AttributeName"] for key in index.schema} if index else {}
    if len(index.schema if index else []) > 2 or hash_key is None or "HASH" not in keys:
        return items
    # The index's partition only, and only what meets the sort key condition: moto checks both again.
    name, sort = keys["HASH"], keys.get("RANGE")
    items = [item for item in items if name in item.attrs and item.attrs[name] == hash_key]
    if sort and range_comparison:
        items = [i for i in items if sort in i.attrs and i.attrs[sort].compare(range_comparison, range_values)]
    return items


Table.query = _query  # type: ignore[method-assign]
Table.all_items = _items_for_query  # type: ignore[method-assign]


# One DynamoDB request at a time, across every server in the process; the stream reader takes it too.
DYNAMODB_LOCK = threading.Lock()


def drain_stream(table_name: str, account_id: str = "123456789012", region: str = "us-east-1") -> list[dict[str, Any]]:
    """Take every record waiting on a table's stream, oldest first, and drop them from moto's shard.

    What Lambda's DynamoDB event source mapping does, read in-process: moto's own stream API keeps
    every record and every iterator forever, a transaction deep-copies them all as its rollback
    point, and a rolled-back transaction swaps in a new shard its iterators never see.
    """
    from moto.dynamodb.models import dynamodb_backends

    with DYNAMODB_LOCK:
        table = dynamodb_backends[account_id][region].tables.get(table_name)
        shard = table.stream_shard if table is not None else None
        if shard is None or not shard.items:
            return []
        records = [dict(item.record) for item in shard.items]
        shard.starting_sequence_number += len(shard.items)  # the next record keeps counting on
        shard.items = []
    for record in records:
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if hasattr(created, "timestamp"):  # moto keeps a datetime; Lambda sends epoch seconds
            record["dynamodb"] = {**record["dynamodb"], "ApproximateCreationDateTime": int(created.timestamp())}
    return records


class _OneAtATime:
    """DynamoDB requests one at a time; everything else (SQS long polls above all) as it comes."""

    def __init__(self, app: Any):
        self._app = app
        self._lock = DYNAMODB_LOCK

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return self._app(environ, start_response)
        with self._lock:
            return list(self._app(environ, start_response))


class SerializedMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
