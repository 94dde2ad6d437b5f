"""Maps the openai SDK's errors onto the core's two kinds: retry later, or give up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import openai

from signoff.domain.ports import BackendRejected, BackendUnavailable, ContextFull


@contextmanager
def translated_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
        raise BackendUnavailable(f"{operation}: {type(exc).__name__}") from exc
    except openai.APIStatusError as exc:
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            raise BackendUnavailable(f"{operation}: HTTP {exc.status_code}") from exc
        if getattr(exc, "code", None) == "context_length_exceeded":
            raise ContextFull(f"{operation}: the conversation exceeds the model's context window") from exc
        raise BackendRejected(f"{operation}: HTTP {exc.status_code}") from exc
