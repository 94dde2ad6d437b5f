"""Signed receipts: proof that a gated call ran with exactly these arguments on exactly this sign-off.

A receipt is a compact JWS (ES256) whose claims bind the call (tenant, conversation, call id, tool,
canonical arguments and their digest) to its sign-off (verdict, each approval or the grant, the
hash of the policy in force). It is signed once, when the call settles, and queued for the tenant's
log; a *checkpoint* (a JWS too) then appends the queued receipts to the tenant's Merkle tree and
signs its size and root, chained to the checkpoint before (see merkle.py and docs/receipts.md).

Receipts written before the log (*chain mode*) carry ``seq`` and ``prev`` (the SHA-256 of the
previous receipt) instead; they become the first leaves of the tenant's log and keep verifying as
a chain. Checking needs nothing but the public keys (JWKS).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signoff.domain.canonical import canonical_json
from signoff.domain.merkle import leaf_hash, root_of, verify_consistency, verify_inclusion

GENESIS = "0" * 64  # the ``prev`` of a tenant's first receipt, and of its first checkpoint
RECEIPT_TYPE = "signoff-receipt+jwt"
CHECKPOINT_TYPE = "signoff-checkpoint+jwt"


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


def signing_input(kid: str, claims: dict[str, Any], typ: str = RECEIPT_TYPE) -> bytes:
    header = {"alg": "ES256", "kid": kid, "typ": typ}
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

    @property
    def chained(self) -> bool:
        """Written in chain mode (before the log): it carries ``seq`` and ``prev``."""
        return "seq" in self.claims


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
    where: str = ""  # what the problem is about when not a chain-mode seq ("receipt 7", "checkpoint 48")

    def __str__(self) -> str:
        return f"{self.where or f'seq {self.seq}'}: {self.what}"


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


@dataclass(frozen=True)
class LogHead:
    """Where a tenant's log stands: its size, frontier (merkle.Frontier's hashes), the hash of its
    latest checkpoint, and how much of the chain-mode receipts it holds."""

    size: int = 0
    frontier: tuple[bytes, ...] = ()
    checkpoint: str = GENESIS  # receipt_hash of the latest checkpoint's JWS
    chain_seq: int = 0


@dataclass(frozen=True)
class PendingReceipt:
    """A receipt not yet in the log: queued when its call settled (``key``), or a chain-mode one
    (``chain_seq``) the log has not taken in yet."""

    jws: str
    key: str | None = None
    chain_seq: int | None = None


@dataclass(frozen=True)
class LogEntry:
    """A receipt as the log holds it: at ``index``, with the perfect subtrees it completed
    (level → hash, level 0 being its own leaf hash)."""

    index: int
    receipt: PendingReceipt
    nodes: dict[int, bytes]


def checkpoint_claims(tenant: str, size: int, root: bytes, prev: str, issuer: str, issued_at: int) -> dict[str, Any]:
    return {"iss": issuer, "tenant": tenant, "size": size, "root": root.hex(), "prev": prev, "iat": issued_at}


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted indexes, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _span(first: int, last: int) -> str:
    return f"receipt {first}" if first == last else f"receipts {first}..{last}"


def log_problems(
    entries: list[tuple[int, str]],
    checkpoints: list[str],
    verify: Callable[[Receipt], bool],
    trusted: list[str] | tuple[str, ...] = (),
) -> list[Problem]:
    """Every way a tenant's log fails its signed checkpoints: a receipt or checkpoint whose
    signature does not verify (edited or forged), receipts missing at the start, in the middle or
    at the end of what the latest checkpoint covers, a root that does not match the receipts, a
    checkpoint that does not follow the one before (removed or replaced), chain-mode receipts that
    do not chain, and a log that no longer holds what a ``trusted`` checkpoint (one exported out
    of the table's reach) covered."""
    problems: list[Problem] = []
    by_index: dict[int, str] = {}
    chained: list[str] = []
    for index, jws in sorted(entries):
        by_index[index] = jws
        try:
            receipt = decode(jws)
        except MalformedReceipt:
            problems.append(Problem(index, "not a receipt (malformed)", f"receipt {index}"))
            continue
        if receipt.chained:
            chained.append(jws)
        elif receipt.header.get("typ") != RECEIPT_TYPE or not _signed(receipt, verify):
            problems.append(
                Problem(index, "signature does not verify (edited, or signed by another key)", f"receipt {index}")
            )
    problems += chain_problems(chained, verify) if chained else []
    heads = _checked_checkpoints(checkpoints, verify, problems)
    latest = max((size for size, _ in heads), default=0)
    covered = max(latest, max(by_index, default=-1) + 1)
    missing = [i for i in range(covered) if i not in by_index]
    for first, last in _runs(missing):
        place = "at the start" if first == 0 else "at the end" if last == covered - 1 else "in the middle"
        problems.append(Problem(first, f"missing ({place} of the log)", _span(first, last)))
    for size, root in heads:
        if all(i in by_index for i in range(size)) and _root(by_index, size) != root:
            problems.append(
                Problem(size, "root does not match the receipts (edited, replaced or reordered)", f"checkpoint {size}")
            )
    for jws in trusted:
        problems += _against_trusted(jws, by_index, latest, verify)
    return problems


def _signed(receipt: Receipt, verify: Callable[[Receipt], bool]) -> bool:
    return receipt.header.get("alg") == "ES256" and verify(receipt)


def _root(by_index: dict[int, str], size: int) -> bytes:
    return root_of([leaf_hash(by_index[i].encode("ascii")) for i in range(size)])


FORGED = "signature does not verify (forged or edited)"  # of a checkpoint


def _signed_checkpoint(checkpoint: Receipt, verify: Callable[[Receipt], bool]) -> bool:
    return checkpoint.header.get("typ") == CHECKPOINT_TYPE and _signed(checkpoint, verify)


def _root_signed(checkpoint: Receipt) -> bytes:
    """The Merkle root a checkpoint signs (empty when it names none: it then matches no tree)."""
    try:
        return bytes.fromhex(str(checkpoint.claims.get("root", "")))
    except ValueError:
        return b""


def _proof_checkpoint_problems(checkpoint: Receipt, size: int, verify: Callable[[Receipt], bool]) -> list[Problem]:
    """A proof's checkpoint must verify and be of the size the proof is for."""
    where = f"checkpoint {size}"
    if not _signed_checkpoint(checkpoint, verify):
        return [Problem(size, FORGED, where)]
    if int(checkpoint.claims.get("size", -1)) != size:
        return [Problem(size, "the proof is for another size than the checkpoint's", where)]
    return []


def _checked_checkpoints(checkpoints: list[str], verify: Callable[[Receipt], bool], problems: list[Problem]):
    """(size, root) of each checkpoint that verifies, oldest first; a problem for each that does
    not, and for each that does not follow the one before."""
    heads: list[tuple[int, bytes]] = []
    parsed = []
    for jws in checkpoints:
        try:
            parsed.append(decode(jws))
        except MalformedReceipt:
            problems.append(Problem(0, "not a checkpoint (malformed)", "checkpoint"))
    prev = GENESIS
    for checkpoint in sorted(parsed, key=lambda c: int(c.claims.get("size", 0))):
        size = int(checkpoint.claims.get("size", 0))
        where = f"checkpoint {size}"
        if not _signed_checkpoint(checkpoint, verify):
            problems.append(Problem(size, FORGED, where))
            continue
        if checkpoint.claims.get("prev") != prev:
            problems.append(Problem(size, "does not follow the checkpoint before it (one removed or replaced)", where))
        prev = receipt_hash(checkpoint.jws)
        heads.append((size, _root_signed(checkpoint)))
    return heads


def _against_trusted(
    jws: str, by_index: dict[int, str], latest: int, verify: Callable[[Receipt], bool]
) -> list[Problem]:
    try:
        checkpoint = decode(jws)
    except MalformedReceipt:
        return [Problem(0, "not a checkpoint (malformed)", "exported checkpoint")]
    size = int(checkpoint.claims.get("size", 0))
    where = f"exported checkpoint {size}"
    if not _signed_checkpoint(checkpoint, verify):
        return [Problem(size, FORGED, where)]
    if size > latest:
        return [Problem(size, f"the log's latest checkpoint is {latest}: the log was cut back", where)]
    if not all(i in by_index for i in range(size)):
        return [Problem(size, "the log no longer holds every receipt this checkpoint covered", where)]
    if _root(by_index, size).hex() != checkpoint.claims.get("root"):
        return [Problem(size, "the log no longer matches this checkpoint (rewritten)", where)]
    return []


def inclusion_problems(proof: dict[str, Any], verify: Callable[[Receipt], bool]) -> list[Problem]:
    """Does ``proof`` (``GET /receipts/{index}/proof``) show its receipt in its checkpoint? Needs
    nothing but the keys: both signatures, and the path from the receipt's leaf to the root."""
    index, size = int(proof["index"]), int(proof["tree_size"])
    receipt, checkpoint = decode(proof["receipt"]), decode(proof["checkpoint"])
    where = f"receipt {index}"
    problems = []
    if not _signed(receipt, verify):
        problems.append(Problem(index, "signature does not verify (edited, or signed by another key)", where))
    problems += _proof_checkpoint_problems(checkpoint, size, verify)
    path = [bytes.fromhex(h) for h in proof["path"]]
    if not verify_inclusion(leaf_hash(proof["receipt"].encode("ascii")), index, size, path, _root_signed(checkpoint)):
        problems.append(Problem(index, f"is not in the tree the checkpoint of size {size} signs", where))
    return problems


def consistency_problems(proof: dict[str, Any], verify: Callable[[Receipt], bool]) -> list[Problem]:
    """Does ``proof`` (``GET /checkpoints/consistency``) show the older checkpoint's log is a prefix
    of the newer one's: nothing it covered removed, replaced or reordered since? Both checkpoints
    must verify; nothing else is needed (an auditor who keeps only checkpoints)."""
    first, second = int(proof["first"]), int(proof["second"])
    roots: list[bytes] = []
    problems: list[Problem] = []
    for size, jws in ((first, proof["first_checkpoint"]), (second, proof["second_checkpoint"])):
        checkpoint = decode(jws)
        problems += _proof_checkpoint_problems(checkpoint, size, verify)
        roots.append(_root_signed(checkpoint))
    path = [bytes.fromhex(h) for h in proof["path"]]
    if not problems and not verify_consistency(first, second, roots[0], roots[1], path):
        problems.append(
            Problem(second, f"does not extend checkpoint {first} (its log was rewritten)", f"checkpoint {second}")
        )
    return problems
