"""Cursors a client can carry but not make, and input at the edges of what a date or a number can
hold: each is a 400 that changes nothing, never a 500.

Before cursors were sealed, a well-formed hand-made cursor went straight into DynamoDB's
ExclusiveStartKey (500); a date like 0001-01-02 overflowed the default range before it (500);
1e400 in a body was read as infinity and stored as null.
"""

from __future__ import annotations

import base64
import json

import pytest

from local.evidence import conversation_count
from tests.support import SignoffClient


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


# Well-formed cursors as the store once encoded them: {"b": bucket, "k": key}, or {"m", "a"}.
HAND_MADE = [
    _b64({"b": "AUDIT#2026-12", "k": {"pk": "x", "sk": "y"}}),
    _b64({"b": "AUDIT#2026-12", "k": {"zz": {"Q": 1}}}),
    _b64({"b": "GRANTS", "k": {"pk": 1}}),
    _b64({"b": "GRANTS", "k": {"pk": {"S": "GRANT#x"}, "sk": {"S": "GRANT"}}}),
    _b64({"m": "MSG#", "a": "ACTION#"}),
    "e30.AAAAAAAAAAAAAAAAAAAAAA",  # "{}" with a MAC of zeros
]


def _denied_refunds(client: SignoffClient, n: int) -> str:
    cid = ""
    for _ in range(n):
        cid = client.start("Delete customer #cursor-1's data")["conversation_id"]
        [decision] = client.pending_decision_ids(cid)
        client.resolve(decision, "deny")
        client.wait_status(cid, "idle")
    return cid


@pytest.mark.parametrize("route", ["/approvals", "/grants"])
@pytest.mark.parametrize("cursor", HAND_MADE)
def test_a_hand_made_cursor_is_400_invalid_cursor(client, route, cursor):
    refused = client.get_json(route, params={"cursor": cursor}, status=400)
    assert refused["error"]["code"] == "invalid_cursor"


def test_a_cursor_works_only_for_the_tenant_and_the_query_it_came_from(acme, globex):
    cid = _denied_refunds(acme, 2)
    first = acme.get_json("/approvals", params={"limit": 1, "tool": "delete_customer_data"})
    cursor = first["next_cursor"]
    assert cursor and len(first["approvals"]) == 1
    # the same tenant and query: the next page
    second = acme.get_json("/approvals", params={"limit": 1, "tool": "delete_customer_data", "cursor": cursor})
    assert second["approvals"] and second["approvals"][0]["approval_id"] != first["approvals"][0]["approval_id"]
    # another tenant, another filter, another route: refused
    for client, params, route in (
        (globex, {"limit": 1, "tool": "delete_customer_data"}, "/approvals"),
        (acme, {"limit": 1, "tool": "issue_refund"}, "/approvals"),
        (acme, {"limit": 1}, "/approvals"),
        (acme, {}, "/grants"),
        (acme, {}, f"/conversations/{cid}"),
    ):
        refused = client.get_json(route, params={**params, "cursor": cursor}, status=400)
        assert refused["error"]["code"] == "invalid_cursor", (route, params)
    # an edited cursor: refused
    body, mac = cursor.split(".")
    edited = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    refused = acme.get_json(
        "/approvals", params={"limit": 1, "tool": "delete_customer_data", "cursor": edited}, status=400
    )
    assert refused["error"]["code"] == "invalid_cursor"


def test_a_conversation_cursor_belongs_to_its_conversation(client):
    one = _denied_refunds(client, 1)
    other = _denied_refunds(client, 1)
    page = client.get_json(f"/conversations/{one}", params={"limit": 1})
    assert page["next_cursor"]
    refused = client.get_json(f"/conversations/{other}", params={"limit": 1, "cursor": page["next_cursor"]}, status=400)
    assert refused["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "since_until",
    [
        {"until": "0001-01-02T00:00:00Z"},
        {"since": "0001-01-01T00:00:00Z", "until": "0001-01-02T00:00:00Z"},
        {"until": "9999-12-31T23:59:59-23:59"},
        {"since": "9999-12-31T00:00:00Z", "until": "9999-12-31T23:59:59Z"},
    ],
)
def test_a_simulation_over_dates_out_of_range_is_refused(client, since_until):
    response = client.post("/policy/simulate", json={"policy": {"tools": {}}, **since_until})
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5e309"])
def test_a_number_too_large_for_a_double_is_400_and_changes_nothing(client, stack, number):
    before = conversation_count(stack.resources.refs["SignoffTable"])
    body = '{"message": "hello", "metadata": {"n": ' + number + "}}"
    response = client.post("/conversations", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert conversation_count(stack.resources.refs["SignoffTable"]) == before


def test_a_tool_result_too_large_for_a_double_is_400(client):
    cid = client.start("Look up customer #limits-1")["conversation_id"]
    client.wait_status(cid, "idle")
    body = '{"results": [{"call_id": "call_x", "output": {"n": 1e400}}]}'
    response = client.post(
        f"/conversations/{cid}/tool-results", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json", response.text
