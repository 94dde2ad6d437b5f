"""The time an invocation has left, so no step starts that the Lambda timeout would cut short.

Handlers run inside ``invocation(context.get_remaining_time_in_millis())``; adapters and use cases
ask ``remaining()`` before a step that can take long (a model call, a retried Handover request).
Outside an invocation there is no limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("signoff_deadline", default=None)

SAFETY_MARGIN_SECONDS = 3.0  # left for the writes that record what a step did


@contextmanager
def invocation(remaining_millis: int) -> Iterator[None]:
    """The clock of one invocation, from its remaining time; gone when the invocation ends."""
    token = _deadline.set(time.monotonic() + remaining_millis / 1000 - SAFETY_MARGIN_SECONDS)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float:
    """Seconds left for work in this invocation (infinite outside one)."""
    deadline = _deadline.get()
    return math.inf if deadline is None else max(0.0, deadline - time.monotonic())
