"""An OpenAI-compatible server for local runs and tests: Responses + Conversations, Assistants
(threads, messages, runs) and Chat Completions, all driven by the ScriptedModel.

It keeps the rules the real APIs enforce on a tool round trip: ``conversation`` and
``previous_response_id`` are exclusive and every pending function call needs its output
(400 ``No tool output found for function call call_...``); Assistants runs expire, lock their
thread and take all outputs at once (see ``openai_assistants``); Chat Completions wants one
``tool`` message per call. ``SIGNOFF_EMULATOR_RUN_TTL_SECONDS`` shortens run expiry (default 600).
``GET /_emulator/log`` lists each request with its JSON body and the status it was answered with.

    python -m local.openai_server --port 3002
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from local.faults import FaultPlan
from local.openai_assistants import AssistantsEmulator
from local.openai_chat import chat_completion
from local.openai_hosted_mcp import HostedMcp, is_mcp, needs_approval
from local.openai_requests import (
    ApiError,
    check_input_items,
    effective_tools,
    offered_names,
    refuse_unsupported,
    select_calls,
)
from local.request_log import RequestLog
from local.scripted_model import describe_outputs, reply_without_tools, respond_to_user


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _error(
    status: int, message: str, param: str | None = None, code: str | None = None, kind: str = "invalid_request_error"
):
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return jsonify(body), status


class OpenAIEmulator:
    def __init__(self, run_ttl_seconds: float | None = None):
        if run_ttl_seconds is None:
            run_ttl_seconds = float(os.environ.get("SIGNOFF_EMULATOR_RUN_TTL_SECONDS", "600"))
        self.assistants = AssistantsEmulator(run_ttl_seconds)
        self.hosted_mcp = HostedMcp()
        self.faults = FaultPlan()
        # How the next answers end, one entry each (tests set them): Responses "incomplete:<reason>",
        # "refusal", "empty", "commentary" (text beside the calls); Chat "length", "content_filter",
        # "refusal", "empty".
        self.endings: deque[str] = deque()
        # The context window in characters of a request's whole input (0: none): past it a 400
        # context_length_exceeded, unless a Responses request asks for truncation "auto".
        self.context_chars = int(os.environ.get("SIGNOFF_EMULATOR_CONTEXT_CHARS", "0") or 0)
        self.log = RequestLog()
        self._lock = threading.RLock()
        self.conversations: dict[str, dict[str, Any]] = {}
        self.responses: dict[str, dict[str, Any]] = {}
        self.sequential_call_ids = False  # Chat Completions: call_0, call_1, ... in every answer

    # -- the model's turn ----------------------------------------------------------------
    def _generate(
        self, history: list[dict[str, Any]], new_items: list[dict[str, Any]], tools: list[dict], body: dict[str, Any]
    ) -> list[dict]:
        outputs = [i for i in new_items if i.get("type") == "function_call_output"]
        approvals = [i for i in new_items if i.get("type") == "mcp_approval_response"]
        if outputs or approvals:
            names = {i["call_id"]: i["name"] for i in history if i.get("type") == "function_call"}
            results = [(names.get(o["call_id"], "tool"), str(o.get("output", ""))) for o in outputs]
            calls, said = self._answer_approvals(history, approvals, tools)
            results += [(c["name"], c["output"] if c["error"] is None else f'{{"error": {json.dumps(c["error"])}}}')
                        for c in calls]  # fmt: skip
            text = " ".join(filter(None, [describe_outputs(results) if results else "", *said]))
            return [*calls, self._message(text)]
        user_text = ""
        for item in reversed(new_items):
            if item.get("type") == "message" and item.get("role") == "user":
                user_text = _text_of(item)
                break
        hosted = {f"{t['server_label']}__{m['name']}": (t, m["name"]) for t in tools if is_mcp(t)
                  for m in self.hosted_mcp.tools_of(t)}  # fmt: skip
        reply, planned = respond_to_user(user_text, offered_names(tools) | set(hosted))
        calls = select_calls([c for c in planned if c.name not in hosted], tools, body)
        hosted_calls = [c for c in planned if c.name in hosted]
        if (not calls and not hosted_calls) or (reply is not None and body.get("tool_choice", "auto") == "auto"):
            return [self._message(reply or reply_without_tools(user_text))]
        listed = {i.get("server_label") for i in history if i.get("type") == "mcp_list_tools"}
        output: list[dict] = [
            self.hosted_mcp.list_item(t) for t in tools if is_mcp(t) and t["server_label"] not in listed
        ]
        output += [
            {
                "type": "function_call",
                "id": _id("fc"),
                "call_id": _id("call"),
                "name": c.name,
                "arguments": json.dumps(c.arguments),
                "status": "completed",
            }
            for c in calls
        ]
        ran = []
        for c in hosted_calls:
            tool, name = hosted[c.name]
            if needs_approval(tool, name):
                output.append(self.hosted_mcp.approval_request(tool, name, c.arguments))
            else:
                ran.append(self.hosted_mcp.call(tool, name, json.dumps(c.arguments), None))
        output += ran
        if ran and not calls and len(ran) == len(hosted_calls):
            output.append(self._message(describe_outputs([(r["name"], r["output"] or r["error"]) for r in ran])))
        return output

    def _answer_approvals(
        self, history: list[dict[str, Any]], approvals: list[dict[str, Any]], tools: list[dict]
    ) -> tuple[list[dict], list[str]]:
        """The hosted calls an approval lets run (made now), and a sentence for each one denied."""
        requests = {i["id"]: i for i in history if i.get("type") == "mcp_approval_request"}
        servers = {t["server_label"]: t for t in tools if is_mcp(t)}
        calls, said = [], []
        for approval in approvals:
            request = requests.get(approval["approval_request_id"])
            if request is None or request["server_label"] not in servers:
                continue
            if approval["approve"]:
                tool = servers[request["server_label"]]
                calls.append(self.hosted_mcp.call(tool, request["name"], request["arguments"], request["id"]))
            else:
                reason = f": {approval['reason']}" if approval.get("reason") else "."
                said.append(f"The call to {request['name']} was not approved{reason}")
        return calls, said

    @staticmethod
    def _message(text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "id": _id("msg"),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }

    # -- endpoints -------------------------------------------------------------------------
    def create_conversation(self, body: dict[str, Any]) -> dict[str, Any]:
        conv = {
            "id": _id("conv"),
            "object": "conversation",
            "created_at": int(time.time()),
            "metadata": body.get("metadata") or {},
        }
        with self._lock:
            self.conversations[conv["id"]] = {
                **conv,
                "items": [_normalise(i) for i in body.get("items") or []],
            }
        return conv

    def add_items(self, conv_id: str, raw_items: list[Any]):
        """Items added to a Conversation without a model response (e.g. outputs for open calls)."""
        try:
            check_input_items(raw_items, "items")
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.param)
        items = [_normalise(i) for i in raw_items]
        with self._lock:
            conv = self.conversations.get(conv_id)
            if conv is None:
                return _error(404, f"Conversation with id '{conv_id}' not found.")
            refused = _refused_outputs(conv["items"], items, "items")
            if refused is not None:
                return refused
            conv["items"].extend(items)
        return jsonify({"object": "list", "data": items, "first_id": None, "last_id": None, "has_more": False})

    def create_response(self, body: dict[str, Any]):
        try:
            refuse_unsupported(body)
            check_input_items(body.get("input"), "input")
            tools = effective_tools(body.get("tools"), "responses")
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.param, exc.code)
        conversation = body.get("conversation")
        previous = body.get("previous_response_id")
        if conversation and previous:
            return _error(
                400,
                "Mutually exclusive parameters: 'conversation' and 'previous_response_id'.",
                "conversation",
            )
        conv_id = conversation.get("id") if isinstance(conversation, dict) else conversation
        raw_input = body.get("input")
        new_items = [
            _normalise(i)
            for i in (
                [{"type": "message", "role": "user", "content": raw_input}]
                if isinstance(raw_input, str)
                else raw_input or []
            )
        ]
        with self._lock:
            if conv_id:
                conv = self.conversations.get(conv_id)
                if conv is None:
                    return _error(404, f"Conversation with id '{conv_id}' not found.", "conversation")
                history = conv["items"]
            elif previous:
                prev = self.responses.get(previous)
                if prev is None:
                    return _error(404, f"Previous response with id '{previous}' not found.", "previous_response_id")
                history = prev["_history"]
            else:
                history = []
            refused = _refused_outputs(history, new_items, "input")
            if refused is not None:
                return refused
            calls = {i["call_id"] for i in history if i.get("type") == "function_call"}
            answered = {i["call_id"] for i in history if i.get("type") == "function_call_output"}
            pending = (
                calls - answered - {i.get("call_id") for i in new_items if i.get("type") == "function_call_output"}
            )
            if pending:
                return _error(400, f"No tool output found for function call {sorted(pending)[0]}.", "input")
            seen = [*history, *new_items]
            too_long = self.context_chars and len(json.dumps(seen)) > self.context_chars
            if too_long and body.get("truncation") != "auto":  # "auto": the oldest items are dropped
                return _error(
                    400,
                    "Your input exceeds the context window of this model. Please adjust your input and try again.",
                    "input",
                    "context_length_exceeded",
                )
            output = self._generate(history, new_items, tools, body)
            ending = self.endings.popleft() if self.endings else ""
            output, status, incomplete = _ended(output, ending)
            full_history = [*history, *new_items, *output]
            if conv_id:
                self.conversations[conv_id]["items"] = full_history
            response = {
                "id": _id("resp"),
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "model": body.get("model", "scripted"),
                "instructions": body.get("instructions"),
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": tools,
                "conversation": {"id": conv_id} if conv_id else None,
                "previous_response_id": previous,
                "error": None,
                "incomplete_details": incomplete,
                "truncation": body.get("truncation", "disabled"),
                "metadata": {},
                "temperature": 1.0,
                "top_p": 1.0,
                "text": {"format": {"type": "text"}},
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 10,
                    "total_tokens": 20,
                    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            }
            self.responses[response["id"]] = {**response, "_history": full_history}
        return jsonify(response)


def _ended(output: list[dict[str, Any]], ending: str) -> tuple[list[dict[str, Any]], str, dict | None]:
    """The output as ``ending`` makes it, its status and incomplete details."""
    calls = [item for item in output if item.get("type") == "function_call"]
    if ending == "commentary" and calls:
        said = OpenAIEmulator._message("I'll check that first.")
        return [{**said, "phase": "commentary"}, *output], "completed", None
    if calls or not ending or ending == "commentary":
        return output, "completed", None
    if ending.startswith("incomplete:"):
        reason = ending.removeprefix("incomplete:")
        text = _text_of(output[0]) if output else ""
        kept = [OpenAIEmulator._message(text[: len(text) // 2])] if reason == "max_output_tokens" else []
        return kept, "incomplete", {"reason": reason}
    if ending == "refusal":
        refusal = {
            **OpenAIEmulator._message(""),
            "content": [{"type": "refusal", "refusal": "I can't help with that."}],
        }
        return [refusal], "completed", None
    return [], "completed", None  # "empty"


def _refused_outputs(history: list[dict[str, Any]], new_items: list[dict[str, Any]], param: str):
    """The real API's 400 for an output that answers no call, or a call answered already; else None."""
    calls = {i["call_id"] for i in history if i.get("type") == "function_call"}
    answered = {i["call_id"] for i in history if i.get("type") == "function_call_output"}
    for item in new_items:
        if item.get("type") != "function_call_output":
            continue
        if item.get("call_id") not in calls:
            return _error(
                400, f"No tool call found for function call output with call_id {item.get('call_id')}.", param
            )
        if item["call_id"] in answered:
            return _error(400, f"Duplicate tool output for function call {item['call_id']}.", param)
        answered.add(item["call_id"])
    return None


def _page(items: list[dict[str, Any]], args: Any):
    """A cursor page as the API lists things: ``limit`` (1-100, default 20) items after ``after``."""
    try:
        limit = int(args.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ApiError(400, "Invalid 'limit': integer below minimum value or above maximum value (1-100).", "limit")
    after = args.get("after")
    if after:
        ids = [i.get("id") for i in items]
        if after not in ids:
            raise ApiError(400, f"Invalid 'after': no item with id {after!r}.", "after")
        items = items[ids.index(after) + 1 :]
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }


def _text_of(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") for p in content or [] if isinstance(p, dict)]
    return " ".join(parts)


def _normalise(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as the Conversation stores it: typed, with an id."""
    item = {"type": "message", **item} if "type" not in item and "role" in item else dict(item)
    if "id" not in item:
        prefix = {
            "message": "msg",
            "function_call_output": "fco",
            "function_call": "fc",
            "mcp_approval_response": "mcpa",
        }
        prefix = prefix.get(item["type"], "item")
        item["id"] = _id(prefix)
    if item["type"] == "message" and isinstance(item.get("content"), str):
        kind = "output_text" if item.get("role") == "assistant" else "input_text"
        item["content"] = [{"type": kind, "text": item["content"]}]
    item.setdefault("status", "completed")  # the API reports every stored item's status
    return item


def register_assistants(app: Flask, assistants: AssistantsEmulator) -> None:
    def guarded(fn, *args):
        try:
            result = fn(*args)
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.param)
        response = jsonify(result)
        response.headers["openai-poll-after-ms"] = "20"
        return response

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    app.add_url_rule(
        "/v1/assistants", "assistants_create", lambda: guarded(assistants.create_assistant, body()), methods=["POST"]
    )
    app.add_url_rule("/v1/assistants/<aid>", "assistants_get", lambda aid: guarded(assistants.get_assistant, aid))
    app.add_url_rule(
        "/v1/threads", "threads_create", lambda: guarded(assistants.create_thread, body()), methods=["POST"]
    )
    app.add_url_rule(
        "/v1/threads/<tid>/messages",
        "messages_create",
        lambda tid: guarded(assistants.create_message, tid, body()),
        methods=["POST"],
    )
    app.add_url_rule(
        "/v1/threads/<tid>/messages",
        "messages_list",
        lambda tid: guarded(
            lambda: _page(assistants.list_messages(tid, request.args.get("order", "desc")), request.args)
        ),
    )
    app.add_url_rule(
        "/v1/threads/<tid>/runs",
        "runs_create",
        lambda tid: guarded(assistants.create_run, tid, body()),
        methods=["POST"],
    )
    app.add_url_rule(
        "/v1/threads/<tid>/runs",
        "runs_list",
        lambda tid: guarded(lambda: _page(assistants.list_runs(tid, request.args.get("order", "desc")), request.args)),
    )
    app.add_url_rule(
        "/v1/threads/<tid>/runs/<rid>", "runs_get", lambda tid, rid: guarded(assistants.retrieve_run, tid, rid)
    )
    app.add_url_rule(
        "/v1/threads/<tid>/runs/<rid>/submit_tool_outputs",
        "runs_submit",
        lambda tid, rid: guarded(assistants.submit_tool_outputs, tid, rid, body()),
        methods=["POST"],
    )
    app.add_url_rule(
        "/v1/threads/<tid>/runs/<rid>/cancel",
        "runs_cancel",
        lambda tid, rid: guarded(assistants.cancel_run, tid, rid),
        methods=["POST"],
    )


def create_app(emulator: OpenAIEmulator | None = None) -> Flask:
    emulator = emulator or OpenAIEmulator()
    app = Flask("openai-emulator")
    app.config["emulator"] = emulator

    @app.before_request
    def _record_and_authorise():
        if request.path.startswith("/_emulator"):
            return None
        status = emulator.faults.next_fault()
        if status is not None:
            body = {"error": {"message": "Injected failure", "type": "server_error", "param": None, "code": None}}
            response = jsonify(body)
            response.status_code = status
            response.headers["retry-after-ms"] = "20"
            return response
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return jsonify(
                {
                    "error": {
                        "message": "You didn't provide an API key.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
            ), 401
        return None

    @app.post("/v1/conversations")
    def conversations_create():
        return jsonify(emulator.create_conversation(request.get_json(silent=True) or {}))

    @app.get("/v1/conversations/<conv_id>")
    def conversations_get(conv_id: str):
        conv = emulator.conversations.get(conv_id)
        if conv is None:
            return _error(404, f"Conversation with id '{conv_id}' not found.")
        return jsonify({k: v for k, v in conv.items() if k != "items"})

    @app.post("/v1/conversations/<conv_id>/items")
    def conversation_items_create(conv_id: str):
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            return _error(400, "Missing required parameter: 'items'.", "items")
        return emulator.add_items(conv_id, body["items"])

    @app.get("/v1/conversations/<conv_id>/items")
    def conversation_items(conv_id: str):
        conv = emulator.conversations.get(conv_id)
        if conv is None:
            return _error(404, f"Conversation with id '{conv_id}' not found.")
        items = list(conv["items"])
        if request.args.get("order", "desc") == "desc":
            items.reverse()
        return jsonify(_page(items, request.args))

    @app.post("/v1/responses")
    def responses_create():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.")
        return emulator.create_response(body)

    @app.get("/v1/responses/<resp_id>")
    def responses_get(resp_id: str):
        response = emulator.responses.get(resp_id)
        if response is None:
            return _error(404, f"Response with id '{resp_id}' not found.")
        return jsonify({k: v for k, v in response.items() if not k.startswith("_")})

    @app.after_request
    def _record(response):
        """Every request with the status it got: a refused one never reached the model."""
        if not request.path.startswith("/_emulator"):
            answer = response.get_json(silent=True) if response.is_json else None
            emulator.log.add(request.method, request.path, request.get_json(silent=True), response.status_code, answer)
        return response

    register_assistants(app, emulator.assistants)

    @app.post("/v1/chat/completions")
    def chat_completions():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.")
        ending = emulator.endings.popleft() if emulator.endings else None
        try:
            answer = chat_completion(
                body,
                sequential_call_ids=emulator.sequential_call_ids,
                ending=ending,
                context_chars=emulator.context_chars,
            )
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.param, exc.code)
        return jsonify(answer)

    @app.get("/_emulator/log")
    def log():
        return jsonify(emulator.log.entries())

    @app.errorhandler(ApiError)
    def _refused(exc: ApiError):
        return _error(exc.status, exc.message, exc.param)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        """Unknown routes and methods answer in OpenAI's error shape, never as an HTML page."""
        if exc.code == 405:
            return _error(405, f"Method {request.method} is not allowed on {request.path}.", None, "method_not_allowed")
        if exc.code == 404:
            return _error(404, f"Invalid URL ({request.method} {request.path})", None, "unknown_url")
        return _error(exc.code or 400, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        return _error(500, "The server had an error while processing your request.", None, None, "server_error")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3002)
    args = parser.parse_args()
    create_app().run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
