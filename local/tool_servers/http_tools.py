"""A tiny tool server for ``http`` executors: verifies Signoff's Standard Webhooks signature as a
real tool server would, runs the tool once per idempotency key, and counts every request.

    python -m local.tool_servers.http_tools whsec_...   (serves http://127.0.0.1:3005/tools/<name>)

Tools: ``create_invoice`` (billing), ``flaky_echo`` (answers 503 to the first N requests of a
key, to exercise Signoff's retries) and ``record_payment`` (records the payment, then answers only
once ``release_payments`` is set: a tool that acts and answers late). ``refuse_next(n, status)``
makes the next N calls answer ``status`` (422 by default; 503 to exercise the retries) without
running anything.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Request, Response

from local.servers import BackgroundServer, serve_until_interrupted


@dataclass(frozen=True)
class ToolRequest:
    tool: str
    verified: bool
    idempotency_key: str | None
    webhook_id: str | None
    body: dict[str, Any] | None
    answered: int
    ran: bool = False  # this request ran the tool (a repeat of a key is answered from before)


class HttpToolServer:
    def __init__(self, secret: str, port: int = 0, flaky_failures: int = 0):
        self._webhook = Webhook(secret)
        self._lock = threading.Lock()
        self.requests: list[ToolRequest] = []
        self.results: dict[str, Any] = {}  # idempotency key → the result of the one real run
        self._flaky_failures = flaky_failures
        self._refuse, self._refuse_status = 0, 422
        # record_payment records, then answers only once released (or after 30 s): a tool that acted
        # and answers late, so a caller's timeout leaves the outcome unknown.
        self.payments: list[dict[str, Any]] = []
        self.release_payments = threading.Event()
        self._server = BackgroundServer(self._app, port=port, name="http-tools")
        self.url = f"{self._server.url}/tools"

    def start(self) -> HttpToolServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def refuse_next(self, count: int, status: int = 422) -> None:
        """Answer the next ``count`` verified requests with ``status`` without running anything."""
        with self._lock:
            self._refuse, self._refuse_status = count, status

    def runs(self, tool: str | None = None) -> list[dict[str, Any]]:
        """Each verified request that ran a tool (a repeat of a key does not run it again)."""
        return [r.body for r in self.requests if r.ran and (tool is None or r.tool == tool)]

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        tool = request.path.removeprefix("/tools/")
        raw = request.get_data(as_text=True)
        try:
            body = self._webhook.verify(raw, dict(request.headers))
        except WebhookVerificationError:
            return self._answer(ToolRequest(tool, False, None, None, None, 401), {"error": "bad signature"})
        key = request.headers.get("Idempotency-Key")
        webhook_id = request.headers.get("webhook-id")

        def record(status: int, ran: bool = False) -> ToolRequest:
            return ToolRequest(tool, True, key, webhook_id, body, status, ran)

        if tool == "record_payment":
            with self._lock:
                self.payments.append(body["arguments"])
            self.release_payments.wait(30)
            return self._answer(record(200, ran=True), {"paid": body["arguments"]})
        with self._lock:
            if self._refuse:
                self._refuse -= 1
                return self._answer(record(self._refuse_status), {"error": "refused by the tool server"})
            earlier = sum(1 for r in self.requests if r.idempotency_key == key)
            if tool == "flaky_echo" and earlier < self._flaky_failures:
                return self._answer(record(503), {"error": "try again"})
            if key in self.results:
                return self._answer(record(200), self.results[key])
            if tool == "create_invoice":
                args = body["arguments"]
                result = {
                    "invoice_id": f"inv_{len(self.results) + 1}",
                    "customer_id": args["customer_id"],
                    "amount": args["amount"],
                    "currency": args["currency"],
                }
            elif tool == "flaky_echo":
                result = {"echo": body["arguments"]}
            else:
                return self._answer(record(404), {"error": f"no tool {tool}"})
            self.results[key] = result
            return self._answer(record(200, ran=True), result)

    def _answer(self, entry: ToolRequest, body: dict[str, Any]) -> Response:
        self.requests.append(entry)
        return Response(json.dumps(body), status=entry.answered, mimetype="application/json")


def main() -> None:
    secret = sys.argv[1] if len(sys.argv) > 1 else ""
    if not secret.startswith("whsec_"):
        sys.exit("usage: python -m local.tool_servers.http_tools whsec_<base64>   (the stack's tool signing secret)")
    server = HttpToolServer(secret, port=3005).start()
    serve_until_interrupted(server, f"http tools at {server.url}/<name>; Ctrl-C to stop")


if __name__ == "__main__":
    main()
