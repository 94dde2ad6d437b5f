"""The agent catalog: which agents exist, which tools each may call, and how each tool is run.

One JSON document (``signoff/catalog.json`` ships the demo; see docs/catalog.md), validated
whole when it is loaded, so a bad entry is refused by name before any conversation meets it.
Which calls need sign-off stays the approval policy's business: a tool the policy does not
name is gated.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# The agent APIs accept function names of this shape only.
TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"
MCP_SEPARATOR = "__"  # an MCP tool is offered to the model as <server>__<tool>
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _https_url(value: str) -> str:
    """HTTPS, or plain HTTP to this machine only (the local stack's servers)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("url must be an https:// URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError("url must use https (plain http is allowed for localhost only)")
    if parts.username or parts.password:
        raise ValueError("url must not carry credentials; use an authorization secret")
    return value


HttpsUrl = Annotated[str, AfterValidator(_https_url)]


class PythonExecutor(_Strict):
    """A function in the layer: ``module:function``, called with the arguments and a ToolContext."""

    type: Literal["python"]
    entry: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class HttpExecutor(_Strict):
    """``POST url`` with the call as JSON, signed per Standard Webhooks with the tool signing secret."""

    type: Literal["http"]
    url: HttpsUrl
    timeout_seconds: float = Field(default=10, gt=0, le=60)
    max_attempts: int = Field(default=3, ge=1, le=6)


class LambdaExecutor(_Strict):
    """A Lambda function invoked synchronously with the same payload as ``http``."""

    type: Literal["lambda"]
    function_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?$"
    )
    # How long to wait for the function's answer; past it the outcome is unknown (never invoked again).
    timeout_seconds: float = Field(default=60, gt=0, le=900)


class ClientExecutor(_Strict):
    """Return of control: the client runs the call and posts its result back."""

    type: Literal["client"]
    timeout_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)


Executor = Annotated[PythonExecutor | HttpExecutor | LambdaExecutor | ClientExecutor, Field(discriminator="type")]


class CatalogTool(_Strict):
    description: str = Field(min_length=1, max_length=1024)
    # JSON Schema of the arguments; a python tool may leave it out and take its pydantic model's.
    parameters: dict[str, Any] | None = None
    executor: Executor
    # What an approver reads, e.g. "Refund {amount} {currency} to customer {customer_id}".
    summary: str | None = Field(default=None, max_length=500)
    # A tool the model calls to ask for sign-off itself: nothing runs, the decision is the output.
    sign_off_request: bool = False
    # OpenAI's strict mode: arguments always fit the schema (sent in strict form, optional fields as
    # nullable, the model's nulls removed again before the check). On by default, as the Responses
    # API already treats a tool that does not say; false for a schema strict mode cannot express.
    strict: bool = True

    @model_validator(mode="after")
    def _schema_present(self) -> CatalogTool:
        if self.parameters is None and self.executor.type != "python":
            raise ValueError("parameters (a JSON Schema) is required for a non-python tool")
        if self.parameters is not None:
            check_schema(self.parameters)
            if self.strict:
                check_strictable(self.parameters)
        return self


class McpServer(_Strict):
    """An MCP server reached over streamable HTTP; its tools come from ``tools/list``."""

    url: HttpsUrl
    # Secrets Manager id of a value sent as the Authorization header (e.g. "Bearer ...").
    authorization_secret: str | None = None
    # Only these of the server's tools are offered (all when absent).
    tools: list[str] | None = None
    timeout_seconds: float = Field(default=30, gt=0, le=120)


class HostedMcpServer(_Strict):
    """An MCP server OpenAI calls itself (the Responses API's ``mcp`` tool). Each call OpenAI asks
    approval for comes to Signoff and is gated like a function call: approved or denied, never
    changed (the API cannot carry changed arguments)."""

    url: HttpsUrl
    # Secrets Manager id of a value sent as the Authorization header (e.g. "Bearer ...").
    authorization_secret: str | None = None
    tools: list[str] | None = None  # only these of the server's tools (all when absent)
    # Which calls OpenAI asks approval for; Signoff's policy then decides whether a person is asked.
    # "never" (or a tool listed under never) runs without Signoff seeing it: not gated.
    require_approval: Literal["always", "never"] | dict[str, Any] = "always"

    def tool(self, label: str) -> dict[str, Any]:
        """The Responses ``mcp`` tool (without its authorization, which the runtime adds)."""
        tool: dict[str, Any] = {
            "type": "mcp",
            "server_label": label,
            "server_url": str(self.url),
            "require_approval": self.require_approval,
        }
        if self.tools is not None:
            tool["allowed_tools"] = list(self.tools)
        return tool


class AgentSpec(_Strict):
    instructions: str = Field(min_length=1, max_length=32_000)
    model: str | None = Field(default=None, min_length=1, max_length=100)  # else the deployment's
    tools: list[str] = Field(default_factory=list)
    mcp_servers: list[str] = Field(default_factory=list)
    hosted_mcp: list[str] = Field(default_factory=list)  # the Responses API only
    # The Assistants API only: this agent's assistant (else the deployment's OpenAIAssistantId).
    assistant_id: str | None = None


class Catalog(_Strict):
    version: int = 1
    default_agent: str
    agents: dict[str, AgentSpec] = Field(min_length=1)
    tools: dict[str, CatalogTool] = Field(default_factory=dict)
    mcp_servers: dict[str, McpServer] = Field(default_factory=dict)
    hosted_mcp: dict[str, HostedMcpServer] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        for name in self.tools:
            if not re.match(TOOL_NAME, name) or MCP_SEPARATOR in name:
                raise ValueError(f"tools.{name}: a tool name is 1-64 of A-Z a-z 0-9 _ - (and no '__')")
        for name in self.mcp_servers:
            if not re.match(r"^[A-Za-z0-9-]{1,32}$", name) or "_" in name:
                raise ValueError(f"mcp_servers.{name}: a server name is 1-32 of A-Z a-z 0-9 -")
        for name in self.hosted_mcp:
            if not re.match(r"^[A-Za-z0-9-]{1,32}$", name) or name in self.mcp_servers:
                raise ValueError(f"hosted_mcp.{name}: a label is 1-32 of A-Z a-z 0-9 -, not an mcp_servers name")
        if self.default_agent not in self.agents:
            raise ValueError(f"default_agent {self.default_agent!r} is not one of the agents")
        for agent_name, agent in self.agents.items():
            for tool in agent.tools:
                if tool not in self.tools:
                    raise ValueError(f"agents.{agent_name}.tools: {tool!r} is not in tools")
            for server in agent.mcp_servers:
                if server not in self.mcp_servers:
                    raise ValueError(f"agents.{agent_name}.mcp_servers: {server!r} is not in mcp_servers")
            for server in agent.hosted_mcp:
                if server not in self.hosted_mcp:
                    raise ValueError(f"agents.{agent_name}.hosted_mcp: {server!r} is not in hosted_mcp")
        return self

    def agent(self, name: str | None) -> AgentSpec | None:
        return self.agents.get(name or self.default_agent)


def mcp_tool_name(server: str, tool: str) -> str:
    return f"{server}{MCP_SEPARATOR}{tool}"


def split_mcp_name(name: str) -> tuple[str, str] | None:
    server, sep, tool = name.partition(MCP_SEPARATOR)
    return (server, tool) if sep and server and tool else None


def check_strictable(schema: dict[str, Any]) -> None:
    """A strict tool's schema must be one strict mode can express; the error names the keyword."""
    from signoff.domain.strict_schema import NotStrict, strict_form

    try:
        strict_form(schema)
    except NotStrict as exc:
        raise ValueError(f'{exc}: set "strict": false for this tool, or drop {exc.keyword!r}') from exc


def check_schema(schema: dict[str, Any]) -> None:
    """A tool's parameters must be a valid JSON Schema of an object."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if schema.get("type") != "object":
        raise ValueError('parameters must be a JSON Schema with "type": "object"')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"parameters is not a valid JSON Schema: {exc.message}") from exc
