"""GET /approvals: the audit trail, filtered and paginated, behind the same key as the client API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

SEED = "Issue a €340 refund to customer #4821."


def _approved_and_denied(client) -> tuple[str, str]:
    first = client.start(SEED)["conversation_id"]
    [d1] = client.pending_decision_ids(first)
    client.resolve(d1, "approve", notes="audit me", resolved_by="maria@example.com")
    second = client.start(SEED)["conversation_id"]
    [d2] = client.pending_decision_ids(second)
    client.resolve(d2, "deny", notes="no", resolved_by="lee@example.com")
    client.wait_status(first, "idle")
    client.wait_status(second, "idle")
    return first, second


def test_the_audit_trail_says_who_approved_what_when_and_what_ran(client):
    approved, denied = _approved_and_denied(client)
    [entry] = client.get_json("/approvals", params={"conversation_id": approved})["approvals"]
    assert entry["tool"] == "issue_refund"
    assert entry["action"] == "Issue a refund of 340.00 EUR to customer #4821"
    assert entry["status"] == "approved" and entry["resolved_by"] == "maria@example.com"
    assert entry["notes"] == "audit me" and entry["resolved_at"]
    assert len(entry["arguments_digest"]) == 64
    assert entry["execution"]["status"] == "executed" and entry["execution"]["result"]["refund_id"]
    [entry] = client.get_json("/approvals", params={"conversation_id": denied})["approvals"]
    assert entry["status"] == "denied" and entry["execution"]["status"] == "not_executed"


def test_filters_and_pages(client):
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    _approved_and_denied(client)
    _approved_and_denied(client)
    denied = client.get_json("/approvals", params={"status": "denied", "limit": 200})["approvals"]
    assert denied and all(e["status"] == "denied" for e in denied)
    refunds = client.get_json("/approvals", params={"tool": "issue_refund", "limit": 200})["approvals"]
    assert refunds and all(e["tool"] == "issue_refund" for e in refunds)
    assert client.get_json("/approvals", params={"tool": "no_such_tool"})["approvals"] == []

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, "since": since, **({"cursor": cursor} if cursor else {})}
        page = client.get_json("/approvals", params=params)
        assert len(page["approvals"]) <= 2
        seen += [e["approval_id"] for e in page["approvals"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    everything = client.get_json("/approvals", params={"limit": 200, "since": since})["approvals"]
    assert len(everything) >= 4 and pages > 1
    assert seen == [e["approval_id"] for e in everything]  # newest first, no gaps, no repeats
    assert [e["created_at"] for e in everything] == sorted((e["created_at"] for e in everything), reverse=True)


def test_time_range_filter(client):
    _approved_and_denied(client)
    future = client.get_json("/approvals", params={"since": "2099-01-01T00:00:00Z", "until": "2099-01-02T00:00:00Z"})
    assert future["approvals"] == []


def test_bad_audit_queries_are_400_and_the_key_is_required(client, stack):
    for params in (
        {"status": "maybe"},
        {"limit": "0"},
        {"limit": "lots"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},  # no time zone
        {"since": "2026-05-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"cursor": "not-a-cursor"},
        {"conversation_id": "nope"},
        {"surprise": "1"},
        # dates whose arithmetic (a default range before, a zone offset) leaves what a datetime holds
        {"until": "0001-01-02T00:00:00Z"},
        {"since": "0001-01-01T00:00:00Z"},
        {"until": "9999-12-31T23:59:59-23:59"},
        {"since": "1999-12-31T23:59:59Z"},
    ):
        response = requests.get(f"{stack.api_url}/approvals", params=params, headers=client.headers, timeout=30)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]["code"] in ("invalid_query", "invalid_cursor")
    assert requests.get(f"{stack.api_url}/approvals", timeout=30).status_code == 401


def test_approval_stats_match_the_audit_trail_they_summarise(client):
    from datetime import UTC, datetime, timedelta

    from signoff.logic.audit import percentile

    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    for answer in ("approve", "approve", "deny"):
        cid = client.start("Delete customer #stats-1's data")["conversation_id"]
        [decision_id] = client.pending_decision_ids(cid)
        client.resolve(decision_id, answer)
        client.wait_status(cid, "idle")
    stats = client.get_json("/approvals/stats", params={"since": since, "tool": "delete_customer_data"})
    [group] = stats["groups"]
    assert (group["decisions"], group["pending"]) == (3, 0)
    assert group["shares"] == {"approved": 0.6667, "denied": 0.3333, "modified": 0.0, "expired": 0.0}
    entries = client.get_json("/approvals", params={"since": since, "tool": "delete_customer_data"})["approvals"]

    def seconds(entry):
        began = datetime.fromisoformat(entry["created_at"].replace("Z", "+00:00"))
        return (datetime.fromisoformat(entry["resolved_at"].replace("Z", "+00:00")) - began).total_seconds()

    waited = [seconds(e) for e in entries]
    assert group["time_to_decision_seconds"] == {"p50": percentile(waited, 50), "p95": percentile(waited, 95)}
    other = client.get_json("/approvals/stats", params={"since": since, "approver": "nobody@example.com"})
    assert other["groups"] == []
    for bad in ({"since": "yesterday"}, {"until": "0001-01-02T00:00:00Z"}, {"until": "9999-12-31T23:59:59-23:59"}):
        assert client.get_json("/approvals/stats", params=bad, status=400)["error"]["code"] == "invalid_query"


def test_a_policy_replay_of_recorded_calls_matches_a_hand_count(client):
    import json
    import os
    from datetime import UTC, datetime
    from pathlib import Path

    since = datetime.now(UTC).isoformat()  # the calls of this test only
    small = client.start("Refund €50 to customer #replay-1.")["conversation_id"]  # under 100: ran unasked
    client.wait_status(small, "idle")
    big = client.start("Refund €340 to customer #replay-2.")["conversation_id"]  # asked, approved
    [decision_id] = client.pending_decision_ids(big)
    client.resolve(decision_id, "approve")
    client.wait_status(big, "idle")
    looked = client.start("Look up customer #replay-3")["conversation_id"]  # never asked
    client.wait_status(looked, "idle")

    candidate = json.loads(Path(os.environ["POLICY_FILE"]).read_text())
    candidate["tools"]["issue_refund"]["rules"][0]["thresholds"] = {"*": 40}
    candidate["tools"]["lookup_customer"] = {"approval": "always"}
    effects_before = len(client.effects(small)) + len(client.effects(big))
    response = client.post("/policy/simulate", json={"policy": candidate, "since": since})
    assert response.status_code == 200, response.text
    report = response.json()
    assert set(report["tools"]) == {"issue_refund", "lookup_customer"}, report["tools"]
    refunds, lookups = report["tools"]["issue_refund"], report["tools"]["lookup_customer"]
    assert (refunds["calls"], refunds["gated_now"], refunds["gated_under_candidate"]) == (2, 1, 2)
    assert (refunds["ran_ungated_would_need_sign_off"], refunds["approvals_no_longer_asked"]) == (1, 0)
    assert (lookups["calls"], lookups["gated_now"], lookups["ran_ungated_would_need_sign_off"]) == (1, 0, 1)
    today = datetime.now(UTC).date().isoformat()
    assert report["approver_load_per_day"] == {"approver@example.com": {today: 3}}
    assert len(client.effects(small)) + len(client.effects(big)) == effects_before  # nothing ran again

    assert report["truncated_by"] is None and report["covered_calls"] == 3

    bad = client.post("/policy/simulate", json={"policy": {"tools": {"x": {"approval": "sometimes"}}}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_policy"


def test_a_simulated_pattern_runs_in_linear_time_and_one_that_cannot_is_400(client):
    """``^(1+)+$`` over a recorded customer id of ones and a dash took Python's re seconds per
    character pair; RE2 answers at once. A backreference RE2 cannot run is refused with 400."""
    since = datetime.now(UTC).isoformat()
    cid = client.start(f"Refund €20 to customer #{'1' * 40}-x.")["conversation_id"]
    client.wait_status(cid, "idle")
    rule = {"kind": "matches", "field": "customer_id", "pattern": r"^(1+)+$"}
    candidate = {"tools": {"issue_refund": {"approval": "rules", "rules": [rule]}}}
    response = client.post("/policy/simulate", json={"policy": candidate, "since": since})
    assert response.status_code == 200, response.text
    assert response.json()["tools"]["issue_refund"]["gated_under_candidate"] == 0
    rule["pattern"] = r"^(1+)\1$"
    refused = client.post("/policy/simulate", json={"policy": candidate, "since": since})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_pattern", refused.text
