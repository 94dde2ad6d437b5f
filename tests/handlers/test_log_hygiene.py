"""Per-invocation log keys do not outlive their invocation: a warm Lambda instance (and the local
stack, where every function shares one process) reuses the logger."""

from __future__ import annotations

import json
import logging

from local.lambda_runtime import invoke
from local.template import SamTemplate
from tests.support import captured_product_logs

TEMPLATE = SamTemplate()


def _worker_event(conversation_id: str, turn_id: str) -> dict:
    body = json.dumps({"kind": "start_turn", "conversation_id": conversation_id, "turn_id": turn_id})
    return {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work",
                "awsRegion": "us-east-1",
            }
        ]
    }


def test_a_second_invocation_carries_none_of_the_first_ones_keys(stack):
    worker, reconciler = TEMPLATE.function("AgentWorkerFunction"), TEMPLATE.function("ReconcilerFunction")
    with captured_product_logs(logging.INFO) as buffer:
        # A turn nobody queued: the worker notes the conversation, logs "already started", and is done.
        first_conversation = "conv_" + "a" * 32
        invoke(worker, _worker_event(first_conversation, "turn_" + "b" * 32))
        first_lines = buffer.getvalue().splitlines()
        invoke(reconciler, {"source": "aws.scheduler", "detail": {}})
        second_lines = buffer.getvalue().splitlines()[len(first_lines) :]
    first = [json.loads(line) for line in first_lines if line.startswith("{")]
    second = [json.loads(line) for line in second_lines if line.startswith("{")]
    assert any(entry.get("conversation_id") == first_conversation for entry in first), first_lines
    assert second, "the reconciler logged nothing"
    assert all("conversation_id" not in entry and "turn_id" not in entry for entry in second), second
    assert all(entry.get("function_name") == "ReconcilerFunction" for entry in second), second
