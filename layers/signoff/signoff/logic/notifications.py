"""NotificationRelay: tells a client what became of its turn, without ever holding the turn up.

Fan-out reads the table's change stream (the outbox: a change is there once it is stored) and
queues one notification per change worth telling; delivery POSTs it, signed, and on failure
hands it back with a growing delay until the queue's redrive limit sends it to the dead letters.
Neither step can fail or slow down a turn: they run after it, in their own function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from signoff.domain.notifications import Notification, notification_for_change, url_allowed
from signoff.domain.ports import DeliveryFailed, NotificationQueue, NotificationSender
from signoff.observability import count

logger = Logger(child=True)

MAX_RETRY_DELAY_SECONDS = 6 * 3600


@dataclass(frozen=True)
class RecordChange:
    """One change of a table record, as the stream reports it (images already plain values)."""

    change_id: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    occurred_at: datetime


class NotificationRelay:
    def __init__(
        self,
        queue: NotificationQueue,
        sender: NotificationSender,
        allowed_prefixes: list[str],
        retry_base_seconds: int = 30,
    ):
        self._queue = queue
        self._sender = sender
        self._prefixes = allowed_prefixes
        self._base = max(1, retry_base_seconds)

    def fan_out(self, changes: Iterable[RecordChange]) -> int:
        """Queue a notification for each change that calls for one; how many were queued."""
        queued = 0
        for change in changes:
            notification = notification_for_change(change.change_id, change.old, change.new, change.occurred_at)
            if notification is None:
                continue
            if not url_allowed(notification.url, self._prefixes):
                logger.warning("notify_url no longer allowed; not notified", extra=_keys(notification))
                count("NotificationsRefused")
                continue
            self._queue.send(notification)
            queued += 1
        return queued

    def deliver(self, notification: Notification, attempt: int) -> int | None:
        """Deliver once. None when done (delivered, or refused for good); otherwise the seconds to wait
        before the next attempt."""
        if not url_allowed(notification.url, self._prefixes):
            logger.warning("notify_url no longer allowed; dropped", extra=_keys(notification))
            count("NotificationsRefused")
            return None
        try:
            self._sender.send(notification)
        except DeliveryFailed as exc:
            delay = min(MAX_RETRY_DELAY_SECONDS, self._base * 2 ** max(0, attempt - 1))
            logger.warning(
                "notification not delivered; will retry",
                extra={**_keys(notification), "why": str(exc), "attempt": attempt, "retry_in_seconds": delay},
            )
            count("NotificationsRetried")
            return delay
        count("NotificationsDelivered")
        logger.info("notification delivered", extra={**_keys(notification), "attempt": attempt})
        return None


def _keys(notification: Notification) -> dict[str, str]:
    """Log keys: ids only (the URL may carry a client's token in its query)."""
    return {
        "webhook_id": notification.webhook_id,
        "conversation_id": notification.event.conversation_id,
        "turn_id": notification.event.turn_id,
        "event": notification.event.type,
    }
