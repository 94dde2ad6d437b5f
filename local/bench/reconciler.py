"""The safety net at scale, simulated on the local stack's moto.

``pending`` approvals wait in the sharded due index and ``due`` of them are due now: most still
pending at Handover (the reconciler looks and postpones them), ``answered`` answered with their
callback lost (the reconciler settles them: each a denial, so no tool runs). One reconciler run
then goes as the deployed one does (pass after pass until nothing is due); it is timed, and every
DynamoDB and Handover request it makes is counted.

What moto and the emulator take per request on this machine says little about AWS: the figures to
carry over are the requests per due item, priced in ``modelled`` at stated latencies, with the
reconciler's workers handling that many items at once (they wait on I/O, not on CPU).
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import timedelta
from typing import Any

import requests

from local.bench.requests import RequestCounter, bench_stack
from local.lambda_runtime import CURRENT_FUNCTION
from local.stack import EmbeddedStack

DYNAMODB_MS = 8.0  # one request to DynamoDB from Lambda in the same region (assumed, typical)
HANDOVER_MS = 120.0  # one GET of a decision from Handover's API (assumed)
INVOCATION_SECONDS = 100  # the reconciler's 120 s timeout less the 20 s it keeps back from a new pass
APPROVER = "ops@example.com"


def _approval(approval_id: str, decision_id: str | None, created_at: str, cid: str | None = None, action=None):
    from signoff.domain.models import Approval

    if action is not None:
        return Approval.for_call(action, approval_id, APPROVER, created_at).model_copy(
            update={"decision_id": decision_id}
        )
    return Approval(
        approval_id=approval_id,
        conversation_id=cid or f"conv_{uuid.uuid4().hex}",
        turn_id=f"turn_{uuid.uuid4().hex}",
        call_id="call_0",
        tool="issue_refund",
        digest="d" * 64,
        approver=APPROVER,
        created_at=created_at,
        decision_id=decision_id,
    )


def _put_many(items: list[dict]) -> None:
    """Straight into the in-process moto (under its lock): seeding is not what is measured."""
    from moto.dynamodb.models import dynamodb_backends

    from local.moto_server import DYNAMODB_LOCK
    from signoff import runtime

    backend = dynamodb_backends["123456789012"]["us-east-1"]
    with DYNAMODB_LOCK:
        for item in items:
            backend.put_item(runtime.table()._table, item)


def _seed_waiting(stack: EmbeddedStack, count: int, due_now: int) -> None:
    """``count`` approvals bound to a decision; ``due_now`` of them due now and pending at Handover."""
    from signoff import runtime
    from signoff.domain.models import iso, utc_now

    table, now = runtime.table(), utc_now()
    items = []
    for n in range(count):
        due = n < due_now
        decision = stack.handover.create({"action": "Refund", "approver": APPROVER})["id"] if due else "dec_later"
        approval = _approval(f"apr_{uuid.uuid4().hex}", decision, iso(now - timedelta(hours=1)))
        items.append(table._approval_item(approval, now - timedelta(minutes=1) if due else now + timedelta(days=1)))
    _put_many(items)


def _seed_answered(stack: EmbeddedStack, count: int) -> None:
    """``count`` paused turns whose one call's decision was answered (denied) and whose callback was lost."""
    from signoff import runtime
    from signoff.domain.canonical import action_digest
    from signoff.domain.models import Action, Conversation, ConversationStatus, Message, Turn, TurnStatus, iso, utc_now

    table = runtime.table()
    for _ in range(count):
        now = iso(utc_now())
        cid, tid, aid = f"conv_{uuid.uuid4().hex}", f"turn_{uuid.uuid4().hex}", f"apr_{uuid.uuid4().hex}"
        table.create_conversation(
            Conversation(conversation_id=cid, status=ConversationStatus.RUNNING, active_turn_id=tid, created_at=now),
            Turn(conversation_id=cid, turn_id=tid, status=TurnStatus.QUEUED, created_at=now, input="refund"),
            Message(role="user", content="refund", created_at=now),
        )
        turn = table.claim_turn_start(cid, tid)
        arguments = {"customer_id": "4821", "amount": 340}
        action = Action(
            conversation_id=cid,
            turn_id=tid,
            call_id="call_0",
            seq=0,
            tool="issue_refund",
            arguments=arguments,
            digest=action_digest("issue_refund", arguments, "call_0"),
            gated=True,
            approval_ids=[aid],
            created_at=now,
            pause_ref="resp_1",
        )
        approval = _approval(aid, None, now, action=action)
        assert turn is not None
        table.record_pause(turn, "resp_1", [action], [(approval, utc_now() - timedelta(minutes=1))], pending=1)
        decision = stack.handover.create({"action": "Refund", "approver": APPROVER})["id"]
        table.attach_decision(approval, decision)
        stack.handover.resolve(decision, {"action": "deny", "resolved_by": APPROVER})


def reconciler_at_scale(pending: int = 100_000, due: int = 10_000, answered: int = 1_000) -> dict[str, Any]:
    from signoff import deadline, runtime
    from signoff.config import settings

    stack = bench_stack(log_level="ERROR")
    stopped = False
    try:
        seeding = time.perf_counter()
        _seed_waiting(stack, pending - answered, due - answered)
        _seed_answered(stack, answered)
        seeded = time.perf_counter() - seeding
        log = f"{stack.handover_url}/_emulator/log"
        handover_before = len(requests.get(log, timeout=30).json())
        counter = RequestCounter().install()
        stack.warm()
        token = CURRENT_FUNCTION.set("ReconcilerFunction")
        # The queue stays paused to the end: the worker's turn of the seeded conversations (which
        # have no agent API behind them) is not what is measured.
        with stack.pumps_paused():
            try:
                with deadline.invocation(10**9):
                    began = time.perf_counter()
                    report = runtime.reconciler().run(max_passes=10**6)
                    took = time.perf_counter() - began
            finally:
                CURRENT_FUNCTION.reset(token)
                counter.uninstall()
            handover = len(requests.get(log, timeout=30).json()) - handover_before
            stack.stop()
            stopped = True
    finally:
        if not stopped:
            stack.stop()
    dynamodb = sum(n for (_f, service, _op), n in counter.calls.items() if service == "dynamodb")
    handled = report.checked + report.turns_redriven + report.scheduled_run
    per_item_ms = (dynamodb * DYNAMODB_MS + handover * HANDOVER_MS) / max(1, handled)
    workers = settings().reconcile_workers  # items handled at once, each waiting on its requests
    per_invocation = int(INVOCATION_SECONDS * 1000 / per_item_ms * workers)
    return {
        "pending_approvals": pending,
        "due": due,
        "answered_with_callback_lost": answered,
        "seeded_in_s": round(seeded, 1),
        "handled": handled,
        "settled": report.settled,
        "still_pending": report.still_pending,
        "passes": report.passes,
        "drained": not report.more,
        "dynamodb_requests_per_due_item": round(dynamodb / max(1, handled), 2),
        "handover_requests_per_due_item": round(handover / max(1, handled), 2),
        "local_seconds": round(took, 1),
        "local_items_per_second": round(handled / took, 1),
        "modelled": {
            "assumed_ms": {"dynamodb_request": DYNAMODB_MS, "handover_get": HANDOVER_MS},
            "ms_per_due_item": round(per_item_ms, 1),
            "workers": workers,
            "items_per_invocation": per_invocation,
            "invocations_to_drain": math.ceil(due / max(1, per_invocation)),
        },
    }


if __name__ == "__main__":
    import json
    import os
    import sys

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    sizes = [int(a) for a in sys.argv[1:4]] or [100_000, 10_000, 1_000]
    print(json.dumps(reconciler_at_scale(*sizes), indent=2))
