"""The crash matrix: every flow, crashed right after each of its AWS writes, on every agent API.

For each flow (a turn starting with two gated calls and one ungated, the approval callback when
the approver approves, denies or modifies, the worker resuming a turn, the reconciler settling
an answer whose callback was lost, the reconciler running a call scheduled for later) and each
backend, a dry run counts the writes of the flow's invocation; then, for every N, a fresh
conversation goes through the flow with its invocation killed right after write N. Afterwards
the safety nets run as they would in AWS (queue redelivery, the reconciler once nothing else is
running, the approver answering what is still asked) and the point is judged by reading the
table and the emulators' logs:

- the conversation ends ``idle``, or ``failed`` with an assistant message saying what happened;
- every tool ran at most once per call, counted in *invocations* of the tool;
- a gated call ran only with a verdict that permits it;
- tool outputs reached the agent API at most once per call (for Chat Completions, which keeps
  no state, at most once in the stored history: re-asking the model after a crash is not a
  second submission);
- a new message afterwards gets a reply;
- every gated call that ran has its receipt, and the reconciler's next pass puts it in its
  tenant's log under a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from local.drills.crashes import CrashPlan, work_message
from local.environment import settings_changed
from local.evidence import TimedOut, effect_call, effects, local_client, submission_counts, wait_for

SEED = "Issue a €340 refund to customer #4821."
TWO_GATED_ONE_UNGATED = "Refund €340 to customer #4821 and €120 to customer #4822, and look up customer #55."
FOLLOW_UP = "Please look up customer #56."
BACKENDS = ("responses", "assistants", "chat")

# Short leases so the safety nets act within seconds: the matrix only runs the reconciler once
# nothing else runs, so a running turn past its lease really was abandoned.
MATRIX_SETTINGS = {
    "RUNNING_LEASE_SECONDS": "1",
    "EXECUTION_LEASE_SECONDS": "1",
    "UNBOUND_GRACE_SECONDS": "1",
    "RECONCILE_AFTER_SECONDS": "0",
    "STALL_AFTER_SECONDS": "0",
}


@dataclass(frozen=True)
class Flow:
    name: str
    function_id: str
    message: str
    answer: str  # how the approver answers the flow's decisions: approve, deny, modify, schedule
    kind: str | None = None  # for the worker: which work message it is handling
    callbacks_dropped: bool = False
    agent: str | None = None  # the catalog agent the conversation runs (default: the catalog's)
    apis: tuple[str, ...] = ()  # the agent APIs the flow exists on (all when empty)


FLOWS = [
    Flow("start a turn (2 gated, 1 ungated)", "AgentWorkerFunction", TWO_GATED_ONE_UNGATED, "approve", "start_turn"),
    Flow("approve callback", "ApprovalCallbackFunction", SEED, "approve"),
    Flow("deny callback", "ApprovalCallbackFunction", SEED, "deny"),
    Flow("modify callback", "ApprovalCallbackFunction", SEED, "modify"),
    # The callback hands an approved call to the worker, which runs it and resumes the turn in one
    # invocation: its writes are the execution's, then the resume's.
    Flow("run the approved call, then resume", "AgentWorkerFunction", SEED, "approve", "run_calls"),
    Flow("reconciler settles a lost callback", "ReconcilerFunction", SEED, "approve", callbacks_dropped=True),
    Flow("scheduled execution", "ReconcilerFunction", SEED, "schedule"),
    # A hosted MCP call: the approval goes back to OpenAI, which calls the MCP server; the response's
    # mcp_call item is recorded with its receipt. The worker's run_calls, then its resume.
    Flow(
        "hosted MCP call approved, then resume",
        "AgentWorkerFunction",
        'call helpdesk__create_ticket with {"title": "Printer", "body": "It jams."}',
        "approve",
        "run_calls",
        agent="helpdesk",
        apis=("responses",),
    ),
]


@dataclass
class PointResult:
    flow: str
    backend: str
    after_writes: int
    fired: bool
    final_status: str = ""
    stranded: bool = False
    duplicate_executions: int = 0
    unapproved_executions: int = 0
    duplicate_submissions: int = 0
    receipts_missing: int = 0  # a gated call that ran without its receipt, or its receipt never logged
    follow_up_replied: bool = True
    notes: str = ""

    @property
    def held(self) -> bool:
        return (
            not self.stranded
            and self.follow_up_replied
            and not (
                self.duplicate_executions
                or self.unapproved_executions
                or self.duplicate_submissions
                or self.receipts_missing
            )
        )


@dataclass
class MatrixReport:
    points: list[PointResult] = field(default_factory=list)
    writes_per_flow: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        return {
            "points_tried": len(self.points),
            "crashes_fired": sum(p.fired for p in self.points),
            "stranded": sum(p.stranded or not p.follow_up_replied for p in self.points),
            "duplicate_executions": sum(p.duplicate_executions for p in self.points),
            "unapproved_executions": sum(p.unapproved_executions for p in self.points),
            "duplicate_submissions": sum(p.duplicate_submissions for p in self.points),
            "receipts_missing": sum(p.receipts_missing for p in self.points),
        }

    def line(self) -> str:
        s = self.summary()
        return (
            f"crash matrix: points tried {s['points_tried']} (crashes fired {s['crashes_fired']})   "
            f"stranded {s['stranded']}   duplicate executions {s['duplicate_executions']}   "
            f"unapproved executions {s['unapproved_executions']}   "
            f"duplicate submissions {s['duplicate_submissions']}   "
            f"receipts missing {s['receipts_missing']}   (all must be 0)"
        )

    def failures(self) -> list[PointResult]:
        return [p for p in self.points if not p.held]

    def as_json(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "writes_per_flow": self.writes_per_flow,
            "failures": [asdict(p) for p in self.failures()],
            # Points whose invocation made fewer writes than the dry run counted (judged all the same).
            "not_fired": [f"{p.flow} [{p.backend}] after write {p.after_writes}" for p in self.points if not p.fired],
        }


class CrashMatrix:
    def __init__(self, stack, deadline_seconds: float = 60.0):
        self.stack = stack
        self.api = stack.api_url
        self.headers = {"Authorization": f"Bearer {stack.config.api_key}"}
        self.handover_headers = {"Authorization": f"Bearer {stack.config.handover_local_key}"}
        self.deadline = deadline_seconds
        self.http = requests.Session()
        self.report = MatrixReport()

    # -- the matrix ------------------------------------------------------------------------
    def run(self, flows: list[Flow] = FLOWS, backends: tuple[str, ...] = BACKENDS, points: Callable | None = None):
        """Every flow, backend and write; ``points(n_writes)`` picks which N to try (all by default)."""
        for backend in backends:
            with self._backend(backend):
                for flow in flows:
                    if flow.apis and backend not in flow.apis:
                        continue
                    writes = self.dry_run(flow)
                    self.report.writes_per_flow[f"{flow.name} [{backend}]"] = writes
                    for n in points(writes) if points else range(1, writes + 1):
                        self.report.points.append(self.point(flow, backend, n))
        return self.report

    @contextmanager
    def _backend(self, backend: str) -> Iterator[None]:
        extra = {"AGENT_API": backend, **MATRIX_SETTINGS}
        if backend == "assistants":
            extra["OPENAI_ASSISTANT_ID"] = self._assistant_id()
        with settings_changed(**extra):
            yield

    def _assistant_id(self) -> str:
        from openai import OpenAI

        from signoff import runtime
        from signoff.adapters.assistant_setup import create_assistant

        client = OpenAI(api_key="sk-local-emulator", base_url=self.stack.openai_url)
        return create_assistant(client, "gpt-4.1", runtime.tools().definitions())

    def dry_run(self, flow: Flow) -> int:
        """How many writes the flow's invocation makes when nothing goes wrong."""
        plan = self._through_flow(flow, None)
        cid = plan[1]
        self._drive_to_reply(cid, flow)
        return plan[0].writes_seen

    def point(self, flow: Flow, backend: str, n: int) -> PointResult:
        result = PointResult(flow.name, backend, n, fired=False)
        mcp_before = len(self.stack.mcp_tools.calls.calls)  # points run one at a time
        try:
            plan, cid = self._through_flow(flow, n)
            result.fired = plan.fired
            view = self._drive_to_reply(cid, flow)
            result.final_status = view["status"]
            self._judge(cid, result)
            self._judge_hosted(cid, result, len(self.stack.mcp_tools.calls.calls) - mcp_before)
            result.follow_up_replied = self._follow_up(cid)
        except (TimedOut, AssertionError, requests.RequestException) as exc:
            result.stranded = True
            result.notes = str(exc)[:300]
        return result

    # -- one point -------------------------------------------------------------------------
    def _through_flow(self, flow: Flow, n: int | None) -> tuple[CrashPlan, str]:
        """Take a new conversation into the flow with the crash armed; return the plan and its id."""
        injector = self.stack.crashes
        cid = ""

        def ours(event: dict[str, Any]) -> bool:
            if flow.kind is None:
                return True
            message = work_message(event)
            return message.get("kind") == flow.kind and (not cid or message.get("conversation_id") == cid)

        plan = CrashPlan(flow.function_id, n, ours)
        handover = self.stack.handover
        if flow.kind == "start_turn":
            injector.arm(plan)
            cid = self._start(flow.message, flow.agent)
        else:
            cid = self._start(flow.message, flow.agent)
            decisions = self._pending(cid)
            if flow.function_id == "ReconcilerFunction" and not flow.callbacks_dropped:
                # Scheduled: the call is approved to run shortly; the turn goes on without it.
                execute_at = datetime.now(UTC) + timedelta(seconds=1)
                for decision in decisions:
                    self._answer(decision, flow.answer, execute_at)
                self._wait_status(cid, ("idle",))
                wait_for(lambda: datetime.now(UTC) > execute_at, timeout=10, what="execute_at")
                injector.arm(plan)
                self.stack.run_scheduled("ReconcilerFunction")
            elif flow.function_id == "ReconcilerFunction":
                handover.drop_callbacks = 1.0
                try:
                    for decision in decisions:
                        self._answer(decision, flow.answer)
                finally:
                    handover.drop_callbacks = 0.0
                injector.arm(plan)
                self.stack.run_scheduled("ReconcilerFunction")
            else:
                injector.arm(plan)
                for decision in decisions:
                    self._answer(decision, flow.answer)
        try:
            wait_for(lambda: plan.done.is_set(), timeout=self.deadline, what=f"the {flow.name} invocation")
        finally:
            injector.disarm()
        return plan, cid

    def _drive_to_reply(self, cid: str, flow: Flow) -> dict[str, Any]:
        """Let the safety nets do their work: redelivery, the approver, the reconciler once all is still."""

        def settled() -> dict[str, Any] | None:
            view = self._view(cid)
            if _final(view):
                return view
            for decision in self._pending_now(cid):
                self._answer(decision, "approve" if flow.answer == "schedule" else flow.answer)
            if self.stack.quiescent():
                self.stack.run_scheduled("ReconcilerFunction")
            return None

        return wait_for(settled, timeout=self.deadline, what=f"{cid} to reach a reply")

    def _follow_up(self, cid: str) -> bool:
        response = self.http.post(
            f"{self.api}/conversations/{cid}/messages", json={"message": FOLLOW_UP}, headers=self.headers, timeout=30
        )
        if response.status_code != 202:
            return False
        try:
            view = self._wait_status(cid, ("idle", "failed"))
        except TimedOut:
            return False
        return view["status"] == "idle" and view["messages"][-1]["role"] == "assistant"

    def _judge(self, cid: str, result: PointResult) -> None:
        from signoff import runtime

        table = runtime.table()
        conversation, messages, actions = table.load_conversation(cid)
        if not _final({"status": conversation.status.value, "messages": [m.model_dump() for m in messages]}):
            result.stranded = True
        ran = {effect_call(e): e for e in self._effects(cid)}
        for action in actions:
            effect = ran.get((action.turn_id, action.call_id))
            if effect is None:
                continue
            result.duplicate_executions += max(0, int(effect.get("invocations", 1)) - 1)
            if action.gated and not (action.verdict is not None and action.verdict.permits_execution):
                result.unapproved_executions += 1
        result.duplicate_submissions = self._duplicate_submissions(cid, actions)
        result.receipts_missing = self._receipts_missing(actions)

    def _judge_hosted(self, cid: str, result: PointResult, mcp_calls: int) -> None:
        """Hosted MCP calls are made by OpenAI at the MCP server: counted there, during this point."""
        from signoff import runtime

        hosted = [a for a in runtime.table().load_conversation(cid)[2] if a.hosted]
        if not hosted:
            return
        permitted = [a for a in hosted if (a.verdict is not None and a.verdict.permits_execution) or not a.gated]
        result.duplicate_executions += max(0, mcp_calls - len(hosted))
        result.unapproved_executions += max(0, min(mcp_calls, len(hosted)) - len(permitted))

    def _receipts_missing(self, actions: list) -> int:
        """Gated calls that ran without a receipt, or whose receipt the reconciler's next pass (run
        here, as the schedule would) does not put in the tenant's log."""
        from signoff import runtime
        from signoff.logic.receipts import receipt_needed

        needed = [a for a in actions if a.execution is not None and receipt_needed(a, a.execution)]
        missing = sum(1 for a in needed if not a.receipt)
        if not any(a.receipt for a in needed):
            return missing
        self.stack.run_scheduled("ReconcilerFunction")
        logged: set[str] = set()
        for tenant in {a.tenant for a in needed}:
            after: int | None = 0
            while after is not None:
                page, after = runtime.table().list_log(tenant, after, 500)
                logged.update(jws for _, jws in page)
        return missing + sum(1 for a in needed if a.receipt and a.receipt not in logged)

    def _duplicate_submissions(self, cid: str, actions: list) -> int:
        from signoff import runtime

        call_ids = {a.call_id for a in actions}
        if runtime.settings().agent_api == "chat":
            from signoff.dal.chat_history import ChatHistoryTable

            history = ChatHistoryTable(local_client("dynamodb"), runtime.settings().table_name).load(cid)
            seen: dict[str, int] = {}
            for message in history:
                if message.get("role") == "tool" and message.get("tool_call_id") in call_ids:
                    seen[message["tool_call_id"]] = seen.get(message["tool_call_id"], 0) + 1
            return sum(max(0, count - 1) for count in seen.values())
        counts = submission_counts(self.stack.openai.log.entries(), call_ids)
        return sum(max(0, count - 1) for count in counts.values())

    # -- plumbing --------------------------------------------------------------------------
    def _effects(self, cid: str) -> list[dict[str, Any]]:
        return effects(self.stack.resources.refs["SignoffTable"], cid)

    def _start(self, message: str, agent: str | None = None) -> str:
        body = {"message": message, **({"agent": agent} if agent else {})}
        response = self.http.post(f"{self.api}/conversations", json=body, headers=self.headers, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["conversation_id"]

    def _view(self, cid: str) -> dict[str, Any]:
        return self.http.get(f"{self.api}/conversations/{cid}", headers=self.headers, timeout=30).json()

    def _wait_status(self, cid: str, statuses: tuple[str, ...]) -> dict[str, Any]:
        return wait_for(
            lambda: (v := self._view(cid))["status"] in statuses and v, timeout=self.deadline, what=f"{cid} {statuses}"
        )

    def _pending_now(self, cid: str) -> list[str]:
        from signoff import runtime

        loaded = runtime.table().load_conversation(cid)
        if loaded is None:
            return []
        approvals = runtime.table().get_approvals([i for a in loaded[2] for i in a.approval_ids])
        pending = {a.decision_id for a in approvals if a.decision_id}
        return [d["id"] for d in self.stack.handover.pending() if d["id"] in pending]

    def _pending(self, cid: str) -> list[str]:
        def ready():
            view = self._view(cid)
            ids = [
                a["decision"]["id"] for a in view["actions"] if a["decision"] and a["decision"]["status"] == "pending"
            ]
            gated = sum(1 for a in view["actions"] if a["gated"])
            return ids if view["status"] == "awaiting_approval" and len(ids) == gated else None

        return wait_for(ready, timeout=self.deadline, what=f"the decisions of {cid}")

    def _answer(self, decision_id: str, answer: str, execute_at: datetime | None = None) -> None:
        body: dict[str, Any] = {"action": "approve" if answer == "schedule" else answer}
        if answer == "modify":
            body["response_data"] = {"amount": 150}
        if answer == "schedule":
            when = execute_at or datetime.now(UTC)
            body["response_data"] = {"execute_at": when.isoformat().replace("+00:00", "Z")}
        self.http.post(
            f"{self.stack.handover_url}/decisions/{decision_id}/resolve",
            json=body,
            headers=self.handover_headers,
            timeout=30,
        )


def _final(view: dict[str, Any]) -> bool:
    """Idle, or failed with an assistant message saying so: the user has a reply either way."""
    messages = view.get("messages") or []
    replied = bool(messages) and messages[-1]["role"] == "assistant"
    return view.get("status") in ("idle", "failed") and replied


def first_middle_last(writes: int) -> list[int]:
    """A slice of a flow's writes for quick runs: its first, middle and last."""
    return sorted({1, max(1, writes // 2), writes}) if writes else []
