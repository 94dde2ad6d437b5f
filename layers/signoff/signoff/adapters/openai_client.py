"""An OpenAI client whose every request fits in what is left of the invocation.

The SDK retries on its own (``max_retries``) with a per-request ``timeout``; neither knows about
the Lambda timeout. ``DeadlineBoundClient`` hands out, per use, a copy of the client whose timeout
and retries fit in ``signoff.deadline.remaining()``, so a slow model ends in a clean "unavailable"
(the turn is retried by a new invocation) instead of the function being killed mid-call.
"""

from __future__ import annotations

import math
from typing import Any

from openai import OpenAI

from signoff import deadline

MIN_REQUEST_SECONDS = 1.0


class DeadlineBoundClient:
    def __init__(self, client: OpenAI, timeout_seconds: float, max_retries: int = 2):
        self._client = client
        self._timeout = timeout_seconds
        self._max_retries = max_retries

    def bounded(self) -> OpenAI:
        left = deadline.remaining()
        if math.isinf(left):
            return self._client
        # Every attempt the SDK may make, with its timeout, fits in what is left.
        attempts = self._max_retries + 1
        timeout = max(MIN_REQUEST_SECONDS, min(self._timeout, left / attempts))
        return self._client.with_options(timeout=timeout, max_retries=self._max_retries)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bounded(), name)
