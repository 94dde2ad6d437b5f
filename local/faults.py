"""Fault injection for the local stack and the reliability drills.

The emulators answer a share of requests with 500/429 (``SIGNOFF_EMULATOR_FAIL_RATE``), can be
slow (``SIGNOFF_EMULATOR_SLOW_RATE``, ``SIGNOFF_EMULATOR_SLOW_SECONDS``), and the Handover one
can drop or repeat callbacks (``SIGNOFF_EMULATOR_DROP_CALLBACKS``,
``SIGNOFF_EMULATOR_DUPLICATE_CALLBACKS``). DynamoDB throttling is injected in botocore's
transport (``SIGNOFF_AWS_THROTTLE_RATE``), so the SDK's own retry logic has to cope.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field

from botocore.awsrequest import AWSResponse


def _rate(name: str) -> float:
    try:
        return max(0.0, min(1.0, float(os.environ.get(name, "0") or 0)))
    except ValueError:
        return 0.0


@dataclass
class FaultPlan:
    """What an emulator does wrong, and a count of what it did."""

    fail_rate: float = field(default_factory=lambda: _rate("SIGNOFF_EMULATOR_FAIL_RATE"))
    slow_rate: float = field(default_factory=lambda: _rate("SIGNOFF_EMULATOR_SLOW_RATE"))
    slow_seconds: float = field(default_factory=lambda: float(os.environ.get("SIGNOFF_EMULATOR_SLOW_SECONDS", "2")))
    injected: int = 0
    fail_next: int = 0  # answer exactly this many coming requests with 503 (deterministic drills)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _random: random.Random = field(default_factory=lambda: random.Random(os.environ.get("SIGNOFF_FAULT_SEED")))

    def next_fault(self) -> int | None:
        """A status to answer with instead of doing the work (500 or 429), or None; may sleep first."""
        with self._lock:
            slow = self._random.random() < self.slow_rate
            fail = self._random.random() < self.fail_rate
            status = self._random.choice((500, 429)) if fail else None
            if self.fail_next > 0:
                self.fail_next -= 1
                status, fail = 503, True
            if slow or fail:
                self.injected += 1
        if slow:
            time.sleep(self.slow_seconds)
        return status


class DynamoThrottle:
    """Answers a share of DynamoDB calls with ThrottlingException before they reach the table."""

    def __init__(self, rate: float):
        self.rate = rate
        self.injected = 0
        self._lock = threading.Lock()

    def __call__(self, request, **_kwargs):
        if not self.rate or random.random() >= self.rate:
            return None
        with self._lock:
            self.injected += 1
        body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}'
        return AWSResponse(request.url, 400, {"x-amzn-ErrorType": "ThrottlingException"}, _Raw(body))

    def install(self) -> DynamoThrottle:
        import boto3

        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-send.dynamodb", self)
        return self


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kwargs):
        yield self._body

    def read(self, *_args, **_kwargs) -> bytes:
        return self._body
