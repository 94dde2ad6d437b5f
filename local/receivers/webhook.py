"""WebhookReceiver: a client's notification endpoint on loopback that verifies what it gets.

Verification is the library's (``standardwebhooks``), as a client's receiver would do it; the
receiver keeps every attempt (verified or not, answered 2xx or not) so tests can count them. It
can be told to refuse the next N deliveries, to exercise Signoff's retries.

    python -m local.receivers.webhook whsec_...   (prints each verified event)
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Request, Response

from local.servers import BackgroundServer


@dataclass(frozen=True)
class Attempt:
    webhook_id: str
    verified: bool
    answered: int
    event: dict[str, Any] | None
    received_at: float = 0.0  # time.time() when it arrived (the bench times replies by it)


class WebhookReceiver:
    def __init__(self, secret: str, port: int = 0):
        self._webhook = Webhook(secret)
        self._lock = threading.Lock()
        self.attempts: list[Attempt] = []
        self._refuse = 0
        self._server = BackgroundServer(self._app, port=port, name="webhook-receiver")
        self.url = f"{self._server.url}/hooks/signoff"

    def start(self) -> WebhookReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def refuse_next(self, count: int) -> None:
        with self._lock:
            self._refuse = count

    def events(self) -> list[dict[str, Any]]:
        """Verified events answered 2xx, once per webhook-id (as a receiver deduplicates)."""
        seen: dict[str, dict[str, Any]] = {}
        with self._lock:
            for attempt in self.attempts:
                if attempt.verified and attempt.answered < 300 and attempt.event is not None:
                    seen.setdefault(attempt.webhook_id, attempt.event)
        return list(seen.values())

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data(as_text=True)
        webhook_id = request.headers.get("webhook-id", "")
        try:
            event = self._webhook.verify(body, dict(request.headers))
            verified = True
        except WebhookVerificationError:
            event, verified = None, False
        with self._lock:
            status = 401 if not verified else 200
            if verified and self._refuse > 0:
                self._refuse -= 1
                status = 503
            self.attempts.append(Attempt(webhook_id, verified, status, event, time.time()))
        return Response(json.dumps({"ok": status == 200}), status=status, content_type="application/json")(
            environ, start_response
        )


def main() -> None:
    receiver = WebhookReceiver(sys.argv[1], port=int(sys.argv[2]) if len(sys.argv) > 2 else 3005).start()
    print(f"notify_url: {receiver.url}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
