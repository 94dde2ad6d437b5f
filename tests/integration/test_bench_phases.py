"""`make bench` at a tiny size: every phase runs end to end, says so with its time, writes its figures,
and no library warning reaches the output (the full size is `make bench`'s, not the tests')."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "SIGNOFF_BENCH_RUNS": "1",
    "SIGNOFF_BENCH_APPROVALS": "2",
    "SIGNOFF_BENCH_LOAD": "4",
    "SIGNOFF_BENCH_PENDING": "100",
    "SIGNOFF_BENCH_DUE": "20",
    "SIGNOFF_BENCH_SANDBOXES": "1",
    "SIGNOFF_BENCH_RECEIPTS": "60",
}


def test_every_phase_of_the_bench_runs_and_writes_its_figures(tmp_path):
    results = tmp_path / "results.json"
    env = {**os.environ, **TINY, "SIGNOFF_BENCH_RESULTS": str(results), "PYTHONPATH": "layers/signoff:."}
    done = subprocess.run(
        [sys.executable, "-m", "local.bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in progress if ": done in " in line] == ["[1/5", "[2/5", "[3/5", "[4/5", "[5/5"]
    assert "Connection pool is full" not in done.stderr + done.stdout
    written = json.loads(results.read_text())
    assert written["failed_phases"] == [] and set(written["phases"]) == {
        "cold_imports",
        "requests",
        "local_load",
        "receipts",
        "reconciler",
    }
    load = written["local_load"]
    assert load["conversations"] == 4 and load["sandboxes"] is True
    for figure in ("approve_to_reply_in_process", "approve_to_notified", "approve_to_reply_read"):
        assert load[figure]["p50_s"] > 0, figure
    # what a client sees comes after what the process wrote
    assert load["approve_to_reply_read"]["max_s"] >= load["approve_to_reply_in_process"]["p50_s"]
    assert written["dynamodb_requests_per_approved_action"] > 0 and written["reconciler"]["drained"] is True
    logged = written["receipts"]
    assert logged["log_verifies"] is True and logged["at_once"]["most_workers_at_once"] > 1
    assert (
        logged["at_once"]["kms_signs_per_approved_action"] == logged["one_at_a_time"]["kms_signs_per_approved_action"]
    )
    assert logged["checkpoint_per_1000_receipts"]["kms_signs"] > 0


def test_a_failed_phase_is_recorded_and_the_figures_before_it_kept(tmp_path):
    from local.bench.phases import Phases

    out = tmp_path / "progress.txt"
    with out.open("w") as sink:
        phases = Phases(tmp_path / "results.json", total=2, out=sink)
        assert phases.run("first", "a phase that works", lambda: 1) == 1
        phases.results["first"] = 1
        phases.write()

        def broken():
            raise RuntimeError("the stack did not start")

        assert phases.run("second", "a phase that fails", broken) is None
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["first"] == 1 and written["failed_phases"] == ["second"]
    assert "RuntimeError: the stack did not start" in written["phases"]["second"]["error"]
    assert "FAILED after" in out.read_text()
