"""Agent worker: drives turns from the SQS work queue (start a turn, resume it after sign-off).

Partial batch failures: a message that raises is retried by SQS and, after the redrive limit,
lands in the dead-letter queue. Every step is guarded by a conditional claim, so redelivery
never runs anything twice. The invocation's deadline bounds every model and Handover request,
so no step starts that the Lambda timeout would cut short (the template gives one message per
invocation).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from signoff import deadline, runtime
from signoff.domain.ports import WorkMessage
from signoff.observability import count, log_keys, metrics, tracer

logger = Logger()


def _processor() -> BatchProcessor:
    """One per invocation: a processor holds its batch's results, and must not share them."""
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    message = WorkMessage.model_validate_json(record.body)
    tracer.put_annotation("conversation_id", message.conversation_id)
    tracer.put_annotation("turn_id", message.turn_id)
    keys = {"conversation_id": message.conversation_id, "turn_id": message.turn_id, "tenant": message.tenant or ""}
    with log_keys(logger, **keys):
        runtime.agent_runner().handle(message)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with deadline.invocation(context.get_remaining_time_in_millis()):
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=_processor(), context=context
        )
    handed_back = len(response.get("batchItemFailures") or [])
    if handed_back:
        # Lambda's Errors metric never sees a partial batch failure: this is what the alarm reads.
        count("WorkMessagesHandedBack", handed_back)
    return response
