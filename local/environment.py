"""Switching the functions' settings while the local stack runs, as a redeploy with other
parameters would (the stack's handlers read their settings from the environment)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def settings_changed(**env: str) -> Iterator[None]:
    """Run with these settings, then put the old ones back."""
    from signoff import runtime

    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    runtime.reset()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        runtime.reset()
