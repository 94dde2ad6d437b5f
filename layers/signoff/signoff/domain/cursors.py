"""Page cursors a client can carry but not make: each is the store's own position, sealed with a MAC
over the tenant and the query it came from.

A store's position (a DynamoDB key, a message id) reaches the table as it is, so a cursor a client
made by hand, or took from another tenant's or another query's page, must never be opened: it is
``InvalidCursor`` before any read. The format is ``<position, base64url>.<MAC, base64url>``; the MAC
is HMAC-SHA256 (first 16 bytes) over a scope (route, tenant, the query's filters) and the position.
Cursors are not encrypted: a position holds ids the caller can already read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping

from signoff.domain.stores import InvalidCursor

_MAC_BYTES = 16


def cursor_scope(route: str, tenant: str, query: Mapping[str, object]) -> str:
    """What a cursor is bound to: the route, the tenant, and the query's filters (every parameter the
    client gave except the cursor itself and the page size)."""
    filters = {k: str(v) for k, v in query.items() if k not in ("cursor", "limit") and v is not None}
    return json.dumps([route, tenant, filters], sort_keys=True, separators=(",", ":"))


class CursorSeal:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("a cursor key needs at least 16 bytes")
        self._key = key

    def seal(self, position: str | None, scope: str) -> str | None:
        """The cursor a client gets for ``position`` (None stays None: the last page)."""
        if position is None:
            return None
        raw = position.encode("utf-8")
        return f"{_b64(raw)}.{_b64(self._mac(raw, scope))}"

    def open(self, cursor: str | None, scope: str) -> str | None:
        """The position a cursor this seal made for the same scope holds; InvalidCursor otherwise."""
        if cursor is None:
            return None
        body, _, mac = cursor.partition(".")
        try:
            raw, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursor("cursor is not valid") from exc
        if not mac or not hmac.compare_digest(given, self._mac(raw, scope)):
            raise InvalidCursor("cursor is not valid for this query")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidCursor("cursor is not valid") from exc

    def _mac(self, raw: bytes, scope: str) -> bytes:
        message = scope.encode("utf-8") + b"\x1f" + raw
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def cursor_key(secret: bytes) -> bytes:
    """The MAC key, derived from a secret the stack holds (a key of its own, never reused as is)."""
    return hmac.new(secret, b"signoff/page-cursor/v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
