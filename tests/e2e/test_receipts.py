"""Signed receipts end to end: a gated call that runs gets one (in its action, its audit record and
the tenant's chain), the public keys are served without authentication, and the verifier checks
the chain through the API with nothing else."""

from __future__ import annotations

import requests

from signoff.domain.receipts import decode, receipt_hash
from signoff.verify import main as verify
from tests.support import SignoffClient

SEED = "Issue a €340 refund to customer #4821."


def _approved(client) -> tuple[str, dict]:
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve", resolved_by="maria@example.com")
    view = client.wait_status(cid, "idle")
    return decision_id, view["actions"][0]


def _all_receipts(client) -> list[str]:
    receipts, after = [], 0
    while after is not None:
        page = client.get_json("/receipts", params={"after": after, "limit": 500})
        receipts += page["receipts"]
        after = page["next_after"]
    return receipts


def test_an_approved_call_gets_a_receipt_that_binds_the_call_to_its_sign_off(stack):
    client = SignoffClient(stack)
    decision_id, action = _approved(client)
    receipt = decode(action["receipt"])
    claims = receipt.claims
    assert receipt.header == {"alg": "ES256", "kid": receipt.header["kid"], "typ": "signoff-receipt+jwt"}
    assert claims["tenant"] == "default" and claims["tool"] == "issue_refund"
    assert claims["call_id"] == action["call_id"] and claims["verdict"] == "approved"
    assert (
        claims["arguments"] == '{"amount":340,"currency":"EUR","customer_id":"4821","reason":"Requested by the user"}'
    )
    [approval] = claims["approvals"]
    assert approval["decision_id"] == decision_id and approval["resolved_by"] == "maria@example.com"
    assert len(claims["policy_version"]) == 64 and claims["execution"] == "executed"
    [entry] = client.get_json(
        "/approvals", params={"conversation_id": action["receipt"] and claims["conversation_id"]}
    )["approvals"]
    assert entry["receipt"] == action["receipt"]
    assert action["receipt"] in _all_receipts(client)


def test_receipts_of_a_tenant_form_one_chain_and_verify_with_only_the_jwks(stack):
    client = SignoffClient(stack)
    _approved(client)
    _approved(client)
    receipts = _all_receipts(client)
    last, before = decode(receipts[-1]), decode(receipts[-2])
    assert last.seq == before.seq + 1 and last.claims["prev"] == receipt_hash(receipts[-2])

    jwks = requests.get(f"{stack.api_url}/.well-known/jwks.json", timeout=10)  # no Authorization
    assert jwks.status_code == 200 and jwks.headers["Cache-Control"] == "public, max-age=300"
    assert {k["kid"] for k in jwks.json()["keys"]} == {last.header["kid"]}
    url = f"{stack.api_url}/.well-known/jwks.json"
    assert verify(["--jwks", url, "--api", stack.api_url, "--key", stack.config.api_key]) == 0


def test_calls_that_did_not_run_or_needed_no_sign_off_get_no_receipt(client):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "deny")
    assert client.wait_status(cid, "idle")["actions"][0].get("receipt") is None
    looked_up = client.start("Look up customer #77")["conversation_id"]
    [action] = client.wait_status(looked_up, "idle")["actions"]
    assert action["gated"] is False and action.get("receipt") is None


def test_each_tenant_has_its_own_chain_and_sees_only_its_own_receipts(stack):
    acme, globex = SignoffClient(stack, "key-acme-1"), SignoffClient(stack, "key-globex")
    _, action = _approved(acme)
    assert decode(action["receipt"]).claims["tenant"] == "acme"
    assert action["receipt"] in _all_receipts(acme)
    assert action["receipt"] not in _all_receipts(globex)
    assert all(decode(r).claims["tenant"] == "globex" for r in _all_receipts(globex))


def test_the_verifier_says_why_it_cannot_read_rather_than_raise(stack, capsys):
    """Nothing answering, a wrong key, a missing file: exit 2 and one line a person can act on."""
    jwks = f"{stack.api_url}/.well-known/jwks.json"
    assert verify(["--jwks", "http://127.0.0.1:9/jwks.json", "--api", stack.api_url, "--key", "k"]) == 2
    assert "nothing answers at http://127.0.0.1:9/jwks.json" in capsys.readouterr().err
    assert verify(["--jwks", jwks, "--api", stack.api_url, "--key", "not-a-key"]) == 2
    assert "is --key a client API key" in capsys.readouterr().err
    assert verify(["--jwks", jwks, "--receipts", "/nonexistent/receipts.json"]) == 2
    assert "FileNotFoundError" in capsys.readouterr().err
