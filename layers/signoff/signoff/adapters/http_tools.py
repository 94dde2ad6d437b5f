"""Tools behind HTTPS: one signed ``POST`` per call, retried under the same key while it may help.

The body is ``{"tool", "arguments", "conversation_id", "call_id", "idempotency_key"}``, with the
``Idempotency-Key`` header and a Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) made with the tool signing secret, so the tool server can tell the call
came from Signoff and was not replayed (docs/catalog.md shows how it verifies). A 2xx JSON body is
the result; a 4xx is the tool saying no (not retried); a 5xx or no answer is tried again with
backoff, as long as the invocation has time, and always with the same webhook-id and key. When no
attempt got through, the outcome is unknown (ToolUnreachable) unless none was ever sent.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook

from signoff import deadline
from signoff.domain.catalog import HttpExecutor
from signoff.domain.tools import ToolContext, ToolFailed, ToolUnreachable

MAX_RESULT_BYTES = 256 * 1024


def call_payload(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """What an ``http`` or ``lambda`` tool receives."""
    return {
        "tool": ctx.tool,
        "arguments": arguments,
        "conversation_id": ctx.conversation_id,
        "call_id": ctx.call_id,
        "idempotency_key": ctx.idempotency_key,
    }


def message_id(idempotency_key: str) -> str:
    """The same webhook-id on every attempt of one call: a receiver's replay check sees one message."""
    return "msg_" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


class HttpToolInvoker:
    def __init__(
        self,
        secret: Callable[[], str],
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff_seconds: float = 0.5,
    ):
        self._secret = secret
        self._session = session or requests.Session()
        self._sleep = sleep
        self._backoff = backoff_seconds

    def invoke(self, executor: HttpExecutor, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        body = json.dumps(call_payload(arguments, ctx), separators=(",", ":"), ensure_ascii=False)
        webhook_id = message_id(ctx.idempotency_key)
        last = "no attempt"
        reached = False  # whether any attempt may have reached the tool (then the outcome is unknown)
        for attempt in range(executor.max_attempts):
            if attempt:
                pause = self._backoff * 2 ** (attempt - 1)
                if deadline.remaining() < pause + executor.timeout_seconds + 1:
                    break  # no time left for another attempt in this invocation
                self._sleep(pause)
            timeout = min(executor.timeout_seconds, max(1.0, deadline.remaining() - 1))
            try:
                response = self._session.post(
                    executor.url,
                    data=body.encode("utf-8"),
                    headers=self._headers(webhook_id, ctx.idempotency_key, body),
                    timeout=(3.05, timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                last = type(exc).__name__
                reached = reached or not _never_sent(exc)
                continue
            if 200 <= response.status_code < 300:
                return _result(response)
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                raise ToolFailed(f"the tool refused the call (HTTP {response.status_code})", _detail(response))
            last = f"HTTP {response.status_code}"
            reached = reached or response.status_code != 429  # a 5xx or 408 may come after the tool acted
        if not reached:
            raise ToolFailed(f"the tool could not be reached ({last}); the call was never sent")
        raise ToolUnreachable(f"the tool did not answer with a result ({last})")

    def _headers(self, webhook_id: str, idempotency_key: str, body: str) -> dict[str, str]:
        now = datetime.now(UTC)
        secret = self._secret()
        signer = Webhook(secret if secret.startswith("whsec_") else "whsec_" + secret)
        return {
            "content-type": "application/json",
            "user-agent": "Signoff-Tools/1",
            "idempotency-key": idempotency_key,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(webhook_id, now, body),
        }


def _never_sent(exc: requests.RequestException) -> bool:
    """True only when the request certainly never reached the tool: no connection was made. A read
    timeout, a reset or a dropped connection after sending may come after the tool acted."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        from urllib3.exceptions import NewConnectionError

        cause = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", cause)
        return isinstance(reason, NewConnectionError)
    return False


def _result(response: requests.Response) -> Any:
    # A 2xx: the tool acted. A result that cannot be read leaves what it did unknown, not undone.
    if len(response.content) > MAX_RESULT_BYTES:
        raise ToolUnreachable(f"the tool's result is larger than {MAX_RESULT_BYTES} bytes")
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError as exc:
        raise ToolUnreachable("the tool answered 2xx without a JSON body") from exc


def _detail(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]
