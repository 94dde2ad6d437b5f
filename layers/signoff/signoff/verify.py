"""Verify Signoff receipts offline, with nothing but the public keys.

    python -m signoff.verify --jwks https://<api>/.well-known/jwks.json --api https://<api> --key <client key>
    python -m signoff.verify --jwks jwks.json --receipts export.json

Checks every signature (ES256 against the JWKS) and every link of the tenant's hash chain (``seq``
counts up by one, ``prev`` is the SHA-256 of the receipt before). An edited, removed or reordered
record is reported by sequence number and the exit status is 1. ``--receipts`` takes a JSON list of
receipts, a ``GET /receipts`` page, or a ``GET /approvals`` export (receipts are read from its
entries). Needs ``cryptography`` (and ``requests`` for URLs): ``pip install cryptography requests``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from signoff.domain.receipts import MalformedReceipt, Receipt, b64url_decode, chain_problems, decode


class KeySet:
    """The JWKS as verifiers, by ``kid``."""

    def __init__(self, jwks: dict[str, Any]):
        from cryptography.hazmat.primitives.asymmetric import ec

        self._keys = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
                continue
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(b64url_decode(jwk["x"]), "big"),
                int.from_bytes(b64url_decode(jwk["y"]), "big"),
                ec.SECP256R1(),
            )
            self._keys[jwk.get("kid")] = numbers.public_key()

    def verify(self, receipt: Receipt) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        key = self._keys.get(receipt.header.get("kid"))
        if key is None or len(receipt.signature) != 64:
            return False
        r, s = int.from_bytes(receipt.signature[:32], "big"), int.from_bytes(receipt.signature[32:], "big")
        try:
            key.verify(encode_dss_signature(r, s), receipt.message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def receipts_in(document: Any) -> list[str]:
    """Receipts from a list, a /receipts page or an /approvals export, in chain order."""
    if isinstance(document, dict) and "receipts" in document:
        return list(document["receipts"])
    if isinstance(document, dict) and "approvals" in document:
        found = {e["receipt"] for e in document["approvals"] if isinstance(e, dict) and e.get("receipt")}
        return sorted(found, key=_seq)
    if isinstance(document, list):
        return [str(r) for r in document]
    raise ValueError("expected a list of receipts, a /receipts page or an /approvals export")


def _reason(exc: Exception) -> str:
    """One line a person can act on (requests' errors are OSErrors; a 401/403 says which key)."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None) in (401, 403):
        return f"HTTP {response.status_code} from {response.url}: is --key a client API key of this deployment?"
    if type(exc).__name__ == "ConnectionError":
        return (
            f"nothing answers at {getattr(exc.request, 'url', 'the URL given')} (is the stack running, on that port?)"
        )
    return f"{type(exc).__name__}: {exc}"


def _seq(jws: str) -> int:
    try:
        return decode(jws).seq
    except MalformedReceipt:
        return -1


def _load(source: str, headers: dict[str, str] | None = None) -> Any:
    if source.startswith(("https://", "http://")):
        import requests

        response = requests.get(source, headers=headers or {}, timeout=30)
        response.raise_for_status()
        return response.json()
    return json.loads(Path(source).read_text(encoding="utf-8"))


def fetch_receipts(api: str, key: str) -> list[str]:
    receipts: list[str] = []
    after: int | None = 0
    while after is not None:
        page = _load(f"{api.rstrip('/')}/receipts?after={after}&limit=500", {"Authorization": f"Bearer {key}"})
        receipts += page["receipts"]
        after = page["next_after"]
    return receipts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jwks", required=True, help="URL or file of the JSON Web Key Set")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--receipts", help="a JSON file of receipts (list, /receipts page or /approvals export)")
    source.add_argument("--api", help="the Signoff API URL (reads GET /receipts with --key)")
    parser.add_argument("--key", help="a client API key of the tenant (with --api)")
    args = parser.parse_args(argv)
    try:
        keys = KeySet(_load(args.jwks))
        receipts = fetch_receipts(args.api, args.key or "") if args.api else receipts_in(_load(args.receipts))
    except (OSError, ValueError, KeyError) as exc:  # unreachable API, wrong key, missing or bad file
        print(f"cannot read the receipts or the keys: {_reason(exc)}", file=sys.stderr)
        return 2
    problems = chain_problems(receipts, keys.verify)
    if not receipts:
        print("no receipts")
        return 0
    first, last = _seq(receipts[0]), _seq(receipts[-1])
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(receipts)} receipts (seq {first}..{last}): {len(problems)} problem(s)")
        return 1
    print(f"{len(receipts)} receipts (seq {first}..{last}): every signature verifies, the chain is unbroken")
    return 0


if __name__ == "__main__":
    sys.exit(main())
