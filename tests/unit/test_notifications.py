"""Which conversation changes a client hears of, under which id, and which URLs Signoff may call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from signoff.domain.notifications import notification_for_change, parse_prefixes, url_allowed

WHEN = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
PREFIXES = ["http://127.0.0.1", "https://hooks.example.com/signoff/"]


def _meta(status: str, **extra) -> dict:
    return {
        "type": "conversation",
        "conversation_id": "conv_1",
        "active_turn_id": "turn_1",
        "status": status,
        "notify_url": "http://127.0.0.1:9/h",
        **extra,
    }


@pytest.mark.parametrize(
    ("status", "event_type", "turn_status"),
    [
        ("awaiting_approval", "turn.awaiting_approval", "awaiting_approval"),
        ("idle", "turn.completed", "idle"),
        ("failed", "turn.failed", "failed"),
    ],
)
def test_a_status_change_a_client_hears_of(status, event_type, turn_status):
    notification = notification_for_change("c1", _meta("running"), _meta(status), WHEN)
    assert notification is not None
    assert notification.event.model_dump() == {
        "type": event_type,
        "conversation_id": "conv_1",
        "turn_id": "turn_1",
        "status": turn_status,
        "occurred_at": "2026-11-26T10:00:00Z",
    }
    assert notification.url == "http://127.0.0.1:9/h"


def test_no_notification_without_a_status_change_a_url_or_a_conversation():
    assert notification_for_change("c", _meta("idle"), _meta("idle"), WHEN) is None  # no change
    assert notification_for_change("c", _meta("idle"), _meta("running"), WHEN) is None  # not told
    assert notification_for_change("c", _meta("running"), _meta("idle", notify_url=None), WHEN) is None
    turn = {**_meta("completed"), "type": "turn"}
    assert notification_for_change("c", None, turn, WHEN) is None
    assert notification_for_change("c", _meta("idle"), None, WHEN) is None  # removed


def test_the_webhook_id_is_the_changes_own_so_retries_keep_it():
    first = notification_for_change("change-1", _meta("running"), _meta("idle"), WHEN)
    again = notification_for_change("change-1", _meta("running"), _meta("idle"), WHEN)
    other = notification_for_change("change-2", _meta("running"), _meta("idle"), WHEN)
    assert first and again and other
    assert first.webhook_id == again.webhook_id != other.webhook_id
    assert first.webhook_id.startswith("msg_")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1",
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/x?y=1",
        "https://hooks.example.com/signoff/a",
        # the same URL spelt otherwise: compared as URLs, not as strings
        "HTTPS://Hooks.Example.COM/signoff/a",
        "https://hooks.example.com:443/signoff/a",
        "https://hooks.example.com/%73ignoff/a",  # %73 is "s"
        "https://hooks.example.com/signoff/a%2Db?x=%7e",
        "https://hooks.example.com/signoff/a.b/c..d",  # dots inside a segment are a name, not a step
    ],
)
def test_allowed_urls(url):
    assert url_allowed(url, PREFIXES)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.10/x",  # the prefix must end where a URL part ends
        "http://127.0.0.1.evil.example/",
        "http://127.0.0.1@evil.example/",
        "http://127.0.0.1:80@evil.example/",
        "https://hooks.example.com/signoffx",
        "https://hooks.example.com/other",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1/\\@evil.example",
        "http://127.0.0.1/ x",
        "http://127.0.0.1/\nx",
        "ftp://127.0.0.1/",
        "",
        "http://127.0.0.1/" + "a" * 2100,
        # out of the prefix by dot segments, which a client or the server resolves
        "https://hooks.example.com/signoff/../../admin/delete?all=1",
        "https://hooks.example.com/signoff/%2e%2e/%2E%2E/admin/delete?all=1",
        "https://hooks.example.com/signoff/.%2e/admin",
        "https://hooks.example.com/signoff/./a",
        "https://hooks.example.com/signoff/a/..",
        # an encoded slash or backslash, which some servers decode into a path step
        "https://hooks.example.com/signoff/..%2f..%2fadmin",
        "https://hooks.example.com/signoff/a%2Fb",
        "https://hooks.example.com/signoff/a%5c..%5cadmin",
        # empty segments, which some servers collapse
        "https://hooks.example.com/signoff//admin",
        "https://hooks.example.com//signoff/a",
        "https://hooks.example.com:444/signoff/a",  # another port is another server
        "https://hooks.example.com.:443/signoff/a",
    ],
)
def test_refused_urls(url):
    assert not url_allowed(url, PREFIXES)


def test_no_prefix_allows_nothing():
    assert not url_allowed("http://127.0.0.1/", [])
    assert not url_allowed("http://127.0.0.1/", parse_prefixes(" , "))
    assert parse_prefixes("http://a, https://b/ ,") == ["http://a", "https://b/"]


# -- the relay ------------------------------------------------------------------------------------
class _Sender:
    def __init__(self, fail: int = 0):
        self.fail, self.sent = fail, []

    def send(self, notification) -> None:
        from signoff.domain.ports import DeliveryFailed

        if self.fail:
            self.fail -= 1
            raise DeliveryFailed("503 from the client")
        self.sent.append(notification)


class _Queue:
    def __init__(self):
        self.sent = []

    def send(self, notification) -> None:
        self.sent.append(notification)


def _change(n: int, status: str, url: str = "http://127.0.0.1:9/h"):
    from signoff.logic.notifications import RecordChange

    return RecordChange(f"ch{n}", _meta("running", notify_url=url), _meta(status, notify_url=url), WHEN)


def test_fan_out_queues_one_notification_per_change_worth_telling(counted):
    from signoff.logic.notifications import NotificationRelay

    queue = _Queue()
    relay = NotificationRelay(queue, _Sender(), PREFIXES)
    changes = [_change(1, "idle"), _change(2, "running"), _change(3, "failed", url="https://evil.example/x")]
    assert relay.fan_out(changes) == 1
    assert [n.event.type for n in queue.sent] == ["turn.completed"]
    assert counted() == {"NotificationsRefused": 1}


def test_delivery_retries_with_a_doubling_delay_capped_at_six_hours(counted):
    from signoff.logic.notifications import MAX_RETRY_DELAY_SECONDS, NotificationRelay

    sender = _Sender(fail=3)
    relay = NotificationRelay(_Queue(), sender, PREFIXES, retry_base_seconds=30)
    notification = notification_for_change("c", _meta("running"), _meta("idle"), WHEN)
    assert [relay.deliver(notification, attempt) for attempt in (1, 2, 3)] == [30, 60, 120]
    assert relay.deliver(notification, 4) is None and sender.sent == [notification]
    assert counted() == {"NotificationsRetried": 3, "NotificationsDelivered": 1}
    always = NotificationRelay(_Queue(), _Sender(fail=99), PREFIXES, retry_base_seconds=30)
    assert always.deliver(notification, 30) == MAX_RETRY_DELAY_SECONDS == 6 * 3600
    assert NotificationRelay(_Queue(), _Sender(fail=1), PREFIXES, retry_base_seconds=0).deliver(notification, 0) == 1


def test_a_url_no_longer_allowed_is_dropped_not_retried(counted):
    from signoff.logic.notifications import NotificationRelay

    sender = _Sender()
    relay = NotificationRelay(_Queue(), sender, ["https://hooks.example.com/signoff/"])
    notification = notification_for_change("c", _meta("running"), _meta("idle"), WHEN)
    assert relay.deliver(notification, 1) is None and sender.sent == []
    assert counted() == {"NotificationsRefused": 1}


# -- the callback's own URL, from the request Handover made ------------------------------------------
def _callback_event(domain, path="/callbacks/handover/tok", proto=None):
    headers = {"x-forwarded-proto": proto} if proto else {}
    return {"rawPath": path, "headers": headers, "requestContext": {"domainName": domain}}


@pytest.mark.parametrize(
    ("event", "url"),
    [
        (_callback_event("abc.execute-api.eu-west-1.amazonaws.com"), "https://abc.execute-api.eu-west-1.amazonaws.com"),
        (
            _callback_event("api.example.com", "/signoff/callbacks/handover/t", "https"),
            "https://api.example.com/signoff",
        ),
        (_callback_event("127.0.0.1:3000", proto="http"), "http://127.0.0.1:3000"),
        (_callback_event("h.example", proto="gopher"), "https://h.example"),
        (_callback_event(""), None),
        (_callback_event("evil.example/x"), None),
        ({}, None),
    ],
)
def test_the_callbacks_public_url_is_the_one_it_was_called_on(event, url):
    from signoff.api.origin import public_base_url

    assert public_base_url(event) == url


def test_the_operations_guide_lists_every_event_with_its_status():
    """docs/operations.md's table of events is the code's: each type with the conversation status it carries."""
    from pathlib import Path
    from typing import get_args

    from signoff.domain.notifications import EVENTS, EventType

    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    rows = {
        cells[1].strip("` "): cells[2].strip("` ")
        for line in text.splitlines()
        if line.startswith("| `turn.") and len(cells := line.split("|")) > 3
    }
    assert rows == {event: status for status, event in EVENTS.items()}
    assert set(rows) == set(get_args(EventType))
