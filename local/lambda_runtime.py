"""Loads each function's handler from its CodeUri, as Lambda would, and invokes it in-process."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from local.template import ROOT, FunctionDef

_lock = threading.Lock()
_modules: dict[str, Any] = {}


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: int = 30
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    log_group_name: str = "local"
    log_stream_name: str = "local"
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def load_handler(code_uri: str, handler: str):
    """Import ``<CodeUri>/<module>.py`` under a unique name and return its handler function."""
    module_name, func_name = handler.rsplit(".", 1)
    path = ROOT / code_uri / f"{module_name.replace('.', '/')}.py"
    unique = "signoff_fn_" + code_uri.strip("/").replace("/", "_").replace("-", "_")
    with _lock:
        module = _modules.get(unique)
        if module is None:
            spec = importlib.util.spec_from_file_location(unique, path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            _modules[unique] = module
    return getattr(module, func_name)


CURRENT_FUNCTION: ContextVar[str | None] = ContextVar("signoff_current_function", default=None)


@dataclass
class Invocation:
    """One invocation in flight: whose it is and what it was given (drills target invocations)."""

    function_id: str
    event: dict[str, Any]
    writes: int = 0  # successful AWS writes so far (counted by the crash injector)
    target: bool = False  # the invocation a drill chose to crash
    last_request: str = ""  # the body of its latest AWS request (for crash plans that pick a write)


CURRENT_INVOCATION: ContextVar[Invocation | None] = ContextVar("signoff_current_invocation", default=None)
_in_flight = 0
_in_flight_lock = threading.Lock()
INVOCATION_STARTED: list[Any] = []  # callables(invocation), e.g. a drill choosing its target
INVOCATION_ENDED: list[Any] = []


def in_flight() -> int:
    """Invocations running right now, in every thread (drills wait for none before a clock step)."""
    with _in_flight_lock:
        return _in_flight


# Functions that run in a sandbox process of their own (local.sandboxes): logical id → sandbox.
SANDBOXES: dict[str, Any] = {}


def invoke(fn: FunctionDef, event: dict[str, Any]) -> Any:
    """Run a handler in this thread (or in its sandbox process, if it has one); ``CURRENT_FUNCTION``
    says whose AWS calls these are."""
    global _in_flight
    sandbox = SANDBOXES.get(fn.logical_id)
    if sandbox is not None:
        return sandbox.invoke(event)
    handler = load_handler(fn.code_uri, fn.handler)
    invocation = Invocation(fn.logical_id, event)
    token = CURRENT_FUNCTION.set(fn.logical_id)
    invocation_token = CURRENT_INVOCATION.set(invocation)
    with _in_flight_lock:
        _in_flight += 1
    try:
        for started in list(INVOCATION_STARTED):
            started(invocation)
        return handler(event, LambdaContext(function_name=fn.logical_id, timeout_seconds=fn.timeout))
    finally:
        for ended in list(INVOCATION_ENDED):
            ended(invocation)
        with _in_flight_lock:
            _in_flight -= 1
        CURRENT_INVOCATION.reset(invocation_token)
        CURRENT_FUNCTION.reset(token)


def sqs_record(message: dict[str, Any], arn: str) -> dict[str, Any]:
    """An SQS message (as ``receive_message`` returns it) as a record of the event Lambda gets."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    }
