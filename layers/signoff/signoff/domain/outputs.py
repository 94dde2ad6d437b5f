"""What the model is told about each tool call once it is settled.

Outputs are JSON so a model can read every field; ``message`` says it in plain words. The
voluntary sign-off tool keeps the seed guide's wording: ``Decision: approved. Approver notes: ...``.
"""

from __future__ import annotations

import json
from typing import Any

from signoff.domain.models import Action, ExecutionStatus, ToolOutput

_NOT_RUN = "The action was not executed."


def _decision_sentence(action: Action) -> str:
    decision = action.decision
    if decision is None or decision.id is None:
        return "No approval could be requested, so the action was not executed."
    who = f" by {decision.resolved_by}" if decision.resolved_by else ""
    match decision.status:
        case "approved":
            return f"Approved{who}."
        case "denied":
            return f"Denied{who}. {_NOT_RUN}"
        case "expired" | "escalated":
            return f"No approval came in time (decision {decision.status}). {_NOT_RUN}"
        case "modified":
            return f"The approver asked for changes{who}; changed actions are not applied. {_NOT_RUN}"
        case "scheduled":
            return f"Approved for later{who}; scheduled execution is not enabled. {_NOT_RUN}"
        case _:
            return f"Decision {decision.status}. {_NOT_RUN}"


def render_output(action: Action) -> ToolOutput:
    return ToolOutput(call_id=action.call_id, output=_render(action), tool=action.tool)


def _render(action: Action) -> str:
    execution = action.execution
    if action.error:
        return json.dumps({"tool": action.tool, "status": "not_executed", "error": action.error})
    if action.tool == "request_human_approval":
        decision = action.decision
        status = decision.status if decision and decision.id else "not requested"
        notes = (decision.notes if decision else None) or "none"
        return f"Decision: {status}. Approver notes: {notes}"
    body: dict[str, Any] = {"tool": action.tool}
    if action.gated:
        decision = action.decision
        body["decision"] = decision.status if decision and decision.id else "not_requested"
        if decision and decision.resolved_by:
            body["approver"] = decision.resolved_by
        if decision and decision.notes:
            body["notes"] = decision.notes
    status = execution.status if execution else ExecutionStatus.NOT_EXECUTED
    body["execution"] = str(status)
    if execution and execution.result is not None:
        body["result"] = execution.result
    if status is ExecutionStatus.EXECUTED:
        body["message"] = (_decision_sentence(action) + " " if action.gated else "") + "The action was executed."
    elif status is ExecutionStatus.FAILED:
        body["message"] = "The action was attempted and failed."
    else:
        body["message"] = _decision_sentence(action) if action.gated else _NOT_RUN
    return json.dumps(body, ensure_ascii=False, default=str)
