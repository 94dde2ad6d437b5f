"""`make bench`: each function's memory, sized from what it was measured to need.

Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB. So an invocation
measured here as ``wall`` ms of which ``cpu`` ms ran on its own thread (the rest is waiting:
DynamoDB, SQS, Handover, the model) would take about ``wall - cpu + cpu * 1769 / M`` ms at M MB
(below 1,769), and its compute cost is that times M. Waiting costs more the more memory waits,
CPU costs the same at any size: the cheapest size is the smallest one that holds the function
and keeps its latency near what more CPU would give.

Assumptions, stated: this machine's core runs Python about as fast as a Lambda vCPU; memory
needs are the interpreter's peak resident size after importing the handler (``coldstart``), with
room for the invocation's own data (HEADROOM times it).
"""

from __future__ import annotations

from typing import Any

from local.bench.costs import MODEL_CALLS_PER_APPROVED_ACTION, MODEL_SECONDS_PER_CALL

WORKER = "AgentWorkerFunction"
FULL_VCPU_MB = 1769
SIZES_MB = (128, 256, 512, 1024, FULL_VCPU_MB)
HEADROOM = 2.0  # memory at least this many times the measured peak resident size
SLOWDOWN_ALLOWED = 1.25  # a size may be this much slower than at one full vCPU ...
SLOWDOWN_ALLOWED_MS = 20.0  # ... or this many ms, whichever allows more (a client hardly notices)


def predicted_ms(wall_ms: float, cpu_ms: float, memory_mb: int) -> float:
    """An invocation's duration at ``memory_mb``, from its measured wall and CPU time."""
    waiting = max(0.0, wall_ms - cpu_ms)
    return waiting + cpu_ms * max(1.0, FULL_VCPU_MB / memory_mb)


def right_size(wall_ms: float, cpu_ms: float, rss_mb: float) -> dict[str, Any]:
    """The sizes that hold the function, each with its predicted duration and GB-seconds; the chosen
    one is the cheapest within SLOWDOWN_ALLOWED (or SLOWDOWN_ALLOWED_MS) of one full vCPU's."""
    fastest = predicted_ms(wall_ms, cpu_ms, FULL_VCPU_MB)
    allowed = max(SLOWDOWN_ALLOWED * fastest, fastest + SLOWDOWN_ALLOWED_MS)
    fits = [m for m in SIZES_MB if m >= HEADROOM * rss_mb] or [SIZES_MB[-1]]
    rows = {
        m: {
            "ms": round(predicted_ms(wall_ms, cpu_ms, m), 1),
            "gb_s": predicted_ms(wall_ms, cpu_ms, m) / 1000 * m / 1024,
        }
        for m in fits
    }
    quick = [m for m in fits if rows[m]["ms"] <= allowed] or [fits[-1]]
    chosen = min(quick, key=lambda m: (rows[m]["gb_s"], m))
    return {
        "rss_mb": round(rss_mb),
        "wall_ms": wall_ms,
        "cpu_ms": cpu_ms,
        "chosen_mb": chosen,
        "predicted_ms": {m: r["ms"] for m, r in rows.items()},
    }


def memory_sizes(measured: dict[str, Any], imports: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per function of the approved seed scenario: its measured needs and the size they call for.
    The worker also waits on the model, which answers at once here: its invocations wait the
    bench's stated model time on top (costs.MODEL_SECONDS_PER_CALL per call, spread over them)."""
    sizes = {}
    worker_calls = measured["invocations_per_approved_action"].get(WORKER, 0)
    for fn, wall in measured["median_invocation_ms"].items():
        cpu = measured["median_invocation_cpu_ms"].get(fn, wall)
        if fn == WORKER and worker_calls:
            wall += 1000 * MODEL_SECONDS_PER_CALL * MODEL_CALLS_PER_APPROVED_ACTION / worker_calls
        rss = float(imports.get(fn, {}).get("rss_mb", 0))
        sizes[fn] = right_size(round(wall, 1), cpu, rss)
    return sizes
