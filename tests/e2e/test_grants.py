"""Standing approvals over real HTTP: approve once "and similar", later calls run without asking,
exactly as often as allowed and for nothing beyond what was approved; revoked at once."""

from __future__ import annotations

import uuid

import requests

from tests.support import wait_for


def _customer() -> str:
    return f"g{uuid.uuid4().hex[:10]}"


def _approve_with_grant(client, cid: str, hours: int = 2, max_uses: int = 2) -> str:
    [decision] = client.pending_decision_ids(cid)
    response = requests.post(
        f"{client.stack.handover_url}/decisions/{decision}/resolve",
        json={
            "action": "approve",
            "resolved_by": "maria@example.com",
            "response_data": {"allow_similar": {"hours": hours, "max_uses": max_uses}},
        },
        headers=client.handover_headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    client.wait_status(cid, "idle")
    return decision


def _ask(client, cid: str, message: str) -> dict:
    response = client.post(f"/conversations/{cid}/messages", json={"message": message})
    assert response.status_code == 202, response.text
    return wait_for(
        lambda: (v := client.get(cid))["status"] in ("idle", "awaiting_approval") and v["actions"][-1:] and v,
        what="the turn to settle or wait",
    )


def _grant_of(client, decision_id: str) -> dict:
    grants = client.get_json("/grants")["grants"]
    [grant] = [g for g in grants if g["decision_id"] == decision_id]
    return grant


def test_a_grant_allows_exactly_max_uses_and_nothing_beyond_its_scope_or_amount(client):
    customer, other = _customer(), _customer()
    cid = client.start(f"Issue a €300 refund to customer #{customer}.")["conversation_id"]
    decision = _approve_with_grant(client, cid, max_uses=2)
    grant = _grant_of(client, decision)
    assert grant["scope"] == {"customer_id": customer, "currency": "EUR"} and float(grant["caps"]["amount"]) == 300
    assert grant["approved_by"] == "maria@example.com" and grant["uses_left"] == 2 and grant["live"]

    # Two similar calls run without a decision; the third needs one again.
    for left in (1, 0):
        view = _ask(client, cid, f"Refund €250 to customer #{customer}.")
        last = view["actions"][-1]
        assert view["status"] == "idle" and last["decision"] is None
        assert last["grant"] == {"id": grant["grant_id"], "uses_left": left}
        assert last["execution"]["status"] == "executed"
    view = _ask(client, cid, f"Refund €250 to customer #{customer}.")
    assert view["status"] == "awaiting_approval" and "grant" not in view["actions"][-1]
    [waiting] = client.pending_decision_ids(cid)
    client.resolve(waiting, "deny")
    client.wait_status(cid, "idle")

    # Not for another customer, nor for a larger amount.
    cid2 = client.start(f"Issue a €300 refund to customer #{customer}.")["conversation_id"]
    decision2 = _approve_with_grant(client, cid2, max_uses=5)
    grant2 = _grant_of(client, decision2)
    view = _ask(client, cid2, f"Refund €250 to customer #{other}.")
    assert view["status"] == "awaiting_approval" and "grant" not in view["actions"][-1]
    client.resolve(client.pending_decision_ids(cid2)[0], "deny")
    client.wait_status(cid2, "idle")
    view = _ask(client, cid2, f"Refund €301 to customer #{customer}.")
    assert view["status"] == "awaiting_approval" and "grant" not in view["actions"][-1]
    client.resolve(client.pending_decision_ids(cid2)[0], "deny")
    client.wait_status(cid2, "idle")
    used = _grant_of(client, decision2)
    assert used["uses_left"] == 5 and used["uses"] == []

    # The grant lists each use with the call that took it.
    first = _grant_of(client, decision)
    assert len(first["uses"]) == 2 and all(u["conversation_id"] == cid for u in first["uses"])
    assert grant2["grant_id"] != grant["grant_id"]


def test_racing_calls_use_at_most_max_uses(client):
    customer = _customer()
    cid = client.start(f"Issue a €300 refund to customer #{customer}.")["conversation_id"]
    decision = _approve_with_grant(client, cid, max_uses=2)
    message = "Refund " + ", ".join([f"€200 to customer #{customer}"] * 4) + "."
    response = client.post(f"/conversations/{cid}/messages", json={"message": message})
    assert response.status_code == 202
    waiting = client.pending_decision_ids(cid, count=2)
    view = client.get(cid)
    granted = [a for a in view["actions"] if a.get("grant")]
    assert len(granted) == 2 and all(a["execution"]["status"] == "executed" for a in granted)
    assert sorted(a["grant"]["uses_left"] for a in granted) == [0, 1]
    for decision_id in waiting:
        client.resolve(decision_id, "deny")
    client.wait_status(cid, "idle")
    assert _grant_of(client, decision)["uses_left"] == 0


def test_revoke_takes_effect_at_once(client):
    customer = _customer()
    cid = client.start(f"Issue a €300 refund to customer #{customer}.")["conversation_id"]
    grant = _grant_of(client, _approve_with_grant(client, cid, max_uses=10))
    response = requests.delete(f"{client.api}/grants/{grant['grant_id']}", headers=client.headers, timeout=30)
    assert response.status_code == 200, response.text
    revoked = response.json()
    assert revoked["revoked_at"] and revoked["revoked_by"].startswith("client:") and not revoked["live"]
    view = _ask(client, cid, f"Refund €100 to customer #{customer}.")
    assert view["status"] == "awaiting_approval" and "grant" not in view["actions"][-1]
    client.resolve(client.pending_decision_ids(cid)[0], "deny")
    client.wait_status(cid, "idle")
    again = requests.delete(f"{client.api}/grants/{grant['grant_id']}", headers=client.headers, timeout=30)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked["revoked_at"]
    for bad in ("grt_nope", "grt_" + "0" * 24 + "_" + "0" * 12):
        missing = requests.delete(f"{client.api}/grants/{bad}", headers=client.headers, timeout=30)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "grant_not_found"


def test_a_critical_tool_cannot_be_granted_and_the_approver_is_told(client):
    customer = _customer()
    cid = client.start(f"Please delete customer #{customer}.")["conversation_id"]
    [decision] = client.pending_decision_ids(cid)
    context = requests.get(
        f"{client.stack.handover_url}/decisions/{decision}", headers=client.handover_headers, timeout=30
    ).json()["context"]
    assert "cannot cover this tool: it is critical" in context
    _approve_with_grant(client, cid)
    assert not [g for g in client.get_json("/grants")["grants"] if g["decision_id"] == decision]
