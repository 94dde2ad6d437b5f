"""An OpenAI-compatible server for local runs and tests: Responses + Conversations.

Driven by the ScriptedModel. It keeps the rules the real API enforces on a tool round trip:
``conversation`` and ``previous_response_id`` are exclusive, and every pending function call
needs its output (400 ``No tool output found for function call call_...``).

    python -m local.openai_server --port 3002
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from typing import Any

from flask import Flask, jsonify, request

from local.request_log import RequestLog
from local.scripted_model import describe_outputs, plan_tool_calls, reply_without_tools


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _error(status: int, message: str, param: str | None = None, code: str | None = None):
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return jsonify(body), status


class OpenAIEmulator:
    def __init__(self):
        self.log = RequestLog()
        self._lock = threading.RLock()
        self.conversations: dict[str, dict[str, Any]] = {}
        self.responses: dict[str, dict[str, Any]] = {}

    # -- the model's turn ----------------------------------------------------------------
    def _generate(
        self, history: list[dict[str, Any]], new_items: list[dict[str, Any]], tools: list[dict]
    ) -> list[dict]:
        outputs = [i for i in new_items if i.get("type") == "function_call_output"]
        if outputs:
            names = {i["call_id"]: i["name"] for i in history if i.get("type") == "function_call"}
            text = describe_outputs([(names.get(o["call_id"], "tool"), str(o.get("output", ""))) for o in outputs])
            return [self._message(text)]
        user_text = ""
        for item in reversed(new_items):
            if item.get("type") == "message" and item.get("role") == "user":
                user_text = _text_of(item)
                break
        offered = {t.get("name") or (t.get("function") or {}).get("name") for t in tools or []}
        calls = [c for c in plan_tool_calls(user_text) if c.name in offered]
        if not calls:
            return [self._message(reply_without_tools(user_text))]
        return [
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

    def create_response(self, body: dict[str, Any]):
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
            calls = {i["call_id"] for i in history if i.get("type") == "function_call"}
            answered = {i["call_id"] for i in history if i.get("type") == "function_call_output"}
            for item in new_items:
                if item.get("type") == "function_call_output":
                    if item.get("call_id") not in calls:
                        return _error(
                            400,
                            f"No tool call found for function call output with call_id {item.get('call_id')}.",
                            "input",
                        )
                    if item["call_id"] in answered:
                        return _error(400, f"Duplicate tool output for function call {item['call_id']}.", "input")
            pending = (
                calls - answered - {i.get("call_id") for i in new_items if i.get("type") == "function_call_output"}
            )
            if pending:
                return _error(400, f"No tool output found for function call {sorted(pending)[0]}.", "input")
            output = self._generate(history, new_items, body.get("tools") or [])
            full_history = [*history, *new_items, *output]
            if conv_id:
                self.conversations[conv_id]["items"] = full_history
            response = {
                "id": _id("resp"),
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "model": body.get("model", "scripted"),
                "instructions": body.get("instructions"),
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "conversation": {"id": conv_id} if conv_id else None,
                "previous_response_id": previous,
                "error": None,
                "incomplete_details": None,
                "metadata": {},
                "temperature": 1.0,
                "top_p": 1.0,
                "text": {"format": {"type": "text"}},
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 10,
                    "total_tokens": 20,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            }
            self.responses[response["id"]] = {**response, "_history": full_history}
        return jsonify(response)


def _text_of(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") for p in content or [] if isinstance(p, dict)]
    return " ".join(parts)


def _normalise(item: dict[str, Any]) -> dict[str, Any]:
    if "type" not in item and "role" in item:
        return {"type": "message", **item}
    return dict(item)


def create_app(emulator: OpenAIEmulator | None = None) -> Flask:
    emulator = emulator or OpenAIEmulator()
    app = Flask("openai-emulator")
    app.config["emulator"] = emulator

    @app.before_request
    def _record_and_authorise():
        if request.path.startswith("/_emulator"):
            return None
        emulator.log.add(request.method, request.path, request.get_json(silent=True))
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

    @app.get("/v1/conversations/<conv_id>/items")
    def conversation_items(conv_id: str):
        conv = emulator.conversations.get(conv_id)
        if conv is None:
            return _error(404, f"Conversation with id '{conv_id}' not found.")
        items = conv["items"]
        return jsonify(
            {
                "object": "list",
                "data": items,
                "first_id": items[0]["id"] if items and "id" in items[0] else None,
                "last_id": None,
                "has_more": False,
            }
        )

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

    @app.get("/_emulator/log")
    def log():
        return jsonify(emulator.log.entries())

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3002)
    args = parser.parse_args()
    create_app().run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
