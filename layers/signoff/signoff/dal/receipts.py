"""Receipts: queued when their call settles, then appended to the tenant's log by checkpoints.

- ``RECEIPTS#<tenant>`` / ``QUEUED#<time>#<call>`` a receipt not yet in the log (in the due-index,
                                                  bucket ``RECEIPTS#<shard>``, so checkpoints find it)
- ``RECEIPTS#<tenant>`` / ``LOG``                 the log's size, frontier, latest checkpoint hash
- ``RECEIPTS#<tenant>`` / ``LEAF#<index:012d>``   a receipt in the log, with the subtree hashes it completed
- ``RECEIPTS#<tenant>`` / ``CHECKPOINT#<size:012d>`` a signed checkpoint
- ``RECEIPTS#<tenant>`` / ``HEAD`` | ``SEQ#<seq:012d>`` the chain-mode receipts written before the log

A receipt is queued in the same transaction that records the call's execution, with no condition
on any other call's: a tenant's executions never wait on each other. A checkpoint moves a batch of
receipts (logic/checkpoints.py) from the queue into the log and writes the new head and the signed
checkpoint in one transaction, conditioned on the head it started from: two checkpointers never
both append, and a crash leaves the log as it was.
"""

from __future__ import annotations

import zlib

from signoff.dal.base import DUE_INDEX, DUE_SHARDS, TableBase, _action_key, _key
from signoff.dal.codec import to_attr
from signoff.domain.merkle import Node
from signoff.domain.models import Action, Execution, ExecutionStatus, iso, utc_now
from signoff.domain.receipts import LogEntry, LogHead, PendingReceipt
from signoff.domain.stores import ResumeRefused

MAX_RECEIPT_PAGE = 500
RECEIPT_BUCKETS = tuple(f"RECEIPTS#{n:x}" for n in range(DUE_SHARDS))


def _receipts_pk(tenant: str) -> str:
    return f"RECEIPTS#{tenant}"


def _seq_sk(seq: int) -> str:
    return f"SEQ#{seq:012d}"


def _leaf_sk(index: int) -> str:
    return f"LEAF#{index:012d}"


def _checkpoint_sk(size: int) -> str:
    return f"CHECKPOINT#{size:012d}"


def _receipt_bucket(tenant: str) -> str:
    return RECEIPT_BUCKETS[zlib.crc32(tenant.encode()) % DUE_SHARDS]


def _log_head(item: dict | None) -> LogHead:
    if not item:
        return LogHead()
    return LogHead(
        size=int(item["size"]),
        frontier=tuple(bytes.fromhex(h) for h in item.get("frontier", [])),
        checkpoint=str(item["checkpoint"]),
        chain_seq=int(item.get("chain_seq", 0)),
    )


class ReceiptRecords(TableBase):
    def _range(self, tenant: str, first: str, last: str, limit: int) -> tuple[list[tuple[str, str]], bool]:
        """(sort key, receipt or checkpoint JWS) of the tenant's items from ``first`` to ``last``, in
        order, at most ``limit``; and whether more may follow."""
        page = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":pk": {"S": _receipts_pk(tenant)},
                ":first": {"S": first},
                ":last": {"S": last},
            },
            ConsistentRead=True,
            Limit=limit,
        )
        items = [(i["sk"]["S"], i["jws"]["S"]) for i in page.get("Items", [])]
        return items, bool(items) and "LastEvaluatedKey" in page

    def finish_with_receipt(
        self,
        action: Action,
        execution: Execution,
        jws: str,
        resume_pause: str | None = None,
        from_status: ExecutionStatus = ExecutionStatus.EXECUTING,
    ) -> bool:
        """executing (or ``from_status``: a hosted call's delegated) → ``execution`` with the receipt
        on the action, the receipt queued for the tenant's log: all or nothing. False when the call
        is no longer in that state.
        ``resume_pause``: the call is its pause's last to settle, and the same write claims the turn's
        resume (``claim_turn_resume``); ResumeRefused when only that claim was refused."""
        resume = (
            []
            if resume_pause is None
            else self._resume_claim_items(action.conversation_id, action.turn_id, resume_pause)
        )
        now = iso(utc_now())
        call = f"{action.conversation_id}:{action.turn_id}:{action.call_id}"
        reasons = self._transact_reasons(
            [
                {
                    "Update": {
                        "Key": _action_key(action.conversation_id, action.turn_id, action.call_id),
                        "UpdateExpression": "SET execution = :done, receipt = :jws",
                        "ConditionExpression": "execution.#s = :executing",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":done": to_attr(execution.model_dump(mode="json", exclude_none=True)),
                            ":jws": to_attr(jws),
                            ":executing": to_attr(from_status.value),
                        },
                    }
                },
                {
                    "Put": {
                        "Item": {
                            **_key(_receipts_pk(action.tenant), f"QUEUED#{now}#{call}"),
                            "type": to_attr("queued_receipt"),
                            "jws": to_attr(jws),
                            "call": to_attr(call),
                            "created_at": to_attr(now),
                            "due_bucket": to_attr(_receipt_bucket(action.tenant)),
                            "due_at": to_attr(now),
                        },
                    }
                },
                *resume,
            ]
        )
        if reasons is None:
            return True
        if resume and all(code != "ConditionalCheckFailed" for code in reasons[: -len(resume)]):
            raise ResumeRefused("the turn's resume was not this write's to claim")
        return False

    # -- the log ------------------------------------------------------------------------------
    def receipt_log(self, tenant: str) -> LogHead:
        return _log_head(self._get(_key(_receipts_pk(tenant), "LOG")))

    def tenants_with_queued_receipts(self, limit: int) -> list[str]:
        """Tenants with receipts waiting for a checkpoint, oldest waiting first per shard."""
        tenants: dict[str, None] = {}
        for bucket in RECEIPT_BUCKETS:
            page = self._db.query(
                TableName=self._table,
                IndexName=DUE_INDEX,
                KeyConditionExpression="due_bucket = :b",
                ExpressionAttributeValues={":b": {"S": bucket}},
                ProjectionExpression="pk",
                Limit=limit,
            )
            for item in page.get("Items", []):
                tenants.setdefault(item["pk"]["S"].removeprefix("RECEIPTS#"))
        return list(tenants)[:limit]

    def queued_receipts(self, tenant: str, limit: int) -> list[PendingReceipt]:
        items, _ = self._range(tenant, "QUEUED#", "QUEUED#~", limit)
        return [PendingReceipt(jws=jws, key=sk) for sk, jws in items]

    def chain_receipts(self, tenant: str, after_seq: int, limit: int) -> list[PendingReceipt]:
        """Chain-mode receipts after ``after_seq``, in order."""
        items, _ = self._range(tenant, _seq_sk(after_seq + 1), "SEQ#~", limit)
        return [PendingReceipt(jws=jws, chain_seq=int(sk.removeprefix("SEQ#"))) for sk, jws in items]

    def append_to_log(self, tenant: str, old: LogHead, new: LogHead, entries: list[LogEntry], checkpoint: str) -> bool:
        """The entries into the log (out of the queue), the head moved from exactly ``old`` to
        ``new`` and the checkpoint stored: all or nothing. False when the log or the queue moved."""
        pk = _receipts_pk(tenant)
        items: list[dict] = []
        for entry in entries:
            leaf = {
                **_key(pk, _leaf_sk(entry.index)),
                "type": to_attr("log_leaf"),
                "jws": to_attr(entry.receipt.jws),
                "nodes": {"M": {str(level): {"S": h.hex()} for level, h in entry.nodes.items()}},
            }
            items.append({"Put": {"Item": leaf, "ConditionExpression": "attribute_not_exists(pk)"}})
            if entry.receipt.key is not None:
                items.append(
                    {"Delete": {"Key": _key(pk, entry.receipt.key), "ConditionExpression": "attribute_exists(pk)"}}
                )
        head_values = {
            ":size": to_attr(new.size),
            ":frontier": {"L": [{"S": h.hex()} for h in new.frontier]},
            ":checkpoint": to_attr(new.checkpoint),
            ":c": to_attr(new.chain_seq),
        }
        if old.size:
            head_values[":old"] = to_attr(old.size)
        items.append(
            {
                "Update": {
                    "Key": _key(pk, "LOG"),
                    "UpdateExpression": "SET #size = :size, frontier = :frontier, #cp = :checkpoint, chain_seq = :c",
                    "ConditionExpression": "#size = :old" if old.size else "attribute_not_exists(pk)",
                    "ExpressionAttributeNames": {"#size": "size", "#cp": "checkpoint"},
                    "ExpressionAttributeValues": head_values,
                }
            }
        )
        items.append(
            {
                "Put": {
                    "Item": {
                        **_key(pk, _checkpoint_sk(new.size)),
                        "type": to_attr("checkpoint"),
                        "jws": to_attr(checkpoint),
                        "created_at": to_attr(iso(utc_now())),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
        return self._transact_reasons(items) is None

    def list_log(self, tenant: str, after: int, limit: int) -> tuple[list[tuple[int, str]], int | None]:
        """The log's receipts from index ``after`` on, as (index, receipt); and where the next page
        starts, if more. A tenant with no log yet lists its chain-mode receipts (index = seq - 1)."""
        limit = max(1, min(limit, MAX_RECEIPT_PAGE))
        if self.receipt_log(tenant).size == 0:
            items, more = self._range(tenant, _seq_sk(after + 1), "SEQ#~", limit)
            entries = [(int(sk.removeprefix("SEQ#")) - 1, jws) for sk, jws in items]
        else:
            items, more = self._range(tenant, _leaf_sk(after), "LEAF#~", limit)
            entries = [(int(sk.removeprefix("LEAF#")), jws) for sk, jws in items]
        return entries, (entries[-1][0] + 1 if more else None)

    def list_checkpoints(self, tenant: str, after_size: int, limit: int) -> tuple[list[str], int | None]:
        """Checkpoints of sizes above ``after_size``, oldest first; and the size to go on after."""
        limit = max(1, min(limit, MAX_RECEIPT_PAGE))
        items, more = self._range(tenant, _checkpoint_sk(after_size + 1), "CHECKPOINT#~", limit)
        return [jws for _, jws in items], (int(items[-1][0].removeprefix("CHECKPOINT#")) if more else None)

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        item = self._get(_key(_receipts_pk(tenant), _checkpoint_sk(size)))
        return str(item["jws"]) if item else None

    def log_entry(self, tenant: str, index: int) -> str | None:
        item = self._get(_key(_receipts_pk(tenant), _leaf_sk(index)))
        return str(item["jws"]) if item else None

    def log_nodes(self, tenant: str, nodes: set[Node]) -> dict[Node, bytes]:
        """The stored hashes of these perfect subtrees (each kept on the leaf that completed it)."""
        holder = {node: ((node[1] + 1) << node[0]) - 1 for node in nodes}
        items = self._get_many([_key(_receipts_pk(tenant), _leaf_sk(i)) for i in sorted(set(holder.values()))])
        by_index = {int(str(item["sk"]).removeprefix("LEAF#")): item.get("nodes", {}) for item in items}
        return {
            node: bytes.fromhex(by_index[index][str(node[0])])
            for node, index in holder.items()
            if index in by_index and str(node[0]) in by_index[index]
        }
