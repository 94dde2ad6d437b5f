"""Identifiers: random, URL-safe, and recognisable by prefix."""

from __future__ import annotations

import re
import uuid

CONVERSATION_ID = re.compile(r"^conv_[0-9a-f]{32}$")


def new_conversation_id() -> str:
    return f"conv_{uuid.uuid4().hex}"


def new_turn_id() -> str:
    return f"turn_{uuid.uuid4().hex}"


def new_approval_id() -> str:
    return uuid.uuid4().hex
