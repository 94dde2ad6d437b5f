"""Tool functions for ``lambda`` executors, run by the local stack's Lambda Invoke endpoint (no AWS,
no containers): the worker's boto3 ``lambda.invoke`` reaches them exactly as it would reach AWS.

Each is ``handler(event, context)`` receiving ``{"tool", "arguments", "conversation_id", "call_id",
"idempotency_key"}``; ``INVOCATIONS`` keeps every event so tests can count them.
"""

from __future__ import annotations

import threading
from typing import Any

INVOCATIONS: list[dict[str, Any]] = []
_LOCK = threading.Lock()


class AccountLocked(RuntimeError):
    pass


def close_account(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with _LOCK:
        INVOCATIONS.append(event)
    account = event["arguments"]["account_id"]
    if account.startswith("locked"):
        raise AccountLocked(f"account {account} is locked")  # Lambda answers FunctionError: Unhandled
    return {"account_id": account, "closed": True}


PAYMENTS: list[dict[str, Any]] = []
RELEASE_PAYMENTS = threading.Event()


def record_payment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Records the payment, then answers only once RELEASE_PAYMENTS is set (or after 30 s): a function
    that acted and answers after the caller's timeout."""
    with _LOCK:
        PAYMENTS.append(event["arguments"])
    RELEASE_PAYMENTS.wait(30)
    return {"paid": event["arguments"]}


# Function name (the last part of the ARN the catalog names) → handler.
FUNCTIONS = {"signoff-example-close-account": close_account, "signoff-example-record-payment": record_payment}
EXAMPLE_ARN = "arn:aws:lambda:us-east-1:123456789012:function:signoff-example-close-account"
PAYMENT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:signoff-example-record-payment"
