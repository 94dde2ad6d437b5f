"""RequestLog: what an emulator received, served at ``GET /_emulator/log`` for tests to inspect."""

from __future__ import annotations

import threading
from typing import Any


class RequestLog:
    def __init__(self, limit: int = 10_000):
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, method: str, path: str, body: Any, status: int | None = None, answer: Any = None) -> None:
        """One request: its body, the status it got and (for JSON answers) what was answered."""
        with self._lock:
            self._entries.append({"method": method, "path": path, "body": body, "status": status, "answer": answer})
            del self._entries[: max(0, len(self._entries) - self._limit)]

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)
