"""Unit-test fixtures: the metrics a use case counted (what the operators' alarms read)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from signoff.observability import metrics


@pytest.fixture
def counted() -> Iterator[Callable[[], dict[str, float]]]:
    """A function giving each metric's total (counts summed; seconds as their number of values)."""
    metrics.clear_metrics()

    def totals() -> dict[str, float]:
        out = {}
        for name, data in metrics.metric_set.items():
            values = data["Value"]
            out[name] = sum(values) if data["Unit"] == "Count" else len(values)
        return out

    yield totals
    metrics.clear_metrics()
