"""The pure rules of budgets and grants: what a call charges, what a grant covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from signoff.domain.budgets import Budget, UnreadableCharge, charge_for, live_total, money
from signoff.domain.grants import Grant, caps_of, grant_id_for, scope_values
from signoff.domain.policy import ApprovalPolicy

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BUDGET = Budget(
    name="refunds",
    tools=["issue_refund"],
    sum="amount",
    group_by=["customer_id", "currency"],
    window_hours=24,
    limit=Decimal(100),
)


def test_a_charge_names_its_group_by_value_and_hashes_the_key():
    charge = charge_for(BUDGET, {"amount": 99.5, "customer_id": "4821", "currency": "eur"})
    assert charge.amount == Decimal("99.5") and charge.group == {"customer_id": "4821", "currency": "EUR"}
    same = charge_for(BUDGET, {"amount": 1, "customer_id": " 4821 ", "currency": "EUR"})
    other = charge_for(BUDGET, {"amount": 1, "customer_id": "4822", "currency": "EUR"})
    assert charge.group_id == same.group_id != other.group_id
    assert "4821" not in charge.group_id
    elsewhere = charge_for(BUDGET, {"amount": 99.5, "customer_id": "4821", "currency": "EUR"}, "globex")
    assert elsewhere.group_id != charge.group_id  # each tenant counts on its own counters


@pytest.mark.parametrize(
    "arguments",
    [
        {"customer_id": "1", "currency": "EUR"},  # no amount
        {"amount": "lots", "customer_id": "1", "currency": "EUR"},
        {"amount": -5, "customer_id": "1", "currency": "EUR"},
        {"amount": "NaN", "customer_id": "1", "currency": "EUR"},
        {"amount": 5, "currency": "EUR"},  # no group value
        {"amount": 5, "customer_id": "", "currency": "EUR"},
        {"amount": 5, "customer_id": {"x": 1}, "currency": "EUR"},
    ],
)
def test_a_call_the_budget_cannot_count_is_not_let_through_on_it(arguments):
    with pytest.raises(UnreadableCharge):
        charge_for(BUDGET, arguments)


def test_the_total_is_a_rolling_window_not_a_calendar_day():
    reservations = {
        "a": {"amount": "40", "at": (NOW - timedelta(hours=23, minutes=59)).isoformat()},
        "b": {"amount": "50", "at": (NOW - timedelta(hours=24, seconds=1)).isoformat()},
        "c": {"amount": "10.5", "at": NOW.isoformat()},
    }
    assert live_total(reservations, NOW, BUDGET.window()) == Decimal("50.5")
    assert money(Decimal("100.0")) == "100" and money(Decimal("99.50")) == "99.5"


def test_policies_with_budgets_are_checked_at_load():
    with pytest.raises(ValidationError):
        ApprovalPolicy.model_validate({"budgets": [BUDGET.model_dump(), BUDGET.model_dump()]})
    with pytest.raises(ValidationError):
        Budget.model_validate({**BUDGET.model_dump(), "window_hours": 0})
    with pytest.raises(ValidationError):
        Budget.model_validate({**BUDGET.model_dump(), "over_limit": "ignore"})
    policy = ApprovalPolicy.model_validate({"budgets": [BUDGET.model_dump()]})
    assert policy.budgets_for("issue_refund") == [BUDGET] and policy.budgets_for("lookup_customer") == []


def _grant(**changes) -> Grant:
    scope = {"customer_id": "4821", "currency": "EUR"}
    data = {
        "grant_id": grant_id_for("acme", "issue_refund", scope, "dec_1"),
        "tenant": "acme",
        "tool": "issue_refund",
        "scope": scope,
        "caps": {"amount": "300"},
        "origin_conversation_id": "conv_1",
        "origin_call_id": "call_1",
        "created_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(hours=2)).isoformat(),
        "max_uses": 2,
        "uses_left": 2,
    }
    return Grant.model_validate({**data, **changes})


@pytest.mark.parametrize(
    ("tool", "arguments", "covered"),
    [
        ("issue_refund", {"customer_id": "4821", "currency": "eur", "amount": 300, "reason": "x"}, True),
        ("issue_refund", {"customer_id": "4821", "currency": "EUR", "amount": 20.5}, True),
        ("issue_refund", {"customer_id": "4821", "currency": "EUR", "amount": 300.01}, False),
        ("issue_refund", {"customer_id": "4822", "currency": "EUR", "amount": 20}, False),
        ("issue_refund", {"customer_id": "4821", "currency": "USD", "amount": 20}, False),
        ("issue_refund", {"customer_id": "4821", "currency": "EUR"}, False),  # the capped amount missing
        ("issue_refund", {"customer_id": "4821", "currency": "EUR", "amount": "20"}, False),  # not a number
        ("send_customer_email", {"customer_id": "4821", "currency": "EUR", "amount": 20}, False),
    ],
)
def test_what_a_grant_covers(tool, arguments, covered):
    assert _grant().covers("acme", tool, arguments) is covered
    assert not _grant().covers("globex", tool, arguments)  # never another tenant's call


def test_a_grant_is_live_until_used_up_expired_or_revoked():
    assert _grant().live(NOW)
    assert not _grant(uses_left=0).live(NOW)
    assert not _grant().live(NOW + timedelta(hours=3))
    assert not _grant(revoked_at=NOW.isoformat()).live(NOW)


def test_caps_are_the_numbers_of_the_approved_call_and_the_id_is_one_per_decision():
    assert caps_of({"amount": 300, "customer_id": 4821, "reason": "x", "urgent": True}, ["customer_id"]) == {
        "amount": "300"
    }
    assert scope_values(["customer_id", "currency"], {"customer_id": 7, "currency": "usd"}) == {
        "customer_id": "7",
        "currency": "USD",
    }
    assert scope_values(["customer_id"], {}) is None
    scope = {"customer_id": "1"}
    one = grant_id_for("acme", "t", scope, "dec_a")
    assert one == grant_id_for("acme", "t", scope, "dec_a") != grant_id_for("acme", "t", scope, "dec_b")
    assert one.split("_")[1] != grant_id_for("globex", "t", scope, "dec_a").split("_")[1]  # another partition


def test_which_tools_cannot_be_granted():
    policy = ApprovalPolicy.model_validate(
        {
            "tools": {
                "refund": {"approval": "always", "grant_scope": ["customer_id"]},
                "wire": {
                    "approval": "always",
                    "grant_scope": ["x"],
                    "quorum": {"required": 2, "approvers": ["a", "b"]},
                },
                "delete": {"approval": "always", "urgency": "critical", "grant_scope": ["customer_id"]},
                "email": {"approval": "always"},
            }
        }
    )
    assert policy.ungrantable("refund") is None
    assert "quorum" in policy.ungrantable("wire")
    assert "critical" in policy.ungrantable("delete")
    assert "grant_scope" in policy.ungrantable("email")
    assert "grant_scope" in policy.ungrantable("not_in_policy")


def test_key_lines_name_their_tenant():
    from signoff.domain.tenants import InvalidKeyLine, parse_key_line

    assert parse_key_line("acme:k-1") == ("acme", "k-1")
    assert parse_key_line("plain-key") == ("default", "plain-key")
    assert parse_key_line("   ") is None
    for bad in ("Acme:k", ":k", "acme:", "a b:k"):
        with pytest.raises(InvalidKeyLine):
            parse_key_line(bad)
