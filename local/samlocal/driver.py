"""The event sources `sam local` does not run: the SQS work queue feeding the worker, and the
reconciler's schedule. Both are delivered by invoking the functions through the Lambda Invoke API
(boto3's ``lambda.invoke`` with ``endpoint_url``): `sam local start-lambda` serves it, and so does
the local stack (``LambdaInvokeEndpoint``), so this code runs unchanged against either.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
from botocore.config import Config

from local.lambda_runtime import sqs_record


class EventSourceDriver:
    def __init__(
        self,
        lambda_endpoint: str,
        queue_url: str,
        queue_arn: str,
        *,
        worker: str = "AgentWorkerFunction",
        reconciler: str = "ReconcilerFunction",
        batch_size: int = 1,
        schedule_seconds: float = 30.0,
    ):
        # A cold container can take a while to answer: no retries, a long read timeout.
        config = Config(read_timeout=900, retries={"max_attempts": 1})
        self._lambda = boto3.client("lambda", endpoint_url=lambda_endpoint, config=config)
        self._sqs = boto3.client("sqs")
        self._queue_url, self._queue_arn = queue_url, queue_arn
        self._worker, self._reconciler = worker, reconciler
        self._batch_size = batch_size
        self._schedule = schedule_seconds
        self._stop = threading.Event()
        self.invocations = 0

    def invoke(self, function: str, event: dict[str, Any]) -> tuple[Any, str | None]:
        """The function's answer, and its error type if it raised (Lambda's ``FunctionError``)."""
        response = self._lambda.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        self.invocations += 1
        payload = json.loads(response["Payload"].read() or b"null")
        return payload, response.get("FunctionError")

    def deliver_once(self, wait_seconds: int = 1) -> int:
        """One receive from the work queue, one worker invocation, and the messages it took off the
        queue deleted (partial batch failures stay for redelivery). Returns how many were received."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(10, self._batch_size),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [sqs_record(m, self._queue_arn) for m in messages]}
        result, error = self.invoke(self._worker, event)
        failed = {m["MessageId"] for m in messages} if error else _failed_ids(result)
        for message in messages:
            if message["MessageId"] not in failed:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def reconcile_once(self) -> Any:
        event = {"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
        return self.invoke(self._reconciler, event)[0]

    def run(self) -> None:
        """Until ``stop()``: deliver the queue continuously, run the reconciler on its schedule."""
        next_pass = time.monotonic() + self._schedule
        while not self._stop.is_set():
            self.deliver_once()
            if time.monotonic() >= next_pass:
                self.reconcile_once()
                next_pass = time.monotonic() + self._schedule

    def stop(self) -> None:
        self._stop.set()


def _failed_ids(result: Any) -> set[str]:
    failures = result.get("batchItemFailures", []) if isinstance(result, dict) else []
    return {f["itemIdentifier"] for f in failures}
