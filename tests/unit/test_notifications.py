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
        ("idle", "turn.completed", "completed"),
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
    ["http://127.0.0.1", "http://127.0.0.1/", "http://127.0.0.1:8080/x?y=1", "https://hooks.example.com/signoff/a"],
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
    ],
)
def test_refused_urls(url):
    assert not url_allowed(url, PREFIXES)


def test_no_prefix_allows_nothing():
    assert not url_allowed("http://127.0.0.1/", [])
    assert not url_allowed("http://127.0.0.1/", parse_prefixes(" , "))
    assert parse_prefixes("http://a, https://b/ ,") == ["http://a", "https://b/"]
