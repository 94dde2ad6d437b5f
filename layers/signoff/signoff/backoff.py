"""A jittered pause between attempts at a conditional write other writers keep beating (optimistic
concurrency on a budget counter): the other writer is done within milliseconds."""

from __future__ import annotations

import random
import time

ATTEMPTS = 25  # then the caller fails closed (BudgetContention)


def pause(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))  # noqa: S311 - jitter, not crypto
