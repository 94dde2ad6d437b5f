"""The sharded due index on DynamoDB: items spread over the shards by pk, every shard (and the one
bucket of earlier versions) read, the oldest listed first, a page that leaves some says so."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from signoff.dal.base import DUE_BUCKETS, DUE_SHARDS, LEGACY_DUE_BUCKET, due_bucket
from signoff.dal.table import SignoffTable
from signoff.domain.models import iso, utc_now
from tests.support import dynamodb_table, queued_conversation


@pytest.fixture(scope="module")
def table(stack) -> SignoffTable:
    return dynamodb_table("shards")


def test_a_pk_always_has_the_same_shard_and_pks_spread_over_all_of_them():
    assert due_bucket("CONV#conv_1") == due_bucket("CONV#conv_1")
    spread = Counter(due_bucket(f"CONV#conv_{n:032x}") for n in range(1600))
    assert set(spread) == set(DUE_BUCKETS) - {LEGACY_DUE_BUCKET}
    assert max(spread.values()) < 2 * 1600 / DUE_SHARDS  # no shard takes twice its share


def test_due_work_reads_every_shard_and_the_legacy_bucket_oldest_first(table):
    turns = [queued_conversation(table) for _ in range(40)]  # a queued turn is due (its start may be lost)
    stored = Counter(
        item["due_bucket"]
        for cid, tid in turns
        for item in table._query_prefix(f"CONV#{cid}", f"TURN#{tid}")
        if "due_bucket" in item
    )
    assert len(stored) >= 10 and LEGACY_DUE_BUCKET not in stored
    # One turn written by an earlier version, in the single bucket, due long ago.
    old_cid, old_tid = turns[0]
    table._update(
        {"pk": {"S": f"CONV#{old_cid}"}, "sk": {"S": f"TURN#{old_tid}"}},
        "SET due_bucket = :b, due_at = :past",
        "attribute_exists(pk)",
        {":b": LEGACY_DUE_BUCKET, ":past": iso(utc_now() - timedelta(days=1))},
    )
    later = utc_now() + timedelta(days=30)
    everything = table.due_work(later, limit=10_000)
    listed = {t.turn_id for t in everything.turns}
    assert {tid for _, tid in turns} <= listed and not everything.more
    page = table.due_work(later, limit=5)
    assert len(page.turns) + len(page.approvals) + len(page.actions) == 5 and page.more
    assert page.turns[0].turn_id == old_tid  # the oldest, from the legacy bucket, first
    assert page.oldest_due_at == everything.oldest_due_at
