"""A slice of the crash matrix: every flow on every agent API, killed after its first, middle and
last AWS write (the full matrix is `make reliability`). Every point must leave a reply, no call
run twice or unapproved, and no output submitted twice."""

from __future__ import annotations

import pytest

from local.drills.crash_matrix import BACKENDS, FLOWS, CrashMatrix, first_middle_last


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_flow_survives_a_crash_after_its_writes(stack, backend):
    # Each backend crosses every flow; together the three cover first, middle and last writes.
    matrix = CrashMatrix(stack, deadline_seconds=45)
    report = matrix.run(FLOWS, (backend,), points=first_middle_last)
    summary = report.summary()
    assert summary["points_tried"] >= len(FLOWS), report.writes_per_flow
    assert summary["crashes_fired"] == summary["points_tried"], [
        (p.flow, p.after_writes) for p in report.points if not p.fired
    ]
    failures = [(p.flow, p.after_writes, p.final_status, p.notes, p) for p in report.failures()]
    assert not failures, failures
