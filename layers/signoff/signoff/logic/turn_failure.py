"""Ending a turn that cannot finish: one way for the worker and the reconciler alike.

The turn becomes ``failed`` with an assistant message that says what happened, the conversation
takes new messages again, and the calls of the turn that never started are settled as not
executed, so a late approval can no longer run them. The next turn answers, towards the agent
API, whatever calls of this one it still holds open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from signoff.domain.models import Message, iso, utc_now
from signoff.observability import count

if TYPE_CHECKING:
    from signoff.domain.stores import SignoffStore
    from signoff.logic.executor import ActionExecutor

logger = Logger(child=True)

NOT_RUN_BECAUSE_TURN_ENDED = "the turn ended before this call could run"


def fail_turn(table: SignoffStore, executor: ActionExecutor, conversation_id: str, turn_id: str, why: str) -> bool:
    """True if this call ended the turn (it was not final yet)."""
    reply = Message(
        role="assistant",
        content=(
            f"Sorry, I could not finish this request: {why}. "
            "Any action that had not run yet was not executed. You can send your message again."
        ),
        created_at=iso(utc_now()),
    )
    ended = table.fail_turn(conversation_id, turn_id, why, reply)
    # Also after a crash between the two writes: the next failure attempt or turn finds the rest.
    for action in table.list_actions(conversation_id, turn_id):
        if action.execution is None:
            executor.abandon(action, NOT_RUN_BECAUSE_TURN_ENDED)
    if ended:
        count("TurnsFailed")
        logger.warning("turn failed", extra={"why": why})
    return ended
