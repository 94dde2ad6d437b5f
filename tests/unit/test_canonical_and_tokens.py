from decimal import Decimal

import pytest

from signoff.domain.canonical import action_digest, canonical_json
from signoff.domain.tokens import InvalidCallbackToken, issue_token, verify_token

KEY = b"k" * 32


def test_canonical_json_is_order_and_number_spelling_independent():
    assert canonical_json({"b": 1, "a": 340.0}) == canonical_json({"a": Decimal("340"), "b": 1}) == '{"a":340,"b":1}'
    assert canonical_json({"x": "€"}) == '{"x":"€"}'
    assert canonical_json({"a": 0.5}) != canonical_json({"a": 0.50001})


def test_digest_binds_tool_arguments_and_call_id():
    base = action_digest("issue_refund", {"amount": 340, "customer_id": "4821"}, "call_1")
    assert base == action_digest("issue_refund", {"customer_id": "4821", "amount": 340.0}, "call_1")
    assert base != action_digest("issue_refund", {"amount": 341, "customer_id": "4821"}, "call_1")
    assert base != action_digest("issue_refund", {"amount": 340, "customer_id": "4821"}, "call_2")
    assert base != action_digest("send_customer_email", {"amount": 340, "customer_id": "4821"}, "call_1")


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_token_round_trip_and_forgeries():
    token = issue_token(KEY, "a1b2c3d4e5f6a7b8")
    assert verify_token(KEY, token) == "a1b2c3d4e5f6a7b8"
    approval_id, mac = token.split(".")[1:]
    forgeries = [
        issue_token(b"another key" * 3, "a1b2c3d4e5f6a7b8"),  # foreign key
        f"v1.{'f' * 16}.{mac}",  # MAC of another approval
        token[:-1],  # truncated
        token + "A",
        "v1." + approval_id,
        "",
        "v1..",
        "x" * 1000,
        token.replace("v1", "v2", 1),
        f"v1.{approval_id.upper()}.{mac}",
    ]
    for forged in forgeries:
        with pytest.raises(InvalidCallbackToken):
            verify_token(KEY, forged)


def test_issue_token_refuses_odd_ids():
    with pytest.raises(ValueError):
        issue_token(KEY, "../../etc")
