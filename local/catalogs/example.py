"""The local stack's example catalog and policy: the shipped ones plus an agent per executor kind.

``support`` (the shipped demo, the default) keeps python tools. ``billing`` has ``create_invoice``
(http, the local tool server) and ``close_account`` (lambda, a local tool function). ``ops`` has
the MCP server ``tracker``, ``get_device_location`` and ``wipe_device`` (gated), which the client runs
(return of control). ``helpdesk`` (the Responses API only) has the same MCP server as a hosted one,
``helpdesk``, which OpenAI calls itself once Signoff approves each call.
The tools the shipped policy does not name stay gated; the example policy lets two run unasked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local.tool_servers.lambda_tools import EXAMPLE_ARN

LAYER = Path(__file__).resolve().parents[2] / "layers" / "signoff" / "signoff"


def example_catalog(http_tools_url: str, mcp_url: str) -> dict[str, Any]:
    catalog = json.loads((LAYER / "catalog.json").read_text())
    catalog["agents"]["billing"] = {
        "instructions": "You are a billing assistant. Invoices and account closures are reviewed by a human.",
        "tools": ["lookup_customer", "create_invoice", "close_account"],
    }
    catalog["agents"]["ops"] = {
        "instructions": "You are an operations assistant. Open tickets in the tracker; locate devices via the app.",
        "tools": ["get_device_location", "wipe_device"],
        "mcp_servers": ["tracker"],
    }
    catalog["agents"]["helpdesk"] = {
        "instructions": "You are a helpdesk assistant. Tickets are opened in the hosted tracker after a human's OK.",
        "tools": ["lookup_customer"],
        "hosted_mcp": ["helpdesk"],
    }
    catalog["tools"].update(
        {
            "create_invoice": {
                "description": "Create an invoice for a customer.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "customer_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                        "amount": {"type": "number", "exclusiveMinimum": 0},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    },
                    "required": ["customer_id", "amount", "currency"],
                    "additionalProperties": False,
                },
                "executor": {"type": "http", "url": f"{http_tools_url}/create_invoice", "timeout_seconds": 5},
                "summary": "Invoice customer {customer_id} for {amount} {currency}",
            },
            "close_account": {
                "description": "Close a customer's account for good.",
                "parameters": {
                    "type": "object",
                    "properties": {"account_id": {"type": "string", "minLength": 1, "maxLength": 64}},
                    "required": ["account_id"],
                    "additionalProperties": False,
                },
                "executor": {"type": "lambda", "function_arn": EXAMPLE_ARN},
                "summary": "Close account {account_id}",
            },
            "get_device_location": {
                "description": "Ask the user's app where the device is (runs on the client).",
                "parameters": {
                    "type": "object",
                    "properties": {"device_id": {"type": "string", "minLength": 1}},
                    "required": ["device_id"],
                    "additionalProperties": False,
                },
                "executor": {"type": "client", "timeout_minutes": 30},
            },
            "wipe_device": {
                "description": "Erase a lost device (runs on the client, after a human's sign-off).",
                "parameters": {
                    "type": "object",
                    "properties": {"device_id": {"type": "string", "minLength": 1}},
                    "required": ["device_id"],
                    "additionalProperties": False,
                },
                "executor": {"type": "client"},
                "summary": "Erase device {device_id}",
            },
        }
    )
    catalog["mcp_servers"] = {
        "tracker": {"url": mcp_url, "timeout_seconds": 10, "tools": ["create_ticket", "search_docs"]}
    }
    catalog["hosted_mcp"] = {"helpdesk": {"url": mcp_url, "tools": ["create_ticket", "search_docs"]}}
    return catalog


def example_policy() -> dict[str, Any]:
    policy = json.loads((LAYER / "policy.json").read_text())
    policy["tools"].update(
        {
            "create_invoice": {"approval": "always", "modifiable": ["amount"]},
            "close_account": {"approval": "always", "urgency": "high"},
            "get_device_location": {"approval": "never"},
            "wipe_device": {"approval": "always", "urgency": "critical"},
            "tracker__search_docs": {"approval": "never"},
            "tracker__create_ticket": {"approval": "always"},
            "helpdesk__search_docs": {"approval": "never"},
            "helpdesk__create_ticket": {"approval": "always"},
        }
    )
    return policy


def write_example(directory: Path, http_tools_url: str, mcp_url: str) -> tuple[Path, Path]:
    """Write both files; returns (catalog path, policy path)."""
    directory.mkdir(parents=True, exist_ok=True)
    catalog, policy = directory / "catalog.json", directory / "policy.json"
    catalog.write_text(json.dumps(example_catalog(http_tools_url, mcp_url), indent=2))
    policy.write_text(json.dumps(example_policy(), indent=2))
    return catalog, policy
