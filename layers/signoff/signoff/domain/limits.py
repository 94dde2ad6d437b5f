"""Size limits on what the model and the tools hand us, so that no write can fail for size.

A DynamoDB item holds at most 400 KB. A tool result or a model's arguments larger than these
limits are kept as a marked preview (the model and the client see the marker) instead of
making a write fail half-way through a claimed call.
"""

from __future__ import annotations

import json
from typing import Any

MAX_ARGUMENTS_BYTES = 64 * 1024
MAX_RESULT_BYTES = 64 * 1024
PREVIEW_CHARS = 2000


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))


def truncated(value: Any, max_bytes: int) -> tuple[Any, bool]:
    """``value`` itself when it fits in ``max_bytes`` of JSON, else a marked preview of it."""
    size = _size(value)
    if size <= max_bytes:
        return value, False
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return {"truncated": True, "bytes": size, "preview": text[:PREVIEW_CHARS]}, True


def bounded_result(result: Any) -> Any:
    return truncated(result, MAX_RESULT_BYTES)[0]
