"""Many gated conversations at once on the local stack: how long the human's answer waits on us.

``conversations`` clients each post the seed message at once, each with a ``notify_url`` at a
verifying webhook receiver (as a busy client would, without polling). Each conversation's decision
is seen in the Handover emulator (ask → pending); then every decision is approved at once, and each
conversation's reply is timed from its approval three ways:

- **in process:** the reply's own ``created_at``, stamped by the worker as it writes the reply;
- **notified:** when the client's receiver got the signed ``turn.completed`` notification;
- **read:** when the client, told, has read the reply back with ``GET /conversations/{id}``.

The last two are what a client of the stack sees. With ``sandboxes`` each function runs in a process
of its own (``local.sandboxes``): the stack uses both cores.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from local.bench.requests import bench_stack
from local.evidence import wait_for
from local.receivers.webhook import WebhookReceiver

SEED = "Issue a €340 refund to customer #{n}."


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_s": round(statistics.median(ordered), 3), "p99_s": round(p99, 3), "max_s": round(ordered[-1], 3)}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def local_load(conversations: int = 100, sandboxes: bool = False) -> dict[str, Any]:
    stack = bench_stack(sandboxes=sandboxes)
    receiver = WebhookReceiver(stack.config.webhook_secret).start()
    api = {"Authorization": f"Bearer {stack.config.api_key}"}
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=conversations + 8))
    try:
        posted: dict[str, float] = {}

        def ask(n: int) -> None:
            began = time.time()
            body = {"message": SEED.format(n=4000 + n), "notify_url": receiver.url}
            answer = session.post(f"{stack.api_url}/conversations", json=body, headers=api, timeout=60)
            answer.raise_for_status()
            posted[answer.json()["conversation_id"]] = began

        with ThreadPoolExecutor(max_workers=conversations) as pool:
            list(pool.map(ask, range(conversations)))

        pending: dict[str, tuple[str, float]] = {}  # conversation → (decision, first seen)

        def all_pending() -> bool:
            seen = time.time()
            for decision in stack.handover.pending():
                for cid in posted:
                    if cid in decision.get("context", "") and cid not in pending:
                        pending[cid] = (decision["id"], seen)
            return len(pending) == len(posted)

        wait_for(all_pending, timeout=600, what="every decision")
        approved: dict[str, float] = {}
        for cid, (decision, _seen) in pending.items():
            approved[cid] = time.time()
            stack.handover.resolve(decision, {"action": "approve", "resolved_by": "bench@example.com"})

        notified: dict[str, float] = {}
        read: dict[str, float] = {}
        replied: dict[str, float] = {}
        lock = threading.Lock()

        def read_back(cid: str) -> None:
            view = session.get(f"{stack.api_url}/conversations/{cid}", headers=api, timeout=60).json()
            reply = [m for m in view["messages"] if m["role"] == "assistant"]
            with lock:
                read[cid] = time.time()
                if reply:
                    replied[cid] = _epoch(reply[-1]["created_at"])

        readers = ThreadPoolExecutor(max_workers=16)

        def completions() -> bool:
            for attempt in list(receiver.attempts):
                event = attempt.event or {}
                cid = event.get("conversation_id")
                if attempt.verified and event.get("type") == "turn.completed" and cid in posted and cid not in notified:
                    notified[cid] = attempt.received_at
                    readers.submit(read_back, cid)  # told: read the reply, as a client would
            return len(notified) == len(posted)

        wait_for(completions, timeout=600, what="every turn.completed notification")
        readers.shutdown(wait=True)
        first = min(approved.values())
        return {
            "conversations": conversations,
            "sandboxes": sandboxes,
            "ask_to_pending": _percentiles([pending[c][1] - posted[c] for c in posted]),
            "approve_to_reply_in_process": _percentiles([replied[c] - approved[c] for c in posted]),
            "approve_to_notified": _percentiles([notified[c] - approved[c] for c in posted]),
            "approve_to_reply_read": _percentiles([read[c] - approved[c] for c in posted]),
            "approvals_per_second": round(conversations / (max(read.values()) - first), 2),
        }
    finally:
        receiver.stop()
        stack.stop()


if __name__ == "__main__":
    import json
    import os
    import sys

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    sandboxed = os.environ.get("SIGNOFF_BENCH_SANDBOXES", "") in ("1", "true")
    print(json.dumps(local_load(int(sys.argv[1]) if len(sys.argv) > 1 else 100, sandboxed), indent=2))
