"""SignoffTable: the single-table store.

Item types (pk / sk):
- ``CONV#<id>`` / ``META``             conversation: status, active turn, backend state
- ``CONV#<id>`` / ``MSG#<time>#<n>``   message shown to the client
- ``CONV#<id>`` / ``TURN#<id>``        turn: status, pause reference, count of pending approvals
- ``CONV#<id>`` / ``ACTION#<call id>`` tool call: arguments, digest, decision, execution
- ``APPROVAL#<id>`` / ``APPROVAL``     approval bound to one call; in the due index while pending
- ``EFFECT#<key>`` / ``EFFECT``        side effect of a demo tool, written once per key
- ``IDEMPOTENCY#...``                  Powertools idempotency records
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from signoff.dal.codec import from_item, to_attr, to_item
from signoff.domain.canonical import canonical_json
from signoff.domain.models import (
    Action,
    Approval,
    ApprovalState,
    Conversation,
    ConversationStatus,
    Decision,
    DecisionRef,
    Execution,
    ExecutionStatus,
    Message,
    Turn,
    TurnStatus,
    iso,
    utc_now,
)

DUE_INDEX = "due-index"
DUE_BUCKET = "DUE"


class ConversationNotFound(LookupError):
    pass


class ConversationBusy(RuntimeError):
    """A turn of this conversation is still running or awaiting approval."""


def _conv_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def _approval_key(approval_id: str) -> dict:
    return {"pk": {"S": f"APPROVAL#{approval_id}"}, "sk": {"S": "APPROVAL"}}


def _key(pk: str, sk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _is_condition_failure(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons") or []
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons
    return False


def _strip_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("pk", "sk", "type", "due_bucket", "due_at", "ttl")}


def _action(data: dict[str, Any]) -> Action:
    fields = _strip_keys(data)
    if isinstance(fields.get("arguments"), str):
        fields["arguments"] = json.loads(fields["arguments"])
    return Action.model_validate(fields)


class SignoffTable:
    """``stall_seconds``: how long a turn may sit queued, or settled-but-not-resumed, before the
    reconciler re-drives it (a lost queue message must not lose a conversation)."""

    def __init__(self, client: Any, table_name: str, stall_seconds: int = 120):
        self._db = client
        self._table = table_name
        self._stall = timedelta(seconds=stall_seconds)

    def _stall_due(self) -> str:
        return iso(utc_now() + self._stall)

    # -- generic helpers -------------------------------------------------------------------
    def _transact(self, items: list[dict]) -> bool:
        """Run a transaction; False when a condition failed (someone else won), raise otherwise."""
        for entry in items:
            next(iter(entry.values()))["TableName"] = self._table
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _update(self, key: dict, expression: str, condition: str, values: dict, names: dict | None = None) -> bool:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._db.update_item(**kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _get(self, key: dict) -> dict | None:
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def _query_partition(self, pk: str) -> Iterator[dict]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**kwargs)
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- conversations and turns -----------------------------------------------------------
    def create_conversation(self, conversation: Conversation, turn: Turn, message: Message) -> None:
        pk = _conv_pk(conversation.conversation_id)
        ok = self._transact(
            [
                {
                    "Put": {
                        "Item": to_item({"pk": pk, "sk": "META", "type": "conversation", **conversation.model_dump()}),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"Item": self._turn_item(turn), "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"Item": self._message_item(conversation.conversation_id, message)}},
            ]
        )
        if not ok:
            raise ConversationBusy("conversation id already exists")

    def open_turn(self, conversation_id: str, turn: Turn, message: Message) -> None:
        """idle|failed → running, with the new turn as the active one; 409 territory otherwise."""
        pk = _conv_pk(conversation_id)
        ok = self._transact(
            [
                {
                    "Update": {
                        "Key": _key(pk, "META"),
                        "UpdateExpression": "SET #s = :running, active_turn_id = :tid",
                        "ConditionExpression": "attribute_exists(pk) AND #s IN (:idle, :failed)",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":running": {"S": ConversationStatus.RUNNING},
                            ":idle": {"S": ConversationStatus.IDLE},
                            ":failed": {"S": ConversationStatus.FAILED},
                            ":tid": {"S": turn.turn_id},
                        },
                    }
                },
                {"Put": {"Item": self._turn_item(turn), "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"Item": self._message_item(conversation_id, message)}},
            ]
        )
        if not ok:
            if self.get_conversation(conversation_id) is None:
                raise ConversationNotFound(conversation_id)
            raise ConversationBusy(conversation_id)

    def _turn_item(self, turn: Turn) -> dict:
        return to_item(
            {
                "pk": _conv_pk(turn.conversation_id),
                "sk": f"TURN#{turn.turn_id}",
                "type": "turn",
                "due_bucket": DUE_BUCKET,
                "due_at": self._stall_due(),
                **turn.model_dump(),
            }
        )

    def _message_item(self, conversation_id: str, message: Message) -> dict:
        sk = f"MSG#{message.created_at}#{message.role}"
        return to_item({"pk": _conv_pk(conversation_id), "sk": sk, "type": "message", **message.model_dump()})

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        data = self._get(_key(_conv_pk(conversation_id), "META"))
        return Conversation.model_validate(_strip_keys(data)) if data else None

    def get_turn(self, conversation_id: str, turn_id: str) -> Turn | None:
        data = self._get(_key(_conv_pk(conversation_id), f"TURN#{turn_id}"))
        return Turn.model_validate(_strip_keys(data)) if data else None

    def load_conversation(self, conversation_id: str) -> tuple[Conversation, list[Message], list[Action]] | None:
        """Everything the client sees of a conversation, read in one partition query."""
        meta, messages, actions = None, [], []
        for item in self._query_partition(_conv_pk(conversation_id)):
            kind = item.get("type")
            if kind == "conversation":
                meta = Conversation.model_validate(_strip_keys(item))
            elif kind == "message":
                messages.append(Message.model_validate(_strip_keys(item)))
            elif kind == "action":
                actions.append(_action(item))
        if meta is None:
            return None
        actions.sort(key=lambda a: (a.created_at, a.turn_id, a.seq))
        return meta, messages, actions

    def set_backend_state(self, conversation_id: str, state: dict[str, Any]) -> None:
        self._update(
            _key(_conv_pk(conversation_id), "META"),
            "SET backend_state = :s",
            "attribute_exists(pk)",
            {":s": state},
        )

    def claim_turn_start(self, conversation_id: str, turn_id: str) -> bool:
        """queued → running: exactly one worker starts a turn."""
        return self._update(
            _key(_conv_pk(conversation_id), f"TURN#{turn_id}"),
            "SET #s = :running REMOVE due_bucket, due_at",
            "#s = :queued",
            {":running": TurnStatus.RUNNING, ":queued": TurnStatus.QUEUED},
            {"#s": "status"},
        )

    def claim_turn_resume(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        """awaiting_approval → running, once every approval of that pause is settled."""
        pk = _conv_pk(conversation_id)
        return self._transact(
            [
                {
                    "Update": {
                        "Key": _key(pk, f"TURN#{turn_id}"),
                        "UpdateExpression": "SET #s = :running REMOVE due_bucket, due_at",
                        "ConditionExpression": "#s = :awaiting AND pause_ref = :pause AND pending = :zero",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":running": {"S": TurnStatus.RUNNING},
                            ":awaiting": {"S": TurnStatus.AWAITING_APPROVAL},
                            ":pause": {"S": pause_ref},
                            ":zero": {"N": "0"},
                        },
                    }
                },
                self._conversation_status_update(conversation_id, turn_id, ConversationStatus.RUNNING),
            ]
        )

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
        try:
            attributes = self._db.update_item(
                TableName=self._table,
                Key=_key(_conv_pk(conversation_id), f"TURN#{turn_id}"),
                # Due again later as a backstop, should the delayed retry message be lost.
                UpdateExpression="SET #s = :target, due_bucket = :bucket, due_at = :due ADD attempts :one",
                ConditionExpression="#s = :running",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":target": {"S": target},
                    ":running": {"S": TurnStatus.RUNNING},
                    ":one": {"N": "1"},
                    ":bucket": {"S": DUE_BUCKET},
                    ":due": {"S": iso(utc_now() + self._stall + timedelta(seconds=900))},
                },
                ReturnValues="UPDATED_NEW",
            )["Attributes"]
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return int(from_item(attributes)["attempts"])

    def record_pause(self, turn: Turn, pause_ref: str, actions: list[Action], pending: int) -> bool:
        """running → awaiting_approval (pending > 0) or stays running; writes each call once.

        The conversation is shown as awaiting approval only once its decisions exist
        (``show_awaiting_approval``); the turn's count is set first so no callback is ever missed.
        """
        for action in actions:
            self.put_action(action)
        status = TurnStatus.AWAITING_APPROVAL if pending else TurnStatus.RUNNING
        return self._update(
            _key(_conv_pk(turn.conversation_id), f"TURN#{turn.turn_id}"),
            "SET #s = :status, pause_ref = :pause, pending = :pending, call_ids = :calls",
            "#s = :running",
            {
                ":status": status,
                ":running": TurnStatus.RUNNING,
                ":pause": pause_ref,
                ":pending": pending,
                ":calls": [a.call_id for a in actions],
            },
            {"#s": "status"},
        )

    def show_awaiting_approval(self, conversation_id: str, turn_id: str, pause_ref: str) -> bool:
        """Conversation → awaiting_approval, only while that pause still has approvals pending."""
        return self._transact(
            [
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
        )

    def complete_turn(self, conversation_id: str, turn_id: str, reply: Message) -> bool:
        """running → completed, the conversation back to idle, the reply stored: all or nothing."""
        pk = _conv_pk(conversation_id)
        return self._transact(
            [
                {
                    "Update": {
                        "Key": _key(pk, f"TURN#{turn_id}"),
                        "UpdateExpression": "SET #s = :done REMOVE due_bucket, due_at",
                        "ConditionExpression": "#s = :running",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":done": {"S": TurnStatus.COMPLETED},
                            ":running": {"S": TurnStatus.RUNNING},
                        },
                    }
                },
                self._conversation_status_update(conversation_id, turn_id, ConversationStatus.IDLE),
                {"Put": {"Item": self._message_item(conversation_id, reply)}},
            ]
        )

    def fail_turn(self, conversation_id: str, turn_id: str, error: str) -> bool:
        """Any non-final turn → failed; the conversation can take a new message afterwards."""
        pk = _conv_pk(conversation_id)
        return self._transact(
            [
                {
                    "Update": {
                        "Key": _key(pk, f"TURN#{turn_id}"),
                        "UpdateExpression": "SET #s = :failed, #e = :error REMOVE due_bucket, due_at",
                        "ConditionExpression": "#s IN (:queued, :running, :awaiting)",
                        "ExpressionAttributeNames": {"#s": "status", "#e": "error"},
                        "ExpressionAttributeValues": {
                            ":failed": {"S": TurnStatus.FAILED},
                            ":error": {"S": error[:500]},
                            ":queued": {"S": TurnStatus.QUEUED},
                            ":running": {"S": TurnStatus.RUNNING},
                            ":awaiting": {"S": TurnStatus.AWAITING_APPROVAL},
                        },
                    }
                },
                self._conversation_status_update(conversation_id, turn_id, ConversationStatus.FAILED),
            ]
        )

    # -- actions and executions ------------------------------------------------------------
    def put_action(self, action: Action) -> bool:
        """Write a tool call once; a redelivered pause finds it already there and keeps it."""
        item = {"pk": _conv_pk(action.conversation_id), "sk": f"ACTION#{action.call_id}", "type": "action"}
        item.update(action.model_dump(mode="json"))
        # Stored as canonical JSON text: numbers keep their spelling, so the digest still matches on read.
        item["arguments"] = canonical_json(action.arguments)
        try:
            self._db.put_item(TableName=self._table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def get_action(self, conversation_id: str, call_id: str) -> Action | None:
        data = self._get(_key(_conv_pk(conversation_id), f"ACTION#{call_id}"))
        return _action(data) if data else None

    def list_actions(self, conversation_id: str, turn_id: str) -> list[Action]:
        actions = [
            _action(item)
            for item in self._query_partition(_conv_pk(conversation_id))
            if item.get("type") == "action" and item.get("turn_id") == turn_id
        ]
        return sorted(actions, key=lambda a: a.seq)

    def claim_execution(self, conversation_id: str, call_id: str, lease_seconds: int) -> bool:
        """No execution yet (or a claim whose lease ran out) → executing. One winner."""
        now = utc_now()
        return self._update(
            _key(_conv_pk(conversation_id), f"ACTION#{call_id}"),
            "SET execution = :claim",
            "attribute_exists(pk) AND (attribute_not_exists(execution) OR "
            "(execution.#s = :executing AND execution.claimed_at < :stale))",
            {
                ":claim": {"status": ExecutionStatus.EXECUTING, "claimed_at": iso(now)},
                ":executing": ExecutionStatus.EXECUTING,
                ":stale": iso(now - timedelta(seconds=lease_seconds)),
            },
            {"#s": "status"},
        )

    def finish_execution(self, conversation_id: str, call_id: str, execution: Execution) -> bool:
        """executing → executed | failed | not_executed."""
        return self._update(
            _key(_conv_pk(conversation_id), f"ACTION#{call_id}"),
            "SET execution = :done",
            "execution.#s = :executing",
            {
                ":done": execution.model_dump(mode="json", exclude_none=True),
                ":executing": ExecutionStatus.EXECUTING,
            },
            {"#s": "status"},
        )

    # -- approvals -------------------------------------------------------------------------
    def put_approval(self, approval: Approval, due_at: datetime) -> bool:
        item = {"pk": f"APPROVAL#{approval.approval_id}", "sk": "APPROVAL", "type": "approval"}
        item.update(approval.model_dump(mode="json"))
        item.update({"due_bucket": DUE_BUCKET, "due_at": iso(due_at)})
        try:
            self._db.put_item(TableName=self._table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def get_approval(self, approval_id: str) -> Approval | None:
        data = self._get(_approval_key(approval_id))
        return Approval.model_validate(_strip_keys(data)) if data else None

    def attach_decision(self, approval: Approval, decision_id: str) -> bool:
        """Bind the Handover decision to the approval and its action, once."""
        return self._transact(
            [
                {
                    "Update": {
                        "Key": _approval_key(approval.approval_id),
                        "UpdateExpression": "SET decision_id = :d",
                        "ConditionExpression": "attribute_not_exists(decision_id) AND #st = :pending",
                        "ExpressionAttributeNames": {"#st": "state"},
                        "ExpressionAttributeValues": {
                            ":d": {"S": decision_id},
                            ":pending": {"S": ApprovalState.PENDING},
                        },
                    }
                },
                {
                    "Update": {
                        "Key": _key(_conv_pk(approval.conversation_id), f"ACTION#{approval.call_id}"),
                        "UpdateExpression": "SET decision = :ref",
                        "ConditionExpression": "approval_id = :aid",
                        "ExpressionAttributeValues": {
                            ":ref": to_attr(DecisionRef(id=decision_id).model_dump(mode="json")),
                            ":aid": {"S": approval.approval_id},
                        },
                    }
                },
            ]
        )

    def settle_approval(self, approval: Approval, decision: Decision | None) -> bool:
        """pending → settled, exactly once: the outcome, the action's decision and the turn's count.

        ``decision`` is None when no decision could be requested. An outcome that does not permit
        execution marks the action ``not_executed`` in the same transaction.
        """
        if decision is None:
            ref = DecisionRef(id=None, status="not_requested")
            outcome = None
        else:
            ref = DecisionRef(
                id=decision.id, status=decision.status, resolved_by=decision.resolved_by, notes=decision.notes
            )
            outcome = decision.status
        action_set = "SET decision = :ref"
        action_values: dict[str, Any] = {":ref": ref.model_dump(mode="json"), ":aid": approval.approval_id}
        if outcome is None or not outcome.permits_execution:
            action_set += ", execution = :not_run"
            action_values[":not_run"] = {"status": ExecutionStatus.NOT_EXECUTED}
        approval_values = {
            ":settled": ApprovalState.SETTLED,
            ":pending": ApprovalState.PENDING,
            ":outcome": outcome.value if outcome else "not_requested",
        }
        return self._transact(
            [
                {
                    "Update": {
                        "Key": _approval_key(approval.approval_id),
                        "UpdateExpression": "SET #st = :settled, outcome = :outcome REMOVE due_bucket, due_at",
                        "ConditionExpression": "#st = :pending",
                        "ExpressionAttributeNames": {"#st": "state"},
                        "ExpressionAttributeValues": {k: to_attr(v) for k, v in approval_values.items()},
                    }
                },
                {
                    "Update": {
                        "Key": _key(_conv_pk(approval.conversation_id), f"ACTION#{approval.call_id}"),
                        "UpdateExpression": action_set,
                        "ConditionExpression": "approval_id = :aid AND attribute_not_exists(execution)",
                        "ExpressionAttributeValues": {k: to_attr(v) for k, v in action_values.items()},
                    }
                },
                {
                    "Update": {
                        "Key": _key(_conv_pk(approval.conversation_id), f"TURN#{approval.turn_id}"),
                        # Due for the reconciler in case the resume message is lost.
                        "UpdateExpression": "SET pending = pending - :one, due_bucket = :bucket, due_at = :due",
                        "ConditionExpression": "pending > :zero",
                        "ExpressionAttributeValues": {
                            ":one": {"N": "1"},
                            ":zero": {"N": "0"},
                            ":bucket": {"S": DUE_BUCKET},
                            ":due": {"S": self._stall_due()},
                        },
                    }
                },
            ]
        )

    def postpone_approval(self, approval_id: str, due_at: datetime) -> bool:
        return self._update(
            _approval_key(approval_id),
            "SET due_at = :due",
            "#st = :pending",
            {":due": iso(due_at), ":pending": ApprovalState.PENDING},
            {"#st": "state"},
        )

    def due_items(self, now: datetime, limit: int = 100) -> tuple[list[Approval], list[Turn]]:
        """The reconciler's work list: pending approvals and stalled turns whose time has come."""
        page = self._db.query(
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_bucket = :b AND due_at <= :now",
            ExpressionAttributeValues={":b": {"S": DUE_BUCKET}, ":now": {"S": iso(now)}},
            Limit=limit,
        )
        approvals, turns = [], []
        for item in page.get("Items", []):
            data = from_item(item)
            if data.get("type") == "approval":
                approvals.append(Approval.model_validate(_strip_keys(data)))
            elif data.get("type") == "turn":
                turns.append(Turn.model_validate(_strip_keys(data)))
        return approvals, turns

    def due_approvals(self, now: datetime, limit: int = 100) -> list[Approval]:
        return self.due_items(now, limit)[0]

    def postpone_turn(self, conversation_id: str, turn_id: str, due_at: datetime | None) -> bool:
        """Look at a stalled turn again at ``due_at``, or never (None) when it no longer needs us."""
        key = _key(_conv_pk(conversation_id), f"TURN#{turn_id}")
        if due_at is None:
            return self._remove_due(key)
        return self._update(key, "SET due_at = :due", "attribute_exists(due_bucket)", {":due": iso(due_at)})

    def _remove_due(self, key: dict) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="REMOVE due_bucket, due_at",
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    # -- effects of demo tools -------------------------------------------------------------
    def record_effect(self, key: str, tool: str, arguments: dict[str, Any], result: dict[str, Any]) -> dict:
        item = {
            "pk": f"EFFECT#{key}",
            "sk": "EFFECT",
            "type": "effect",
            "tool": tool,
            "arguments": arguments,
            "result": result,
            "created_at": iso(utc_now()),
        }
        try:
            self._db.put_item(TableName=self._table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            existing = self._get(_key(f"EFFECT#{key}", "EFFECT")) or {}
            return existing.get("result", result)
        return result
