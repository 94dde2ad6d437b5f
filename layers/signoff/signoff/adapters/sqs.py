"""SqsWorkQueue hands work to the agent worker; SqsNotificationQueue holds client notifications."""

from __future__ import annotations

from typing import Any

from signoff.domain.notifications import Notification
from signoff.domain.ports import WorkMessage


class SqsWorkQueue:
    def __init__(self, client: Any, queue_url: str):
        self._sqs = client
        self._url = queue_url

    def send(self, message: WorkMessage, delay_seconds: int = 0) -> None:
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=message.model_dump_json(exclude_none=True),
            DelaySeconds=max(0, min(900, delay_seconds)),
        )


class SqsNotificationQueue:
    def __init__(self, client: Any, queue_url: str):
        self._sqs = client
        self._url = queue_url

    def send(self, notification: Notification) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=notification.model_dump_json())

    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None:
        """The message comes back after the delay (its visibility timeout), not the queue's default."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(43_200, delay_seconds))
        )
