"""Strict mode: tool schemas sent as OpenAI's strict form asks, and the model's nulls for optional
fields turned back into absence, so the approver never sees a placeholder."""

from __future__ import annotations

import pytest

from signoff.domain.catalog import CatalogTool
from signoff.domain.strict_schema import NotStrict, absent_nulls, strict_form
from signoff.domain.tools import ToolSpec, json_schema_check

REFUND = {
    "type": "object",
    "title": "Refund",
    "properties": {
        "customer_id": {"type": "string"},
        "amount": {"type": "number", "default": 1},
        "reason": {"type": "string", "maxLength": 100},
        "speed": {"type": "string", "enum": ["normal", "fast"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
        "tags": {"type": "array", "items": {"type": "object", "properties": {"label": {"type": "string"}}}},
    },
    "required": ["customer_id", "amount"],
}


def test_every_property_is_required_optional_ones_nullable_and_no_object_open():
    strict = strict_form(REFUND)
    assert strict["required"] == ["customer_id", "amount", "reason", "speed", "address", "tags"]
    assert strict["additionalProperties"] is False and "title" not in strict
    props = strict["properties"]
    assert props["customer_id"] == {"type": "string"}  # required: unchanged
    assert props["amount"] == {"type": "number"}  # annotations dropped
    assert props["reason"] == {"type": ["string", "null"], "maxLength": 100}
    assert props["speed"] == {"type": ["string", "null"], "enum": ["normal", "fast", None]}
    address = props["address"]
    assert address["type"] == ["object", "null"] and address["additionalProperties"] is False
    assert address["required"] == ["city", "zip"] and address["properties"]["zip"] == {"type": ["string", "null"]}
    item = props["tags"]["items"]
    assert item["required"] == ["label"] and item["additionalProperties"] is False
    assert REFUND["properties"]["reason"] == {"type": "string", "maxLength": 100}  # the original is untouched


@pytest.mark.parametrize("keyword", ["oneOf", "allOf", "not", "patternProperties", "if", "minProperties"])
def test_a_schema_strict_mode_cannot_express_is_refused_by_keyword(keyword):
    schema = {"type": "object", "properties": {"x": {"type": "string", keyword: [] if "Of" in keyword else {}}}}
    with pytest.raises(NotStrict) as refused:
        strict_form(schema)
    assert refused.value.keyword == keyword and "properties.x" in str(refused.value)


def test_open_objects_are_refused():
    with pytest.raises(NotStrict, match="additionalProperties"):
        strict_form({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}})


def test_the_models_nulls_for_optional_fields_are_absent_again_at_any_depth():
    sent = {
        "customer_id": "4821",
        "amount": 340,
        "reason": None,
        "speed": None,
        "address": {"city": "Lyon", "zip": None},
        "tags": [{"label": None}, {"label": "vip"}],
    }
    assert absent_nulls(sent, REFUND) == {
        "customer_id": "4821",
        "amount": 340,
        "address": {"city": "Lyon"},
        "tags": [{}, {"label": "vip"}],
    }


def test_a_null_the_schema_itself_allows_or_a_required_one_stays_for_the_check_to_judge():
    schema = {
        "type": "object",
        "properties": {"note": {"type": ["string", "null"]}, "customer_id": {"type": "string"}},
        "required": ["customer_id"],
    }
    assert absent_nulls({"note": None, "customer_id": None}, schema) == {"note": None, "customer_id": None}


def test_refs_are_followed_both_ways():
    schema = {
        "type": "object",
        "$defs": {"Addr": {"type": "object", "properties": {"zip": {"type": "string"}}}},
        "properties": {"address": {"$ref": "#/$defs/Addr"}},
        "required": ["address"],
    }
    assert strict_form(schema)["$defs"]["Addr"]["required"] == ["zip"]
    assert absent_nulls({"address": {"zip": None}}, schema) == {"address": {}}


def test_a_strict_tool_states_it_and_checks_what_the_model_meant():
    spec = ToolSpec(
        name="issue_refund",
        description="Refund",
        parameters=REFUND,
        check=json_schema_check("issue_refund", REFUND),
        strict=True,
    )
    definition = spec.openai_schema()
    assert definition["strict"] is True and definition["parameters"] == strict_form(REFUND)
    # A null for "reason" would fail the original schema ({"type": "string"}); absent, it passes.
    assert spec.parse_arguments('{"customer_id": "1", "amount": 5, "reason": null}') == {
        "customer_id": "1",
        "amount": 5,
    }
    loose = ToolSpec(name="t", description="d", parameters=REFUND, check=lambda d: d)
    assert loose.openai_schema()["strict"] is False and loose.openai_schema()["parameters"] is REFUND
    assert loose.parse_arguments('{"reason": null}') == {"reason": None}


def test_the_catalog_refuses_a_strict_tool_it_cannot_send_and_names_the_keyword():
    schema = {"type": "object", "properties": {"to": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}
    tool = {"description": "d", "parameters": schema, "executor": {"type": "client"}}
    with pytest.raises(ValueError, match=r"properties\.to uses 'oneOf'.*\"strict\": false"):
        CatalogTool.model_validate(tool)
    assert CatalogTool.model_validate({**tool, "strict": False}).strict is False
    assert CatalogTool.model_validate({**tool, "parameters": REFUND}).strict is True  # the default
