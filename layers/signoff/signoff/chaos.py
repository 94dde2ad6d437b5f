"""Crash points for resilience drills: make a process die at a named step, as a Lambda timeout or
out-of-memory would, to prove that nothing is lost or done twice afterwards.

Off unless ``SIGNOFF_CRASH_POINTS`` is set (``name`` or ``name:times``, comma-separated); the
local stack and the reliability drills set it. ``SimulatedCrash`` is a ``BaseException`` so no
``except Exception`` in our code can swallow it, just as none could swallow a killed process.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_fired: dict[str, int] = {}


class SimulatedCrash(BaseException):
    pass


def crash_point(name: str) -> None:
    spec = os.environ.get("SIGNOFF_CRASH_POINTS")
    if not spec:
        return
    for entry in spec.split(","):
        point, _, times = entry.strip().partition(":")
        if point != name:
            continue
        limit = int(times) if times.isdigit() else 1
        with _lock:
            if _fired.get(name, 0) >= limit:
                return
            _fired[name] = _fired.get(name, 0) + 1
        raise SimulatedCrash(name)


def fired(name: str) -> int:
    """How often the crash point ``name`` has fired in this process."""
    with _lock:
        return _fired.get(name, 0)


def reset() -> None:
    with _lock:
        _fired.clear()
