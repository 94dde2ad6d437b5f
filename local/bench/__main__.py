"""`make bench`: one table and ``bench/results.json``, a progress line per phase.

SIGNOFF_BENCH_RUNS=7 SIGNOFF_BENCH_APPROVALS=20 SIGNOFF_BENCH_LOAD=100 SIGNOFF_BENCH_SANDBOXES=1 \
SIGNOFF_BENCH_PENDING=20000 SIGNOFF_BENCH_DUE=2000 SIGNOFF_BENCH_RECEIPTS=1000 python -m local.bench

The reconciler simulation's per-item figures (requests per due item, items per invocation) do not
depend on its size; its size only sets how long it takes here. ``results.json`` is written after
every phase, with a failed phase's error, so a later failure never loses the earlier figures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from local.bench.coldstart import cold_imports
from local.bench.costs import PRICES_AS_OF, anchors_per_1000, signoff_per_1000
from local.bench.load import local_load
from local.bench.memory import memory_sizes
from local.bench.phases import Phases
from local.bench.receipts import receipt_costs
from local.bench.reconciler import reconciler_at_scale
from local.bench.requests import approved_seed_runs, per_action
from local.template import ROOT, SamTemplate

RESULTS = Path(os.environ.get("SIGNOFF_BENCH_RESULTS") or ROOT / "bench" / "results.json")


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def main() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    runs, approvals = _int("SIGNOFF_BENCH_RUNS", 7), _int("SIGNOFF_BENCH_APPROVALS", 20)
    load_size, due = _int("SIGNOFF_BENCH_LOAD", 100), _int("SIGNOFF_BENCH_DUE", 2000)
    pending = _int("SIGNOFF_BENCH_PENDING", 20000)
    receipts = _int("SIGNOFF_BENCH_RECEIPTS", 1000)
    sandboxes = os.environ.get("SIGNOFF_BENCH_SANDBOXES", "") in ("1", "true")
    phases = Phases(RESULTS, total=5)
    results = phases.results
    results["prices"] = PRICES_AS_OF
    imports = phases.run(
        "cold_imports", f"cold imports, {runs} fresh interpreters per handler", lambda: cold_imports(runs)
    )
    if imports is not None:
        results["cold_import_ms"] = {name: row["median_ms"] for name, row in imports.items()}
    measured = phases.run(
        "requests",
        f"requests and cost per approved action, {approvals} approved refunds",
        lambda: per_action(approved_seed_runs(approvals)),
    )
    if measured is not None:
        template = SamTemplate()
        memory = {fn.logical_id: fn.memory_size for fn in template.functions()}
        costs = signoff_per_1000(measured, memory, template.architecture())
        results.update(measured)
        results["cost_per_1000_approved_actions_usd"] = costs["total"]
        results["cost_breakdown_per_1000_usd"] = costs
        results["anchors_per_1000_approved_actions_usd"] = anchors_per_1000()
        if imports is not None:
            results["memory"] = {"template_mb": memory, "architecture": template.architecture()} | {
                "sizes": memory_sizes(measured, imports)
            }
    phases.write()
    where = "each function in its own process" if sandboxes else "one process"
    phases.record(
        "local_load",
        f"{load_size} gated conversations at once, all approved at once ({where})",
        lambda: local_load(load_size, sandboxes),
    )
    phases.record(
        "receipts",
        f"receipts: 1 and 10 executions of one tenant at once, a checkpoint over {receipts:,} receipts",
        lambda: receipt_costs(10, 3, receipts),
    )
    phases.record(
        "reconciler",
        f"reconciler: {pending:,} pending approvals, {due:,} due",
        lambda: reconciler_at_scale(pending, due, due // 10),
    )
    _print(results, imports or {})
    print(f"\nwrote {RESULTS} in {phases.elapsed():.0f} s")
    if phases.failed:
        print(f"failed phases: {', '.join(phases.failed)} (their errors are in the file)")
        return 1
    return 0


def _print(results: dict, imports: dict) -> None:
    """The table; a section whose phase failed is left out (its error is in the file)."""
    if "dynamodb_requests_per_approved_action" in results:
        _print_requests(results)
    if "local_load" in results:
        _print_load(results["local_load"])
    if "receipts" in results:
        _print_receipts(results["receipts"])
    if "reconciler" in results:
        _print_reconciler(results["reconciler"])
    if imports:
        _print_imports(results, imports)


def _print_requests(results: dict) -> None:
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


def _print_load(load: dict) -> None:
    where = "each function in its own process" if load.get("sandboxes") else "one process"
    print(f"\nLocal stack ({where}), {load['conversations']} gated conversations at once, all approved at once")
    labels = {
        "ask_to_pending": "ask -> pending",
        "approve_to_reply_in_process": "approve -> reply written (in process)",
        "approve_to_notified": "approve -> turn.completed received",
        "approve_to_reply_read": "approve -> reply read by the client",
    }
    for phase, label in labels.items():
        row = load[phase]
        print(f"{'  ' + label + ' p50 / p99 (s)':<52} {row['p50_s']:>8} / {row['p99_s']}")
    print(f"{'  approvals settled per second (as clients read them)':<52} {load['approvals_per_second']:>8}")


def _print_receipts(logged: dict) -> None:
    one, together, checkpoint = logged["one_at_a_time"], logged["at_once"], logged["checkpoint_per_1000_receipts"]
    print(f"\nReceipts: one tenant, approved refunds one at a time and {together['executions']} at once")
    for label, key in (("KMS signs", "kms_signs"), ("DynamoDB requests", "dynamodb_requests")):
        row = f"{one[key + '_per_approved_action']} / {together[key + '_per_approved_action']}"
        print(f"{'  ' + label + ' per approved action, 1 / at once':<52} {row:>12}")
    print(f"{'  most workers running at once':<52} {together['most_workers_at_once']:>12}")
    print(f"Checkpoints, per 1,000 receipts ({checkpoint['receipts']:,} measured)")
    print(f"{'  KMS signs':<52} {checkpoint['kms_signs']:>12}")
    print(
        f"{'  DynamoDB requests (items in transactions)':<52} {checkpoint['dynamodb_requests']:>12}"
        f" ({checkpoint['transaction_items']})"
    )
    print(f"{'  the log verifies with the JWKS alone':<52} {logged['log_verifies']!s:>12}")


def _print_reconciler(net: dict) -> None:
    modelled = net["modelled"]
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


def _print_imports(results: dict, imports: dict) -> None:
    print(f"\n{'cold import (median ms, peak MB)':<44}")
    for name, row in imports.items():
        print(
            f"{'  ' + name:<44} {row['median_ms']:>8} {row['rss_mb']:>6}  {'imports openai' if row['openai'] else ''}"
        )
    memory = results.get("memory")
    if memory is None:
        return
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
