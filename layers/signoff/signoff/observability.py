"""The product's metrics and tracer, one of each per sandbox (Powertools keeps their state shared).

Use cases count what an operator watches (approvals asked and answered, time to decision, what
each call came to, how turns end); each handler flushes them with ``metrics.log_metrics``. Trace
annotations carry ids and names only: never an argument value, a key or a token.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

metrics = Metrics()
# AWS calls are traced from the start; an HTTP library only once an adapter that uses it is built
# (trace_library): patching every library X-Ray knows imports each of them (httpx alone is tens of
# milliseconds), a cold-start cost for functions that never use them.
tracer = Tracer(patch_modules=("botocore",))
# An invocation with nothing to count (a read, a duplicate) is normal here, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def trace_library(name: str) -> None:
    """Trace the calls out through ``name`` ("requests", "httpx"): patched once, idempotent."""
    tracer.patch((name,))


def count(name: str, value: int = 1) -> None:
    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def seconds(name: str, value: float) -> None:
    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)


# Disabled metrics are never flushed, and Powertools prints a set once it holds 100 values anyway:
# so nothing is collected while they are off (the local stack runs for hours in one process).


@contextmanager
def log_keys(logger: Logger, **keys: str) -> Iterator[None]:
    """Keys on every log line of what runs inside (the use cases' too), then gone. Kept per thread:
    one sandbox runs one invocation, but the local stack runs many in one process."""
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(list(keys))


@contextmanager
def traced(name: str, **annotations: str) -> Iterator[Any]:
    """A subsegment around a call out (Handover, the agent API, a tool), annotated with ids only."""
    with tracer.provider.in_subsegment(f"## {name}") as subsegment:
        for key, value in annotations.items():
            if value:
                subsegment.put_annotation(key, value)
        yield subsegment
