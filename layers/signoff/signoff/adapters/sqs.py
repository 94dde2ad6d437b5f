"""SqsWorkQueue: hands work to the agent worker through SQS."""

from __future__ import annotations

from typing import Any

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
