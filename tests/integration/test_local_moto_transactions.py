"""The local stack's moto: a failed transaction changes nothing (items and stream)."""

from __future__ import annotations

import uuid

import pytest

from signoff.dal.table import SignoffTable
from tests.support import dynamodb_table, queued_conversation


@pytest.fixture(scope="module")
def table(stack) -> SignoffTable:
    return dynamodb_table("txn")


def test_a_failed_transaction_leaves_every_item_and_the_stream_as_they_were(table):
    """The local moto rolls a transaction back from the items it touched (not a copy of the table):
    a put, an update and a delete before the failing condition are all undone, and the stream
    shows none of them."""
    from local.moto_server import drain_stream

    cid, _ = queued_conversation(table)
    before = table.get_conversation(cid)
    doomed = f"conv_{uuid.uuid4().hex}"
    message_sk = next(i["sk"] for i in table._query_partition(f"CONV#{cid}") if i["sk"].startswith("MSG#"))
    drain_stream(table._table)
    ok = table._transact(
        [
            {"Put": {"Item": {"pk": {"S": f"CONV#{doomed}"}, "sk": {"S": "META"}, "type": {"S": "conversation"}}}},
            {
                "Update": {
                    "Key": {"pk": {"S": f"CONV#{cid}"}, "sk": {"S": "META"}},
                    "UpdateExpression": "SET #s = :x",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":x": {"S": "failed"}},
                }
            },
            {"Delete": {"Key": {"pk": {"S": f"CONV#{cid}"}, "sk": {"S": message_sk}}}},
            {
                "ConditionCheck": {
                    "Key": {"pk": {"S": "CONV#nobody"}, "sk": {"S": "META"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        ]
    )
    assert ok is False
    assert table.get_conversation(doomed) is None
    assert table.get_conversation(cid) == before
    assert any(i["sk"] == message_sk for i in table._query_partition(f"CONV#{cid}"))
    assert drain_stream(table._table) == []
