"""Receipts: one hash chain per tenant.

- ``RECEIPTS#<tenant>`` / ``HEAD``           the chain's last ``seq`` and that receipt's hash
- ``RECEIPTS#<tenant>`` / ``SEQ#<seq:012d>`` one receipt (the JWS), in order

A receipt is written in the same transaction that records the call's execution, moving the head
from exactly the ``seq`` the receipt was signed against: two receipts can never share a ``seq``
or a ``prev``, and an executed gated call never lacks its receipt.
"""

from __future__ import annotations

from signoff.dal.base import TableBase, _action_key, _approval_key, _key, _record
from signoff.dal.codec import to_attr
from signoff.domain.models import Action, Approval, Execution, ExecutionStatus, iso, utc_now
from signoff.domain.receipts import GENESIS, receipt_hash
from signoff.domain.stores import ResumeRefused

MAX_RECEIPT_PAGE = 500


def _chain_pk(tenant: str) -> str:
    return f"RECEIPTS#{tenant}"


def _head(item: dict | None) -> tuple[int, str]:
    """(last seq, its hash) of a chain head item; (0, GENESIS) before the tenant's first receipt."""
    return (int(item["seq"]), str(item["hash"])) if item else (0, GENESIS)


def _seq_sk(seq: int) -> str:
    return f"SEQ#{seq:012d}"


class ReceiptRecords(TableBase):
    def receipt_head(self, tenant: str) -> tuple[int, str]:
        """(last seq, its hash); (0, GENESIS) before the tenant's first receipt."""
        return _head(self._get(_key(_chain_pk(tenant), "HEAD")))

    def approvals_with_receipt_head(
        self, approval_ids: list[str], tenant: str
    ) -> tuple[list[Approval], tuple[int, str]]:
        """A call's approvals (in the order asked) and its tenant's chain head, in one request."""
        head_key = _key(_chain_pk(tenant), "HEAD")
        approvals: dict[str, Approval] = {}
        head = None
        for item in self._get_many([head_key, *(_approval_key(i) for i in approval_ids)]):
            if item["pk"] == head_key["pk"]["S"]:
                head = item
            else:
                approvals[item["approval_id"]] = _record(item)
        return [approvals[i] for i in approval_ids if i in approvals], _head(head)

    def finish_with_receipt(
        self, action: Action, execution: Execution, seq: int, jws: str, resume_pause: str | None = None
    ) -> bool:
        """executing → ``execution`` with the receipt on the action, the receipt appended as ``seq``:
        all or nothing. False when the call is no longer executing or the chain moved on.
        ``resume_pause``: the call is its pause's last to settle, and the same write claims the turn's
        resume (``claim_turn_resume``); ResumeRefused when only that claim was refused."""
        resume = (
            []
            if resume_pause is None
            else self._resume_claim_items(action.conversation_id, action.turn_id, resume_pause)
        )
        tenant = action.tenant
        head_condition = "attribute_not_exists(pk)" if seq == 1 else "seq = :previous"
        head_values = {":seq": to_attr(seq), ":hash": to_attr(receipt_hash(jws))}
        if seq != 1:
            head_values[":previous"] = to_attr(seq - 1)
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
                            ":executing": to_attr(ExecutionStatus.EXECUTING.value),
                        },
                    }
                },
                {
                    "Update": {
                        "Key": _key(_chain_pk(tenant), "HEAD"),
                        "UpdateExpression": "SET seq = :seq, #hash = :hash",
                        "ConditionExpression": head_condition,
                        "ExpressionAttributeNames": {"#hash": "hash"},
                        "ExpressionAttributeValues": head_values,
                    }
                },
                {
                    "Put": {
                        "Item": {
                            **_key(_chain_pk(tenant), _seq_sk(seq)),
                            "type": to_attr("receipt"),
                            "jws": to_attr(jws),
                            "call": to_attr(f"{action.conversation_id}:{action.turn_id}:{action.call_id}"),
                            "created_at": to_attr(iso(utc_now())),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
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

    def list_receipts(self, tenant: str, after_seq: int, limit: int) -> tuple[list[str], int | None]:
        """The tenant's receipts after ``after_seq``, in order; and the seq to continue after, if more."""
        limit = max(1, min(limit, MAX_RECEIPT_PAGE))
        page = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk > :after",
            ExpressionAttributeValues={":pk": {"S": _chain_pk(tenant)}, ":after": {"S": _seq_sk(after_seq)}},
            ConsistentRead=True,
            Limit=limit,
        )
        items = [item for item in page.get("Items", []) if item["sk"]["S"].startswith("SEQ#")]
        receipts = [item["jws"]["S"] for item in items]
        more = "LastEvaluatedKey" in page and items
        return receipts, (int(items[-1]["sk"]["S"].removeprefix("SEQ#")) if more else None)
