"""ScriptedModel: a deterministic stand-in for an LLM, shared by every emulated agent API.

Given a user message it picks tool calls by plain rules (refunds, look-ups, emails, deletions,
explicit requests for approval); given tool outputs it says what happened to each call,
quoting approver notes verbatim. Anything else gets a short reply without tools.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}
_AMOUNT = re.compile(
    r"(?:(?P<sym>[€$£])\s?(?P<num1>\d+(?:[.,]\d{1,2})?))"
    r"|(?:(?P<num2>\d+(?:[.,]\d{1,2})?)\s?(?P<code>EUR|USD|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN)\b)"
    r"|(?:\b(?P<code2>EUR|USD|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN)\s?(?P<num3>\d+(?:[.,]\d{1,2})?))",
    re.IGNORECASE,
)
_CUSTOMER = re.compile(r"#\s?([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class PlannedCall:
    name: str
    arguments: dict[str, Any]


_CALL = re.compile(r"\bcall ([A-Za-z0-9_-]{1,64}) with (?=\{)")


def explicit_calls(text: str, offered: set[str] | None) -> list[PlannedCall]:
    """``call <tool> with <JSON object>`` (several joined by " and "): exactly those calls, for any
    tool the request offers. Nothing when one of them names a tool not offered or bad JSON."""
    calls: list[PlannedCall] = []
    decoder = json.JSONDecoder()
    for match in _CALL.finditer(text):
        name = match.group(1)
        try:
            arguments, _end = decoder.raw_decode(text, match.end())
        except json.JSONDecodeError:
            return []
        if not isinstance(arguments, dict) or (offered is not None and name not in offered):
            return []
        calls.append(PlannedCall(name, arguments))
    return calls


def plan_tool_calls(text: str, offered: set[str] | None = None) -> list[PlannedCall]:
    """The tool calls a user message asks for, in the order it asks for them."""
    explicit = explicit_calls(text, offered)
    if explicit:
        return explicit
    lowered = text.lower()
    customers = _CUSTOMER.findall(text)
    calls: list[PlannedCall] = []
    if ("approval" in lowered or "approve" in lowered) and ("ask" in lowered or "request" in lowered):
        calls.append(
            PlannedCall(
                "request_human_approval",
                {
                    "action": text.strip()[:300],
                    "context": "The user asked for a human to approve this.",
                    "urgency": "medium",
                },
            )
        )
        return calls
    if "refund" in lowered and customers:
        for segment in _refund_segments(text):
            amount = _AMOUNT.search(segment)
            customer = _CUSTOMER.search(segment)
            if amount and customer:
                value, currency = _amount(amount)
                arguments: dict[str, Any] = {"customer_id": customer.group(1), "amount": value, "currency": currency}
                because = _BECAUSE.search(segment)
                if because:  # a reason only when the user gave one: an optional field stays unset
                    arguments["reason"] = because.group(1).strip()
                calls.append(PlannedCall("issue_refund", arguments))
    if ("look up" in lowered or "lookup" in lowered) and customers:
        calls.append(PlannedCall("lookup_customer", {"customer_id": customers[0]}))
    if "email" in lowered and customers and "refund" not in lowered:
        calls.append(
            PlannedCall(
                "send_customer_email",
                {
                    "customer_id": customers[0],
                    "subject": "A message from support",
                    "body": text.strip()[:2000],
                },
            )
        )
    if "delete" in lowered and customers:
        calls.append(PlannedCall("delete_customer_data", {"customer_id": customers[0]}))
    return calls


_BECAUSE = re.compile(r"\bbecause\s+([^.;!?]{1,500})", re.IGNORECASE)


def _refund_segments(text: str) -> list[str]:
    """Split "€340 to #4821 and €120 to #4822" into one segment per amount."""
    starts = [m.start() for m in _AMOUNT.finditer(text)]
    if not starts:
        return []
    bounds = [*starts[1:], len(text)]
    segments = [text[s:e] for s, e in zip(starts, bounds, strict=True)]
    # A customer named before the first amount ("refund customer #1 €50") belongs to it.
    if not _CUSTOMER.search(segments[0]):
        segments[0] = text[: bounds[0]]
    return segments


def _amount(match: re.Match[str]) -> tuple[float, str]:
    number = match.group("num1") or match.group("num2") or match.group("num3")
    currency = _SYMBOLS.get(match.group("sym") or "") or (match.group("code") or match.group("code2") or "EUR")
    return float(number.replace(",", ".")), currency.upper()


def describe_outputs(outputs: list[tuple[str, str]]) -> str:
    """Plain words about each tool result; ``outputs`` is (tool name, output text) in call order."""
    sentences = [_describe(name, output) for name, output in outputs]
    return " ".join(sentences) if sentences else "Done."


def _describe(name: str, output: str) -> str:
    try:
        data = json.loads(output)
    except (json.JSONDecodeError, TypeError):
        return f"{name}: {output}"
    if not isinstance(data, dict):
        return f"{name}: {output}"
    tool = data.get("tool", name)
    notes = data.get("notes")
    who = f" by {data['approver']}" if data.get("approver") else ""
    decision = data.get("decision")
    execution = data.get("execution")
    changes = data.get("changes") or {}
    if data.get("error"):
        sentence = f"I could not run {tool}: {data['error']}."
    elif execution == "executed" and decision == "modified":
        changed = ", ".join(f"{k} from {v.get('from')} to {v.get('to')}" for k, v in changes.items())
        sentence = f"{tool} was approved with changes{who} ({changed}) and done with the changed values."
    elif execution == "executed":
        sentence = f"{tool} was approved{who} and done." if decision == "approved" else f"{tool} is done."
        if tool == "issue_refund" and isinstance(data.get("result"), dict):
            r = data["result"]
            sentence = (
                f"The refund of {r.get('amount')} {r.get('currency')} to customer #{r.get('customer_id')} "
                f"was approved{who} and issued."
            )
    elif execution == "scheduled":
        sentence = f"{tool} was approved{who} to run at {data.get('execute_at')}; it will run then."
    elif decision == "denied":
        sentence = f"{tool} was denied{who}, so it was not done."
    elif decision in ("expired", "escalated"):
        sentence = f"{tool} was not done: no approval came in time."
    elif execution == "failed":
        sentence = f"{tool} was attempted but failed."
    elif execution is None and decision is None:
        # A tool's own result (a hosted MCP call's output, a client's result): it ran.
        sentence = f"{tool} is done: {json.dumps(data, ensure_ascii=False)[:300]}"
    else:
        sentence = f"{tool} was not done ({data.get('message', decision or execution)})."
    if notes:
        sentence += f' Approver notes: "{notes}"'
    return sentence


_RESULTS_BLOCK = re.compile(r"```json\s*(\[.*?\])\s*```", re.DOTALL)


def tool_results_in(text: str) -> list[tuple[str, str]] | None:
    """Tool results handed over in a user message (how Signoff continues an expired Assistants run)."""
    match = _RESULTS_BLOCK.search(text)
    if not match:
        return None
    try:
        items = json.loads(match.group(1))
    except json.JSONDecodeError:
        return None
    return [(str(i.get("tool", "tool")), str(i.get("output", ""))) for i in items if isinstance(i, dict)]


def respond_to_user(text: str, offered: set[str] | None = None) -> tuple[str | None, list[PlannedCall]]:
    """The model's answer to a user message: (reply text, no calls) or (None, tool calls).
    ``offered``: the tool names the request offers (None: unknown, every rule applies)."""
    results = tool_results_in(text)
    if results is not None:
        return describe_outputs(results), []
    calls = plan_tool_calls(text, offered)
    if calls:
        return None, calls
    return reply_without_tools(text), []


def reply_without_tools(text: str) -> str:
    return "I can look up customers, issue refunds, email customers and delete customer data. How can I help?"
