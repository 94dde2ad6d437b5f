"""Notifier: client notifications, from the table's change stream to the client's notify_url.

Two triggers, one job each. The DynamoDB stream (filtered to conversations with a notify_url)
queues a notification per status change that matters; the notify queue delivers them, signed
per Standard Webhooks, and a failed delivery comes back later with a doubling delay until the
redrive limit sends it to the dead letters. Nothing here can hold up or fail a turn.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from signoff import runtime
from signoff.domain.notifications import Notification
from signoff.logic.notifications import RecordChange
from signoff.observability import log_keys, metrics, tracer

logger = Logger()


class RetryLater(RuntimeError):
    """Reported as a batch item failure: the message returns after the delay set on it."""


def _changes(event: dict[str, Any]) -> list[RecordChange]:
    changes = []
    for record in DynamoDBStreamEvent(event).records:
        data = record.dynamodb
        assert data is not None
        epoch = data.approximate_creation_date_time
        changes.append(
            RecordChange(
                change_id=record.event_id or str(data.sequence_number),
                old=_plain(data.old_image),
                new=_plain(data.new_image),
                occurred_at=datetime.fromtimestamp(epoch, UTC) if epoch else datetime.now(UTC),
            )
        )
    return changes


def _plain(image: dict[str, Any] | None) -> dict[str, Any] | None:
    """Stream images hold Decimals; the fields read here are strings, so only those are kept."""
    return {k: v for k, v in image.items() if isinstance(v, str)} if image else None


def _processor() -> BatchProcessor:
    """One per invocation: a processor holds its batch's results, and must not share them."""
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    notification = Notification.model_validate_json(record.body)
    attempt = int(record.attributes.approximate_receive_count or 1)
    event = notification.event
    with log_keys(logger, conversation_id=event.conversation_id, turn_id=event.turn_id):
        delay = runtime.notification_relay().deliver(notification, attempt)
    if delay is not None:
        try:
            runtime.notification_queue().retry_later(record.receipt_handle, delay)
        except Exception:  # it comes back after the queue's visibility timeout instead
            logger.warning("could not set the retry delay", exc_info=True)
        raise RetryLater(f"retry in {delay} s")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:dynamodb":
        # A failure to queue raises: the stream retries the batch (ids stay the same, receivers dedupe).
        queued = runtime.notification_relay().fan_out(_changes(event))
        logger.info("notifications queued", extra={"changes": len(records), "queued": queued})
        return {"queued": queued}
    return process_partial_response(event=event, record_handler=record_handler, processor=_processor(), context=context)
