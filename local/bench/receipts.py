"""What receipts cost: KMS signatures and DynamoDB requests per approved action with one execution
of a tenant at a time and with ``concurrent`` at once, and what checkpoints cost per 1,000 receipts.

Counted from outside with the botocore hook of ``requests.py`` (every request a function makes),
over the seed scenario (a refund to a different customer each time) on the local stack, its
reconciler schedule out of the way so the only checkpoints are the ones this phase runs. The log
is verified at the end with the JWKS alone.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import requests

from local.bench.requests import RequestCounter, _idle, _pending, bench_stack
from local.evidence import wait_for
from local.lambda_runtime import INVOCATION_ENDED, INVOCATION_STARTED
from local.stack import EmbeddedStack

TENANT = "default"
# One refund per customer: each call has its own budget group (refunds-per-customer), as a busy
# tenant's refunds mostly do, so what the calls share is the tenant's receipts and nothing else.
_customers = iter(range(5000, 10**6))


def receipt_costs(concurrent: int = 10, single_runs: int = 3, checkpoint_receipts: int = 1000) -> dict[str, Any]:
    counter = RequestCounter()
    stack = bench_stack(counter, queue_pollers=concurrent)  # as with WorkerMaxConcurrency >= concurrent
    try:
        single = [_approved_at_once(stack, counter, 1) for _ in range(single_runs)]
        together = _approved_at_once(stack, counter, concurrent)
        _reconcile(stack, counter)  # the receipts above join the log; the next pass has nothing queued
        idle_pass = _reconcile(stack, counter)
        _queue_receipts(checkpoint_receipts)
        checkpoint = _reconcile(stack, counter)
        verified = _verified(stack)
    finally:
        counter.uninstall()
        stack.stop()
    one = {key: round(sum(run[key] for run in single) / len(single), 2) for key in single[0] if key.endswith("action")}
    per_1000 = 1000 / checkpoint_receipts
    return {
        "one_at_a_time": one | {"runs": single_runs},
        "at_once": together | {"executions": concurrent},
        "checkpoint_per_1000_receipts": {
            "dynamodb_requests": round((checkpoint["dynamodb"] - idle_pass["dynamodb"]) * per_1000, 1),
            "transaction_items": round((checkpoint["transact_items"] - idle_pass["transact_items"]) * per_1000, 1),
            "kms_signs": round(checkpoint["kms_signs"] * per_1000, 1),
            "receipts": checkpoint_receipts,
        },
        "log_verifies": verified,
    }


def _snapshot(counter: RequestCounter) -> tuple[Counter, Counter]:
    with counter._lock:
        return Counter(counter.calls), Counter(counter.transact_items)


def _spent(counter: RequestCounter, before: tuple[Counter, Counter], only: str | None = None) -> dict[str, int]:
    calls, items = _snapshot(counter)
    calls.subtract(before[0])
    items.subtract(before[1])
    mine = {key: n for key, n in calls.items() if only is None or key[0] == only}
    return {
        "dynamodb": sum(n for (_, service, _), n in mine.items() if service == "dynamodb"),
        "kms_signs": sum(n for (_, service, op), n in mine.items() if service == "kms" and op == "Sign"),
        "transact_items": sum(n for fn, n in items.items() if only is None or fn == only),
    }


def _approved_at_once(stack: EmbeddedStack, counter: RequestCounter, n: int) -> dict[str, float]:
    """``n`` approved refunds of one tenant, approved at the same moment: per approved action."""
    api = {"Authorization": f"Bearer {stack.config.api_key}"}
    before = _snapshot(counter)
    cids = []
    for _ in range(n):
        message = f"Issue a €340 refund to customer #{next(_customers)}."
        started = requests.post(f"{stack.api_url}/conversations", json={"message": message}, headers=api, timeout=30)
        cids.append(started.json()["conversation_id"])
    decisions = [wait_for(lambda c=c: _pending(stack, c), timeout=60, what="the decision") for c in cids]
    go = threading.Barrier(n)

    def approve(decision: str) -> None:
        go.wait()
        stack.handover.resolve(decision, {"action": "approve", "resolved_by": "bench@example.com"})

    threads = [threading.Thread(target=approve, args=(d,)) for d in decisions]
    with _WorkersInFlight() as workers:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for cid in cids:
            wait_for(lambda c=cid: _idle(stack, c), timeout=120, what="the reply")
        wait_for(stack.quiescent, timeout=60, what="the stack to settle")
    spent = _spent(counter, before)
    return {
        "dynamodb_requests_per_approved_action": round(spent["dynamodb"] / n, 2),
        "kms_signs_per_approved_action": round(spent["kms_signs"] / n, 2),
        "most_workers_at_once": workers.most,  # the approved calls run (and sign) in the worker
    }


class _WorkersInFlight:
    """The most worker invocations running at once while the block runs."""

    def __init__(self):
        self.most = 0
        self._now = 0
        self._lock = threading.Lock()

    def _started(self, invocation) -> None:
        if invocation.function_id == "AgentWorkerFunction":
            with self._lock:
                self._now += 1
                self.most = max(self.most, self._now)

    def _ended(self, invocation) -> None:
        if invocation.function_id == "AgentWorkerFunction":
            with self._lock:
                self._now -= 1

    def __enter__(self) -> _WorkersInFlight:
        INVOCATION_STARTED.append(self._started)
        INVOCATION_ENDED.append(self._ended)
        return self

    def __exit__(self, *_exc) -> None:
        INVOCATION_STARTED.remove(self._started)
        INVOCATION_ENDED.remove(self._ended)


def _reconcile(stack: EmbeddedStack, counter: RequestCounter) -> dict[str, int]:
    before = _snapshot(counter)
    stack.run_scheduled("ReconcilerFunction")
    return _spent(counter, before, only="ReconcilerFunction")


def _queue_receipts(count: int) -> None:
    """``count`` executed calls with signed receipts, written as the executor writes them (outside
    any function: not counted), waiting for the next checkpoint."""
    from signoff import runtime
    from signoff.domain.models import Action, Execution, ExecutionStatus
    from signoff.logic.receipts import ReceiptIssuer

    table = runtime.table()
    issuer = ReceiptIssuer(table, runtime.receipt_signer(), runtime.policy, "bench")
    done = Execution(status=ExecutionStatus.EXECUTED, result={"ok": True})
    for _ in range(count):
        action = Action(
            conversation_id=f"conv_{uuid.uuid4().hex}",
            turn_id=f"turn_{uuid.uuid4().hex}",
            call_id=f"call_{uuid.uuid4().hex[:12]}",
            seq=0,
            tool="issue_refund",
            arguments={"amount": 1},
            digest="d" * 64,
            gated=False,
            tenant=TENANT,
        )
        assert table.put_action(action) and table.claim_execution(action)
        assert issuer.finish(action.model_copy(update={"gated": True}), done, [])


def _verified(stack: EmbeddedStack) -> bool:
    from signoff.verify import main as verify

    jwks = f"{stack.api_url}/.well-known/jwks.json"
    return verify(["--jwks", jwks, "--api", stack.api_url, "--key", stack.config.api_key]) == 0
