"""The agent catalog: what it accepts, what it refuses (naming the entry), and how JSON Schema
tools check their arguments and describe a call."""

import json
import re

import pytest

from signoff.adapters.tool_catalog import InvalidCatalog, Invokers, build_registry, parse_catalog
from signoff.domain.catalog import split_mcp_name
from signoff.domain.tools import InvalidToolArguments, ToolContext, ToolFailed

INVOICE = {
    "description": "Create an invoice.",
    "parameters": {
        "type": "object",
        "properties": {"customer_id": {"type": "string"}, "amount": {"type": "number", "exclusiveMinimum": 0}},
        "required": ["customer_id", "amount"],
        "additionalProperties": False,
    },
    "executor": {"type": "http", "url": "https://billing.example.com/tools/create_invoice"},
    "summary": "Invoice {customer_id} for {amount}",
}


def _catalog(**changes):
    doc = {
        "default_agent": "billing",
        "agents": {"billing": {"instructions": "Bill.", "tools": ["create_invoice"]}},
        "tools": {"create_invoice": INVOICE},
    }
    doc.update(changes)
    return json.dumps(doc)


class RecordingHttp:
    def __init__(self):
        self.calls = []

    def invoke(self, executor, arguments, ctx):
        self.calls.append((executor.url, arguments, ctx.idempotency_key))
        return {"invoice_id": "inv_1"}


def _registry(text, http=None):
    def none(*_):
        raise AssertionError("not used")

    return build_registry(parse_catalog(text, "test"), Invokers(http=lambda: http, lambda_=none, mcp=none))


def test_a_json_schema_tool_checks_arguments_and_runs_through_its_executor():
    http = RecordingHttp()
    spec = _registry(_catalog(), http).get("create_invoice")
    with pytest.raises(InvalidToolArguments, match="amount"):
        spec.parse_arguments({"customer_id": "c1", "amount": -1})
    with pytest.raises(InvalidToolArguments, match="Additional properties"):
        spec.parse_arguments({"customer_id": "c1", "amount": 5, "note": "x"})
    args = spec.parse_arguments('{"customer_id": "c1", "amount": 5}')
    assert spec.summary(args) == "Invoice c1 for 5"
    ctx = ToolContext("k1", "conv", "call", "create_invoice")
    assert spec.run(args, ctx) == {"invoice_id": "inv_1"}
    assert http.calls == [
        ("https://billing.example.com/tools/create_invoice", {"customer_id": "c1", "amount": 5}, "k1")
    ]


def test_a_summary_naming_an_absent_argument_falls_back_to_the_generic_line():
    tool = {**INVOICE, "summary": "Invoice {customer} for {amount}"}
    spec = _registry(_catalog(tools={"create_invoice": tool})).get("create_invoice")
    assert (
        spec.summary({"customer_id": "c1", "amount": 5}) == 'Run create_invoice with {"amount": 5, "customer_id": "c1"}'
    )


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"default_agent": "nobody"}, "default_agent 'nobody'"),
        ({"agents": {"billing": {"instructions": "Bill.", "tools": ["missing"]}}}, "agents.billing.tools: 'missing'"),
        ({"agents": {"billing": {"instructions": "x", "mcp_servers": ["gh"]}}}, "agents.billing.mcp_servers: 'gh'"),
        ({"tools": {"create_invoice": {**INVOICE, "parameters": {"type": "array"}}}}, "tools.create_invoice"),
        (
            {"tools": {"create_invoice": {**INVOICE, "parameters": {"type": "object", "properties": 3}}}},
            "tools.create_invoice",
        ),
        (
            {
                "tools": {
                    "create_invoice": {**INVOICE, "executor": {"type": "http", "url": "http://billing.example.com"}}
                }
            },
            "tools.create_invoice.executor.http.url",
        ),
        (
            {"tools": {"create_invoice": {**INVOICE, "executor": {"type": "lambda", "function_arn": "close"}}}},
            "tools.create_invoice.executor.lambda.function_arn",
        ),
        ({"tools": {"create_invoice": {**INVOICE, "executor": {"type": "smoke"}}}}, "tools.create_invoice.executor"),
        ({"tools": {"bad name": INVOICE}}, "tools.bad name"),
        (
            {"tools": {"create_invoice": {k: v for k, v in INVOICE.items() if k != "parameters"}}},
            "parameters (a JSON Schema) is required",
        ),
    ],
)
def test_a_bad_catalog_is_refused_naming_the_bad_entry(changes, named):
    with pytest.raises(InvalidCatalog) as raised:
        parse_catalog(_catalog(**changes), "test")
    assert named in str(raised.value)


def test_a_python_entry_point_that_cannot_be_imported_is_refused_by_name():
    tool = {"description": "x", "executor": {"type": "python", "entry": "signoff.tools.demo:nothing_here"}}
    text = _catalog(tools={"create_invoice": INVOICE, "ghost": tool})
    with pytest.raises(InvalidCatalog, match=re.escape("tools.ghost: the entry point signoff.tools.demo:nothing_here")):
        _registry(text)


def test_loopback_http_is_allowed_for_the_local_stack_only():
    local = {**INVOICE, "executor": {"type": "http", "url": "http://127.0.0.1:3005/tools/x"}}
    assert parse_catalog(_catalog(tools={"create_invoice": local}), "test")


def test_mcp_names_split_into_server_and_tool():
    assert split_mcp_name("tracker__create_ticket") == ("tracker", "create_ticket")
    assert split_mcp_name("create_ticket") is None


def test_tool_failed_carries_what_the_tool_said():
    failure = ToolFailed("refused", {"error": "no"})
    assert failure.detail == {"error": "no"} and str(failure) == "refused"
