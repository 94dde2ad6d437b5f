"""``make mutation``: mutate ``signoff/domain`` and ``signoff/logic``, run ``tests/unit`` against each
mutant (mutmut 3), and print the kill rate per module beside the targets of issue 17.

mutmut expects the package under ``src/`` and imports it from its own ``mutants/`` copy, so the
run happens in a staging folder (``build/mutation``, git-ignored) holding a copy of the package,
the tests and what they import. Results: ``build/mutation/report.json`` and ``survivors.txt``
(``mutmut show <name>`` in that folder shows a survivor's diff).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "build" / "mutation"
PACKAGE = ROOT / "layers" / "signoff" / "signoff"

# The modules the gate's safety rests on (≥ 90% killed), and the use cases as a whole (≥ 75%).
CORE = ("verdict", "binding", "modification", "tokens", "policy", "canonical")
CORE_TARGET, LOGIC_TARGET = 90.0, 75.0

# Unit tests that do not exercise domain or logic code (imports, template, bench arithmetic).
NOT_FOR_MUTANTS = ("test_layering.py", "test_bench_costs.py", "test_template_limits.py")

PYPROJECT = """\
[tool.mutmut]
source_paths = ["src/signoff/"]
only_mutate = ["src/signoff/domain/*", "src/signoff/logic/*"]
pytest_add_cli_args_test_selection = ["tests/unit/"]
pytest_add_cli_args = {args}
also_copy = ["local/", "functions/", "template.yaml"]

[tool.pytest.ini_options]
testpaths = ["tests"]
timeout = 120
"""

KILLED = {1, 3, 36, 24, -24, 152, 255}  # a failing test, or a timeout (the mutant never finished)
SURVIVED, NO_TESTS = {0}, {5, 33}


def stage() -> None:
    """A fresh copy of the package (as src/signoff), the tests and what they import."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PACKAGE, STAGE / "src" / "signoff", ignore=ignore)
    for name in ("tests", "local", "functions"):
        shutil.copytree(ROOT / name, STAGE / name, ignore=ignore)
    shutil.copy2(ROOT / "template.yaml", STAGE / "template.yaml")
    args = ["-p", "no:cacheprovider", "-q", "-x", *(f"--ignore=tests/unit/{name}" for name in NOT_FOR_MUTANTS)]
    (STAGE / "pyproject.toml").write_text(PYPROJECT.format(args=json.dumps(args)))


def run(children: int) -> None:
    mutmut = Path(sys.executable).with_name("mutmut")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # mutmut sets up its own import path
    subprocess.run([str(mutmut), "run", "--max-children", str(children)], cwd=STAGE, env=env, check=True)


def tally() -> dict[str, dict[str, int]]:
    """Per module: killed, survived, no tests, other — read from mutmut's result files."""
    modules: dict[str, dict[str, int]] = {}
    for meta in sorted((STAGE / "mutants" / "src" / "signoff").glob("*/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"].values()
        if not codes:
            continue
        name = f"{meta.parent.name}/{meta.name.removesuffix('.py.meta')}"
        modules[name] = {
            "killed": sum(c in KILLED for c in codes),
            "survived": sum(c in SURVIVED for c in codes),
            "no_tests": sum(c in NO_TESTS for c in codes),
            "other": sum(c not in KILLED | SURVIVED | NO_TESTS for c in codes),
        }
    return modules


def rate(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return 100.0 * counts["killed"] / total if total else 100.0


def report(modules: dict[str, dict[str, int]]) -> bool:
    """Print the table; True when every target is met."""
    print(f"{'module':<28}{'mutants':>9}{'killed':>8}{'survived':>10}{'no tests':>10}{'kill rate':>11}")
    for name, counts in modules.items():
        mark = " ← core" if name.split("/")[1] in CORE and name.startswith("domain/") else ""
        print(
            f"{name:<28}{sum(counts.values()):>9}{counts['killed']:>8}{counts['survived']:>10}"
            f"{counts['no_tests']:>10}{rate(counts):>10.1f}%{mark}"
        )
    ok = True
    for module in CORE:
        counts = modules.get(f"domain/{module}")
        if counts is not None and rate(counts) < CORE_TARGET:
            ok = False
            print(f"below target: domain/{module} {rate(counts):.1f}% < {CORE_TARGET:.0f}%")
    logic = {
        k: sum(c[k] for n, c in modules.items() if n.startswith("logic/"))
        for k in ("killed", "survived", "no_tests", "other")
    }
    domain = {k: sum(c[k] for n, c in modules.items() if n.startswith("domain/")) for k in logic}
    print(f"domain total: {rate(domain):.1f}% of {sum(domain.values())} mutants")
    print(f"logic total:  {rate(logic):.1f}% of {sum(logic.values())} mutants")
    if rate(logic) < LOGIC_TARGET:
        ok = False
        print(f"below target: logic {rate(logic):.1f}% < {LOGIC_TARGET:.0f}%")
    (STAGE / "report.json").write_text(json.dumps({"modules": modules, "domain": domain, "logic": logic}, indent=2))
    survivors = subprocess.run(
        [str(Path(sys.executable).with_name("mutmut")), "results"], cwd=STAGE, capture_output=True, text=True
    ).stdout
    (STAGE / "survivors.txt").write_text(survivors)
    print(f"survivors listed in {(STAGE / 'survivors.txt').relative_to(ROOT)}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="tally the last run again")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    options = parser.parse_args()
    if not options.report_only:
        stage()
        run(options.children)
    return 0 if report(tally()) else 1


if __name__ == "__main__":
    sys.exit(main())
