"""The Chat Completions message list lives in the table one message per item, so it can outgrow 400 KB."""

from __future__ import annotations

import uuid

import boto3
import pytest

from signoff.dal.chat_history import ChatHistoryConflict, ChatHistoryTable


@pytest.fixture
def history(stack) -> ChatHistoryTable:
    return ChatHistoryTable(boto3.client("dynamodb"), stack.resources.refs["SignoffTable"])


def test_a_history_far_over_one_item_limit_round_trips(history):
    cid = f"conv_{uuid.uuid4().hex}"
    messages = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"{n}:" + "x" * 30_000} for n in range(40)]
    for n, message in enumerate(messages):
        history.append(cid, n, [message])
    assert sum(len(m["content"]) for m in messages) > 1_000_000
    assert history.load(cid) == messages


def test_two_writers_at_the_same_position_conflict(history):
    cid = f"conv_{uuid.uuid4().hex}"
    history.append(cid, 0, [{"role": "user", "content": "a"}])
    with pytest.raises(ChatHistoryConflict):
        history.append(cid, 0, [{"role": "user", "content": "b"}])
    assert history.load(cid) == [{"role": "user", "content": "a"}]
