"""No request outlives the invocation: the OpenAI client's timeout and retries, and Handover's
attempts and back-off, fit in what is left of it."""

from __future__ import annotations

import contextvars
import math

import pytest
import requests
from openai import OpenAI

from signoff import deadline
from signoff.adapters.handover import HandoverClient, HandoverUnavailable
from signoff.adapters.openai_client import DeadlineBoundClient


def _in_invocation(remaining_millis: int, fn):
    """Run ``fn`` as inside an invocation with that much time left (a fresh context, as Lambda's)."""

    def run():
        with deadline.invocation(remaining_millis):
            return fn()

    return contextvars.Context().run(run)


def test_outside_an_invocation_there_is_no_limit():
    assert contextvars.Context().run(deadline.remaining) == math.inf
    _in_invocation(10_000, deadline.remaining)
    assert deadline.remaining() == math.inf  # the clock ends with its invocation


def test_the_openai_client_fits_every_attempt_in_what_is_left():
    base = OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", timeout=60, max_retries=2)
    bound = DeadlineBoundClient(base, timeout_seconds=60, max_retries=2)
    plenty = _in_invocation(900_000, bound.bounded)
    assert plenty.timeout == 60 and plenty.max_retries == 2
    short = _in_invocation(33_000, bound.bounded)  # 30 s of work left after the safety margin
    assert short.max_retries == 2 and short.timeout * (short.max_retries + 1) <= 30.01
    assert contextvars.Context().run(bound.bounded) is base


class _Down(requests.Session):
    def __init__(self):
        super().__init__()
        self.attempts = 0
        self.timeouts = []

    def request(self, method, url, **kwargs):
        self.attempts += 1
        self.timeouts.append(kwargs["timeout"])
        raise requests.ConnectionError("down")


def test_handover_stops_retrying_when_the_invocation_runs_out():
    session, slept = _Down(), []
    client = HandoverClient("http://handover", "k", session=session, timeout=(3, 10), sleep=slept.append)
    with pytest.raises(HandoverUnavailable):
        _in_invocation(3_500, lambda: client.get_decision("dec_1"))  # 0.5 s of work left
    assert session.attempts == 0  # no attempt starts with under a second left
    session = _Down()
    client = HandoverClient("http://handover", "k", session=session, timeout=(3, 10), sleep=slept.append)
    with pytest.raises(HandoverUnavailable):
        _in_invocation(8_000, lambda: client.get_decision("dec_1"))  # 5 s left
    assert all(read <= 5 for _connect, read in session.timeouts)
    assert all(pause <= 5 for pause in slept)
