"""Verify Signoff receipts offline, with nothing but the public keys.

    python -m signoff.verify --jwks https://<api>/.well-known/jwks.json --api https://<api> --key <client key>
    python -m signoff.verify --jwks jwks.json --receipts log.json [--checkpoint exported.jwt ...]
    python -m signoff.verify --jwks jwks.json --proof proof.json
    python -m signoff.verify --jwks jwks.json --consistency consistency.json

Checks every signature (ES256 against the JWKS): receipts and the signed checkpoints of the
tenant's log. Each checkpoint must follow the one before and sign the Merkle root of exactly the
receipts listed up to its size, so a receipt edited, replaced, or removed at the start, in the
middle or at the end is reported, as is a forged checkpoint; ``--checkpoint`` adds checkpoints
kept out of the table's reach (an export), against which a log cut back or rewritten is caught.
Chain-mode receipts (``seq``/``prev``, written before the log) are also checked as a chain.
``--proof`` checks one receipt's inclusion proof (``GET /receipts/{index}/proof``) alone, and
``--consistency`` that an older checkpoint's log is a prefix of a newer one's
(``GET /checkpoints/consistency``), for an auditor who keeps only checkpoints.
``--receipts`` takes ``{"entries": [...], "checkpoints": [...]}`` (``--api`` with ``--save``
writes one), a ``GET /receipts`` page, a JSON list of receipts, or a ``GET /approvals`` export
(the last two are checked as a chain only). Exit status 1 on any problem, 2 when the inputs
cannot be read. Needs ``cryptography`` (and ``requests`` for URLs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from signoff.domain.receipts import (
    MalformedReceipt,
    Receipt,
    b64url_decode,
    chain_problems,
    consistency_problems,
    decode,
    inclusion_problems,
    log_problems,
)


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
    if isinstance(document, dict) and "entries" in document:
        return [str(e["receipt"]) for e in document["entries"]]
    if isinstance(document, dict) and "receipts" in document:
        return list(document["receipts"])
    if isinstance(document, dict) and "approvals" in document:
        found = {e["receipt"] for e in document["approvals"] if isinstance(e, dict) and e.get("receipt")}
        return sorted(found, key=_seq)
    if isinstance(document, list):
        return [str(r) for r in document]
    raise ValueError("expected a log export, a list of receipts, a /receipts page or an /approvals export")


def log_in(document: Any) -> tuple[list[tuple[int, str]], list[str]] | None:
    """(entries, checkpoints) of a log export or a /receipts page; None for a bare list of receipts."""
    if isinstance(document, dict) and "entries" in document:
        entries = [(int(e["index"]), str(e["receipt"])) for e in document["entries"]]
        return entries, [str(c) for c in document.get("checkpoints", [])]
    return None


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


def _read(source: str, headers: dict[str, str] | None = None) -> str:
    """The text of a file, or of a URL's answer (an HTTP error raised)."""
    if source.startswith(("https://", "http://")):
        import requests

        response = requests.get(source, headers=headers or {}, timeout=30)
        response.raise_for_status()
        return response.text
    return Path(source).read_text(encoding="utf-8")


def _load(source: str, headers: dict[str, str] | None = None) -> Any:
    return json.loads(_read(source, headers))


def fetch_log(api: str, key: str) -> dict[str, Any]:
    """Every receipt of the tenant's log, with its index, and every checkpoint."""
    headers = {"Authorization": f"Bearer {key}"}
    base = api.rstrip("/")
    entries: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = _load(f"{base}/receipts?after={after}&limit=500", headers)
        entries += page["entries"]
        after = page["next_after"]
    checkpoints: list[str] = []
    after = 0
    while after is not None:
        page = _load(f"{base}/checkpoints?after={after}&limit=500", headers)
        checkpoints += page["checkpoints"]
        after = page["next_after"]
    return {"entries": entries, "checkpoints": checkpoints}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jwks", required=True, help="URL or file of the JSON Web Key Set")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--receipts", help="a JSON file: a log export, /receipts page, list, or /approvals export")
    source.add_argument("--api", help="the Signoff API URL (reads GET /receipts and /checkpoints with --key)")
    source.add_argument("--proof", help="a JSON file (or URL) of one receipt's inclusion proof")
    source.add_argument("--consistency", help="a JSON file (or URL) of a consistency proof between two checkpoints")
    parser.add_argument("--key", help="a client API key of the tenant (with --api)")
    parser.add_argument("--checkpoint", action="append", default=[], help="a checkpoint kept elsewhere (file or URL)")
    parser.add_argument("--save", help="with --api: also write what was read to this file (a log export)")
    args = parser.parse_args(argv)
    try:
        keys = KeySet(_load(args.jwks))
        trusted = [_read(c).strip() for c in args.checkpoint]  # each a checkpoint as exported (its JWS)
        if args.proof:
            verdict = "the receipt verifies and is in the tree its checkpoint signs"
            return _report("inclusion proof", inclusion_problems(_load(args.proof), keys.verify), verdict)
        if args.consistency:
            verdict = "both checkpoints verify; the newer log extends the older unchanged"
            return _report("consistency proof", consistency_problems(_load(args.consistency), keys.verify), verdict)
        document = fetch_log(args.api, args.key or "") if args.api else _load(args.receipts)
        if args.save:
            Path(args.save).write_text(json.dumps(document, indent=1), encoding="utf-8")
        log = log_in(document)
        receipts = receipts_in(document)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreachable API, wrong key, missing or bad file
        print(f"cannot read the receipts or the keys: {_reason(exc)}", file=sys.stderr)
        return 2
    if log is None:
        return _report_chain(receipts, chain_problems(receipts, keys.verify))
    entries, checkpoints = log
    problems = log_problems(entries, checkpoints, keys.verify, trusted)
    latest = max((_size(c) for c in checkpoints), default=0)
    summary = f"{len(entries)} receipts, latest checkpoint covers {latest}"
    if len(entries) > latest:
        summary += f" ({len(entries) - latest} not yet in a checkpoint)"
    if trusted:
        summary += f", checked against {len(trusted)} exported checkpoint(s)"
    return _report(summary, problems, "every signature verifies, every checkpoint matches the receipts")


def _report_chain(receipts: list[str], problems: list) -> int:
    if not receipts:
        print("no receipts")
        return 0
    summary = f"{len(receipts)} receipts (seq {_seq(receipts[0])}..{_seq(receipts[-1])})"
    return _report(summary, problems, "every signature verifies, the chain is unbroken")


def _report(summary: str, problems: list, verdict: str) -> int:
    """Each problem on a line, then the summary: exit status 1 with problems, 0 without."""
    for problem in problems:
        print(problem)
    if problems:
        print(f"{summary}: {len(problems)} problem(s)")
        return 1
    print(f"{summary}: {verdict}")
    return 0


def _size(checkpoint: str) -> int:
    try:
        return int(decode(checkpoint).claims.get("size", 0))
    except (MalformedReceipt, ValueError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
