"""Client notifications: which change of a conversation is worth telling its client, and where
Signoff may send it.

A conversation's record changes status in the same write that ends or pauses its turn, so its
change stream is the outbox: every change that matters is there exactly as stored, whatever
crashes afterwards. An event's id comes from the change itself, so every retry of it carries
the same ``webhook-id`` and receivers can drop duplicates.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

MAX_NOTIFY_URL_LENGTH = 2048

# Conversation status after the change → the event a client hears. The event's ``status`` is that
# conversation status, as ``GET /conversations/{id}`` shows it (docs/operations.md lists them).
EVENTS: dict[str, str] = {
    "awaiting_approval": "turn.awaiting_approval",
    "awaiting_client": "turn.awaiting_client",
    "idle": "turn.completed",
    "failed": "turn.failed",
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
    if status not in EVENTS or (old or {}).get("status") == status:
        return None
    event_type = EVENTS[status]
    event = TurnEvent(
        type=event_type,  # type: ignore[arg-type]
        conversation_id=str(new["conversation_id"]),
        turn_id=str(new.get("active_turn_id", "")),
        status=status,
        occurred_at=occurred_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    digest = hashlib.sha256(f"{change_id}|{event.conversation_id}|{event.turn_id}|{event_type}".encode()).hexdigest()
    return Notification(webhook_id=f"msg_{digest[:32]}", url=str(new["notify_url"]), event=event)


def url_allowed(url: str, prefixes: list[str]) -> bool:
    """True if the URL is http(s), names no credentials, requests exactly the path it spells, and,
    compared as a URL (``normalised_url``), starts with an allowed prefix that ends where a URL part
    ends (``http://localhost`` allows ``http://localhost:8080/x``, not ``http://localhost.evil.example``).

    A path with dot segments (``..``, ``%2e%2e``), an encoded slash or backslash, or an empty segment
    is refused outright: an HTTP client or the receiving server may resolve it to another path than
    the one the prefix was checked against (``/hooks/signoff/../../admin`` is ``/admin``)."""
    if not url or len(url) > MAX_NOTIFY_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    if "\\" in url:
        return False
    normalised = normalised_url(url)
    if normalised is None:
        return False
    for prefix in prefixes:
        wanted = normalised_url(prefix) if prefix else None
        if wanted is None:
            continue
        if normalised == wanted or (
            normalised.startswith(wanted) and (wanted.endswith("/") or normalised[len(wanted)] in "/:?#")
        ):
            return True
    return False


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalised_url(url: str) -> str | None:
    """The URL as it is compared (RFC 3986, section 6.2.2): scheme and host lower-cased, the default
    port dropped, percent-encoded unreserved characters decoded and other escapes upper-cased, the
    fragment dropped (it is never sent). None for anything that is not an http(s) URL with a host
    and no credentials, or whose path is ambiguous: dot segments, an encoded ``/`` or ``\\``, or an
    empty segment (``//``), raw or encoded."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    path = _PERCENT.sub(_decode_unreserved, parts.path)
    if re.search(r"%(2F|5C)", path) or "//" in path:
        return None
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    netloc = parts.hostname.lower() if ":" not in parts.hostname else f"[{parts.hostname.lower()}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    query = _PERCENT.sub(_decode_unreserved, parts.query)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query or url.split("#", 1)[0].endswith("?") else "")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else f"%{match.group(1).upper()}"


def parse_prefixes(raw: str) -> list[str]:
    return [p.strip() for p in raw.split(",") if p.strip()]
