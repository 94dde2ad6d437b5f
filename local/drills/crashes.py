"""Crash injection from outside the product: kill an invocation right after its N-th AWS write.

A botocore ``after-call`` hook counts the successful writes (DynamoDB puts, updates, deletes and
transactions; SQS sends) each invocation of the local stack makes, and raises ``SimulatedCrash``
right after the N-th one in the invocation a ``CrashPlan`` targets: the write happened, nothing
after it did, exactly as a Lambda timeout or an out-of-memory kill would leave things.

``SimulatedCrash`` is a ``BaseException`` so no ``except Exception`` in the product can swallow
it, just as none could swallow a killed process. Nothing in the product knows about any of this.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local import lambda_runtime

WRITES = {
    "dynamodb": {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"},
    "sqs": {"SendMessage", "SendMessageBatch"},
}


class SimulatedCrash(BaseException):
    """The invocation died here (timeout, out of memory, the sandbox went away)."""


def work_message(event: dict[str, Any]) -> dict[str, Any]:
    """The work-queue message an SQS event carries (``{}`` for any other event)."""
    records = event.get("Records") or []
    try:
        return json.loads(records[0]["body"]) if records else {}
    except (KeyError, ValueError, TypeError):
        return {}


@dataclass
class CrashPlan:
    """Crash the first invocation of ``function_id`` that ``matches`` right after its ``after_writes``-th
    write (``None``: do not crash, only count its writes, for a dry run), or right after the first
    write that ``after_write(operation, request body)`` picks out, or right before the first one
    ``before_write`` picks out (it is never sent)."""

    function_id: str
    after_writes: int | None
    matches: Callable[[dict[str, Any]], bool] = lambda _event: True
    after_write: Callable[[str, str], bool] | None = None
    before_write: Callable[[str, str], bool] | None = None
    taken: bool = False
    fired: bool = False
    finished: bool = False  # the target invocation ended (crashed or not)
    writes_seen: int = 0  # writes the target invocation made before it ended or crashed
    done: threading.Event = field(default_factory=threading.Event)


class CrashInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: CrashPlan | None = None
        self.crashes = 0

    def install(self, session: Any) -> CrashInjector:
        """Hook into a boto3 session (clients made from it afterwards) and the local Lambda runtime."""
        for service in WRITES:
            session.events.register(f"before-call.{service}", self._before_call)
            session.events.register(f"after-call.{service}", self._after_call)
        lambda_runtime.INVOCATION_STARTED.append(self._invocation_started)
        lambda_runtime.INVOCATION_ENDED.append(self._invocation_ended)
        return self

    def arm(self, plan: CrashPlan) -> CrashPlan:
        with self._lock:
            self._plan = plan
        return plan

    def disarm(self) -> None:
        with self._lock:
            self._plan = None

    def _invocation_started(self, invocation: lambda_runtime.Invocation) -> None:
        with self._lock:
            plan = self._plan
            if plan is None or plan.taken or invocation.function_id != plan.function_id:
                return
            if not plan.matches(invocation.event):
                return
            plan.taken = True
            invocation.target = True

    def _invocation_ended(self, invocation: lambda_runtime.Invocation) -> None:
        if not invocation.target:
            return
        with self._lock:
            plan = self._plan
        if plan is not None and plan.taken and not plan.finished:
            plan.finished = True
            plan.writes_seen = invocation.writes
            plan.done.set()

    def _before_call(self, model: Any = None, params: Any = None, **_kwargs: Any) -> None:
        invocation = lambda_runtime.CURRENT_INVOCATION.get()
        if invocation is not None and invocation.target and isinstance(params, dict):
            body = params.get("body", b"")
            invocation.last_request = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            with self._lock:
                plan = self._plan
            if plan is None or plan.fired or plan.before_write is None or model is None:
                return
            if model.name in WRITES.get(model.service_model.endpoint_prefix, set()) and plan.before_write(
                model.name, invocation.last_request
            ):
                plan.fired = True
                self.crashes += 1
                raise SimulatedCrash(f"{invocation.function_id} before write {invocation.writes + 1} ({model.name})")

    def _after_call(self, http_response: Any = None, model: Any = None, **_kwargs: Any) -> None:
        invocation = lambda_runtime.CURRENT_INVOCATION.get()
        if invocation is None or not invocation.target or model is None:
            return
        if http_response is None or http_response.status_code >= 300:
            return
        if model.name not in WRITES.get(model.service_model.endpoint_prefix, set()):
            return
        invocation.writes += 1
        with self._lock:
            plan = self._plan
        if plan is None or plan.fired or plan.before_write is not None:
            return
        if plan.after_write is not None:
            if not plan.after_write(model.name, invocation.last_request):
                return
        elif plan.after_writes is None or invocation.writes != plan.after_writes:
            return
        plan.fired = True
        self.crashes += 1
        raise SimulatedCrash(f"{invocation.function_id} after write {invocation.writes} ({model.name})")
