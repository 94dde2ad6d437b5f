"""Requests per approved action, counted on the local stack with botocore events.

The seed scenario (a gated refund, approved) runs ``runs`` times; every AWS request a function makes
is counted per function and operation (a transaction counts once, its items separately for the
bill), with each invocation's duration and the Handover requests per decision.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import boto3
import requests

from local.evidence import wait_for
from local.lambda_runtime import CURRENT_FUNCTION, CURRENT_INVOCATION, INVOCATION_ENDED, INVOCATION_STARTED
from local.stack import EmbeddedStack, StackConfig

SEED = "Issue a €340 refund to customer #4821."


class RequestCounter:
    """botocore ``before-parameter-build`` on the default session: (function, service, operation) → count."""

    def __init__(self):
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.transact_items: Counter[str] = Counter()  # function → items written in transactions
        self.write_bytes: Counter[str] = Counter()  # function → bytes of the write requests
        self.written: list[tuple[str, str, bool]] = []  # (pk, sk, in a transaction) of each item written
        self.read_units = 0  # consistent reads: an item (up to 4 KB) each, a query's page as one
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.own_durations: dict[str, list[float]] = defaultdict(list)  # less the Handover GETs it waited on
        self.cpu: dict[str, list[float]] = defaultdict(list)  # CPU seconds of the invocation's own thread
        self._started: dict[int, float] = {}
        self._cpu_started: dict[int, float] = {}
        self._waited: dict[int, float] = defaultdict(float)  # invocation → seconds in Handover GETs
        self._lock = threading.Lock()

    def install(self) -> RequestCounter:
        from signoff.adapters.handover import HandoverClient

        boto3.DEFAULT_SESSION.events.register("before-parameter-build", self._on_call)
        INVOCATION_STARTED.append(self._on_start)
        INVOCATION_ENDED.append(self._on_end)
        self._get_decision = HandoverClient.get_decision
        counter = self

        def timed_get_decision(client, decision_id):
            began = time.perf_counter()
            try:
                return counter._get_decision(client, decision_id)
            finally:
                invocation = CURRENT_INVOCATION.get()
                if invocation is not None:
                    with counter._lock:
                        counter._waited[id(invocation)] += time.perf_counter() - began

        HandoverClient.get_decision = timed_get_decision  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        from signoff.adapters.handover import HandoverClient

        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build", self._on_call)
        INVOCATION_STARTED.remove(self._on_start)
        INVOCATION_ENDED.remove(self._on_end)
        HandoverClient.get_decision = self._get_decision  # type: ignore[method-assign]

    def _on_call(self, model, params, **_kwargs) -> None:
        function = CURRENT_FUNCTION.get()
        if function is None:
            return  # the bench's own reads
        service = model.service_model.endpoint_prefix
        if service == "dynamodb" and str((params.get("Key") or {}).get("pk", {}).get("S", "")).startswith("EFFECT#"):
            return  # the demo tool's own record of what it did: the tool's request, not Signoff's
        with self._lock:
            self.calls[(function, service, model.name)] += 1
            if model.name == "TransactWriteItems":
                self.transact_items[function] += len(params.get("TransactItems", []))
            if service == "dynamodb" and model.name in ("PutItem", "UpdateItem", "TransactWriteItems"):
                self.write_bytes[function] += len(str(params))
                self.written += _items_written(model.name, params)
            if service == "dynamodb" and model.name in ("GetItem", "Query"):
                self.read_units += 1
            if service == "dynamodb" and model.name == "BatchGetItem":
                self.read_units += sum(len(r.get("Keys", [])) for r in params.get("RequestItems", {}).values())

    def _on_start(self, invocation) -> None:
        with self._lock:
            self._started[id(invocation)] = time.perf_counter()
            self._cpu_started[id(invocation)] = time.thread_time()

    def _on_end(self, invocation) -> None:
        with self._lock:
            began = self._started.pop(id(invocation), None)
            cpu_began = self._cpu_started.pop(id(invocation), None)
            waited = self._waited.pop(id(invocation), 0.0)
            if began is not None:
                took = time.perf_counter() - began
                self.durations[invocation.function_id].append(took)
                self.own_durations[invocation.function_id].append(took - waited)
            if cpu_began is not None:
                self.cpu[invocation.function_id].append(time.thread_time() - cpu_began)


def _items_written(operation: str, params: dict) -> list[tuple[str, str, bool]]:
    """The keys a write request writes (a transaction's condition checks too: they are billed as writes)."""
    if operation != "TransactWriteItems":
        key = params.get("Key") or params.get("Item") or {}
        return [(key["pk"]["S"], key["sk"]["S"], False)]
    written: list[tuple[str, str, bool]] = []
    for entry in params.get("TransactItems", []):
        body = next(iter(entry.values()))
        key = body.get("Key") or body.get("Item") or {}
        written.append((key["pk"]["S"], key["sk"]["S"], True))
    return written


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it: each attribute's name and value in bytes (numbers about
    half their digits, a list or map 3 bytes plus its elements)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.strip("-").replace(".", "")) // 2 + 2
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in inner.items())
    return sum(len(str(v)) for v in inner)  # sets


def written_units(stack: EmbeddedStack, written: list[tuple[str, str, bool]]) -> int:
    """Write request units of the items written, from each item's size as stored now (1 KB a unit,
    twice in a transaction); an item gone since is counted as one unit."""
    from signoff import runtime

    table = runtime.table()
    client, name = table._db, table._table
    units = 0
    for pk, sk, transactional in written:
        item = client.get_item(TableName=name, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
        size = item_size(item) if item else 1
        units += max(1, -(-size // 1024)) * (2 if transactional else 1)
    return units


def bench_stack(
    hook: Any = None, log_level: str = "WARNING", sandboxes: bool = False, queue_pollers: int | None = None
) -> EmbeddedStack:
    """A local stack for a bench, its schedule out of the way; ``hook`` is installed on the boto3
    session and the clients are built again (a client copies the session's hooks when it is built).
    ``sandboxes``: each function in a process of its own (no in-process hooks then). ``queue_pollers``:
    invocations per queue at once (default: the template's WorkerMaxConcurrency, 5)."""
    config = StackConfig(
        reconcile_interval_seconds=3600,
        extra_env={"POWERTOOLS_LOG_LEVEL": log_level},
        sandboxes=sandboxes,
        queue_pollers=queue_pollers,
    )
    stack = EmbeddedStack(config.on_free_ports()).start()
    if hook is not None:
        hook.install()
        stack.warm()
    return stack


def approved_seed_runs(runs: int) -> dict[str, Any]:
    counter = RequestCounter()
    stack = bench_stack(counter)
    api = {"Authorization": f"Bearer {stack.config.api_key}"}
    try:
        for _ in range(runs):
            started = requests.post(f"{stack.api_url}/conversations", json={"message": SEED}, headers=api, timeout=30)
            cid = started.json()["conversation_id"]
            decision = wait_for(lambda cid=cid: _pending(stack, cid), timeout=30, what="the decision")
            stack.handover.resolve(decision, {"action": "approve", "resolved_by": "bench@example.com"})
            wait_for(lambda cid=cid: _idle(stack, cid), timeout=30, what="the reply")
        wait_for(stack.quiescent, timeout=30, what="the stack to settle")
        handover = requests.get(f"{stack.handover_url}/_emulator/log", timeout=10).json()
        units = written_units(stack, counter.written)  # the bench's own reads: outside any function
    finally:
        counter.uninstall()
        stack.stop()
    decisions = sum(1 for e in handover if e["method"] == "POST" and e["path"] == "/decisions")
    return {
        "runs": runs,
        "counter": counter,
        "handover_requests": len(handover),
        "decisions": decisions,
        "write_units": units,
    }


def _pending(stack: EmbeddedStack, cid: str) -> str | None:
    for decision in stack.handover.pending():
        if cid in decision.get("context", ""):
            return decision["id"]
    return None


def _idle(stack: EmbeddedStack, cid: str) -> bool:
    from signoff import runtime

    conversation = runtime.table().get_conversation(cid)
    return conversation is not None and conversation.status.value == "idle"


def per_action(result: dict[str, Any]) -> dict[str, Any]:
    """The counts of ``approved_seed_runs`` per approved action."""
    counter: RequestCounter = result["counter"]
    runs = result["runs"]
    by_function: dict[str, float] = defaultdict(float)
    dynamodb = sqs = kms = 0
    for (function, service, _operation), n in counter.calls.items():
        if service == "dynamodb":
            dynamodb += n
            by_function[function] += n
        elif service == "sqs" and _operation == "SendMessage":
            sqs += n
        elif service == "kms":
            kms += n
    return {
        "dynamodb_requests_per_approved_action": round(dynamodb / runs, 2),
        "dynamodb_requests_by_function": {f: round(n / runs, 2) for f, n in sorted(by_function.items())},
        "dynamodb_operations": {
            f"{function} {operation}": round(n / runs, 2)
            for (function, service, operation), n in sorted(counter.calls.items())
            if service == "dynamodb"
        },
        "transaction_items_per_approved_action": round(sum(counter.transact_items.values()) / runs, 2),
        "write_units_per_approved_action": round(result["write_units"] / runs, 2),
        "read_units_per_approved_action": round(counter.read_units / runs, 2),
        "sqs_requests_per_approved_action": round(sqs / runs, 2),
        "kms_requests_per_approved_action": round(kms / runs, 2),
        "handover_requests_per_decision": round(result["handover_requests"] / max(1, result["decisions"]), 2),
        "invocations_per_approved_action": {f: round(len(d) / runs, 2) for f, d in sorted(counter.durations.items())},
        "median_invocation_ms": {
            f: round(statistics.median(d) * 1000, 1) for f, d in sorted(counter.durations.items())
        },
        "median_invocation_cpu_ms": {f: round(statistics.median(d) * 1000, 1) for f, d in sorted(counter.cpu.items())},
        "write_bytes_per_approved_action": round(sum(counter.write_bytes.values()) / runs),
        "callback_ms_excluding_handover_get": _spread(counter.own_durations.get("ApprovalCallbackFunction", [])),
    }


def _spread(seconds: list[float]) -> dict[str, float | int]:
    """Median and p99 in ms (the p99 of a few runs is close to their worst)."""
    if not seconds:
        return {"runs": 0}
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"runs": len(ordered), "p50": round(statistics.median(ordered) * 1000, 1), "p99": round(p99 * 1000, 1)}
