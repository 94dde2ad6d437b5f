"""An audit request reads a bounded number of index pages, and its cursor goes on from there: a
filter that matches little never reads the whole index at once, and nothing is skipped or repeated."""

from __future__ import annotations

import uuid
from datetime import timedelta

import boto3
import pytest

from local.aws_resources import create_resources
from local.template import SamTemplate
from signoff.dal import audit
from signoff.dal.audit import AuditQuery
from signoff.dal.table import SignoffTable
from signoff.domain.models import Approval, iso, utc_now


@pytest.fixture(scope="module")
def table(stack) -> SignoffTable:
    created = create_resources(
        SamTemplate(), {"OpenAIApiKeySecret": "x", "HandoverApiKeySecret": "y"}, prefix=f"aud-{uuid.uuid4().hex[:8]}"
    )
    table = SignoffTable(boto3.client("dynamodb"), created.refs["SignoffTable"])
    now = utc_now()
    for n in range(120):  # 120 approvals of one tool, then 3 of a rare one at the oldest end
        tool = "rare_tool" if n < 3 else "common_tool"
        approval = Approval(
            approval_id=f"ap{n:04d}",
            conversation_id="conv_x",
            turn_id="turn_x",
            call_id=f"call_{n}",
            tool=tool,
            digest="d",
            created_at=iso(now - timedelta(seconds=200 - n)),
            tenant="acme",
        )
        table.put_approval(approval, now + timedelta(days=1))
    return table


def _all(table, query_for, monkeypatch, pages: int) -> tuple[list[str], int]:
    """Every approval the paged query gives, following cursors; and how many requests it took."""
    monkeypatch.setattr(audit, "MAX_PAGES_PER_REQUEST", pages)
    found, cursor, requests = [], None, 0
    while True:
        page, cursor = table.list_approvals(query_for(cursor))
        requests += 1
        found += [a.approval_id for a in page]
        if cursor is None:
            return found, requests


def test_a_rare_match_is_found_across_bounded_requests_without_reading_everything_at_once(table, monkeypatch):
    now = utc_now()

    def query(cursor):
        return AuditQuery(now - timedelta(days=1), now, tool="rare_tool", limit=50, cursor=cursor, tenant="acme")

    calls = []
    original = table._db.query
    monkeypatch.setattr(table._db, "query", lambda **kw: calls.append(kw) or original(**kw))
    found, requests = _all(table, query, monkeypatch, pages=2)
    assert sorted(found) == ["ap0000", "ap0001", "ap0002"]
    # 120 approvals at 50 per page: 3 pages. The first request stops after 2 (nothing found, a cursor);
    # the second reads the third and finds the three.
    assert requests == 2
    assert len(calls) == 3  # and no page was read twice


def test_paging_with_bounded_requests_gives_each_approval_once(table, monkeypatch):
    now = utc_now()

    def query(cursor):
        return AuditQuery(now - timedelta(days=1), now, tool="common_tool", limit=7, cursor=cursor, tenant="acme")

    found, _requests = _all(table, query, monkeypatch, pages=1)
    assert len(found) == 117 and len(set(found)) == 117
