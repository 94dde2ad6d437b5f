"""Canonical arguments and the digest an approval is bound to."""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal
from typing import Any


def _normalise(value: Any) -> Any:
    """Integral floats and Decimals become ints, so 340, 340.0 and Decimal("340") spell the same."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise ValueError("NaN and infinity are not valid JSON")
        return int(value) if value == int(value) else float(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, unicode kept, normalised numbers."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def action_digest(tool: str, arguments: dict[str, Any], call_id: str) -> str:
    """SHA-256 over (tool, canonical arguments, call id): what an approval is granted for."""
    payload = canonical_json({"tool": tool, "arguments": arguments, "call_id": call_id})
    return hashlib.sha256(payload.encode()).hexdigest()
