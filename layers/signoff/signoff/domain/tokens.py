"""Callback tokens: an unguessable URL segment bound to one approval.

The token is ``v1.<approval_id>.<mac>`` where the MAC is HMAC-SHA256 over the approval id,
keyed with the callback signing key. Verifying needs no storage, so random or forged traffic
is turned away before any table read or outbound call. What the approval is *for* (tool,
arguments digest, call id) lives on the approval record and is re-checked before execution.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_VERSION = "v1"
CALLBACK_PATH = "/callbacks/handover/"  # where a token is presented: the route of the callback function
_ID_PATTERN = re.compile(r"^[a-z0-9]{8,64}$")
_MAC_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_TOKEN_LENGTH = 160


class InvalidCallbackToken(ValueError):
    """The token is malformed or its MAC does not match."""


def _mac(key: bytes, approval_id: str) -> str:
    raw = hmac.new(key, f"{_VERSION}:callback:{approval_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def issue_token(key: bytes, approval_id: str) -> str:
    if not _ID_PATTERN.fullmatch(approval_id):
        raise ValueError("approval id must be 8-64 lowercase letters or digits")
    return f"{_VERSION}.{approval_id}.{_mac(key, approval_id)}"


def parse_token(token: str) -> tuple[str, str]:
    """Split a token into (approval_id, mac) after checking its shape only."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidCallbackToken("malformed token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise InvalidCallbackToken("malformed token")
    _, approval_id, mac = parts
    if not _ID_PATTERN.fullmatch(approval_id) or not _MAC_PATTERN.fullmatch(mac):
        raise InvalidCallbackToken("malformed token")
    return approval_id, mac


def verify_token(key: bytes, token: str) -> str:
    """Return the approval id the token was issued for; raise ``InvalidCallbackToken`` otherwise."""
    approval_id, mac = parse_token(token)
    if not hmac.compare_digest(mac, _mac(key, approval_id)):
        raise InvalidCallbackToken("token does not match")
    return approval_id
