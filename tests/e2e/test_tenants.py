"""Tenant isolation on every client route: what one tenant created, another cannot see or change.

Keys (tests/conftest.py): the default key is tenant "default"; key-acme-1 and key-acme-2 are
both "acme"; key-globex is "globex"."""

from __future__ import annotations

import uuid

import requests

from local.evidence import conversation_count
from tests.support import SignoffClient


def _refund_waiting(client: SignoffClient, customer: str) -> tuple[str, str]:
    cid = client.start(f"Issue a €340 refund to customer #{customer}.")["conversation_id"]
    [decision] = client.pending_decision_ids(cid)
    return cid, decision


def test_another_tenant_gets_404_on_every_route_of_a_conversation_and_changes_nothing(acme, acme_again, globex):
    cid, decision = _refund_waiting(acme, "4821")
    acme.resolve(decision, "approve")
    view = acme.wait_status(cid, "idle")
    assert acme_again.get(cid)["messages"] == view["messages"]  # the same tenant, another key: sees it

    table = acme.stack.resources.refs["SignoffTable"]
    before = conversation_count(table, with_turns=True)
    read = requests.get(f"{globex.api}/conversations/{cid}", headers=globex.headers, timeout=30)
    assert read.status_code == 404 and read.json()["error"]["code"] == "conversation_not_found"
    write = globex.post(f"/conversations/{cid}/messages", json={"message": "Refund €5 to customer #4821."})
    assert write.status_code == 404 and write.json()["error"]["code"] == "conversation_not_found"
    assert conversation_count(table, with_turns=True) == before
    assert acme.get(cid)["messages"] == view["messages"]  # nothing was added

    audit = globex.get_json("/approvals", params={"conversation_id": cid})
    assert audit["approvals"] == []
    mine = acme.get_json("/approvals", params={"conversation_id": cid})["approvals"]
    assert [a["decision_id"] for a in mine] == [decision] and mine[0]["tenant"] == "acme"
    everything = globex.get_json("/approvals")["approvals"]
    assert all(a["tenant"] == "globex" for a in everything)


def test_the_default_tenant_does_not_see_a_named_tenants_conversation(client, acme):
    cid = acme.start("Please look up customer #12.")["conversation_id"]
    acme.wait_status(cid, "idle")
    response = requests.get(f"{client.api}/conversations/{cid}", headers=client.headers, timeout=30)
    assert response.status_code == 404
    assert all(a["conversation_id"] != cid for a in client.get_json("/approvals")["approvals"])


def test_grants_are_listed_used_and_revoked_by_their_own_tenant_only(acme, globex):
    customer = f"t{uuid.uuid4().hex[:8]}"
    cid, decision = _refund_waiting(acme, customer)
    response = requests.post(
        f"{acme.stack.handover_url}/decisions/{decision}/resolve",
        json={"action": "approve", "response_data": {"allow_similar": {"hours": 1, "max_uses": 5}}},
        headers=acme.handover_headers,
        timeout=30,
    )
    assert response.status_code == 200
    acme.wait_status(cid, "idle")
    [grant] = [g for g in acme.get_json("/grants")["grants"] if g["decision_id"] == decision]
    assert grant["tenant"] == "acme"
    assert all(g["tenant"] == "globex" for g in globex.get_json("/grants")["grants"])
    assert grant["grant_id"] not in {g["grant_id"] for g in globex.get_json("/grants")["grants"]}

    # Globex's refund to a customer with the same id is its own customer: acme's grant does not cover it.
    other = globex.start(f"Issue a €150 refund to customer #{customer}.")
    other_view = globex.wait_status(other["conversation_id"], "awaiting_approval")
    assert "grant" not in other_view["actions"][0]
    globex.resolve(globex.pending_decision_ids(other["conversation_id"])[0], "deny")

    revoke = requests.delete(f"{globex.api}/grants/{grant['grant_id']}", headers=globex.headers, timeout=30)
    assert revoke.status_code == 404 and revoke.json()["error"]["code"] == "grant_not_found"
    [still] = [g for g in acme.get_json("/grants")["grants"] if g["grant_id"] == grant["grant_id"]]
    assert still["live"] and still["revoked_at"] is None


def test_budgets_count_per_tenant(acme, globex):
    """The same customer id at two tenants is two customers: one's refunds do not use the other's budget."""
    customer = f"t{uuid.uuid4().hex[:8]}"
    first = acme.start(f"Refund €90 to customer #{customer}.")["conversation_id"]
    assert acme.wait_status(first, "idle")["actions"][0]["execution"]["status"] == "executed"
    second = globex.start(f"Refund €90 to customer #{customer}.")["conversation_id"]
    view = globex.wait_status(second, "idle")
    assert not view["actions"][0]["gated"] and view["actions"][0]["execution"]["status"] == "executed"


def test_idempotency_keys_are_per_tenant(acme, acme_again, globex):
    key = f"same-{uuid.uuid4().hex}"
    body = {"message": "Please look up customer #13."}
    first = acme.post("/conversations", json=body, headers={"Idempotency-Key": key}).json()
    again = acme_again.post("/conversations", json=body, headers={"Idempotency-Key": key}).json()
    theirs = globex.post("/conversations", json=body, headers={"Idempotency-Key": key}).json()
    assert again == first  # one tenant, one request, whichever of its keys sent it
    assert theirs["conversation_id"] != first["conversation_id"]
