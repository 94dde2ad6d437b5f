"""Checkpoints: the queued receipts of a tenant appended to its Merkle log, and the new size and
root signed, chained to the checkpoint before (as Certificate Transparency's signed tree heads).

The reconciler runs this on every pass, so a receipt waits at most one reconciler interval (plus
the pass) outside any checkpoint. Chain-mode receipts (written before the log) are taken in
first, in ``seq`` order, so the log covers everything the tenant was ever given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools import Logger

from signoff import deadline
from signoff.domain.merkle import Frontier, consistency_ranges, hashes_for, inclusion_ranges, leaf_hash, nodes_for
from signoff.domain.ports import ReceiptSigner
from signoff.domain.receipts import (
    CHECKPOINT_TYPE,
    LogEntry,
    LogHead,
    PendingReceipt,
    checkpoint_claims,
    compact,
    receipt_hash,
    signing_input,
)

if TYPE_CHECKING:
    from signoff.domain.stores import ReceiptLogStore

logger = Logger(child=True)

CHECKPOINT_BATCH = 48  # receipts per checkpoint: each is two items of one 100-item transaction
TENANTS_PER_PASS = 100
APPEND_ATTEMPTS = 3  # another checkpointer moved the log: read it again and go on
RESERVE_SECONDS = 2.0  # no new checkpoint with less of the invocation left (a read, a sign, a write)


class CheckpointExport(Protocol):
    """Where a team keeps copies of its checkpoints, out of reach of whoever can write the table."""

    def put(self, tenant: str, size: int, checkpoint: str) -> None: ...


@dataclass
class CheckpointReport:
    """What a pass did: receipts appended, checkpoints signed, copies that could not be made."""

    appended: int = 0
    checkpoints: int = 0
    export_failures: int = 0

    def add(self, other: CheckpointReport) -> None:
        self.appended += other.appended
        self.checkpoints += other.checkpoints
        self.export_failures += other.export_failures


class NoSuchCheckpoint(LookupError):
    """No checkpoint of that size, or no receipt at that index in it."""


class Checkpointer:
    def __init__(
        self,
        store: ReceiptLogStore,
        signer: ReceiptSigner,
        issuer: str,
        export: CheckpointExport | None = None,
        clock: Callable[[], float] = time.time,
        batch: int = CHECKPOINT_BATCH,
    ):
        self._store = store
        self._signer = signer
        self._issuer = issuer
        self._export = export
        self._clock = clock
        self._batch = batch

    def run(self) -> CheckpointReport:
        """Checkpoint every tenant with receipts waiting, while the invocation has time."""
        report = CheckpointReport()
        for tenant in self._store.tenants_with_queued_receipts(TENANTS_PER_PASS):
            if deadline.remaining() < RESERVE_SECONDS:
                break
            report.add(self.checkpoint(tenant))
        return report

    def checkpoint(self, tenant: str) -> CheckpointReport:
        """Append the tenant's waiting receipts, a batch per checkpoint."""
        report, attempts = CheckpointReport(), 0
        while deadline.remaining() >= RESERVE_SECONDS:
            head = self._store.receipt_log(tenant)
            pending = self._store.chain_receipts(tenant, head.chain_seq, self._batch)
            if len(pending) < self._batch:
                pending += self._store.queued_receipts(tenant, self._batch - len(pending))
            if not pending:
                break
            if self._append(tenant, head, pending, report):
                continue
            attempts += 1
            if attempts >= APPEND_ATTEMPTS:
                logger.warning("the receipt log kept moving; left for the next pass", extra={"tenant": tenant})
                break
        return report

    def _append(self, tenant: str, head: LogHead, pending: list[PendingReceipt], report: CheckpointReport) -> bool:
        """One checkpoint over ``pending``, counted in ``report``; False if the log moved first."""
        leaves = [leaf_hash(p.jws.encode("ascii")) for p in pending]
        frontier, made = Frontier(head.size, head.frontier).append(leaves)
        entries = []
        for offset, receipt in enumerate(pending):
            index = head.size + offset
            completed = {level: h for (level, idx), h in made.items() if ((idx + 1) << level) - 1 == index}
            entries.append(LogEntry(index, receipt, completed))
        chain_seq = max([head.chain_seq, *(p.chain_seq for p in pending if p.chain_seq is not None)])
        claims = checkpoint_claims(
            tenant, frontier.size, frontier.root(), head.checkpoint, self._issuer, int(self._clock())
        )
        message = signing_input(self._signer.key_id, claims, CHECKPOINT_TYPE)
        checkpoint = compact(message, self._signer.sign(message))
        new = LogHead(frontier.size, frontier.hashes, receipt_hash(checkpoint), chain_seq)
        if not self._store.append_to_log(tenant, head, new, entries, checkpoint):
            return False
        report.appended += len(pending)
        report.checkpoints += 1
        if self._export is not None:
            try:
                self._export.put(tenant, new.size, checkpoint)
            except Exception:  # the next checkpoint covers this one: never lose the pass over a copy
                logger.exception("checkpoint export failed", extra={"tenant": tenant, "size": new.size})
                report.export_failures += 1
        return True


class LogProofs:
    """Inclusion and consistency proofs a verifier checks with nothing but a checkpoint and the JWKS."""

    def __init__(self, store: ReceiptLogStore):
        self._store = store

    def inclusion(self, tenant: str, index: int, size: int | None = None) -> dict:
        size = size if size is not None else self._store.receipt_log(tenant).size
        checkpoint = self._store.checkpoint_at(tenant, size) if size else None
        receipt = self._store.log_entry(tenant, index) if 0 <= index < size else None
        if checkpoint is None or receipt is None:
            raise NoSuchCheckpoint(f"no receipt {index} under a checkpoint of size {size}")
        path = self._path(tenant, inclusion_ranges(index, size))
        return {"index": index, "tree_size": size, "receipt": receipt, "path": path, "checkpoint": checkpoint}

    def consistency(self, tenant: str, first: int, second: int) -> dict:
        older, newer = self._store.checkpoint_at(tenant, first), self._store.checkpoint_at(tenant, second)
        if older is None or newer is None or first > second:
            raise NoSuchCheckpoint(f"no checkpoints of sizes {first} and {second} (first <= second)")
        return {
            "first": first,
            "second": second,
            "path": self._path(tenant, consistency_ranges(first, second)),
            "first_checkpoint": older,
            "second_checkpoint": newer,
        }

    def _path(self, tenant: str, ranges: list[tuple[int, int]]) -> list[str]:
        """The hashes of ``ranges`` (hex), from the stored subtrees they are made of, read in one batch."""
        nodes = self._store.log_nodes(tenant, nodes_for(ranges))
        return [h.hex() for h in hashes_for(ranges, nodes.__getitem__)]
