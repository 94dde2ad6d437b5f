"""Evidence: reading back what happened, for tests, the demo and the reliability drills.

One place for waiting on a condition with a deadline, counting a tool's effects in the table,
counting conversations and the writes each function made, and counting the tool-output
submissions the OpenAI-compatible server accepted, whichever of the three APIs carried them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import boto3


class TimedOut(AssertionError):
    pass


class WriteTally:
    """Successful writes (DynamoDB items, SQS messages) per function of the embedded stack, from the
    boto3 session's hooks: what a refused request must leave at zero. Clients built before
    ``install`` do not see it (the stack's ``warm`` rebuilds them)."""

    def __init__(self) -> None:
        from collections import Counter

        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def install(self, session: Any) -> WriteTally:
        for service in ("dynamodb", "sqs"):
            session.events.register(f"after-call.{service}", self._after_call)
        self._session = session
        return self

    def uninstall(self) -> None:
        for service in ("dynamodb", "sqs"):
            self._session.events.unregister(f"after-call.{service}", self._after_call)

    def of(self, function_id: str) -> int:
        with self._lock:
            return self.counts[function_id]

    def _after_call(self, http_response: Any = None, model: Any = None, **_kwargs: Any) -> None:
        from local.drills.crashes import WRITES
        from local.lambda_runtime import CURRENT_FUNCTION

        function = CURRENT_FUNCTION.get()
        if function is None or model is None or http_response is None or http_response.status_code >= 300:
            return
        if model.name in WRITES.get(model.service_model.endpoint_prefix, set()):
            with self._lock:
                self.counts[function] += 1


def wait_for[T](condition: Callable[[], T], *, timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.02)
    raise TimedOut(f"timed out waiting for {what}; last value: {last!r}")


@cache
def aws_client(service: str, endpoint: str | None) -> Any:
    """One boto3 client per service and endpoint: building them per call is slow, and they leak."""
    return boto3.client(service, endpoint_url=endpoint)


def local_client(service: str) -> Any:
    """A client for the AWS the environment points at (moto, in the local stack)."""
    return aws_client(service, os.environ.get("AWS_ENDPOINT_URL"))


def _scan(table: str, **kwargs: Any) -> Iterable[dict]:
    ddb = local_client("dynamodb")
    kwargs["TableName"] = table
    while True:
        page = ddb.scan(**kwargs)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def effects(table: str, conversation_id: str) -> list[dict[str, Any]]:
    """The demo tools' effect records of one conversation (each says how often its tool ran)."""
    from signoff.dal.codec import from_item

    pages = _scan(
        table,
        FilterExpression="begins_with(pk, :p)",
        ExpressionAttributeValues={":p": {"S": f"EFFECT#{conversation_id}:"}},
    )
    return [from_item(item) for page in pages for item in page["Items"]]


def effect_call(effect: dict[str, Any]) -> tuple[str, str]:
    """The (turn id, call id) an effect record belongs to (its key is ``conversation:turn:call``)."""
    _conversation, turn_id, call_id = effect["pk"].removeprefix("EFFECT#").split(":", 2)
    return turn_id, call_id


def conversation_count(table: str, *, with_turns: bool = False) -> int:
    """Conversations (and, ``with_turns``, their turns) in the table: a refused request must not
    change the count."""
    if with_turns:
        condition, values = "sk = :meta OR begins_with(sk, :turn)", {":meta": {"S": "META"}, ":turn": {"S": "TURN#"}}
    else:
        condition, values = "sk = :meta", {":meta": {"S": "META"}}
    pages = _scan(table, FilterExpression=condition, ExpressionAttributeValues=values, Select="COUNT")
    return sum(page["Count"] for page in pages)


def submitted_outputs(log: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every (call id, output) that reached the model: accepted requests only, on any of the three
    APIs (Responses input items, Assistants tool outputs, Chat Completions tool messages)."""
    sent: list[tuple[str, str]] = []
    for entry in log:
        if (entry.get("status") or 500) >= 400:
            continue  # refused: it never reached the model
        body = entry.get("body") or {}
        path = entry["path"]
        items = body.get("input") if path == "/v1/responses" else None
        if path.startswith("/v1/conversations/") and path.endswith("/items") and entry.get("method") == "POST":
            items = body.get("items")  # outputs added to a Conversation without a response
        if isinstance(items, list):
            sent += [
                (i.get("call_id"), i.get("output"))
                for i in items
                if isinstance(i, dict) and i.get("type") == "function_call_output"
            ]
        elif path.endswith("/submit_tool_outputs"):
            sent += [(o.get("tool_call_id"), o.get("output")) for o in body.get("tool_outputs") or []]
        elif path == "/v1/chat/completions":
            trailing = []
            for message in reversed(body.get("messages") or []):  # only the tool messages this request adds
                if message.get("role") != "tool":
                    break
                trailing.append((message.get("tool_call_id"), message.get("content")))
            sent += reversed(trailing)
    return sent


def submission_counts(log: list[dict[str, Any]], call_ids: Iterable[str]) -> dict[str, int]:
    """How often outputs for each call reached the model."""
    counts = dict.fromkeys(call_ids, 0)
    for call_id, _ in submitted_outputs(log):
        if call_id in counts:
            counts[call_id] += 1
    return counts
