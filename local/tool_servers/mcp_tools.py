"""A small MCP server (the ``mcp`` SDK's MCPServer over streamable HTTP) for ``mcp`` catalog tools.

    python -m local.tool_servers.mcp_tools   (serves http://127.0.0.1:3006/mcp)

Tools: ``create_ticket`` (a side effect, counted per call; a title starting REJECT is an error
result) and ``search_docs`` (read only). It
keeps every ``tools/call`` it received with the idempotency key Signoff sent in ``_meta``.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from local.servers import serve_until_interrupted

IDEMPOTENCY_META_KEY = "signoff/idempotency_key"  # as signoff.adapters.mcp_tools sends it


@dataclass
class McpCalls:
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # record_payment answers only once this is set (or after 30 s): a tool that acts and answers late.
    release_payments: threading.Event = field(default_factory=threading.Event)

    def of(self, tool: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["tool"] == tool]


def build_server(calls: McpCalls, required_authorization: str | None = None) -> MCPServer:
    server = MCPServer("signoff-local-tools", log_level="WARNING")

    def _meta_key(ctx: Context) -> str | None:
        meta = getattr(ctx.request_context, "meta", None)
        if meta is None:
            return None
        extra = getattr(meta, "model_extra", None) or {}
        return extra.get(IDEMPOTENCY_META_KEY) or (meta.get(IDEMPOTENCY_META_KEY) if isinstance(meta, dict) else None)

    @server.tool(description="Open a support ticket in the tracker.")
    def create_ticket(title: str, body: str, ctx: Context) -> dict:
        with calls.lock:
            calls.calls.append(
                {
                    "tool": "create_ticket",
                    "arguments": {"title": title, "body": body},
                    "idempotency_key": _meta_key(ctx),
                }
            )
            number = len(calls.calls)
        if title.startswith("REJECT"):
            raise ToolError("the tracker refuses tickets titled REJECT")  # an isError result, this text shown
        return {"ticket": f"T-{number}", "title": title}

    @server.tool(description="Record a payment to a customer.")
    async def record_payment(customer_id: str, amount: float, ctx: Context) -> dict:
        with calls.lock:
            calls.calls.append(
                {
                    "tool": "record_payment",
                    "arguments": {"customer_id": customer_id, "amount": amount},
                    "idempotency_key": _meta_key(ctx),
                }
            )
        await anyio.to_thread.run_sync(calls.release_payments.wait, 30)
        return {"paid": amount}

    @server.tool(description="Search the help-centre articles.")
    def search_docs(query: str, ctx: Context) -> dict:
        with calls.lock:
            calls.calls.append(
                {"tool": "search_docs", "arguments": {"query": query}, "idempotency_key": _meta_key(ctx)}
            )
        return {"articles": [f"How to {query}"]}

    return server


class McpToolServer:
    """The MCP server on loopback, run by uvicorn in a thread."""

    def __init__(self, port: int = 0):
        import uvicorn

        self.calls = McpCalls()
        self._app = build_server(self.calls).streamable_http_app()
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._server = uvicorn.Server(uvicorn.Config(self._app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="mcp-tools"
        )
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def start(self, timeout: float = 10) -> McpToolServer:
        self._thread.start()
        limit = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > limit or not self._thread.is_alive():
                raise RuntimeError("the MCP tool server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()


def main() -> None:
    server = McpToolServer(port=3006).start()
    serve_until_interrupted(server, f"MCP tools at {server.url}; Ctrl-C to stop")


if __name__ == "__main__":
    main()
