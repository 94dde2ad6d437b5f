"""`make bench`: one table and ``bench/results.json``.

SIGNOFF_BENCH_RUNS=7 SIGNOFF_BENCH_APPROVALS=20 SIGNOFF_BENCH_LOAD=100 \
SIGNOFF_BENCH_PENDING=100000 SIGNOFF_BENCH_DUE=10000 python -m local.bench
"""

from __future__ import annotations

import json
import os
import sys

from local.bench.coldstart import cold_imports
from local.bench.costs import PRICES_AS_OF, anchors_per_1000, signoff_per_1000
from local.bench.load import local_load
from local.bench.memory import memory_sizes
from local.bench.reconciler import reconciler_at_scale
from local.bench.requests import approved_seed_runs, per_action
from local.template import ROOT, SamTemplate

RESULTS = ROOT / "bench" / "results.json"


def main() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    runs = int(os.environ.get("SIGNOFF_BENCH_RUNS", "7"))
    approvals = int(os.environ.get("SIGNOFF_BENCH_APPROVALS", "20"))
    imports = cold_imports(runs)
    measured = per_action(approved_seed_runs(approvals))
    load = local_load(int(os.environ.get("SIGNOFF_BENCH_LOAD", "100")))
    due = int(os.environ.get("SIGNOFF_BENCH_DUE", "10000"))
    safety_net = reconciler_at_scale(int(os.environ.get("SIGNOFF_BENCH_PENDING", "100000")), due, due // 10)
    template = SamTemplate()
    memory = {fn.logical_id: fn.memory_size for fn in template.functions()}
    costs = signoff_per_1000(measured, memory, template.architecture())
    anchors = anchors_per_1000()
    results = {
        **{k: v for k, v in measured.items()},
        "cost_per_1000_approved_actions_usd": costs["total"],
        "cost_breakdown_per_1000_usd": costs,
        "anchors_per_1000_approved_actions_usd": anchors,
        "prices": PRICES_AS_OF,
        "cold_import_ms": {name: row["median_ms"] for name, row in imports.items()},
        "memory": {"template_mb": memory, "architecture": template.architecture()}
        | {"sizes": memory_sizes(measured, imports)},
        "local_load": load,
        "reconciler": safety_net,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    _print(results, imports)
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


def _print(results: dict, imports: dict) -> None:
    print(f"Seed scenario approved, averaged over the runs (prices: {results['prices']})\n")
    print(f"{'DynamoDB requests per approved action':<44} {results['dynamodb_requests_per_approved_action']:>8}")
    for function, n in results["dynamodb_requests_by_function"].items():
        print(f"{'  ' + function:<44} {n:>8}")
    units = f"{results['write_units_per_approved_action']} / {results['read_units_per_approved_action']}"
    print(f"{'  write / read units (measured item sizes)':<44} {units:>8}")
    print(f"{'SQS sends per approved action':<44} {results['sqs_requests_per_approved_action']:>8}")
    print(f"{'KMS requests per approved action':<44} {results['kms_requests_per_approved_action']:>8}")
    print(f"{'Handover requests per decision':<44} {results['handover_requests_per_decision']:>8}")
    callback = results["callback_ms_excluding_handover_get"]
    print(f"{'callback ms, the Handover GET excluded, p50/p99':<44} {callback.get('p50')} / {callback.get('p99')}")
    print("\nUSD per 1,000 approved actions")
    for part, usd in results["cost_breakdown_per_1000_usd"].items():
        print(f"{'  Signoff ' + part:<44} {usd:>10.4f}")
    for anchor, usd in results["anchors_per_1000_approved_actions_usd"].items():
        print(f"{'  anchor: ' + anchor:<44} {usd:>10.4f}")
    load = results["local_load"]
    print(f"\nLocal stack, {load['conversations']} gated conversations at once, all approved at once")
    for phase in ("ask_to_pending", "approve_to_reply"):
        row = load[phase]
        print(f"{'  ' + phase.replace('_', ' ') + ' p50 / p99 (s)':<44} {row['p50_s']:>8} / {row['p99_s']}")
    print(f"{'  approvals settled per second':<44} {load['approvals_per_second']:>8}")
    net, modelled = results["reconciler"], results["reconciler"]["modelled"]
    pending, due, answered = net["pending_approvals"], net["due"], net["answered_with_callback_lost"]
    print(f"\nReconciler: {pending:,} pending approvals, {due:,} due ({answered:,} answered, callback lost)")
    rows = [
        ("DynamoDB requests per due item", net["dynamodb_requests_per_due_item"]),
        ("Handover requests per due item", net["handover_requests_per_due_item"]),
        (f"local: items handled per second ({net['passes']} passes)", net["local_items_per_second"]),
        (
            f"modelled: items per invocation ({modelled['ms_per_due_item']} ms each, {modelled['workers']} at once)",
            modelled["items_per_invocation"],
        ),
        ("modelled: invocations to drain", modelled["invocations_to_drain"]),
    ]
    for label, value in rows:
        print(f"{'  ' + label:<52} {value:>8}")
    print(f"\n{'cold import (median ms, peak MB)':<44}")
    for name, row in imports.items():
        print(
            f"{'  ' + name:<44} {row['median_ms']:>8} {row['rss_mb']:>6}  {'imports openai' if row['openai'] else ''}"
        )
    memory = results["memory"]
    print(f"\nMemory ({memory['architecture']}): wall / CPU ms per invocation here, and the size they call for")
    print(f"{'  function':<30} {'wall':>7} {'cpu':>7} {'peak MB':>8} {'template':>9} {'sized':>6}  predicted ms by MB")
    for fn, row in memory["sizes"].items():
        predicted = ", ".join(f"{mb}: {ms}" for mb, ms in row["predicted_ms"].items())
        template_mb = memory["template_mb"].get(fn)
        print(
            f"{'  ' + fn:<30} {row['wall_ms']:>7} {row['cpu_ms']:>7} {row['rss_mb']:>8} {template_mb:>9} "
            f"{row['chosen_mb']:>6}  {predicted}"
        )


if __name__ == "__main__":
    sys.exit(main())
