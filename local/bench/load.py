"""Many gated conversations at once on the local stack: how long the human's answer waits on us.

``conversations`` clients each post the seed message at once; each conversation's decision is
seen in the Handover emulator (ask → pending); then every decision is approved at once and each
conversation's reply is timed from its approval (approve → reply), by the write that records the
reply (a botocore hook in this process: the embedded stack's functions run here).
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import requests

from local.bench.requests import bench_stack
from local.evidence import wait_for

SEED = "Issue a €340 refund to customer #{n}."


class ReplyClock:
    """When each conversation's reply was written: a successful write of an assistant message."""

    def __init__(self):
        self.replied: dict[str, float] = {}
        self._lock = threading.Lock()

    def install(self) -> ReplyClock:
        events = boto3.DEFAULT_SESSION.events
        events.register("before-parameter-build.dynamodb.TransactWriteItems", self._on_request)
        events.register("after-call.dynamodb.TransactWriteItems", self._on_written)
        return self

    def uninstall(self) -> None:
        events = boto3.DEFAULT_SESSION.events
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", self._on_request)
        events.unregister("after-call.dynamodb.TransactWriteItems", self._on_written)

    @staticmethod
    def _on_request(params, context, **_kwargs) -> None:
        for entry in params.get("TransactItems", []):
            item = entry.get("Put", {}).get("Item", {})
            if item.get("sk", {}).get("S", "").startswith("MSG#") and item.get("role", {}).get("S") == "assistant":
                context["signoff_reply_to"] = item["pk"]["S"].removeprefix("CONV#")

    def _on_written(self, http_response, context, **_kwargs) -> None:
        conversation = context.get("signoff_reply_to")
        if conversation and http_response.status_code == 200:
            with self._lock:
                self.replied.setdefault(conversation, time.perf_counter())


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_s": round(statistics.median(ordered), 3), "p99_s": round(p99, 3), "max_s": round(ordered[-1], 3)}


def local_load(conversations: int = 100) -> dict[str, Any]:
    clock = ReplyClock()
    stack = bench_stack(clock)
    api = {"Authorization": f"Bearer {stack.config.api_key}"}
    try:
        posted: dict[str, float] = {}

        def ask(n: int) -> None:
            began = time.perf_counter()
            answer = requests.post(
                f"{stack.api_url}/conversations", json={"message": SEED.format(n=4000 + n)}, headers=api, timeout=60
            )
            answer.raise_for_status()
            posted[answer.json()["conversation_id"]] = began

        with ThreadPoolExecutor(max_workers=conversations) as pool:
            list(pool.map(ask, range(conversations)))

        pending: dict[str, tuple[str, float]] = {}  # conversation → (decision, first seen)

        def all_pending() -> bool:
            seen = time.perf_counter()
            for decision in stack.handover.pending():
                for cid in posted:
                    if cid in decision.get("context", "") and cid not in pending:
                        pending[cid] = (decision["id"], seen)
            return len(pending) == len(posted)

        wait_for(all_pending, timeout=600, what="every decision")
        approved: dict[str, float] = {}
        for cid, (decision, _seen) in pending.items():
            approved[cid] = time.perf_counter()
            stack.handover.resolve(decision, {"action": "approve", "resolved_by": "bench@example.com"})
        wait_for(lambda: len(clock.replied) >= len(posted), timeout=600, what="every reply")
        first, last = min(approved.values()), max(clock.replied.values())
        return {
            "conversations": conversations,
            "ask_to_pending": _percentiles([pending[c][1] - posted[c] for c in posted]),
            "approve_to_reply": _percentiles([clock.replied[c] - approved[c] for c in posted]),
            "approvals_per_second": round(conversations / (last - first), 2),
            "worker_pollers": len([t for t in stack._pumps_idle if "Work" in t]) or None,
        }
    finally:
        clock.uninstall()
        stack.stop()


if __name__ == "__main__":
    import json
    import os
    import sys

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    print(json.dumps(local_load(int(sys.argv[1]) if len(sys.argv) > 1 else 100), indent=2))
