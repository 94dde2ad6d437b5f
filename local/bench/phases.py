"""The bench's phases: each announced with a progress line and timed; each one's result (or its
failure) written to ``bench/results.json`` as soon as it ends, so a later phase that fails or hangs
never takes the earlier figures with it."""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Phases:
    def __init__(self, results: Path, total: int, out: Any = None):
        self._path = results
        self._total = total
        self._out = out or sys.stderr
        self._n = 0
        self._began = time.perf_counter()
        self.results: dict[str, Any] = {"phases": {}}
        self.failed: list[str] = []

    def run(self, name: str, what: str, fn: Callable[[], Any]) -> Any:
        """Run one phase: a line when it starts, one when it ends with its time; its result (or the
        error that ended it) kept under ``phases.<name>`` and written at once. None when it failed."""
        self._n += 1
        self._say(f"[{self._n}/{self._total}] {what} ...")
        began = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # a failed phase is recorded and the bench goes on to the next
            seconds = round(time.perf_counter() - began, 1)
            self.failed.append(name)
            self.results["phases"][name] = {"seconds": seconds, "error": f"{type(exc).__name__}: {exc}"}
            self._say(f"[{self._n}/{self._total}] {what}: FAILED after {seconds} s ({type(exc).__name__}: {exc})")
            traceback.print_exc(file=self._out)
            self.write()
            return None
        seconds = round(time.perf_counter() - began, 1)
        self.results["phases"][name] = {"seconds": seconds}
        self._say(f"[{self._n}/{self._total}] {what}: done in {seconds} s (bench at {self.elapsed():.0f} s)")
        return result

    def record(self, name: str, what: str, fn: Callable[[], Any]) -> Any:
        """``run``, its result kept as ``results[name]`` (none when it failed), the file written."""
        result = self.run(name, what, fn)
        if result is not None:
            self.results[name] = result
        self.write()
        return result

    def elapsed(self) -> float:
        return time.perf_counter() - self._began

    def write(self) -> None:
        self.results["wall_seconds"] = round(self.elapsed(), 1)
        self.results["failed_phases"] = list(self.failed)
        self._path.parent.mkdir(exist_ok=True)
        self._path.write_text(json.dumps(self.results, indent=2) + "\n")

    def _say(self, line: str) -> None:
        print(line, file=self._out, flush=True)
