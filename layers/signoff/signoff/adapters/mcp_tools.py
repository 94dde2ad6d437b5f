"""Tools of an MCP server: Signoff is the MCP client (the ``mcp`` SDK over streamable HTTP).

The server's ``tools/list`` gives each tool's schema (kept for a few minutes per sandbox); the
model sees them as ``<server>__<tool>`` and every call goes through the same gate as any other.
A call that may run is sent once with ``tools/call``, carrying its idempotency key in ``_meta``.
A result with ``isError`` is the tool saying it did not do the call.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from signoff.domain.catalog import McpServer, mcp_tool_name
from signoff.domain.strict_schema import is_strictable
from signoff.domain.tools import ToolContext, ToolFailed, ToolSpec, ToolUnreachable, json_schema_check

IDEMPOTENCY_META_KEY = "signoff/idempotency_key"


class McpToolbox:
    def __init__(
        self,
        name: str,
        server: McpServer,
        authorization: Callable[[], str | None] = lambda: None,
        listing_ttl_seconds: float = 300,
    ):
        self._name = name
        self._server = server
        self._authorization = authorization
        self._ttl = listing_ttl_seconds
        self._lock = threading.Lock()
        self._specs: dict[str, ToolSpec] = {}
        self._listed_at = float("-inf")

    def specs(self) -> dict[str, ToolSpec]:
        """This server's tools by their MCP name (only those the catalog allows)."""
        with self._lock:
            if time.monotonic() - self._listed_at > self._ttl:
                self._specs = {tool.name: self._spec(tool) for tool in self._run(self._list())}
                self._listed_at = time.monotonic()
            return self._specs

    def spec(self, tool: str) -> ToolSpec | None:
        return self.specs().get(tool)

    def names(self) -> list[str]:
        return [mcp_tool_name(self._name, tool) for tool in self.specs()]

    def call(self, tool: str, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        result = self._run(self._call(tool, arguments, ctx.idempotency_key))
        texts = [block.text for block in result.content if getattr(block, "type", "") == "text"]
        if result.is_error:
            raise ToolFailed("the MCP tool reported an error", "\n".join(texts)[:2000])
        if result.structured_content is not None:
            return result.structured_content
        if len(texts) == 1:
            try:
                return json.loads(texts[0])  # a JSON result sent as text
            except ValueError:
                pass
        return {"content": "\n".join(texts)}

    def _spec(self, tool: Any) -> ToolSpec:
        name = mcp_tool_name(self._name, tool.name)
        schema = tool.input_schema or {"type": "object"}

        def run(arguments: dict[str, Any], ctx: ToolContext) -> Any:
            return self.call(tool.name, arguments, ctx)

        return ToolSpec(
            name=name,
            description=(tool.description or tool.name)[:1024],
            parameters=schema,
            check=json_schema_check(name, schema),
            run=run,
            executor="mcp",
            # The server's schema is not ours to refuse: strict when strict mode can express it.
            strict=is_strictable(schema),
        )

    # -- the protocol ----------------------------------------------------------------------
    def _run(self, coroutine: Any) -> Any:
        try:
            return asyncio.run(asyncio.wait_for(coroutine, self._server.timeout_seconds))
        except ToolFailed:
            raise
        except Exception as exc:  # transport, protocol or timeout: the server did not answer
            raise ToolUnreachable(f"MCP server {self._name} did not answer ({type(exc).__name__})") from exc

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        """An MCP session over an HTTP client this call owns (and closes: the SDK leaves a client it
        was given open)."""
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        authorization = self._authorization()
        headers = {"Authorization": authorization} if authorization else {}
        async with httpx2.AsyncClient(headers=headers, timeout=self._server.timeout_seconds) as http:
            transport = streamable_http_client(self._server.url, http_client=http)
            async with Client(transport, mode="legacy", cache=None) as client:
                yield client

    async def _list(self) -> list[Any]:
        tools: list[Any] = []
        async with self._client() as client:
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        allowed = self._server.tools
        return [t for t in tools if allowed is None or t.name in allowed]

    async def _call(self, tool: str, arguments: dict[str, Any], key: str) -> Any:
        async with self._client() as client:
            return await client.call_tool(tool, arguments, meta={IDEMPOTENCY_META_KEY: key})
