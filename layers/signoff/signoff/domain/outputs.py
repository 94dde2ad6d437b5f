"""What the model is told about each tool call once it is settled.

Outputs are JSON so a model can read every field; ``message`` says it in plain words. The
voluntary sign-off tool keeps the seed guide's wording: ``Decision: approved. Approver notes: ...``.

| verdict | execution | the model is told |
| --- | --- | --- |
| approved | executed / failed | approved by whom, notes, the result (or that it failed) |
| denied | not_executed | denied by whom, their notes; not executed |
| modified | executed | what changed (from → to), by whom; executed with the changed values |
| modified | not_executed | the changes could not be applied and why; not executed |
| scheduled | scheduled | approved to run at ``execute_at``; it will run then, not before |
| expired / escalated | not_executed | no approval came in time; not executed |
| (none) | not_executed | no usable approval (none could be requested, or it was unreadable); not executed |
| any | not_executed, error | the approval did not match the call; not executed |
"""

from __future__ import annotations

import json
from typing import Any

from signoff.domain.models import Action, ExecutionStatus, ToolOutput

_NOT_RUN = "The action was not executed."


def render_output(action: Action) -> ToolOutput:
    if action.hosted:
        # A hosted MCP call is answered approve or deny: OpenAI runs an approved one itself.
        approve = action.execution is not None and action.execution.status is ExecutionStatus.DELEGATED
        return ToolOutput(
            call_id=action.call_id,
            output="",
            tool=action.tool,
            approve=approve,
            reason="" if approve else _render(action),
        )
    return ToolOutput(call_id=action.call_id, output=_render(action), tool=action.tool)


def _who(action: Action) -> str:
    return f" by {action.decision.resolved_by}" if action.decision and action.decision.resolved_by else ""


def _verdict_sentence(action: Action, execution: ExecutionStatus) -> str:
    verdict = action.verdict.value if action.verdict else None
    who = _who(action)
    quorum = (
        f" ({action.quorum_required} of {len(action.approval_ids)} approvers needed)"
        if action.quorum_required > 1
        else ""
    )
    error = (
        (action.execution.result or {}).get("error")
        if action.execution and isinstance(action.execution.result, dict)
        else None
    )
    if error == "approval does not match":
        return f"The approval does not match this call, so it was refused. {_NOT_RUN}"
    if verdict is None and error:
        return f"Not executed: {error}."
    match verdict:
        case "approved":
            done = (
                "The action was executed."
                if execution is ExecutionStatus.EXECUTED
                else "The action was attempted and failed."
            )
            return f"Approved{who}{quorum}. {done}"
        case "denied":
            return f"Denied{who}{quorum}. {_NOT_RUN}"
        case "modified" if execution is ExecutionStatus.EXECUTED:
            changed = "; ".join(f"{k} from {v['from']!r} to {v['to']!r}" for k, v in (action.changes or {}).items())
            return f"Approved with changes{who}: {changed}. The action was executed with the changed values."
        case "modified":
            return f"The approver{who} asked for changes that could not be applied ({error}). {_NOT_RUN}"
        case "scheduled" if execution is ExecutionStatus.SCHEDULED:
            when = action.execution.execute_at if action.execution else "later"
            return f"Approved{who} to run at {when}. It will run then, not before."
        case "expired" | "escalated":
            return f"No approval came in time (decision {verdict}). {_NOT_RUN}"
        case None | "not_requested":
            return f"No usable approval could be obtained (none was requested, or it was unreadable). {_NOT_RUN}"
        case _:
            return f"Decision {verdict}{who}. {_NOT_RUN}"


def _render(action: Action) -> str:
    execution = action.execution.status if action.execution else ExecutionStatus.NOT_EXECUTED
    if action.error:
        return json.dumps({"tool": action.tool, "status": "not_executed", "error": action.error})
    if action.tool == "request_human_approval":
        status = action.verdict.value if action.verdict else "not requested"
        notes = (action.decision.notes if action.decision else None) or "none"
        return f"Decision: {status}. Approver notes: {notes}"
    body: dict[str, Any] = {"tool": action.tool}
    if action.gated_by_budget:
        body["gated_by_budget"] = action.gated_by_budget  # no rule asked for sign-off; a budget did
    if action.grant is not None:
        body["decision"] = "standing_approval"
        body["grant"] = action.grant.model_dump()
    elif action.gated:
        body["decision"] = action.verdict.value if action.verdict else "not_requested"
        if action.decision and action.decision.resolved_by:
            body["approver"] = action.decision.resolved_by
        if action.decision and action.decision.notes:
            body["notes"] = action.decision.notes
        if action.changes:
            body["changes"] = action.changes
            body["arguments_used"] = action.approved_arguments
    body["execution"] = execution.value
    if action.execution and action.execution.execute_at:
        body["execute_at"] = action.execution.execute_at
    if action.execution and action.execution.result is not None:
        body["result"] = action.execution.result
    if action.execution and action.execution.outcome_unknown:
        body["outcome"] = "unknown"  # it may have acted: do not assume it did not, nor retry it
    if action.grant is not None:
        done = {
            ExecutionStatus.EXECUTED: "The action was executed.",
            ExecutionStatus.FAILED: "The action was attempted and failed.",
        }.get(execution, _NOT_RUN)
        body["message"] = f"Approved by a standing approval ({action.grant.uses_left} uses left). {done}"
    elif action.gated:
        body["message"] = _verdict_sentence(action, execution)
    elif execution is ExecutionStatus.EXECUTED:
        body["message"] = "The action was executed."
    elif execution is ExecutionStatus.FAILED:
        body["message"] = "The action was attempted and failed."
    else:
        body["message"] = _NOT_RUN
    return json.dumps(body, ensure_ascii=False, default=str)
