"""The reliability drills at a small size: every scenario holds, and the counts that must be zero are."""

from __future__ import annotations

import pytest

from local.reliability import SCENARIOS, Drills


@pytest.fixture(scope="module")
def drills(stack):
    return Drills(stack, scale=1)


@pytest.mark.parametrize(("name", "method"), SCENARIOS, ids=[m for _, m in SCENARIOS])
def test_scenario(drills, name, method):
    result = drills.run(name, getattr(drills, method))
    assert result.ok, result.notes


def test_nothing_ran_twice_or_unapproved_and_every_conversation_got_a_reply(drills):
    report = drills.verify()
    assert report.conversations >= len(SCENARIOS) - 1
    assert report.actions_executed > 0
    assert report.duplicate_executions == 0
    assert report.duplicate_submissions == 0
    assert report.unapproved_executions == 0
    assert report.conversations_without_reply == 0
    assert report.forged_requests > 0 and report.callbacks_sent > 0
