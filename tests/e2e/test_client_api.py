"""The client API contract: auth, bad input as clear 4xx JSON that changes nothing, idempotent retries."""

from __future__ import annotations

import json

import pytest
import requests

from local.evidence import conversation_count


def _conversation_count(stack) -> int:
    return conversation_count(stack.resources.refs["SignoffTable"])


def test_missing_key_is_401_and_wrong_key_is_403_at_the_gateway(stack):
    url = f"{stack.api_url}/conversations"
    missing = requests.post(url, json={"message": "hi"})
    assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}
    wrong = requests.post(url, json={"message": "hi"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json() == {"message": "Forbidden"}
    basic = requests.get(f"{url}/conv_x", headers={"Authorization": f"Basic {stack.config.api_key}"})
    assert basic.status_code == 403


LONG = "x" * 32_001


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'"hello"', 400, "invalid_json"),
        (b'{"message": "\\ud800"}', 400, "invalid_json"),
        (b"{}", 422, "validation_error"),
        (b'{"message": 42}', 422, "validation_error"),
        (b'{"message": null}', 422, "validation_error"),
        (b'{"message": ""}', 422, "validation_error"),
        (b'{"message": "   "}', 422, "validation_error"),
        (b'{"message": "hi", "unexpected": 1}', 422, "validation_error"),
        (b'{"message": "hi", "metadata": [1]}', 422, "validation_error"),
        (json.dumps({"message": "hi", "metadata": {"k": "v" * 5000}}).encode(), 422, "validation_error"),
        (json.dumps({"message": LONG}).encode(), 422, "message_too_long"),
        (json.dumps({"message": "x" * 300_000}).encode(), 413, "payload_too_large"),
        (b"\xff\xfe\x00garbage", 400, "invalid_json"),
        (b'{"message": "hi", "metadata": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}", 400, "invalid_json"),
        (b'{"message": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400, "invalid_json"),
        (b'{"message": "hi", "metadata": {"a": NaN}}', 400, "invalid_json"),
        (b'{"message": "hi", "metadata": {"a": Infinity}}', 400, "invalid_json"),
        (b'{"message": "hi", "metadata": {"a": -Infinity}}', 400, "invalid_json"),
        (b'{"message": "brackets [[{ in a string are not nesting"}', 202, None),
    ],
)
def test_bad_bodies_get_a_clear_4xx_and_change_nothing(stack, client, raw, status, code):
    before = _conversation_count(stack)
    response = client.post("/conversations", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    if code is None:  # the control case: deep-looking text inside a string is fine
        return
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert "Traceback" not in response.text
    assert _conversation_count(stack) == before


def test_bad_input_on_messages_route(client):
    cid = client.start("Please look up customer #5.")["conversation_id"]
    client.wait_status(cid, "idle")
    assert client.post(f"/conversations/{cid}/messages", data=b"nope").status_code == 400
    assert client.post(f"/conversations/{cid}/messages", json={"message": "hi", "metadata": {}}).status_code == 422
    missing = client.post(f"/conversations/conv_{'0' * 32}/messages", json={"message": "hi"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "conversation_not_found"
    odd = client.post("/conversations/../../etc/messages", json={"message": "hi"})
    assert odd.status_code == 404
    assert client.get(cid)["status"] == "idle"


def test_unknown_conversation_and_route_are_404(stack, client):
    for cid in (f"conv_{'0' * 32}", "conv_nope", "x" * 300):
        response = requests.get(f"{stack.api_url}/conversations/{cid}", headers=client.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "conversation_not_found"
    assert requests.get(f"{stack.api_url}/nowhere", headers=client.headers).status_code == 404


def test_unicode_and_html_are_stored_verbatim(client):
    text = "Bonjour 👋 <script>alert('x')</script> — ÿ"
    cid = client.start(text)["conversation_id"]
    view = client.wait_status(cid, "idle")
    assert view["messages"][0]["content"] == text


def test_idempotency_key_makes_retries_safe(stack, client):
    before = _conversation_count(stack)
    headers = {"Idempotency-Key": "retry-me-123"}
    first = client.post("/conversations", json={"message": "Please look up customer #8."}, headers=headers)
    second = client.post("/conversations", json={"message": "Please look up customer #8."}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert _conversation_count(stack) == before + 1
    reused = client.post("/conversations", json={"message": "other"}, headers=headers)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    too_long = client.post("/conversations", json={"message": "x"}, headers={"Idempotency-Key": "k" * 300})
    assert too_long.status_code == 400
    client.wait_status(first.json()["conversation_id"], "idle")


def test_get_conversation_shape(client):
    cid = client.start("Issue a €340 refund to customer #4821.")["conversation_id"]
    view = client.wait_status(cid, "awaiting_approval")
    assert set(view) >= {"conversation_id", "status", "messages", "actions"}
    assert set(view["messages"][0]) == {"role", "content", "created_at"}
    [action] = view["actions"]
    assert set(action) == {"call_id", "tool", "arguments", "gated", "decision", "execution"}
    assert set(action["decision"]) == {"id", "status", "resolved_by", "notes"}
    assert action["execution"] is None
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "deny")
    done = client.wait_status(cid, "idle")
    assert done["next_cursor"] is None  # one page holds it all

    first = client.get_json(f"/conversations/{cid}", params={"limit": 1})
    assert len(first["messages"]) == 1 and len(first["actions"]) == 1 and first["next_cursor"]
    second = client.get_json(f"/conversations/{cid}", params={"limit": 1, "cursor": first["next_cursor"]})
    assert second["messages"] and second["messages"][0] != first["messages"][0]
    for params in ({"limit": 0}, {"limit": 201}, {"page": 2}):
        refused = client.get_json(f"/conversations/{cid}", params=params, status=400)
        assert refused["error"]["code"] == "invalid_query", params
    refused = client.get_json(f"/conversations/{cid}", params={"cursor": "not-a-cursor"}, status=400)
    assert refused["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_body_that_is_not_json_by_its_content_type_is_415_and_changes_nothing(stack, client, content_type):
    before = _conversation_count(stack)
    response = client.post("/conversations", data=b'{"message": "hi"}', headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert _conversation_count(stack) == before


def test_json_content_types_with_parameters_are_accepted(client):
    response = client.post(
        "/conversations", data=b'{"message": "hi"}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 202, response.text
