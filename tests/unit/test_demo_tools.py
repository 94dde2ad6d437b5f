import pytest

from signoff.adapters.tool_catalog import Invokers, build_registry, load_catalog
from signoff.domain.tools import InvalidToolArguments, ToolContext
from signoff.tools import demo


class RecordingEffects:
    def __init__(self):
        self.effects: dict[str, dict] = {}
        self.invocations = 0

    def record_effect(self, key, tool, arguments, result):
        self.invocations += 1
        return self.effects.setdefault(key, result)


def _unused(*_args):
    raise AssertionError("the shipped catalog has python tools only")


@pytest.fixture
def effects():
    recording = RecordingEffects()
    demo.use_effect_log(recording)
    yield recording
    demo.use_effect_log(None)


@pytest.fixture
def tools(effects):
    return build_registry(load_catalog(None, None), Invokers(http=_unused, lambda_=_unused, mcp=_unused))


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
        '{"customer_id": "4821", "amount": 10.001, "currency": "EUR"}',
    ],
)
def test_arguments_that_do_not_fit_the_schema_are_refused(tools, raw):
    with pytest.raises(InvalidToolArguments):
        tools.get("issue_refund").parse_arguments(raw)


def test_refund_runs_through_its_entry_point_and_keeps_the_first_effect_per_key(tools, effects):
    spec = tools.get("issue_refund")
    args = spec.parse_arguments({"customer_id": "#4821", "amount": 340, "currency": "EUR"})
    ctx = ToolContext(idempotency_key="conv:call_1", conversation_id="conv", call_id="call_1", tool="issue_refund")
    first = spec.run(args, ctx)
    second = spec.run(args, ctx)
    assert first == second == {"refund_id": "rf_call_1", "customer_id": "4821", "amount": "340", "currency": "EUR"}
    assert effects.invocations == 2 and list(effects.effects) == ["conv:call_1"]


def test_the_approver_reads_the_catalog_summary_filled_from_the_checked_arguments(tools):
    spec = tools.get("issue_refund")
    parsed = spec.parse_arguments({"customer_id": "#4821", "amount": 340, "currency": "EUR"})
    assert spec.summary(parsed) == "Issue a refund of 340.00 EUR to customer #4821"


def test_definitions_are_function_tools_with_json_schemas_from_the_pydantic_models(tools):
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
    assert tools.get("request_human_approval").is_sign_off_request
    assert not tools.get("issue_refund").is_sign_off_request
