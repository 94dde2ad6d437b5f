"""Client notifications over real HTTP: a receiver on loopback verifies every event with the
Standard Webhooks library; retries keep the webhook-id; a URL off the allow-list is refused."""

from __future__ import annotations

import pytest
import requests

from local.evidence import conversation_count
from local.receivers.webhook import WebhookReceiver
from tests.support import settings_changed, wait_for

SEED = "Issue a €340 refund to customer #4821."


@pytest.fixture
def receiver(stack):
    receiver = WebhookReceiver(stack.config.webhook_secret).start()
    yield receiver
    receiver.stop()


def _start(client, message: str, notify_url: str) -> requests.Response:
    return client.post("/conversations", json={"message": message, "notify_url": notify_url})


def _events_of(receiver: WebhookReceiver, conversation_id: str) -> list[dict]:
    return [e for e in receiver.events() if e["conversation_id"] == conversation_id]


def test_a_gated_turn_tells_its_client_it_waits_then_that_it_completed(client, receiver):
    response = _start(client, SEED, receiver.url)
    assert response.status_code == 202, response.text
    started = response.json()
    cid, tid = started["conversation_id"], started["turn_id"]
    assert client.get(cid)["notify_url"] == receiver.url

    waiting = wait_for(lambda: _events_of(receiver, cid), what="turn.awaiting_approval")
    assert [(e["type"], e["turn_id"], e["status"]) for e in waiting] == [
        ("turn.awaiting_approval", tid, "awaiting_approval")
    ]
    [decision_id] = client.pending_decision_ids(cid)
    client.resolve(decision_id, "approve")
    client.wait_status(cid, "idle")
    events = wait_for(lambda: len(_events_of(receiver, cid)) == 2 and _events_of(receiver, cid), what="turn.completed")
    assert [e["type"] for e in events] == ["turn.awaiting_approval", "turn.completed"]
    assert set(events[1]) == {"type", "conversation_id", "turn_id", "status", "occurred_at"}
    assert events[1]["status"] == "idle" and events[1]["turn_id"] == tid  # the status GET /conversations shows
    mine = [a for a in receiver.attempts if a.event and a.event["conversation_id"] == cid]
    assert all(a.verified for a in mine) and len(mine) == 2  # each delivered once: nothing failed


def test_a_refused_delivery_is_retried_with_the_same_webhook_id(client, receiver):
    receiver.refuse_next(2)
    response = _start(client, "What is the status of order 1001?", receiver.url)
    cid = response.json()["conversation_id"]
    [completed] = wait_for(lambda: _events_of(receiver, cid), timeout=30, what="the retried notification")
    assert completed["type"] == "turn.completed"
    attempts = [a for a in receiver.attempts if a.event and a.event["conversation_id"] == cid]
    assert [a.answered for a in attempts] == [503, 503, 200]
    assert len({a.webhook_id for a in attempts}) == 1


def test_a_receiver_with_another_secret_cannot_verify(client, stack):
    stranger = WebhookReceiver("whsec_" + "A" * 32).start()
    try:
        cid = _start(client, "What is the status of order 1001?", stranger.url).json()["conversation_id"]
        client.wait_status(cid, "idle")
        wait_for(lambda: stranger.attempts, what="a delivery attempt")
        assert not any(a.verified for a in stranger.attempts)
    finally:
        stranger.stop()


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",  # not on the list
        "http://localhost.evil.example/hooks",  # the prefix must end where a URL part ends
        "http://127.0.0.1@evil.example/hooks",  # credentials that move the host
        "http://localhost:80@evil.example/",
        "ftp://127.0.0.1/hooks",
        "http://127.0.0.1:notaport/",
        "javascript:alert(1)",
    ],
)
def test_a_notify_url_off_the_allow_list_is_refused_and_changes_nothing(client, stack, url):
    before = conversation_count(stack.resources.refs["SignoffTable"])
    response = _start(client, SEED, url)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "notify_url_not_allowed"
    assert conversation_count(stack.resources.refs["SignoffTable"]) == before


@pytest.mark.parametrize(
    "tail",
    [
        "../../admin/delete?all=1",  # the receiver got POST /admin/delete?all=1
        "%2e%2e/%2e%2e/admin/delete?all=1",
        "..%2f..%2fadmin",
        "a//b",
    ],
)
def test_a_notify_url_that_leaves_its_prefix_by_its_path_is_refused(client, stack, tail):
    prefix = "http://127.0.0.1:9/hooks/signoff/"
    with settings_changed(NOTIFY_URL_PREFIXES=prefix):
        before = conversation_count(stack.resources.refs["SignoffTable"])
        response = _start(client, SEED, prefix + tail)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "notify_url_not_allowed"
        assert conversation_count(stack.resources.refs["SignoffTable"]) == before
