"""Data too large for a DynamoDB item never makes a write fail half-way through a claimed call:
a huge tool result is kept as a marked preview, huge model arguments make the call not executed."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from pydantic import BaseModel

from local.aws_resources import create_resources
from local.template import SamTemplate
from signoff.dal.table import SignoffTable
from signoff.domain.limits import MAX_ARGUMENTS_BYTES, MAX_RESULT_BYTES
from signoff.domain.models import (
    Action,
    Conversation,
    ConversationStatus,
    ExecutionStatus,
    Message,
    ToolCall,
    Turn,
    TurnStatus,
    iso,
    utc_now,
)
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.tools import ToolRegistry, ToolSpec, model_check
from signoff.logic.agent_runner import AgentRunner
from signoff.logic.executor import ActionExecutor


class Query(BaseModel):
    text: str


def _huge_report(args, ctx) -> dict:
    return {"rows": ["x" * 1000] * 600}  # ~600 KB: more than a whole DynamoDB item


TOOLS = ToolRegistry(
    [
        ToolSpec(
            "export_report",
            "Export a report.",
            Query.model_json_schema(),
            model_check("export_report", Query),
            _huge_report,
        )
    ]
)


@pytest.fixture(scope="module")
def table(stack) -> SignoffTable:
    created = create_resources(
        SamTemplate(), {"OpenAIApiKeySecret": "x", "HandoverApiKeySecret": "y"}, prefix=f"big-{uuid.uuid4().hex[:8]}"
    )
    return SignoffTable(boto3.client("dynamodb"), created.refs["SignoffTable"])


def _running_turn(table: SignoffTable) -> Turn:
    cid, tid, now = f"conv_{uuid.uuid4().hex}", f"turn_{uuid.uuid4().hex}", iso(utc_now())
    turn = Turn(conversation_id=cid, turn_id=tid, status=TurnStatus.QUEUED, created_at=now, input="hi")
    table.create_conversation(
        Conversation(conversation_id=cid, status=ConversationStatus.RUNNING, active_turn_id=tid, created_at=now),
        turn,
        Message(role="user", content="hi", created_at=now),
    )
    assert table.claim_turn_start(cid, tid)
    return table.get_turn(cid, tid)


def test_a_result_too_large_for_an_item_is_stored_as_a_marked_preview(table):
    turn = _running_turn(table)
    action = Action(
        conversation_id=turn.conversation_id,
        turn_id=turn.turn_id,
        call_id="call_big",
        seq=0,
        tool="export_report",
        arguments={"text": "all"},
        digest="d",
        gated=False,
    )
    assert table.record_pause(turn, "resp_1", [action], [], pending=0)
    ActionExecutor(table, TOOLS).run_ungated(action)
    stored = table.get_action(turn.conversation_id, turn.turn_id, "call_big")
    assert stored.execution.status is ExecutionStatus.EXECUTED
    result = stored.execution.result
    assert result["truncated"] is True and result["bytes"] > MAX_RESULT_BYTES and result["preview"]
    assert len(json.dumps(result)) < MAX_RESULT_BYTES


def test_arguments_too_large_make_the_call_not_executed_with_the_reason(table):
    turn = _running_turn(table)
    runner = AgentRunner(table, None, TOOLS, lambda: ApprovalPolicy.model_validate({"tools": {}}), None, None, None)
    call = ToolCall(call_id="call_args", name="export_report", arguments=json.dumps({"text": "y" * 100_000}))
    action = runner._to_action(turn, 0, call, "default", None)
    assert action.execution.status is ExecutionStatus.NOT_EXECUTED
    assert str(MAX_ARGUMENTS_BYTES) in action.error and action.arguments["truncated"] is True
    assert table.record_pause(turn, "resp_1", [action], [], pending=0)  # the write fits
    assert table.get_action(turn.conversation_id, turn.turn_id, "call_args").error == action.error
