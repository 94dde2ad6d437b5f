"""The approval policy: each kind of rule, fail-closed defaults, quorum, and the shipped file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from signoff.adapters.policy_source import DEFAULT_POLICY, InvalidPolicy, load_policy, parse_policy
from signoff.domain.policy import ApprovalPolicy

SHIPPED = load_policy(None, None)


@pytest.mark.parametrize(
    ("amount", "currency", "gated"),
    [
        (100, "EUR", False),
        ("100.00", "EUR", False),
        ("100.01", "EUR", True),
        (340, "EUR", True),
        (5, "USD", False),
        (101, "JPY", True),
        (99, "JPY", False),
    ],
)
def test_shipped_policy_gates_refunds_over_100(amount, currency, gated):
    args = {"customer_id": "1", "amount": amount, "currency": currency}
    assert SHIPPED.requires_approval("issue_refund", args) is gated


def test_shipped_policy_for_the_other_demo_tools():
    assert SHIPPED.requires_approval("send_customer_email", {"customer_id": "1", "subject": "s", "body": "b"})
    assert SHIPPED.requires_approval("delete_customer_data", {"customer_id": "1"})
    assert SHIPPED.urgency("delete_customer_data") == "critical"
    assert not SHIPPED.requires_approval("lookup_customer", {"customer_id": "1"})
    assert SHIPPED.options("issue_refund") == ["approve", "deny", "modify"]
    assert SHIPPED.options("delete_customer_data") == ["approve", "deny"]


def test_unknown_tools_and_unevaluable_rules_fail_closed():
    assert SHIPPED.requires_approval("wire_money", {})
    assert SHIPPED.requires_approval("issue_refund", {"customer_id": "1", "currency": "EUR"})  # no amount
    assert SHIPPED.requires_approval("issue_refund", {"customer_id": "1", "amount": "lots", "currency": "EUR"})


def test_per_currency_thresholds_without_a_wildcard_gate_other_currencies():
    policy = ApprovalPolicy.model_validate(
        {
            "tools": {
                "pay": {
                    "approval": "rules",
                    "rules": [
                        {
                            "kind": "amount_over",
                            "field": "amount",
                            "currency_field": "currency",
                            "thresholds": {"EUR": 50, "USD": 500},
                        }
                    ],
                }
            }
        }
    )
    assert not policy.requires_approval("pay", {"amount": 400, "currency": "USD"})
    assert policy.requires_approval("pay", {"amount": 400, "currency": "EUR"})
    assert policy.requires_approval("pay", {"amount": 1, "currency": "CHF"})


def test_matches_and_not_matches_rules():
    policy = ApprovalPolicy.model_validate(
        {
            "tools": {
                "send_email": {
                    "approval": "rules",
                    "rules": [
                        {"kind": "not_matches", "field": "to", "pattern": r"@example\.com$"},
                        {"kind": "matches", "field": "subject", "pattern": "(?i)legal|refund"},
                    ],
                }
            }
        }
    )
    assert not policy.requires_approval("send_email", {"to": "ann@example.com", "subject": "Hello"})
    assert policy.requires_approval("send_email", {"to": "bob@gmail.com", "subject": "Hello"})
    assert policy.requires_approval("send_email", {"to": "ann@example.com", "subject": "Your REFUND"})
    assert policy.requires_approval("send_email", {"subject": "Hello"})  # no recipient: fail closed


def test_quorum_approvers_and_per_tool_settings():
    policy = ApprovalPolicy.model_validate(
        {
            "defaults": {"urgency": "low", "timeout_minutes": 30},
            "tools": {
                "delete": {
                    "quorum": {"required": 2, "approvers": ["a@x.io", "b@x.io", "c@x.io"]},
                    "urgency": "critical",
                    "timeout_minutes": 240,
                },
                "other": {"approver": "ops@x.io"},
            },
        }
    )
    assert policy.approvers("delete", "fallback@x.io") == (["a@x.io", "b@x.io", "c@x.io"], 2)
    assert policy.approvers("other", "fallback@x.io") == (["ops@x.io"], 1)
    assert policy.approvers("unknown", "fallback@x.io") == (["fallback@x.io"], 1)
    assert policy.timeout_minutes("delete", 60) == 240 and policy.timeout_minutes("other", 60) == 30
    assert policy.urgency("other") == "low"


@pytest.mark.parametrize(
    "document",
    [
        {"tools": {"t": {"approval": "sometimes"}}},
        {"tools": {"t": {"approval": "rules"}}},
        {"tools": {"t": {"quorum": {"required": 3, "approvers": ["a@x", "b@x"]}}}},
        {"tools": {"t": {"approval": "rules", "rules": [{"kind": "matches", "field": "f", "pattern": "("}]}}},
        {"tools": {"t": {"timeout_minutes": 0}}},
        {"tools": {"t": {"unexpected": True}}},
        {"version": 2},
    ],
)
def test_a_bad_policy_is_refused_loudly(document):
    with pytest.raises(InvalidPolicy):
        parse_policy(json.dumps(document), "test")


def test_the_policy_can_come_from_another_file(tmp_path: Path):
    override = tmp_path / "policy.json"
    override.write_text(json.dumps({"tools": {"lookup_customer": {"approval": "always"}}}))
    policy = load_policy(None, str(override))
    assert policy.requires_approval("lookup_customer", {"customer_id": "1"})
    assert DEFAULT_POLICY.exists()


# -- patterns: matched in linear time, or refused when the policy is read ----------------------------
def _matching(pattern: str) -> dict:
    rule = {"kind": "matches", "field": "customer_id", "pattern": pattern}
    return {"tools": {"issue_refund": {"approval": "rules", "rules": [rule]}}}


def test_a_pattern_that_backtracks_exponentially_elsewhere_is_matched_in_linear_time():
    """``^(1+)+$`` over ones and a dash: Python's re takes 6 s at 26 ones and four times as long for
    every two more; RE2 answers at once however long the input."""
    policy = ApprovalPolicy.model_validate(_matching(r"^(1+)+$"))
    assert policy.requires_approval("issue_refund", {"customer_id": "1" * 40}) is True
    assert policy.requires_approval("issue_refund", {"customer_id": "1" * 5000 + "-"}) is False


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a)\1", "invalid escape sequence"),  # a backreference
        (r"(?=a)b", "invalid perl operator"),  # lookahead
        ("((a{100}){100}){100}", "invalid repetition size"),  # an automaton too large
        ("a" * 513, "at most 512 characters"),
    ],
)
def test_a_pattern_re2_cannot_run_in_linear_time_is_refused_when_the_policy_is_loaded(pattern, why):
    with pytest.raises(ValidationError, match=why):
        ApprovalPolicy.model_validate(_matching(pattern))


def test_a_policy_file_with_a_pathological_pattern_is_refused_on_load(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(_matching(r"^(\d+)\1$")))
    with pytest.raises(InvalidPolicy, match="linear time"):
        load_policy(None, str(path))
