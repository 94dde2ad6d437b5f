"""ApprovalRecords: approvals (one per approver), their outcomes, and each call's verdict.

An approval settles once (``pending → settled``). A call's verdict is recorded once, in the same
transaction that counts the turn's pending calls down; a scheduled call goes into the due index
for the reconciler to run at its time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from signoff.dal.base import TableBase, _action_key, _approval_key, _conv_pk, _key, _record, due_bucket
from signoff.dal.codec import to_attr, to_item
from signoff.domain.budgets import BudgetWrite
from signoff.domain.models import (
    Action,
    Approval,
    ApprovalState,
    Decision,
    DecisionRef,
    Execution,
    TurnStatus,
    iso,
    utc_now,
)
from signoff.domain.stores import BudgetMoved


def _settlement(answered: Approval) -> tuple[str, dict[str, Any]]:
    """The update that settles an approval as ``answered`` (Approval.answered) says, and its values
    (``#st`` is the state; the condition, that it is still pending, uses ``:pending``)."""
    return (
        "SET #st = :settled, outcome = :outcome, resolved_by = :by, notes = :notes, response_data = :data, "
        "execute_at = :exec_at, resolved_at = :at",
        {
            ":settled": ApprovalState.SETTLED,
            ":pending": ApprovalState.PENDING,
            ":outcome": answered.outcome.value if answered.outcome else None,
            ":by": answered.resolved_by,
            ":notes": answered.notes,
            # The approver's data as text: nothing in it can trip DynamoDB's types.
            ":data": json.dumps(answered.response_data) if answered.response_data is not None else None,
            ":exec_at": answered.execute_at,
            ":at": answered.resolved_at,
        },
    )


class ApprovalRecords(TableBase):
    def _approval_item(self, approval: Approval, due_at: datetime) -> dict:
        """An approval as stored: due for the reconciler, listed in the audit index, kept for audit."""
        item = {"pk": f"APPROVAL#{approval.approval_id}", "sk": "APPROVAL", "type": "approval"}
        item.update(approval.model_dump(mode="json"))
        if approval.call is not None:  # JSON text, like a call's arguments: numbers keep their spelling
            item["call"] = approval.call.model_dump_json()
        item.update(
            {
                "due_bucket": due_bucket(f"APPROVAL#{approval.approval_id}"),
                "due_at": iso(due_at),
                "audit_bucket": f"AUDIT#{approval.created_at[:7]}",
                "audit_at": f"{approval.created_at}#{approval.approval_id}",
                "ttl": self._expiry(),
            }
        )
        return to_item(item)

    def put_approval(self, approval: Approval, due_at: datetime) -> bool:
        return self._put_new(self._approval_item(approval, due_at))

    def escalate(self, action: Action, expired: Approval, next_rung: Approval, due_at: datetime) -> bool:
        """The call's expired approval is replaced by the next rung's, all or nothing: the new one is
        stored (pending, due), the call now waits on it (and shows no decision until it is asked),
        the expired one leaves the reconciler's list. Only while the call has no verdict and still
        waits on the expired approval, so a ladder never forks."""
        ids = [next_rung.approval_id if i == expired.approval_id else i for i in action.approval_ids]
        return self._transact(
            [
                {
                    "Put": {
                        "Item": self._approval_item(next_rung, due_at),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "Key": _action_key(action.conversation_id, action.turn_id, action.call_id),
                        "UpdateExpression": "SET approval_ids = :ids REMOVE decision",
                        "ConditionExpression": "verdict_recorded = :false AND contains(approval_ids, :expired)",
                        "ExpressionAttributeValues": {
                            ":ids": to_attr(ids),
                            ":false": to_attr(False),
                            ":expired": to_attr(expired.approval_id),
                        },
                    }
                },
                {
                    "Update": {
                        "Key": _approval_key(expired.approval_id),
                        "UpdateExpression": "SET escalated_to = :next REMOVE due_bucket, due_at",
                        "ConditionExpression": "#st = :settled",
                        "ExpressionAttributeNames": {"#st": "state"},
                        "ExpressionAttributeValues": {
                            ":next": to_attr(next_rung.approval_id),
                            ":settled": to_attr(ApprovalState.SETTLED.value),
                        },
                    }
                },
            ]
        )

    def get_approval(self, approval_id: str) -> Approval | None:
        data = self._get(_approval_key(approval_id))
        return _record(data) if data else None

    def get_approvals(self, approval_ids: list[str]) -> list[Approval]:
        """Consistent reads in one request, in the order asked; missing ones are left out."""
        if not approval_ids:
            return []
        if len(approval_ids) == 1:
            found = self.get_approval(approval_ids[0])
            return [found] if found else []
        by_id = {
            item["approval_id"]: _record(item) for item in self._get_many([_approval_key(i) for i in approval_ids])
        }
        return [by_id[i] for i in approval_ids if i in by_id]

    def attach_decision(
        self, approval: Approval, decision_id: str, expires_at: str | None = None, show_pause: str | None = None
    ) -> bool:
        """Bind the Handover decision (and when it times out) to the approval, once; the action shows
        the first one as pending, in the same write. ``show_pause``: the last binding of that pause
        also shows the conversation as awaiting approval (``show_awaiting_approval``), in the same write."""
        shown = (
            []
            if show_pause is None
            else self._awaiting_approval_items(approval.conversation_id, approval.turn_id, show_pause)
        )
        return self._transact(
            [
                {
                    "Update": {
                        "Key": _approval_key(approval.approval_id),
                        "UpdateExpression": "SET decision_id = :d, expires_at = :e",
                        "ConditionExpression": "attribute_not_exists(decision_id) AND #st = :pending",
                        "ExpressionAttributeNames": {"#st": "state"},
                        "ExpressionAttributeValues": {
                            ":d": to_attr(decision_id),
                            ":e": to_attr(expires_at),
                            ":pending": to_attr(ApprovalState.PENDING),
                        },
                    }
                },
                {
                    "Update": {
                        "Key": _action_key(approval.conversation_id, approval.turn_id, approval.call_id),
                        "UpdateExpression": "SET decision = if_not_exists(decision, :ref)",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {
                            ":ref": to_attr(DecisionRef(id=decision_id).model_dump(mode="json"))
                        },
                    }
                },
                *shown,
            ]
        )

    def settle_approval(self, approval: Approval, decision: Decision | None) -> Approval | None:
        """pending → settled with the approver's answer (None: no decision could be requested).
        Returns the settled approval, or None when it was settled already (someone else won).

        The approval stays in the due index until its call's verdict is recorded, so a crash
        right after this write is finished by the reconciler.
        """
        expression, values = _settlement(approval.answered(decision))
        settled = self._update_returning(
            _approval_key(approval.approval_id),
            expression + ", due_at = :soon",
            "#st = :pending",
            {**values, ":soon": iso(utc_now())},
            {"#st": "state"},
        )  # the settled approval, so the settler need not read it again
        return None if settled is None else _record(settled)

    def record_verdict(
        self,
        action: Action,
        decision: DecisionRef,
        verdict: str | None,
        execution: Execution | None,
        approved_arguments: dict[str, Any] | None = None,
        approved_digest: str | None = None,
        changes: dict[str, Any] | None = None,
        retire: Sequence[str] = (),
        answered: Approval | None = None,
        budgets: Sequence[BudgetWrite] = (),
    ) -> bool:
        """The call's verdict, once, with the turn's count of pending calls down by one, and only while
        the call waits on the approvals ``action`` names and the turn still waits on approvals: a turn
        that failed or was abandoned takes no more verdicts, so its calls can never run afterwards.
        The ``retire`` approvals leave the reconciler's list in the same write (answers still to come
        are recorded, and change nothing). ``answered``: the approval whose answer decides, settled
        in the same write while still pending. ``budgets``: the call's reservations, each written
        only if its counter is still at the version read; BudgetMoved if one was not."""
        sets = ["decision = :decision", "verdict = :verdict", "verdict_recorded = :true"]
        values: dict[str, Any] = {":decision": decision.model_dump(mode="json"), ":verdict": verdict, ":true": True}
        if execution is not None:
            sets.append("execution = :execution")
            values[":execution"] = execution.model_dump(mode="json", exclude_none=True)
            if execution.execute_at:
                sets += ["due_bucket = :bucket", "due_at = :due"]
                values.update({":bucket": due_bucket(_conv_pk(action.conversation_id)), ":due": execution.execute_at})
        if approved_arguments is not None:
            from signoff.domain.canonical import canonical_json

            sets += ["approved_arguments = :args", "approved_digest = :digest"]
            values.update({":args": canonical_json(approved_arguments), ":digest": approved_digest})
        if changes is not None:
            sets.append("changes = :changes")
            values[":changes"] = changes
        settles = []
        if answered is not None:  # settled and out of the reconciler's list, in this same write
            expression, settlement = _settlement(answered)
            settles.append(
                {
                    "Update": {
                        "Key": _approval_key(answered.approval_id),
                        "UpdateExpression": expression + " REMOVE due_bucket, due_at",
                        "ConditionExpression": "#st = :pending",
                        "ExpressionAttributeNames": {"#st": "state"},
                        "ExpressionAttributeValues": {k: to_attr(v) for k, v in settlement.items()},
                    }
                }
            )
            retire = [i for i in retire if i != answered.approval_id]
        budget_items = [self._budget_write_item(write) for write in budgets]
        reasons = self._transact_reasons(
            [
                *budget_items,
                *settles,
                {
                    "Update": {
                        "Key": _action_key(action.conversation_id, action.turn_id, action.call_id),
                        "UpdateExpression": "SET " + ", ".join(sets),
                        # On the answers of exactly these approvals (an escalation swaps one).
                        "ConditionExpression": (
                            "verdict_recorded = :false AND attribute_not_exists(execution) AND approval_ids = :ids"
                        ),
                        "ExpressionAttributeValues": {
                            k: to_attr(v) for k, v in {**values, ":false": False, ":ids": action.approval_ids}.items()
                        },
                    }
                },
                {
                    "Update": {
                        "Key": _key(_conv_pk(action.conversation_id), f"TURN#{action.turn_id}"),
                        # Due for the reconciler in case the resume message is lost.
                        "UpdateExpression": "SET pending = pending - :one, due_bucket = :bucket, due_at = :due",
                        "ConditionExpression": "#s = :awaiting AND pending > :zero",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":awaiting": {"S": TurnStatus.AWAITING_APPROVAL},
                            ":one": {"N": "1"},
                            ":zero": {"N": "0"},
                            ":bucket": {"S": due_bucket(_conv_pk(action.conversation_id))},
                            ":due": {"S": self._stall_due()},
                        },
                    }
                },
                *(
                    {
                        "Update": {
                            "Key": _approval_key(approval_id),
                            "UpdateExpression": "REMOVE due_bucket, due_at",
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    }
                    for approval_id in retire
                ),
            ]
        )
        if reasons is None:
            return True
        if any(code == "ConditionalCheckFailed" for code in reasons[: len(budget_items)]):
            raise BudgetMoved("a budget counter moved since it was read")
        return False

    def retire_approval(self, approval_id: str) -> None:
        """Out of the reconciler's list: its call has a verdict (a late answer is still recorded)."""
        self._remove_due(_approval_key(approval_id))

    def postpone_approval(self, approval_id: str, due_at: datetime, *, unreadable: bool = False) -> bool:
        """Look again at ``due_at``; ``unreadable``: this look found a decision we could not read (counted)."""
        expression = "SET due_at = :due" + (" ADD read_failures :one" if unreadable else "")
        values: dict[str, Any] = {":due": iso(due_at)}
        if unreadable:
            values[":one"] = 1
        return self._update(_approval_key(approval_id), expression, "attribute_exists(due_bucket)", values)
