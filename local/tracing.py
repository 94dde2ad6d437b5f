"""X-Ray traces from the in-process functions, collected on loopback as the X-Ray daemon would.

In Lambda, the service opens a segment per invocation and the function's SDK sends its
subsegments to the daemon over UDP. Here ``traced_invocations`` opens that segment around each
local invocation, switches the product's (otherwise disabled) Powertools Tracer on, and points
the SDK at ``XRayDaemon``, which keeps every document it receives.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from local.lambda_runtime import INVOCATION_ENDED, INVOCATION_STARTED


class XRayDaemon:
    """Receives the SDK's UDP documents (a JSON header line, then the segment or subsegment)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self.raw: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="xray-daemon", daemon=True)

    def start(self) -> XRayDaemon:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65_535)
            except TimeoutError:
                continue
            with self._lock:
                self.raw.append(data.decode("utf-8", "replace").split("\n", 1)[1])

    def entities(self) -> list[dict[str, Any]]:
        """Every segment and subsegment received, nested ones included, flattened."""
        with self._lock:
            documents = [json.loads(text) for text in self.raw]
        found: list[dict[str, Any]] = []

        def walk(entity: dict[str, Any], segment: str) -> None:
            found.append({**entity, "segment_name": segment})
            for child in entity.get("subsegments", []):
                walk(child, segment)

        names = {d["id"]: d["name"] for d in documents if d.get("type") != "subsegment"}
        for document in documents:
            walk(document, names.get(document.get("parent_id", ""), document["name"]))
        return found


@contextmanager
def traced_invocations(daemon: XRayDaemon) -> Iterator[None]:
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core import xray_recorder

    from signoff.observability import tracer

    xray_recorder.configure(daemon_address=daemon.address, sampling=False, context_missing="LOG_ERROR")

    def begin(invocation) -> None:
        xray_recorder.begin_segment(invocation.function_id)

    def end(invocation) -> None:
        xray_recorder.end_segment()

    global_sdk_config.set_sdk_enabled(True)
    tracer.disabled = False
    INVOCATION_STARTED.append(begin)
    INVOCATION_ENDED.append(end)
    try:
        yield
    finally:
        INVOCATION_STARTED.remove(begin)
        INVOCATION_ENDED.remove(end)
        tracer.disabled = True
        global_sdk_config.set_sdk_enabled(False)
