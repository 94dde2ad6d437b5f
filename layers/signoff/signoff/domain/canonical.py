"""Canonical arguments and the digest an approval is bound to."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, unicode kept, so equal arguments digest equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def action_digest(tool: str, arguments: dict[str, Any], call_id: str) -> str:
    """SHA-256 over (tool, canonical arguments, call id): what an approval is granted for."""
    payload = canonical_json({"tool": tool, "arguments": arguments, "call_id": call_id})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
