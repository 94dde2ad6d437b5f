"""Signed receipts: proof that a gated call ran with exactly these arguments on exactly this sign-off.

A receipt is a compact JWS (ES256) whose claims bind the call (tenant, conversation, call id, tool,
canonical arguments and their digest) to its sign-off (verdict, each approval or the grant, the
hash of the policy in force) and to the tenant's previous receipt: ``seq`` counts up by one and
``prev`` is the SHA-256 of the previous receipt, so an edited, removed or reordered record breaks
the chain where it happened. Checking needs nothing but the public keys (JWKS).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signoff.domain.canonical import canonical_json

GENESIS = "0" * 64  # the ``prev`` of a tenant's first receipt
RECEIPT_TYPE = "signoff-receipt+jwt"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def policy_version(policy_document: dict[str, Any]) -> str:
    """The hash of the policy in force (its canonical JSON), named in every receipt made under it."""
    return hashlib.sha256(canonical_json(policy_document).encode("utf-8")).hexdigest()


def receipt_hash(jws: str) -> str:
    """What the next receipt's ``prev`` holds."""
    return hashlib.sha256(jws.encode("ascii")).hexdigest()


def signing_input(kid: str, claims: dict[str, Any]) -> bytes:
    header = {"alg": "ES256", "kid": kid, "typ": RECEIPT_TYPE}
    return f"{b64url(canonical_json(header).encode())}.{b64url(canonical_json(claims).encode())}".encode("ascii")


def compact(message: bytes, signature: bytes) -> str:
    return f"{message.decode('ascii')}.{b64url(signature)}"


@dataclass(frozen=True)
class Receipt:
    """A receipt as read back: its parts, for checking."""

    jws: str
    header: dict[str, Any]
    claims: dict[str, Any]
    message: bytes  # what was signed
    signature: bytes  # raw r || s, 64 bytes

    @property
    def seq(self) -> int:
        return int(self.claims.get("seq", 0))


class MalformedReceipt(ValueError):
    pass


def decode(jws: str) -> Receipt:
    try:
        header_part, claims_part, signature_part = jws.split(".")
        header = json.loads(b64url_decode(header_part))
        claims = json.loads(b64url_decode(claims_part))
        signature = b64url_decode(signature_part)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedReceipt("not a compact JWS") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise MalformedReceipt("not a compact JWS")
    return Receipt(jws, header, claims, f"{header_part}.{claims_part}".encode("ascii"), signature)


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.what}"


def chain_problems(jws_list: list[str], verify: Callable[[Receipt], bool]) -> list[Problem]:
    """Every way the tenant's receipts, in the order given, fail to be one signed, unbroken chain:
    a signature that does not verify (edited), a sequence gap (removed), a ``prev`` that is not the
    hash of the receipt before it (reordered or replaced). The first receipt given may start
    anywhere (a page of a longer chain); its ``prev`` is then taken on trust."""
    problems: list[Problem] = []
    previous: Receipt | None = None
    for position, jws in enumerate(jws_list):
        try:
            receipt = decode(jws)
        except MalformedReceipt:
            problems.append(Problem(previous.seq + 1 if previous else position, "not a receipt (malformed)"))
            continue
        if receipt.header.get("alg") != "ES256" or not verify(receipt):
            problems.append(Problem(receipt.seq, "signature does not verify (edited, or signed by another key)"))
        if previous is not None:
            if receipt.seq != previous.seq + 1:
                missing = f"{previous.seq + 1}..{receipt.seq - 1}" if receipt.seq > previous.seq + 1 else "none"
                problems.append(
                    Problem(receipt.seq, f"follows seq {previous.seq} (removed: {missing}; or out of order)")
                )
            if receipt.claims.get("prev") != receipt_hash(previous.jws):
                problems.append(Problem(receipt.seq, f"prev is not the hash of seq {previous.seq}"))
        elif receipt.seq == 1 and receipt.claims.get("prev") != GENESIS:
            problems.append(Problem(1, "the first receipt does not start the chain"))
        previous = receipt
    return problems
