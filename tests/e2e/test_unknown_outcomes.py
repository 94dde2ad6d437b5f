"""A tool that acts and answers after Signoff's timeout: the outcome is unknown, so the call keeps its
budget reservation, and a hard cap of 100 holds against a second 80 (before, the reservation was
given back and the tool server was paid 160). One test per executor kind, each against a real
local tool server: http (signed POST), lambda (boto3 invoke over the local Lambda endpoint), MCP.
"""

from __future__ import annotations

import json
import uuid

import pytest

from local.catalogs.example import example_catalog, example_policy
from local.tool_servers import lambda_tools
from local.tool_servers.lambda_tools import PAYMENT_ARN
from tests.support import settings_changed, wait_for

PAYMENT = {
    "type": "object",
    "properties": {"customer_id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["customer_id", "amount"],
    "additionalProperties": False,
}
TOOLS = {"http": "pay_http", "lambda": "pay_lambda", "mcp": "payments__record_payment"}


@pytest.fixture(scope="module")
def payments(stack, tmp_path_factory):
    catalog = example_catalog(stack.http_tools.url, stack.mcp_tools.url)
    catalog["tools"]["pay_http"] = {
        "description": "Pay a customer.",
        "parameters": PAYMENT,
        "executor": {
            "type": "http",
            "url": f"{stack.http_tools.url}/record_payment",
            "timeout_seconds": 1,
            "max_attempts": 1,
        },
    }
    catalog["tools"]["pay_lambda"] = {
        "description": "Pay a customer.",
        "parameters": PAYMENT,
        "executor": {"type": "lambda", "function_arn": PAYMENT_ARN, "timeout_seconds": 1},
    }
    catalog["mcp_servers"]["payments"] = {"url": stack.mcp_tools.url, "timeout_seconds": 1, "tools": ["record_payment"]}
    catalog["agents"]["payer"] = {
        "instructions": "You pay customers.",
        "tools": ["pay_http", "pay_lambda"],
        "mcp_servers": ["payments"],
    }
    policy = example_policy()
    policy["tools"].update({name: {"approval": "never"} for name in TOOLS.values()})
    policy["budgets"].append(
        {
            "name": "payments-per-customer",
            "tools": list(TOOLS.values()),
            "sum": "amount",
            "group_by": ["customer_id"],
            "window_hours": 24,
            "limit": 100,
            "over_limit": "deny",
        }
    )
    folder = tmp_path_factory.mktemp("payments")
    (folder / "catalog.json").write_text(json.dumps(catalog))
    (folder / "policy.json").write_text(json.dumps(policy))
    with settings_changed(CATALOG_FILE=str(folder / "catalog.json"), POLICY_FILE=str(folder / "policy.json")):
        yield


def _paid(stack, kind: str, customer: str) -> list:
    recorded = {
        "http": stack.http_tools.payments,
        "lambda": lambda_tools.PAYMENTS,
        "mcp": [c["arguments"] for c in stack.mcp_tools.calls.of("record_payment")],
    }[kind]
    return [p for p in recorded if p["customer_id"] == customer]


def _release(stack, kind: str) -> None:
    {
        "http": stack.http_tools.release_payments,
        "lambda": lambda_tools.RELEASE_PAYMENTS,
        "mcp": stack.mcp_tools.calls.release_payments,
    }[kind].set()


@pytest.mark.parametrize("kind", list(TOOLS))
def test_a_tool_that_answers_late_keeps_its_budget_so_the_cap_holds(client, stack, payments, kind):
    tool, customer = TOOLS[kind], f"u{uuid.uuid4().hex[:10]}"
    ask = f'call {tool} with {{"customer_id": "{customer}", "amount": 80}}'
    try:
        cid = client.post("/conversations", json={"message": ask, "agent": "payer"}).json()["conversation_id"]
        view = client.wait_status(cid, "idle", "failed", timeout=60)
        [late] = view["actions"]
        assert late["execution"]["status"] == "failed" and late["execution"]["outcome"] == "unknown", late
        assert len(_paid(stack, kind, customer)) == 1  # it acted: the payment is recorded
        client.post(f"/conversations/{cid}/messages", json={"message": ask})
        view = wait_for(
            lambda: (v := client.get(cid))["status"] == "idle" and len(v["actions"]) == 2 and v,
            what="the second turn",
        )
        second = view["actions"][1]
        assert second["execution"]["status"] == "not_executed" and "over the hard cap" in second["error"], second
        assert len(_paid(stack, kind, customer)) == 1  # 80 may be paid already: a second 80 never went out
        trail = [a for a in client.get(cid)["actions"] if a["call_id"] == late["call_id"]]
        assert trail[0]["execution"]["outcome"] == "unknown"
    finally:
        _release(stack, kind)
