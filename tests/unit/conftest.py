"""Unit-test fixtures: the metrics a use case counted (what the operators' alarms read)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from signoff.observability import metrics


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], dict[str, float]]]:
    """A function giving each metric's total (counts summed; seconds as their number of values).
    Metrics on, whatever the process set before (the local stack turns them off for itself)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()

    def totals() -> dict[str, float]:
        out = {}
        for name, data in metrics.metric_set.items():
            values = data["Value"]
            out[name] = sum(values) if data["Unit"] == "Count" else len(values)
        return out

    yield totals
    metrics.clear_metrics()
