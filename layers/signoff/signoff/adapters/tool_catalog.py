"""Where the agent catalog comes from (an SSM parameter, a file, or the one shipped here) and how
its tools become ToolSpecs bound to their executors.

Only the executors a catalog uses are imported: a catalog of python tools never loads the MCP SDK.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from signoff.domain.catalog import Catalog, CatalogTool, HostedMcpServer, check_strictable, split_mcp_name
from signoff.domain.ports import NotConfigured
from signoff.domain.tools import HOSTED_EXECUTOR, ToolRegistry, ToolSpec, json_schema_check, model_check

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "catalog.json"


class InvalidCatalog(NotConfigured, ValueError):
    """The catalog cannot be used: a turn that meets it fails saying Signoff is not fully set up."""


@lru_cache(maxsize=8)
def parse_catalog(text: str, origin: str) -> Catalog:
    try:
        return Catalog.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'catalog'}: {err['msg']}" for err in exc.errors()[:10]
        )
        raise InvalidCatalog(f"the agent catalog from {origin} is not valid: {problems}") from exc


def load_catalog(parameter: str | None, file: str | None, max_age: int = 300) -> Catalog:
    if parameter:
        from aws_lambda_powertools.utilities import parameters

        return parse_catalog(parameters.get_parameter(parameter, max_age=max_age), f"SSM parameter {parameter}")
    path = Path(file) if file else DEFAULT_CATALOG
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidCatalog(f"the agent catalog file {path} cannot be read: {exc.strerror}") from exc
    return parse_catalog(text, str(path))


@dataclass(frozen=True)
class Invokers:
    """How each executor kind is reached; built lazily by the wiring (runtime.py)."""

    http: Callable[[], Any]
    lambda_: Callable[[], Any]
    mcp: Callable[[str], Any]  # server name → McpToolbox


def build_registry(catalog: Catalog, invokers: Invokers) -> ToolRegistry:
    specs = [_spec(name, tool, invokers) for name, tool in catalog.tools.items()]

    def resolve(name: str) -> ToolSpec | None:
        parts = split_mcp_name(name)
        if parts is None:
            return None
        if parts[0] in catalog.hosted_mcp:
            return hosted_spec(name, parts[0], parts[1], catalog.hosted_mcp[parts[0]])
        if parts[0] not in catalog.mcp_servers:
            return None
        return invokers.mcp(parts[0]).spec(parts[1])

    return ToolRegistry(specs, resolve=resolve if catalog.mcp_servers or catalog.hosted_mcp else None)


def hosted_spec(name: str, label: str, tool: str, server: HostedMcpServer) -> ToolSpec | None:
    """A hosted MCP server's tool as the gate sees it: its arguments are the server's to check
    (OpenAI sends them to it), nothing here runs it, and only a listed tool is offered."""
    if server.tools is not None and tool not in server.tools:
        return None

    def as_given(arguments: dict[str, Any]) -> dict[str, Any]:
        return arguments

    return ToolSpec(
        name=name,
        description=f"{tool} on the hosted MCP server {label}",
        parameters={"type": "object"},
        check=as_given,
        executor=HOSTED_EXECUTOR,
        summary_template=None,
    )


def _spec(name: str, tool: CatalogTool, invokers: Invokers) -> ToolSpec:
    executor = tool.executor
    common: dict[str, Any] = {
        "name": name,
        "description": tool.description,
        "summary_template": tool.summary,
        "executor": executor.type,
        "is_sign_off_request": tool.sign_off_request,
        "strict": tool.strict,
    }
    if executor.type == "python":
        fn = _entry_point(name, executor.entry)
        model = _arguments_model(fn)
        if model is not None:
            parameters = tool.parameters or model.model_json_schema()
            if tool.strict and tool.parameters is None:
                try:
                    check_strictable(parameters)
                except ValueError as exc:
                    raise InvalidCatalog(f"tools.{name}: its model's schema {exc}") from exc
            return ToolSpec(parameters=parameters, check=model_check(name, model), run=fn, **common)
        if tool.parameters is None:
            raise InvalidCatalog(f"tools.{name}: {executor.entry} takes no pydantic model; give parameters")
        return ToolSpec(parameters=tool.parameters, check=json_schema_check(name, tool.parameters), run=fn, **common)
    assert tool.parameters is not None  # the catalog requires it for every other executor
    check = json_schema_check(name, tool.parameters)
    if executor.type == "http":

        def run_http(arguments: dict, ctx) -> Any:
            return invokers.http().invoke(executor, arguments, ctx)

        return ToolSpec(parameters=tool.parameters, check=check, run=run_http, **common)
    if executor.type == "lambda":

        def run_lambda(arguments: dict, ctx) -> Any:
            return invokers.lambda_().invoke(executor, arguments, ctx)

        return ToolSpec(parameters=tool.parameters, check=check, run=run_lambda, **common)
    return ToolSpec(parameters=tool.parameters, check=check, client_timeout_minutes=executor.timeout_minutes, **common)


def _entry_point(name: str, entry: str) -> Callable[..., Any]:
    module_name, _, attribute = entry.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidCatalog(f"tools.{name}: the entry point {entry} cannot be imported ({exc})") from exc
    if not callable(fn):
        raise InvalidCatalog(f"tools.{name}: the entry point {entry} is not callable")
    return fn


def _arguments_model(fn: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model a python tool's first parameter is annotated with, if any."""
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
        first = next(iter(inspect.signature(fn).parameters))
    except (NameError, StopIteration, TypeError, ValueError):
        return None
    hint = hints.get(first)
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None
