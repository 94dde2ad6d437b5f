"""Identifiers: random, URL-safe, and recognisable by prefix."""

from __future__ import annotations

import re
import time
import uuid

CONVERSATION_ID = re.compile(r"^conv_[0-9a-f]{32}$")


def new_conversation_id() -> str:
    return f"conv_{uuid.uuid4().hex}"


def new_turn_id() -> str:
    """Time first (milliseconds, 12 hex digits), then 80 random bits: a conversation's turns, and so
    its tool calls (keyed by turn), sort in the order they were made."""
    return f"turn_{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:20]}"


def new_approval_id() -> str:
    return uuid.uuid4().hex
