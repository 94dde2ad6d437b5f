"""ConversationRecords: conversations, messages and turns, and the turn state machine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from signoff.dal.base import TableBase, _action_key, _conv_pk, _key, _record, due_bucket
from signoff.dal.codec import from_item, to_attr, to_item
from signoff.domain.models import (
    Action,
    Approval,
    Conversation,
    ConversationStatus,
    Message,
    Turn,
    TurnStatus,
    iso,
    utc_now,
)
from signoff.domain.ports import ConversationBusy, ConversationNotFound
from signoff.domain.stores import ConversationPage, conversation_of, conversation_page
from signoff.domain.tenants import DEFAULT_TENANT

# DynamoDB's limits for one transaction are 100 items and 4 MB; the text of the items (their repr,
# a little larger than their size) is kept well under the second.
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_TEXT = 3_000_000

__all__ = ["ConversationBusy", "ConversationNotFound", "ConversationRecords"]


class ConversationRecords(TableBase):
    # -- conversations and turns -----------------------------------------------------------
    def create_conversation(self, conversation: Conversation, turn: Turn, message: Message) -> None:
        pk = _conv_pk(conversation.conversation_id)
        ok = self._transact(
            [
                {
                    "Put": {
                        "Item": to_item(
                            {
                                "pk": pk,
                                "sk": "META",
                                "type": "conversation",
                                **conversation.model_dump(),
                                # Client JSON as text: any number it holds survives, whatever DynamoDB's range.
                                "metadata": json.dumps(conversation.metadata, ensure_ascii=False),
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"Item": self._turn_item(turn), "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"Item": self._message_item(conversation.conversation_id, message)}},
            ]
        )
        if not ok:
            raise ConversationBusy("conversation id already exists")

    def open_turn(self, conversation_id: str, turn: Turn, message: Message, tenant: str = DEFAULT_TENANT) -> None:
        """idle|failed → running, with the new turn as the active one, for the conversation's own
        tenant only (another tenant's conversation is not found); 409 territory otherwise."""
        pk = _conv_pk(conversation_id)
        # A conversation stored before tenants had none: it is the default tenant's.
        owner = "(tenant = :tenant OR attribute_not_exists(tenant))" if tenant == DEFAULT_TENANT else "tenant = :tenant"
        ok = self._transact(
            [
                {
                    "Update": {
                        "Key": _key(pk, "META"),
                        "UpdateExpression": "SET #s = :running, active_turn_id = :tid",
                        "ConditionExpression": f"attribute_exists(pk) AND {owner} AND #s IN (:idle, :failed)",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":running": {"S": ConversationStatus.RUNNING},
                            ":idle": {"S": ConversationStatus.IDLE},
                            ":failed": {"S": ConversationStatus.FAILED},
                            ":tid": {"S": turn.turn_id},
                            ":tenant": {"S": tenant},
                        },
                    }
                },
                {"Put": {"Item": self._turn_item(turn), "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"Item": self._message_item(conversation_id, message)}},
            ]
        )
        if not ok:
            existing = self.get_conversation(conversation_id)
            if existing is None or existing.tenant != tenant:
                raise ConversationNotFound(conversation_id)
            raise ConversationBusy(conversation_id)

    def _turn_item(self, turn: Turn) -> dict:
        return to_item(
            {
                "pk": _conv_pk(turn.conversation_id),
                "sk": f"TURN#{turn.turn_id}",
                "type": "turn",
                "due_bucket": due_bucket(_conv_pk(turn.conversation_id)),
                "due_at": self._stall_due(),
                **turn.model_dump(),
            }
        )

    def _message_item(self, conversation_id: str, message: Message) -> dict:
        sk = f"MSG#{message.created_at}#{message.role}"
        return to_item({"pk": _conv_pk(conversation_id), "sk": sk, "type": "message", **message.model_dump()})

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        data = self._get(_key(_conv_pk(conversation_id), "META"))
        return _record(data) if data else None

    def get_turn(self, conversation_id: str, turn_id: str) -> Turn | None:
        data = self._get(_key(_conv_pk(conversation_id), f"TURN#{turn_id}"))
        return _record(data) if data else None

    def get_pause(
        self, conversation_id: str, turn_id: str, call_ids: Sequence[str] = ()
    ) -> tuple[Turn | None, Conversation | None, list[Action] | None]:
        """The turn, its conversation and the named calls of the turn, in one request (all consistent).
        The calls by seq; None unless every one was found."""
        pk = _conv_pk(conversation_id)
        calls = list(call_ids)
        keys = [_key(pk, f"TURN#{turn_id}"), _key(pk, "META")]
        keys += [_action_key(conversation_id, turn_id, call_id) for call_id in calls]
        by_sort_key = {item["sk"]: _record(item) for item in self._get_many(keys)}
        found = [by_sort_key[k["sk"]["S"]] for k in keys[2:] if k["sk"]["S"] in by_sort_key]
        actions = sorted(found, key=lambda a: a.seq) if calls and len(found) == len(calls) else None
        return by_sort_key.get(f"TURN#{turn_id}"), by_sort_key.get("META"), actions

    def load_conversation(self, conversation_id: str) -> tuple[Conversation, list[Message], list[Action]] | None:
        """Everything the client sees of a conversation, read in one partition query."""
        shown = ("conversation", "message", "action")
        return conversation_of(
            _record(item) for item in self._query_partition(_conv_pk(conversation_id)) if item.get("type") in shown
        )

    def conversation_page(
        self, conversation_id: str, after_message: str | None, after_action: str | None, limit: int
    ) -> ConversationPage | None:
        """One GetItem and at most one bounded query per list (messages, actions): never the whole
        partition, however long the conversation has run."""
        conversation = self.get_conversation(conversation_id)
        if conversation is None:
            return None
        return conversation_page(
            conversation, after_message, after_action, limit, lambda *slice_: self._slice(conversation_id, *slice_)
        )

    def _slice(self, conversation_id: str, prefix: str, after: str | None, limit: int) -> tuple[list, str | None]:
        """Up to ``limit`` records of one kind (sort keys ``prefix…``) after ``after``; and the sort key
        to go on after, if the query stopped at the limit."""
        response = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={
                ":pk": {"S": _conv_pk(conversation_id)},
                ":from": {"S": after + "\x00" if after else prefix},  # the first key after ``after``
                ":to": {"S": prefix[:-1] + "$"},  # "#" + 1: every key with the prefix
            },
            ConsistentRead=True,
            Limit=limit,
        )
        items = [from_item(item) for item in response.get("Items", [])]
        more = "LastEvaluatedKey" in response and items
        return [_record(item) for item in items], (items[-1]["sk"] if more else None)

    def set_backend_state(self, conversation_id: str, state: dict[str, Any]) -> None:
        self._update(
            _key(_conv_pk(conversation_id), "META"),
            "SET backend_state = :s",
            "attribute_exists(pk)",
            {":s": state},
        )

    def claim_turn_start(self, conversation_id: str, turn_id: str) -> Turn | None:
        """queued → running: exactly one worker starts a turn, and gets it as it now is."""
        claimed = self._update_returning(
            _key(_conv_pk(conversation_id), f"TURN#{turn_id}"),
            "SET #s = :running, due_bucket = :bucket, due_at = :lease",
            "#s = :queued",
            {
                ":running": TurnStatus.RUNNING,
                ":queued": TurnStatus.QUEUED,
                ":bucket": due_bucket(_conv_pk(conversation_id)),
                ":lease": self._lease_due(),
            },
            {"#s": "status"},
        )
        return None if claimed is None else _record(claimed)

    def claim_turn_resume(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        """awaiting_approval → running, once every call of that pause has its verdict. Due again when
        the lease ends, so a worker that died mid-turn is noticed."""
        return self._transact(self._resume_claim_items(conversation_id, turn_id, pause_ref))

    def _resume_claim_items(self, conversation_id: str, turn_id: str, pause_ref: str) -> list[dict]:
        """``claim_turn_resume`` as transaction items (the last call's receipt may carry them)."""
        return [
            self._turn_change(
                conversation_id,
                turn_id,
                "SET #s = :running, due_bucket = :bucket, due_at = :lease",
                "#s = :awaiting AND pause_ref = :pause AND pending = :zero",
                {
                    ":running": TurnStatus.RUNNING,
                    ":bucket": due_bucket(_conv_pk(conversation_id)),
                    ":lease": self._lease_due(),
                    ":awaiting": TurnStatus.AWAITING_APPROVAL,
                    ":pause": pause_ref,
                    ":zero": 0,
                },
            ),
            self._conversation_status_update(conversation_id, turn_id, ConversationStatus.RUNNING),
        ]

    def _turn_change(self, conversation_id: str, turn_id: str, expression: str, condition: str, values: dict) -> dict:
        """One conditional turn update, as a transaction item (``#s`` is the turn's status)."""
        return {
            "Update": {
                "Key": _key(_conv_pk(conversation_id), f"TURN#{turn_id}"),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
            }
        }

    def _conversation_status_update(self, conversation_id: str, turn_id: str, status: ConversationStatus) -> dict:
        return {
            "Update": {
                "Key": _key(_conv_pk(conversation_id), "META"),
                "UpdateExpression": "SET #s = :status",
                "ConditionExpression": "active_turn_id = :tid",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":status": {"S": status}, ":tid": {"S": turn_id}},
            }
        }

    def release_turn(self, conversation_id: str, turn_id: str, *, for_resume: bool) -> int | None:
        """running → queued (start) or awaiting_approval with nothing pending (resume), so a retry can
        claim it again; the conversation stays ``running``. Returns the attempts so far."""
        target = TurnStatus.AWAITING_APPROVAL if for_resume else TurnStatus.QUEUED
        released = self._update_returning(
            _key(_conv_pk(conversation_id), f"TURN#{turn_id}"),
            # Due again later as a backstop, should the delayed retry message be lost.
            "SET #s = :target, due_bucket = :bucket, due_at = :due ADD attempts :one",
            "#s = :running",
            {
                ":target": target,
                ":running": TurnStatus.RUNNING,
                ":one": 1,
                ":bucket": due_bucket(_conv_pk(conversation_id)),
                ":due": iso(utc_now() + self._stall + timedelta(seconds=900)),
            },
            {"#s": "status"},
            returning="UPDATED_NEW",
        )
        return None if released is None else int(released["attempts"])

    def record_pause(
        self,
        turn: Turn,
        pause_ref: str,
        actions: list[Action],
        approvals: list[tuple[Approval, datetime]],
        pending: int,
        said: Message | None = None,
    ) -> bool:
        """running → awaiting_approval (pending > 0) or stays running; writes each call and each
        approval (pending, not yet bound to a decision), and ``said`` (what the model wrote beside
        its calls), all in one transaction: nothing is written unless the turn is still running and
        none of them exists yet.

        So whatever stops the worker afterwards, every call the turn waits on has its approvals
        in the table, and the reconciler can settle each one: nothing waits on an approval that
        does not exist. The conversation is shown as awaiting approval only once its decisions
        exist (``show_awaiting_approval``). A pause too large for one transaction is written call
        by call (an existing one kept), the turn last.
        """
        status = TurnStatus.AWAITING_APPROVAL if pending else TurnStatus.RUNNING
        turn_change = self._turn_change(
            turn.conversation_id,
            turn.turn_id,
            "SET #s = :status, pause_ref = :pause, pending = :pending",
            "#s = :running",
            {":status": status, ":running": TurnStatus.RUNNING, ":pause": pause_ref, ":pending": pending},
        )
        puts = [self._action_item(a) for a in actions] + [self._approval_item(a, due) for a, due in approvals]
        if said is not None:
            puts.append(self._message_item(turn.conversation_id, said))
        if len(puts) < MAX_TRANSACTION_ITEMS and sum(len(str(p)) for p in puts) < MAX_TRANSACTION_TEXT:
            new = "attribute_not_exists(pk)"
            writes = [{"Put": {"Item": item, "ConditionExpression": new}} for item in puts]
            return self._transact([*writes, turn_change])
        for item in puts:
            self._put_new(item)
        return self._transact([turn_change])

    def show_awaiting_approval(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        """Conversation → awaiting_approval, only while that pause still has approvals pending."""
        return self._transact(self._awaiting_approval_items(conversation_id, turn_id, pause_ref))

    def _awaiting_approval_items(self, conversation_id: str, turn_id: str, pause_ref: str) -> list[dict]:
        """``show_awaiting_approval`` as transaction items (a decision's binding may carry them)."""
        return [
            {
                "ConditionCheck": {
                    "Key": _key(_conv_pk(conversation_id), f"TURN#{turn_id}"),
                    "ConditionExpression": "#s = :awaiting AND pause_ref = :pause AND pending > :zero",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":awaiting": {"S": TurnStatus.AWAITING_APPROVAL},
                        ":pause": {"S": pause_ref},
                        ":zero": {"N": "0"},
                    },
                }
            },
            self._conversation_status_update(conversation_id, turn_id, ConversationStatus.AWAITING_APPROVAL),
        ]

    def show_awaiting_client(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        """The pause waits on the client's results: the turn is handed back (running or awaiting →
        awaiting_approval, nothing pending, so a resume can claim it) and the conversation shows
        ``awaiting_client``. Due for a look at the reconciler's cadence, so an overdue call is noticed."""
        return self._transact(
            [
                self._turn_change(
                    conversation_id,
                    turn_id,
                    "SET #s = :awaiting, due_bucket = :bucket, due_at = :due",
                    "#s IN (:running, :awaiting) AND pause_ref = :pause AND pending = :zero",
                    {
                        ":awaiting": TurnStatus.AWAITING_APPROVAL,
                        ":running": TurnStatus.RUNNING,
                        ":pause": pause_ref,
                        ":zero": 0,
                        ":bucket": due_bucket(_conv_pk(conversation_id)),
                        ":due": iso(utc_now() + self._stall),
                    },
                ),
                self._conversation_status_update(conversation_id, turn_id, ConversationStatus.AWAITING_CLIENT),
            ]
        )

    def complete_turn(self, conversation_id: str, turn_id: str, reply: Message) -> bool:
        """running → completed, the conversation back to idle, the reply stored: all or nothing."""
        return self._transact(
            [
                self._turn_change(
                    conversation_id,
                    turn_id,
                    "SET #s = :done REMOVE due_bucket, due_at",
                    "#s = :running",
                    {":done": TurnStatus.COMPLETED, ":running": TurnStatus.RUNNING},
                ),
                self._conversation_status_update(conversation_id, turn_id, ConversationStatus.IDLE),
                {"Put": {"Item": self._message_item(conversation_id, reply)}},
            ]
        )

    def fail_turn(self, conversation_id: str, turn_id: str, error: str, reply: Message | None = None) -> bool:
        """Any non-final turn → failed, with an assistant message that says what happened; the
        conversation can take a new message afterwards. The conversation remembers the turn, so the
        next turn first answers whatever calls of it the agent API still holds open."""
        change = self._turn_change(
            conversation_id,
            turn_id,
            "SET #s = :failed, #e = :error REMOVE due_bucket, due_at",
            "#s IN (:queued, :running, :awaiting)",
            {
                ":failed": TurnStatus.FAILED,
                ":error": error[:500],
                ":queued": TurnStatus.QUEUED,
                ":running": TurnStatus.RUNNING,
                ":awaiting": TurnStatus.AWAITING_APPROVAL,
            },
        )
        change["Update"]["ExpressionAttributeNames"]["#e"] = "error"
        meta = self._conversation_status_update(conversation_id, turn_id, ConversationStatus.FAILED)
        meta["Update"]["UpdateExpression"] += ", unanswered_turn_id = :tid"
        items = [change, meta]
        if reply is not None:
            items.append({"Put": {"Item": self._message_item(conversation_id, reply)}})
        return self._transact(items)

    def clear_unanswered_turn(self, conversation_id: str, turn_id: str) -> bool:
        """The open calls of ``turn_id`` are answered: the next turn need not look again."""
        return self._update(
            _key(_conv_pk(conversation_id), "META"),
            "REMOVE unanswered_turn_id",
            "unanswered_turn_id = :tid",
            {":tid": turn_id},
        )

    def postpone_turn(self, conversation_id: str, turn_id: str, due_at: datetime | None) -> bool:
        """Look at a stalled turn again at ``due_at``, or never (None) when it no longer needs us."""
        key = _key(_conv_pk(conversation_id), f"TURN#{turn_id}")
        if due_at is None:
            return self._remove_due(key)
        return self._update(key, "SET due_at = :due", "attribute_exists(due_bucket)", {":due": iso(due_at)})
