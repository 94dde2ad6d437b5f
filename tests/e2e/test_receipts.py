"""Signed receipts end to end: a gated call that runs gets one (in its action, its audit record and,
after the reconciler's next pass, the tenant's log under a signed checkpoint), the public keys are
served without authentication, and the verifier checks the log through the API with nothing else."""

from __future__ import annotations

import requests

from local.evidence import local_client
from local.stack import CHECKPOINT_BUCKET
from signoff.domain.receipts import b64url, decode, inclusion_problems
from signoff.verify import KeySet
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
        receipts += [e["receipt"] for e in page["entries"]]
        after = page["next_after"]
    return receipts


def _checkpointed(stack) -> None:
    """A reconciler pass, as the schedule runs it: the queued receipts join their tenants' logs."""
    stack.run_scheduled("ReconcilerFunction")


def test_an_approved_call_gets_a_receipt_that_binds_the_call_to_its_sign_off(stack):
    client = SignoffClient(stack)
    decision_id, action = _approved(client)
    receipt = decode(action["receipt"])
    claims = receipt.claims
    assert receipt.header == {"alg": "ES256", "kid": receipt.header["kid"], "typ": "signoff-receipt+jwt"}
    assert claims["tenant"] == "default" and claims["tool"] == "issue_refund"
    assert claims["call_id"] == action["call_id"] and claims["verdict"] == "approved"
    assert claims["arguments"] == '{"amount":340,"currency":"EUR","customer_id":"4821","reason":""}'
    [approval] = claims["approvals"]
    assert approval["decision_id"] == decision_id and approval["resolved_by"] == "maria@example.com"
    assert len(claims["policy_version"]) == 64 and claims["execution"] == "executed"
    [entry] = client.get_json(
        "/approvals", params={"conversation_id": action["receipt"] and claims["conversation_id"]}
    )["approvals"]
    assert entry["receipt"] == action["receipt"]
    _checkpointed(stack)
    assert action["receipt"] in _all_receipts(client)


def test_a_tenants_log_verifies_with_only_the_jwks_and_proves_each_receipt(stack, tmp_path):
    client = SignoffClient(stack)
    _approved(client)
    _, action = _approved(client)
    _checkpointed(stack)
    entries = client.get_json("/receipts", params={"limit": 500})["entries"]
    [index] = [e["index"] for e in entries if e["receipt"] == action["receipt"]]
    checkpoints = client.get_json("/checkpoints")["checkpoints"]
    latest = decode(checkpoints[-1])
    assert latest.header["typ"] == "signoff-checkpoint+jwt" and latest.claims["size"] > index

    jwks = requests.get(f"{stack.api_url}/.well-known/jwks.json", timeout=10)  # no Authorization
    assert jwks.status_code == 200 and jwks.headers["Cache-Control"] == "public, max-age=300"
    assert {k["kid"] for k in jwks.json()["keys"]} == {latest.header["kid"]}
    proof = client.get_json(f"/receipts/{index}/proof")
    assert proof["receipt"] == action["receipt"] and proof["checkpoint"] == checkpoints[-1]
    assert inclusion_problems(proof, KeySet(jwks.json()).verify) == []
    url = f"{stack.api_url}/.well-known/jwks.json"
    saved = tmp_path / "log.json"
    assert verify(["--jwks", url, "--api", stack.api_url, "--key", stack.config.api_key, "--save", str(saved)]) == 0
    assert verify(["--jwks", url, "--receipts", str(saved)]) == 0
    # Every checkpoint was copied to the team's bucket; the verifier checks the log against a copy.
    s3 = local_client("s3")
    kept = s3.get_object(Bucket=CHECKPOINT_BUCKET, Key=f"checkpoints/default/{latest.claims['size']:012d}.jwt")
    (tmp_path / "kept.jwt").write_bytes(kept["Body"].read())
    assert (tmp_path / "kept.jwt").read_text() == checkpoints[-1]
    args = ["--jwks", url, "--receipts", str(saved), "--checkpoint", str(tmp_path / "kept.jwt")]
    assert verify(args) == 0
    first = decode(checkpoints[0]).claims["size"]
    consistency = client.get_json("/checkpoints/consistency", params={"first": first, "second": latest.claims["size"]})
    assert consistency["first_checkpoint"] == checkpoints[0]


def test_proof_and_checkpoint_queries_that_do_not_fit_are_4xx(stack):
    client = SignoffClient(stack)
    for path, params, status, code in [
        ("/receipts/abc/proof", {}, 404, "not_found"),  # a path that names no receipt
        ("/receipts/0/proof", {"size": 0}, 400, "invalid_query"),
        ("/receipts/999999/proof", {}, 404, "not_in_log"),
        ("/checkpoints/consistency", {"first": 2}, 400, None),
        ("/checkpoints/consistency", {"first": 5, "second": 3}, 404, "no_such_checkpoint"),
        ("/checkpoints", {"after": -1}, 400, None),
    ]:
        body = client.get_json(path, params=params, status=status)
        assert code is None or body["error"]["code"] == code


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
    _checkpointed(stack)
    assert action["receipt"] in _all_receipts(acme)
    assert action["receipt"] not in _all_receipts(globex)
    assert all(decode(r).claims["tenant"] == "globex" for r in _all_receipts(globex))
    assert all(decode(c).claims["tenant"] == "globex" for c in globex.get_json("/checkpoints")["checkpoints"])
    size = decode(acme.get_json("/checkpoints")["checkpoints"][-1]).claims["size"]
    globex.get_json(f"/receipts/{size - 1}/proof", params={"size": size}, status=404)


def test_the_verifier_says_why_it_cannot_read_rather_than_raise(stack, capsys):
    """Nothing answering, a wrong key, a missing file: exit 2 and one line a person can act on."""
    jwks = f"{stack.api_url}/.well-known/jwks.json"
    assert verify(["--jwks", "http://127.0.0.1:9/jwks.json", "--api", stack.api_url, "--key", "k"]) == 2
    assert "nothing answers at http://127.0.0.1:9/jwks.json" in capsys.readouterr().err
    assert verify(["--jwks", jwks, "--api", stack.api_url, "--key", "not-a-key"]) == 2
    assert "is --key a client API key" in capsys.readouterr().err
    assert verify(["--jwks", jwks, "--receipts", "/nonexistent/receipts.json"]) == 2
    assert "FileNotFoundError" in capsys.readouterr().err


def test_receipts_deleted_from_the_table_or_a_forged_checkpoint_fail_the_verifier(stack, tmp_path, capsys):
    """What someone with write access to the table could do, done to a tenant of its own ("audit"),
    each undone after: the verifier, with the JWKS alone, says which and where."""
    from tests.fakes.gate import FixedSigner

    client = SignoffClient(stack, "key-audit")
    for _ in range(3):
        _approved(client)
    _checkpointed(stack)
    ddb, table = local_client("dynamodb"), stack.resources.refs["SignoffTable"]
    size = decode(client.get_json("/checkpoints")["checkpoints"][-1]).claims["size"]
    jwks = f"{stack.api_url}/.well-known/jwks.json"
    args = ["--jwks", jwks, "--api", stack.api_url, "--key", "key-audit"]

    def without(sk: str, expected: str, more: list[str] = ()) -> None:
        key = {"pk": {"S": "RECEIPTS#audit"}, "sk": {"S": sk}}
        item = ddb.get_item(TableName=table, Key=key)["Item"]
        ddb.delete_item(TableName=table, Key=key)
        try:
            assert verify([*args, *more]) == 1
            assert expected in capsys.readouterr().out
        finally:
            ddb.put_item(TableName=table, Item=item)
        assert verify([*args, *more]) == 0

    capsys.readouterr()
    without("LEAF#000000000000", "receipt 0: missing (at the start of the log)")
    without("LEAF#000000000001", "receipt 1: missing (in the middle of the log)")
    without(f"LEAF#{size - 1:012d}", f"receipt {size - 1}: missing (at the end of the log)")
    # The latest checkpoint deleted too: the table alone looks whole (its receipts merely uncovered);
    # the copy in the team's bucket says the log was cut back.
    copy = tmp_path / "copy.jwt"
    s3_key = f"checkpoints/audit/{size:012d}.jwt"
    copy.write_bytes(local_client("s3").get_object(Bucket=CHECKPOINT_BUCKET, Key=s3_key)["Body"].read())
    without(f"CHECKPOINT#{size:012d}", "the log was cut back", ["--checkpoint", str(copy)])
    forged = ddb.get_item(TableName=table, Key={"pk": {"S": "RECEIPTS#audit"}, "sk": {"S": f"CHECKPOINT#{size:012d}"}})
    intruder = FixedSigner()
    header, claims, _ = forged["Item"]["jws"]["S"].split(".")
    forged["Item"]["jws"]["S"] = f"{header}.{claims}.{b64url(intruder.sign(f'{header}.{claims}'.encode()))}"
    original = ddb.get_item(
        TableName=table, Key={"pk": {"S": "RECEIPTS#audit"}, "sk": {"S": f"CHECKPOINT#{size:012d}"}}
    )
    ddb.put_item(TableName=table, Item=forged["Item"])
    try:
        assert verify(args) == 1
        assert f"checkpoint {size}: signature does not verify (forged or edited)" in capsys.readouterr().out
    finally:
        ddb.put_item(TableName=table, Item=original["Item"])
    assert verify(args) == 0
