"""The Responses API's ``mcp`` tool as OpenAI runs it, for the OpenAI-compatible server: the
server's tools listed (an ``mcp_list_tools`` item), a call that needs approval asked for (an
``mcp_approval_request`` item) and made only after an ``mcp_approval_response`` that approves it,
each call reported as an ``mcp_call`` item with its output or error. The MCP server is reached
through the ``mcp`` SDK, as a client, over streamable HTTP.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def is_mcp(tool: dict[str, Any]) -> bool:
    return tool.get("type") == "mcp"


def needs_approval(tool: dict[str, Any], name: str) -> bool:
    """``require_approval``: "always" (the default), "never", or which tools each way."""
    rule = tool.get("require_approval", "always")
    if isinstance(rule, str):
        return rule != "never"
    never = ((rule.get("never") or {}).get("tool_names")) or []
    always = ((rule.get("always") or {}).get("tool_names")) or []
    return name in always or name not in never


class HostedMcp:
    """Lists and calls the tools of the MCP servers a request names (listings kept per URL)."""

    def __init__(self):
        self._listed: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def tools_of(self, tool: dict[str, Any]) -> list[dict[str, Any]]:
        url = tool["server_url"]
        with self._lock:
            listed = self._listed.get(url)
        if listed is None:
            listed = _run(self._list(tool))
            with self._lock:
                self._listed[url] = listed
        allowed = tool.get("allowed_tools")
        return [t for t in listed if allowed is None or t["name"] in allowed]

    def list_item(self, tool: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "mcp_list_tools",
            "id": _id("mcpl"),
            "server_label": tool["server_label"],
            "tools": self.tools_of(tool),
            "error": None,
        }

    def approval_request(self, tool: dict[str, Any], name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "mcp_approval_request",
            "id": _id("mcpr"),
            "name": name,
            "arguments": json.dumps(arguments),
            "server_label": tool["server_label"],
        }

    def call(self, tool: dict[str, Any], name: str, arguments: str, approval_request_id: str | None) -> dict:
        """The call made: an ``mcp_call`` item with the server's output, or its error."""
        output, error = None, None
        try:
            output = _run(self._call(tool, name, json.loads(arguments or "{}")))
        except Exception as exc:  # the server refused or did not answer: reported, as OpenAI does
            error = f"{type(exc).__name__}: {exc}"[:500]
        return {
            "type": "mcp_call",
            "id": _id("mcp"),
            "name": name,
            "arguments": arguments,
            "server_label": tool["server_label"],
            "approval_request_id": approval_request_id,
            "output": output,
            "error": error,
            "status": "completed" if error is None else "failed",
        }

    # -- the protocol ------------------------------------------------------------------------
    async def _list(self, tool: dict[str, Any]) -> list[dict[str, Any]]:
        async with _client(tool) as client:
            page = await client.list_tools()
        return [
            {"name": t.name, "input_schema": t.input_schema or {"type": "object"}, "description": t.description}
            for t in page.tools
        ]

    async def _call(self, tool: dict[str, Any], name: str, arguments: dict[str, Any]) -> str:
        async with _client(tool) as client:
            result = await client.call_tool(name, arguments)
        texts = [getattr(part, "text", "") for part in result.content or []]
        if result.is_error:
            raise RuntimeError(" ".join(texts) or "the tool failed")
        if result.structured_content is not None:
            return json.dumps(result.structured_content)
        return "\n".join(texts)


@asynccontextmanager
async def _client(tool: dict[str, Any]) -> AsyncIterator[Any]:
    """An MCP session with the server a request's ``mcp`` tool names, with its headers."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=dict(tool.get("headers") or {}), timeout=30) as http,
        Client(streamable_http_client(tool["server_url"], http_client=http), mode="legacy") as client,
    ):
        yield client


def _run(coroutine: Any) -> Any:
    """Run on a loop of its own (the emulator's request threads have none)."""
    return asyncio.run(coroutine)
