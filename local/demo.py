"""`make demo`: the guide's refund scenario end to end over HTTP, approved and then denied; your own
http tool; and a hosted MCP server that OpenAI calls itself once the approver says yes.

Starts the embedded stack on free ports, sends the request through the client API, answers
the decision through the Handover-compatible API, and prints the transcript. Exits non-zero
if anything does not happen as it should.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import requests

from local.evidence import TimedOut, wait_for
from local.stack import EmbeddedStack, StackConfig

SEED = "Issue a €340 refund to customer #4821."


class DemoFailed(RuntimeError):
    pass


def _wait(condition, timeout: float = 30.0, what: str = "the stack") -> Any:
    try:
        return wait_for(condition, timeout=timeout, what=what)
    except TimedOut as exc:
        raise DemoFailed(str(exc)) from exc


INVOICE = 'call create_invoice with {"customer_id": "c-1001", "amount": 120, "currency": "EUR"}'
TICKET = 'call helpdesk__create_ticket with {"title": "Printer on floor 3", "body": "It jams on every page."}'


def run_pass(
    stack: EmbeddedStack, answer: str, approver: str, notes: str, message: str = SEED, agent: str | None = None
) -> dict[str, Any]:
    api = {"Authorization": f"Bearer {stack.config.api_key}"}
    handover = {"Authorization": f"Bearer {stack.config.handover_local_key}"}
    body = {"message": message, **({"agent": agent} if agent else {})}
    started = requests.post(f"{stack.api_url}/conversations", json=body, headers=api, timeout=30)
    if started.status_code != 202:
        raise DemoFailed(f"POST /conversations answered {started.status_code}: {started.text}")
    cid = started.json()["conversation_id"]
    url = f"{stack.api_url}/conversations/{cid}"
    print(f"  user      {message}" + (f"  (agent {agent})" if agent else ""))

    view = _wait(
        lambda: (v := requests.get(url, headers=api, timeout=30).json())["status"] == "awaiting_approval" and v,
        what="the approval request",
    )
    action = view["actions"][0]
    decision = requests.get(
        f"{stack.handover_url}/decisions/{action['decision']['id']}", headers=handover, timeout=30
    ).json()
    print(f"  approval  [{decision['urgency']}] {decision['action']}  (decision {decision['id']})")

    resolved = requests.post(
        f"{stack.handover_url}/decisions/{decision['id']}/resolve",
        json={"action": answer, "notes": notes, "resolved_by": approver},
        headers=handover,
        timeout=30,
    ).json()
    print(f'  decision  {resolved["status"]} by {resolved["resolved_by"]}: "{resolved["response_notes"]}"')

    view = _wait(
        lambda: (v := requests.get(url, headers=api, timeout=30).json())["status"] == "idle" and v, what="the reply"
    )
    action = view["actions"][0]
    execution = action["execution"]
    result = f" {json.dumps(execution['result'])}" if execution.get("result") else ""
    print(
        f"  tool      {action['tool']}({json.dumps(action['arguments'], ensure_ascii=False)}) → "
        f"{execution['status']}{result}"
    )
    reply = [m["content"] for m in view["messages"] if m["role"] == "assistant"][-1]
    print(f"  agent     {reply}")
    return view


def main() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    config = StackConfig.from_env()
    config.on_free_ports()
    config.extra_env = {"POWERTOOLS_LOG_LEVEL": "WARNING"}
    stack = EmbeddedStack(config).start()
    try:
        print(f"Agent API: {config.agent_api} (set SIGNOFF_AGENT_API to responses, assistants or chat)")
        print("\n== 1. The approver approves ==")
        approved = run_pass(stack, "approve", "maria@example.com", "Customer is a VIP, go ahead.")
        print("\n== 2. The approver denies ==")
        denied = run_pass(stack, "deny", "lee@example.com", "Refund budget for this month is spent.")
        print("\n== 3. Your own tool: an http tool on a tiny local tool server, approved ==")
        invoiced = run_pass(stack, "approve", "maria@example.com", "Invoice approved.", INVOICE, agent="billing")
        cid = invoiced["conversation_id"]
        sent = [r for r in stack.http_tools.requests if r.body and r.body["conversation_id"] == cid]
        print(
            f"  server    {len(sent)} request(s) to {stack.http_tools.url}/create_invoice, signature verified: "
            f"{all(r.verified for r in sent)}"
        )
        hosted = None
        if config.agent_api == "responses":
            print("\n== 4. A hosted MCP server: OpenAI calls it itself, after the approver's OK ==")
            before = len(stack.mcp_tools.calls.of("create_ticket"))
            hosted = run_pass(stack, "approve", "maria@example.com", "Ticket it.", TICKET, agent="helpdesk")
            tickets = len(stack.mcp_tools.calls.of("create_ticket")) - before
            print(f"  server    {tickets} create_ticket call(s) at the MCP server, made by the emulated OpenAI")
        else:
            print("\n== 4. A hosted MCP server: skipped (the Responses API only) ==")
        checks = {
            "approved refund executed": approved["actions"][0]["execution"]["status"] == "executed",
            "approver's notes reached the reply": "Customer is a VIP, go ahead." in approved["messages"][-1]["content"],
            "denied refund not executed": denied["actions"][0]["execution"]["status"] == "not_executed",
            "denial's notes reached the reply": "Refund budget for this month is spent."
            in denied["messages"][-1]["content"],
            "http tool executed": invoiced["actions"][0]["execution"]["status"] == "executed",
            "http tool got exactly one signed request": len(sent) == 1 and sent[0].verified and sent[0].ran,
        }
        if hosted is not None:
            checks["hosted MCP call ran once, after approval, with a receipt"] = (
                tickets == 1
                and hosted["actions"][0]["execution"]["status"] == "executed"
                and bool(hosted["actions"][0].get("receipt"))
            )
        print()
        for what, ok in checks.items():
            print(f"  [{'ok' if ok else 'FAILED'}] {what}")
        return 0 if all(checks.values()) else 1
    except DemoFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
