"""WebhookSender: POSTs a notification signed per Standard Webhooks (webhook-id, -timestamp, -signature)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import requests
from standardwebhooks.webhooks import Webhook

from signoff.domain.notifications import Notification
from signoff.domain.ports import DeliveryFailed
from signoff.observability import traced


class WebhookSender:
    def __init__(self, secret: Callable[[], str], timeout: tuple[float, float] = (3.05, 5.0)):
        self._secret = secret  # read when sending: queueing a notification needs no secret
        self._timeout = timeout

    def send(self, notification: Notification) -> None:
        payload = json.dumps(notification.event.model_dump(), separators=(",", ":"))
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "Signoff-Webhooks/1",
            "webhook-id": notification.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            # The secret: "whsec_<base64>" or the bare base64 (what the template generates).
            "webhook-signature": Webhook(self._secret()).sign(notification.webhook_id, now, payload),
        }
        try:
            with traced("webhook deliver", webhook_id=notification.webhook_id):
                response = requests.post(
                    notification.url,
                    data=payload.encode(),
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
        except requests.RequestException as exc:
            raise DeliveryFailed(type(exc).__name__) from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")
