"""How a model's answer can end short of a reply, and what the user is told then.

The agent APIs end a turn in more ways than "here is the answer": cut off at the output limit,
withheld by the content filter, declined by the model, or empty. Each ends the turn with an
assistant message that says so (never an empty reply) and names the ending, which the client
reads on the message (``ending``) in ``GET /conversations/{id}``.
"""

from __future__ import annotations

COMPLETED = "completed"
CUT_SHORT = "cut_short"  # Responses: incomplete (max_output_tokens); Chat: finish_reason "length"
FILTERED = "filtered"  # Responses: incomplete (content_filter); Chat: finish_reason "content_filter"
REFUSED = "refused"  # a refusal content part (Responses) or message.refusal (Chat)
EMPTY = "empty"  # no text and no call

ENDINGS = (COMPLETED, CUT_SHORT, FILTERED, REFUSED, EMPTY)

_SAID = {
    CUT_SHORT: "The answer was cut off: the model reached its output limit before finishing.",
    FILTERED: "The answer was withheld by the model provider's content filter.",
    REFUSED: "The model declined to answer.",
    EMPTY: "The model returned no answer. Please try again, or ask in other words.",
}


def ending_message(ending: str, text: str, detail: str | None = None) -> str:
    """What the user reads for an answer that ended ``ending``: what happened, then whatever the
    model did write (a refusal's own words, the part written before the cut)."""
    if ending == COMPLETED:
        return text
    said = _SAID.get(ending, "The model's answer ended early.")
    if ending == REFUSED and detail:
        said = f"{said} It said: {detail}"
    return f"{said}\n\n{text}" if text.strip() else said
