"""Client notifications: which change of a conversation is worth telling its client, and where
Signoff may send it.

A conversation's record changes status in the same write that ends or pauses its turn, so its
change stream is the outbox: every change that matters is there exactly as stored, whatever
crashes afterwards. An event's id comes from the change itself, so every retry of it carries
the same ``webhook-id`` and receivers can drop duplicates.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

MAX_NOTIFY_URL_LENGTH = 2048

# Conversation status after the change → (event type, the turn's status as the event names it).
_EVENTS: dict[str, tuple[str, str]] = {
    "awaiting_approval": ("turn.awaiting_approval", "awaiting_approval"),
    "awaiting_client": ("turn.awaiting_client", "awaiting_client"),
    "idle": ("turn.completed", "completed"),
    "failed": ("turn.failed", "failed"),
}

EventType = Literal["turn.awaiting_approval", "turn.awaiting_client", "turn.completed", "turn.failed"]


class TurnEvent(BaseModel):
    type: EventType
    conversation_id: str
    turn_id: str
    status: str
    occurred_at: str


class Notification(BaseModel):
    """One event for one client URL; ``webhook_id`` is the same for every attempt to deliver it."""

    webhook_id: str
    url: str
    event: TurnEvent


def notification_for_change(
    change_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None, occurred_at: datetime
) -> Notification | None:
    """The notification a change of a conversation record calls for, if any: a conversation with a
    ``notify_url`` whose status moved to one the client hears about."""
    if not new or new.get("type") != "conversation" or not new.get("notify_url"):
        return None
    status = new.get("status")
    if status not in _EVENTS or (old or {}).get("status") == status:
        return None
    event_type, turn_status = _EVENTS[status]
    event = TurnEvent(
        type=event_type,  # type: ignore[arg-type]
        conversation_id=str(new["conversation_id"]),
        turn_id=str(new.get("active_turn_id", "")),
        status=turn_status,
        occurred_at=occurred_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    digest = hashlib.sha256(f"{change_id}|{event.conversation_id}|{event.turn_id}|{event_type}".encode()).hexdigest()
    return Notification(webhook_id=f"msg_{digest[:32]}", url=str(new["notify_url"]), event=event)


def url_allowed(url: str, prefixes: list[str]) -> bool:
    """True if the URL is http(s), names no credentials, and starts with an allowed prefix that ends
    where a URL part ends (``http://localhost`` allows ``http://localhost:8080/x``, not
    ``http://localhost.evil.example``)."""
    if not url or len(url) > MAX_NOTIFY_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc or "\\" in url:
        return False
    for prefix in prefixes:
        if not prefix:
            continue
        if url == prefix or (url.startswith(prefix) and (prefix.endswith("/") or url[len(prefix)] in "/:?#")):
            return True
    return False


def parse_prefixes(raw: str) -> list[str]:
    return [p.strip() for p in raw.split(",") if p.strip()]
