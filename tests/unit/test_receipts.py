"""Receipts verify with nothing but the JWKS; an edited, removed or reordered record is caught."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signoff.adapters.kms_signer import der_to_raw, jwk_from_spki
from signoff.domain.receipts import GENESIS, b64url, compact, decode, receipt_hash, signing_input
from signoff.verify import KeySet, chain_problems, receipts_in


class SoftwareSigner:
    """What KMS does, in process: ECDSA P-256 over SHA-256, DER signatures (converted as for KMS)."""

    key_id = "test-key"

    def __init__(self):
        self._key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, message: bytes) -> bytes:
        return der_to_raw(self._key.sign(message, ec.ECDSA(hashes.SHA256())))

    def jwks(self) -> dict:
        spki = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"keys": [jwk_from_spki(spki, self.key_id)]}


def _chain(signer: SoftwareSigner, count: int) -> list[str]:
    receipts, prev = [], GENESIS
    for seq in range(1, count + 1):
        claims = {"tenant": "acme", "call_id": f"call_{seq}", "tool": "issue_refund", "seq": seq, "prev": prev}
        message = signing_input(signer.key_id, claims)
        jws = compact(message, signer.sign(message))
        receipts.append(jws)
        prev = receipt_hash(jws)
    return receipts


@pytest.fixture(scope="module")
def signer():
    return SoftwareSigner()


def _problems(signer, receipts):
    return [str(p) for p in chain_problems(receipts, KeySet(signer.jwks()).verify)]


def test_an_intact_chain_verifies_with_only_the_jwks(signer):
    assert _problems(signer, _chain(signer, 5)) == []


def test_an_edited_claim_is_reported_by_its_seq(signer):
    receipts = _chain(signer, 5)
    header, _claims, signature = receipts[2].split(".")
    tampered = decode(receipts[2]).claims | {"tool": "issue_refunf"}
    receipts[2] = ".".join([header, b64url(json.dumps(tampered, separators=(",", ":")).encode()), signature])
    problems = _problems(signer, receipts)
    assert problems[0] == "seq 3: signature does not verify (edited, or signed by another key)"
    assert "seq 4: prev is not the hash of seq 3" in problems  # the edit also breaks the next link


@pytest.mark.parametrize("position", [0, 1, 2])
def test_any_one_changed_byte_of_a_receipt_is_caught(signer, position):
    """One byte of the header, the claims or the signature of receipt 3, changed in place."""
    receipts = _chain(signer, 5)
    parts = receipts[2].split(".")
    part = parts[position]
    middle = len(part) // 2
    parts[position] = part[:middle] + ("A" if part[middle] != "A" else "B") + part[middle + 1 :]
    receipts[2] = ".".join(parts)
    problems = _problems(signer, receipts)
    assert problems and problems[0].startswith("seq 3: "), problems


def test_a_dropped_record_is_reported_where_the_gap_is(signer):
    receipts = _chain(signer, 5)
    del receipts[2]
    assert _problems(signer, receipts) == [
        "seq 4: follows seq 2 (removed: 3..3; or out of order)",
        "seq 4: prev is not the hash of seq 2",
    ]


def test_two_swapped_records_are_reported(signer):
    receipts = _chain(signer, 5)
    receipts[1], receipts[2] = receipts[2], receipts[1]
    problems = _problems(signer, receipts)
    assert "seq 3: follows seq 1 (removed: 2..2; or out of order)" in problems
    assert "seq 2: prev is not the hash of seq 3" in problems


def test_a_receipt_signed_by_another_key_does_not_verify(signer):
    other = SoftwareSigner()
    assert _problems(signer, _chain(other, 1)) == [
        "seq 1: signature does not verify (edited, or signed by another key)"
    ]


def test_an_audit_export_yields_its_receipts_once_each_in_chain_order(signer):
    receipts = _chain(signer, 3)
    export = {"approvals": [{"receipt": receipts[2]}, {"receipt": receipts[0]}, {"receipt": receipts[0]}, {}]}
    assert receipts_in(export) == [receipts[0], receipts[2]]


def test_der_signatures_become_the_64_byte_form_es256_wants(signer):
    key = ec.generate_private_key(ec.SECP256R1())
    for _ in range(20):  # r and s of varying lengths (leading zero bytes in DER)
        raw = der_to_raw(key.sign(b"message", ec.ECDSA(hashes.SHA256())))
        assert len(raw) == 64
