"""Assistants API emulation: assistants, threads, messages and runs with the real lifecycle rules.

- A run goes queued → in_progress → requires_action | completed, one step per retrieve.
- It expires ``run_ttl_seconds`` after it was CREATED (default 600, as OpenAI's ~10 minutes);
  an expired run is terminal and takes no tool outputs:
  400 ``Runs in status "expired" do not accept tool outputs.``
- While a run is not terminal the thread is locked:
  400 ``Can't add messages to thread_X while a run run_Y is active.`` and
  400 ``Thread thread_X already has an active run run_Y.``
- ``submit_tool_outputs`` takes every pending output in one request.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from typing import Any

from local.openai_requests import ApiError, effective_tools, offered_names, refuse_unsupported, select_calls
from local.scripted_model import describe_outputs, respond_to_user

TERMINAL = {"cancelled", "failed", "completed", "incomplete", "expired"}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _now() -> int:
    return int(time.time())


class AssistantsEmulator:
    def __init__(self, run_ttl_seconds: float = 600.0):
        self.run_ttl_seconds = run_ttl_seconds
        self.assistants: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.endings: deque[str] = deque()  # how the next runs' answers end (tests set them)
        self._lock = threading.RLock()

    # -- assistants and threads ----------------------------------------------------------
    def create_assistant(self, body: dict[str, Any]) -> dict[str, Any]:
        assistant = {
            "id": _id("asst"),
            "object": "assistant",
            "created_at": _now(),
            "name": body.get("name"),
            "description": body.get("description"),
            "model": body.get("model", "scripted"),
            "instructions": body.get("instructions"),
            "tools": effective_tools(body.get("tools"), "assistants"),
            "metadata": body.get("metadata") or {},
            "top_p": 1.0,
            "temperature": 1.0,
            "response_format": "auto",
            "tool_resources": {},
        }
        with self._lock:
            self.assistants[assistant["id"]] = assistant
        return assistant

    def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        assistant = self.assistants.get(assistant_id)
        if assistant is None:
            raise ApiError(404, f"No assistant found with id '{assistant_id}'.")
        return assistant

    def create_thread(self, body: dict[str, Any]) -> dict[str, Any]:
        thread = {
            "id": _id("thread"),
            "object": "thread",
            "created_at": _now(),
            "metadata": body.get("metadata") or {},
            "tool_resources": {},
        }
        with self._lock:
            self.threads[thread["id"]] = {**thread, "_messages": []}
            for message in body.get("messages") or []:
                self._append_message(thread["id"], message.get("role", "user"), _content_text(message.get("content")))
        return thread

    def _thread(self, thread_id: str) -> dict[str, Any]:
        thread = self.threads.get(thread_id)
        if thread is None:
            raise ApiError(404, f"No thread found with id '{thread_id}'.")
        return thread

    def _active_run(self, thread_id: str) -> dict[str, Any] | None:
        for run in self.runs.values():
            if run["thread_id"] == thread_id:
                self._expire_if_due(run)
                if run["status"] not in TERMINAL:
                    return run
        return None

    def _append_message(
        self, thread_id: str, role: str, text: str, run_id: str | None = None, assistant_id: str | None = None
    ) -> dict[str, Any]:
        message = {
            "id": _id("msg"),
            "object": "thread.message",
            "created_at": _now(),
            "thread_id": thread_id,
            "role": role,
            "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
            "assistant_id": assistant_id,
            "run_id": run_id,
            "attachments": [],
            "metadata": {},
            "status": "completed",
            "incomplete_details": None,
            "completed_at": _now(),
            "incomplete_at": None,
        }
        self.threads[thread_id]["_messages"].append(message)
        return message

    def create_message(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._thread(thread_id)
            active = self._active_run(thread_id)
            if active:
                raise ApiError(400, f"Can't add messages to {thread_id} while a run {active['id']} is active.")
            return self._append_message(thread_id, body.get("role", "user"), _content_text(body.get("content")))

    def list_messages(self, thread_id: str, order: str) -> list[dict[str, Any]]:
        with self._lock:
            messages = list(self._thread(thread_id)["_messages"])
        return list(reversed(messages)) if order == "desc" else messages

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        refuse_unsupported(body)
        extra = body.get("additional_messages") or []
        if not isinstance(extra, list) or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") and "content" in m for m in extra
        ):
            raise ApiError(400, "Invalid value for 'additional_messages'.", "additional_messages")
        run_tools = effective_tools(body["tools"], "assistants") if body.get("tools") else None
        with self._lock:
            self._thread(thread_id)
            assistant = self.get_assistant(body.get("assistant_id", ""))
            active = self._active_run(thread_id)
            if active:
                raise ApiError(400, f"Thread {thread_id} already has an active run {active['id']}.")
            for message in extra:  # added to the thread before the run starts, as the API does
                self._append_message(thread_id, message["role"], _content_text(message["content"]))
            created = time.time()
            run = {
                "id": _id("run"),
                "object": "thread.run",
                "created_at": int(created),
                "assistant_id": assistant["id"],
                "thread_id": thread_id,
                "status": "queued",
                "started_at": None,
                "expires_at": int(created + self.run_ttl_seconds),
                "cancelled_at": None,
                "failed_at": None,
                "completed_at": None,
                "last_error": None,
                "model": body.get("model") or assistant["model"],
                "instructions": body.get("instructions") or assistant["instructions"],
                "tools": run_tools or assistant["tools"],
                "required_action": None,
                "usage": None,
                "metadata": body.get("metadata") or {},
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "tool_choice": body.get("tool_choice", "auto"),
                "response_format": "auto",
                "truncation_strategy": {"type": "auto", "last_messages": None},
                "incomplete_details": None,
                "temperature": 1.0,
                "top_p": 1.0,
                "max_prompt_tokens": None,
                "max_completion_tokens": None,
                "_expires_precise": created + self.run_ttl_seconds,
                "_pending_outputs": None,
            }
            self.runs[run["id"]] = run
            return _public(run)

    def _run(self, thread_id: str, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None or run["thread_id"] != thread_id:
            raise ApiError(404, f"No run found with id '{run_id}'.")
        return run

    def _expire_if_due(self, run: dict[str, Any]) -> None:
        if run["status"] not in TERMINAL and time.time() >= run["_expires_precise"]:
            run.update(status="expired", required_action=None)

    def retrieve_run(self, thread_id: str, run_id: str) -> dict[str, Any]:
        with self._lock:
            run = self._run(thread_id, run_id)
            self._expire_if_due(run)
            if run["status"] == "queued":
                run.update(status="in_progress", started_at=_now())
            elif run["status"] == "in_progress":
                self._generate(run)
            elif run["status"] == "cancelling":
                run.update(status="cancelled", cancelled_at=_now())
            return _public(run)

    def _generate(self, run: dict[str, Any]) -> None:
        outputs = run.pop("_pending_outputs", None)
        run["_pending_outputs"] = None
        if outputs is not None:
            self._complete(run, describe_outputs(outputs))
            return
        user = [m for m in self.threads[run["thread_id"]]["_messages"] if m["role"] == "user"]
        text = user[-1]["content"][0]["text"]["value"] if user else ""
        reply, planned = respond_to_user(text, offered_names(run["tools"]))
        calls = select_calls(planned, run["tools"], run)
        if not calls or (reply is not None and run["tool_choice"] == "auto"):
            self._complete(run, reply or "I can't do that with the tools I have.")
            return
        run["status"] = "requires_action"
        run["required_action"] = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": _id("call"),
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in calls
                ]
            },
        }

    def _complete(self, run: dict[str, Any], text: str) -> None:
        """The run's answer, ended as ``self.endings`` says when a test set one: ``incomplete:<reason>``
        (max_completion_tokens, max_prompt_tokens), ``refusal`` or ``empty``."""
        ending = self.endings.popleft() if self.endings else ""
        status, details = "completed", None
        if ending.startswith("incomplete:"):
            status, details, text = "incomplete", {"reason": ending.removeprefix("incomplete:")}, text[: len(text) // 2]
        if ending != "empty":
            message = self._append_message(
                run["thread_id"], "assistant", text, run_id=run["id"], assistant_id=run["assistant_id"]
            )
            if ending == "refusal":
                message["content"] = [{"type": "refusal", "refusal": "I can't help with that."}]
        run.update(
            status=status,
            completed_at=_now() if status == "completed" else None,
            incomplete_details=details,
            required_action=None,
            usage={"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        )

    def submit_tool_outputs(self, thread_id: str, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            run = self._run(thread_id, run_id)
            self._expire_if_due(run)
            if run["status"] != "requires_action":
                raise ApiError(400, f'Runs in status "{run["status"]}" do not accept tool outputs.')
            calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]
            expected = [c["id"] for c in calls]
            given = [o.get("tool_call_id") for o in body.get("tool_outputs") or []]
            if sorted(expected) != sorted(given):
                raise ApiError(400, f"Expected tool outputs for call_ids {expected}, got {given}", "tool_outputs")
            names = {c["id"]: c["function"]["name"] for c in calls}
            by_id = {o["tool_call_id"]: str(o.get("output", "")) for o in body["tool_outputs"]}
            run["_pending_outputs"] = [(names[i], by_id[i]) for i in expected]
            run.update(status="queued", required_action=None)
            return _public(run)

    def cancel_run(self, thread_id: str, run_id: str) -> dict[str, Any]:
        with self._lock:
            run = self._run(thread_id, run_id)
            self._expire_if_due(run)
            if run["status"] in TERMINAL:
                raise ApiError(400, f"Cannot cancel run with status '{run['status']}'.")
            run.update(status="cancelling", required_action=None)
            return _public(run)

    def list_runs(self, thread_id: str, order: str) -> list[dict[str, Any]]:
        with self._lock:
            self._thread(thread_id)
            runs = [r for r in self.runs.values() if r["thread_id"] == thread_id]
            for run in runs:
                self._expire_if_due(run)
            # Creation order to the sub-second (``created_at`` alone ties within a second).
            ordered = sorted(runs, key=lambda r: r["_expires_precise"], reverse=order == "desc")
            return [_public(r) for r in ordered]


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if not k.startswith("_")}


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""
