"""`make bench`: how long each function's code takes to import, as on a Lambda cold start, and how
much memory it then holds.

Each handler module is imported in a fresh interpreter (the layer on the path and Lambda's
environment variables, as in a sandbox; tracing on, as deployed),
several times; the table gives the median and the worst, and whether ``openai`` was imported.
This measures import cost only, on this machine, not Lambda's own start-up.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from local.template import ROOT, SamTemplate

PROBE = """
import importlib.util, json, resource, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
ms = (time.perf_counter() - started) * 1000
openai = "openai" in sys.modules
# Then every adapter a first invocation may build (the agent APIs, tool transports, Handover):
# the peak resident size is an upper bound on what a warm sandbox holds.
try:
    import pkgutil, signoff.adapters
    for found in pkgutil.iter_modules(signoff.adapters.__path__):
        importlib.import_module(f"signoff.adapters.{found.name}")
except ImportError:
    pass  # a probe of a module alone
# This process's own peak (VmHWM starts afresh at exec; ru_maxrss keeps the forking parent's).
try:
    status = open("/proc/self/status").read()
    rss_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
except (OSError, IndexError):
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(json.dumps({"ms": ms, "openai": openai, "rss_mb": rss_mb}))
"""


def measure(path: Path, runs: int, function: str = "probe") -> tuple[list[float], bool]:
    times, openai, _rss = measure_with_memory(path, runs, function)
    return times, openai


def measure_with_memory(path: Path, runs: int, function: str = "probe") -> tuple[list[float], bool, float]:
    """Import times, whether openai came with them, and the interpreter's peak resident MB after."""
    # As Lambda starts a sandbox: its variables (the X-Ray SDK samples locally when it sees
    # LAMBDA_TASK_ROOT, instead of building X-Ray clients) and tracing on, as the template has it.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "layers" / "signoff"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": str(path.parent),
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "POWERTOOLS_SERVICE_NAME": "signoff",
        "POWERTOOLS_METRICS_NAMESPACE": "Signoff",
        "PYTHONDONTWRITEBYTECODE": "",
    }
    times, openai, rss = [], False, 0.0
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env, check=True
        )
        result = json.loads(out.stdout)
        times.append(result["ms"])
        openai = openai or result["openai"]
        rss = max(rss, result["rss_mb"])
    return times, openai, rss


def cold_imports(runs: int) -> dict[str, dict[str, float | bool]]:
    """Per function: median and max import ms, and whether openai came with it."""
    results: dict[str, dict[str, float | bool]] = {}
    for fn in SamTemplate().functions():
        module, _ = fn.handler.rsplit(".", 1)
        times, openai, rss = measure_with_memory(ROOT / fn.code_uri / f"{module}.py", runs, fn.logical_id)
        results[fn.logical_id] = {
            "median_ms": round(statistics.median(times)),
            "max_ms": round(max(times)),
            "openai": openai,
            "rss_mb": round(rss),
        }
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.py"
        probe.write_text("import openai\n")
        times, _, rss = measure_with_memory(probe, runs)
    results["(import openai alone)"] = {
        "median_ms": round(statistics.median(times)),
        "max_ms": round(max(times)),
        "openai": True,
        "rss_mb": round(rss),
    }
    return results


def main() -> int:
    runs = int(os.environ.get("SIGNOFF_BENCH_RUNS", "7"))
    print(f"import time of each function's handler, {runs} fresh interpreters each (Python {sys.version.split()[0]})\n")
    print(f"{'function':<26} {'median ms':>10} {'max ms':>8}  imports openai")
    for name, row in cold_imports(runs).items():
        print(f"{name:<26} {row['median_ms']:>10} {row['max_ms']:>8}  {'yes' if row['openai'] else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
