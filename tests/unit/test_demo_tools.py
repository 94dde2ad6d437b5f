import pytest

from signoff.domain.tools import InvalidToolArguments
from signoff.tools.demo import build_demo_tools


class RecordingEffects:
    def __init__(self):
        self.effects: dict[str, dict] = {}

    def record_effect(self, key, tool, arguments, result):
        return self.effects.setdefault(key, result)


@pytest.fixture
def tools():
    return build_demo_tools(RecordingEffects())


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"customer_id": "4821", "amount": -5, "currency": "EUR"}',
        '{"customer_id": "4821", "amount": 10, "currency": "euro"}',
        '{"customer_id": "4821", "amount": 10, "currency": "EUR", "extra": true}',
        '{"amount": 10, "currency": "EUR"}',
        '{"customer_id": "../x", "amount": 10, "currency": "EUR"}',
    ],
)
def test_arguments_that_do_not_fit_the_schema_are_refused(tools, raw):
    with pytest.raises(InvalidToolArguments):
        tools.get("issue_refund").parse_arguments(raw)


def test_refund_effect_is_written_once_per_key(tools):
    from signoff.domain.tools import ToolContext

    spec = tools.get("issue_refund")
    args = spec.parse_arguments({"customer_id": "4821", "amount": 340, "currency": "EUR"})
    ctx = ToolContext(idempotency_key="conv:call_1", conversation_id="conv", call_id="call_1")
    first = spec.run(args, ctx)
    second = spec.run(args, ctx)
    assert first == second


def test_definitions_are_function_tools_with_json_schemas(tools):
    names = {d["name"]: d for d in tools.definitions()}
    assert set(names) == {
        "lookup_customer",
        "issue_refund",
        "send_customer_email",
        "delete_customer_data",
        "request_human_approval",
    }
    assert names["issue_refund"]["parameters"]["type"] == "object"
    assert "amount" in names["issue_refund"]["parameters"]["required"]
