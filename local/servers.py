"""BackgroundServer: a WSGI app served on loopback from a thread, for the stack and the tests."""

from __future__ import annotations

import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server


class BackgroundServer:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, name: str = "server"):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        self.host = host
        self.port = self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_until_interrupted(server: Any, banner: str) -> None:
    """For a tool server run on its own (``python -m ...``): print where it is, stop on Ctrl-C."""
    print(banner, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
