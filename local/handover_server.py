"""A Handover-compatible decisions server for local runs and tests.

The real endpoints (``POST /decisions``, ``GET /decisions/{id}``, ``POST /decisions/{id}/resolve``)
with Bearer-key auth and Handover's error shape ``{"error", "code"}``. It fires ``callback_url``
when a decision is resolved or expires (after ``timeout_minutes``; ``minute_seconds`` shortens a
minute for tests), and serves the approval inbox page at ``/``. ``GET /_emulator/log`` and
``GET /_emulator/callbacks`` show what happened.

    python -m local.handover_server --port 3001
"""

from __future__ import annotations

import argparse
import os
import random
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from local.faults import FaultPlan
from local.inbox import register_inbox
from local.request_log import RequestLog

STATUSES_BY_ACTION = {"approve": "approved", "deny": "denied", "modify": "modified"}
URGENCIES = {"low", "medium", "high", "critical"}
CHANNELS = {"email", "webhook", "slack"}
RESPONSE_TYPES = {"approve_deny", "choose", "text_input", "number_input", "confirm", "schedule", "file_upload"}
PERMITTING = {"approved", "modified", "scheduled"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Bounds the SDK documents (context images, attachments) and ones we chose where it is silent
# (text lengths, a week's timeout): the real service has limits, and so must its stand-in.
MAX_ACTION_CHARS, MAX_CONTEXT_CHARS, MAX_NOTES_CHARS = 1000, 10_000, 5000
MAX_TIMEOUT_MINUTES = 7 * 24 * 60
MAX_CONTEXT_IMAGES, MAX_ATTACHMENTS, MAX_ATTACHMENT_BYTES = 5, 5, 10 * 1024 * 1024
BLOCKED_ATTACHMENT_SUFFIXES = (".exe", ".dll", ".bat", ".cmd", ".sh", ".js", ".msi", ".com", ".scr", ".jar")


def _http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://")) and len(value) <= 2048


def create_problems(body: dict[str, Any]) -> list[str]:
    """Why a create request is refused (empty: it is fine), checked as the SDK documents the fields."""
    problems = []
    action, approver = body.get("action"), body.get("approver")
    if not isinstance(action, str) or not action.strip():
        problems.append("action is required")
    elif len(action) > MAX_ACTION_CHARS:
        problems.append(f"action must be at most {MAX_ACTION_CHARS} characters")
    if not isinstance(approver, str) or not EMAIL.match(approver):
        problems.append("approver must be an email address")
    context = body.get("context")
    if context is not None and (not isinstance(context, str) or len(context) > MAX_CONTEXT_CHARS):
        problems.append(f"context must be text of at most {MAX_CONTEXT_CHARS} characters")
    if body.get("urgency", "medium") not in URGENCIES:
        problems.append("urgency must be low, medium, high or critical")
    timeout = body.get("timeout_minutes", 60)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_TIMEOUT_MINUTES:
        problems.append(f"timeout_minutes must be a whole number from 1 to {MAX_TIMEOUT_MINUTES}")
    if body.get("channel", "email") not in CHANNELS:
        problems.append("channel must be email, webhook or slack")
    options = body.get("options")
    if options is not None and (
        not isinstance(options, list)
        or not 1 <= len(options) <= 10
        or not all(isinstance(o, str) and 0 < len(o) <= 50 for o in options)
        or len(set(options)) != len(options)
    ):
        problems.append("options must be 1 to 10 distinct names of at most 50 characters")
    if body.get("callback_url") is not None and not _http_url(body["callback_url"]):
        problems.append("callback_url must be an http(s) URL")
    response_type = body.get("response_type")
    if response_type is not None and (
        not isinstance(response_type, dict) or response_type.get("type") not in RESPONSE_TYPES
    ):
        problems.append(f"response_type.type must be one of {', '.join(sorted(RESPONSE_TYPES))}")
    images = body.get("context_images")
    if images is not None and (
        not isinstance(images, list) or len(images) > MAX_CONTEXT_IMAGES or not all(_http_url(i) for i in images)
    ):
        problems.append(f"context_images must be at most {MAX_CONTEXT_IMAGES} http(s) URLs")
    if "enforce" in body and not isinstance(body["enforce"], bool):
        problems.append("enforce must be true or false")
    return problems


def resolve_problems(body: dict[str, Any], options: list[str]) -> list[str]:
    """Why an answer is refused: the action must be approve, deny, modify or one of the decision's
    own options, and every field must have its type."""
    problems = []
    if body.get("action") not in {*STATUSES_BY_ACTION, *options}:
        problems.append(f"action must be one of {', '.join(sorted({*STATUSES_BY_ACTION, *options}))}")
    notes = body.get("notes")
    if notes is not None and (not isinstance(notes, str) or len(notes) > MAX_NOTES_CHARS):
        problems.append(f"notes must be text of at most {MAX_NOTES_CHARS} characters")
    resolved_by = body.get("resolved_by")
    if resolved_by is not None and (not isinstance(resolved_by, str) or not 0 < len(resolved_by) <= 254):
        problems.append("resolved_by must be text (who answered)")
    data = body.get("response_data")
    if data is not None and not isinstance(data, dict):
        problems.append("response_data must be an object")
    elif isinstance(data, dict) and "execute_at" in data:
        try:
            when = datetime.fromisoformat(str(data["execute_at"]).replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            problems.append("response_data.execute_at must be an ISO 8601 time with a time zone")
    return problems


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str, code: str):
    return jsonify({"error": message, "code": code}), status


def _refusal(problem: str):
    """An emulator's "why not" as Handover's answer: 404, 409, or 400 with the problem."""
    if problem == "not_found":
        return _error(404, "Decision not found", "not_found")
    if problem == "already_resolved":
        return _error(409, "Decision is already resolved", "already_resolved")
    return _error(400, problem, "validation_error")


class HandoverEmulator:
    def __init__(self, api_key: str = "ho_local_dev", minute_seconds: float = 60.0):
        self.api_key = api_key
        self.minute_seconds = minute_seconds
        # Drills: share of callbacks silently not sent, and how many times each one is sent.
        self.drop_callbacks = float(os.environ.get("SIGNOFF_EMULATOR_DROP_CALLBACKS", "0") or 0)
        self.duplicate_callbacks = int(os.environ.get("SIGNOFF_EMULATOR_DUPLICATE_CALLBACKS", "1") or 1)
        self.faults = FaultPlan()
        self._failures: list[tuple[int, str | None]] = []
        self.log = RequestLog()
        self.callbacks = RequestLog()
        self.callbacks_in_flight = 0  # fired and not yet answered (drills wait for none)
        self.decisions: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._expirer = threading.Thread(target=self._expire_loop, name="handover-expirer", daemon=True)

    def start(self) -> HandoverEmulator:
        self._expirer.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    # -- decisions -----------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        timeout = int(body.get("timeout_minutes") or 60)
        decision = {
            "id": f"dec_{uuid.uuid4().hex[:20]}",
            "action": body["action"],
            "context": body.get("context") or "",
            "urgency": body.get("urgency") or "medium",
            "status": "pending",
            "options": body.get("options") or ["approve", "deny"],
            "timeout_minutes": timeout,
            "response_type": body.get("response_type") or {"type": "approve_deny"},
            "response_notes": None,
            "response_data": None,
            "resolved_at": None,
            "resolved_by": None,
            "expires_at": _iso(now + timedelta(seconds=timeout * self.minute_seconds)),
            "created_at": _iso(now),
            "execute_at": None,
            "context_images": body.get("context_images") or [],
            "attachments": [],
            "enforce": bool(body.get("enforce", False)),
            "channel": body.get("channel") or "email",
            "_approver": body["approver"],
            "_callback_url": body.get("callback_url"),
        }
        with self._lock:
            self.decisions[decision["id"]] = decision
        return {k: decision[k] for k in ("id", "status", "expires_at", "created_at")}

    def public(self, decision: dict[str, Any]) -> dict[str, Any]:
        """The decision as the API shows it; ``action_permitted`` only when ``enforce`` was asked for."""
        shown = {k: v for k, v in decision.items() if not k.startswith("_") and k != "channel"}
        if decision.get("enforce"):
            shown["action_permitted"] = decision["status"] in PERMITTING
        return shown

    def attach(self, decision_id: str, name: str, data: bytes, content_type: str) -> tuple[list | None, str | None]:
        """Add a file to a pending decision: the list of attachments, or why not."""
        if not name or name.lower().endswith(BLOCKED_ATTACHMENT_SUFFIXES):
            return None, "this file type is not accepted"
        if len(data) > MAX_ATTACHMENT_BYTES:
            return None, f"a file may be at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB"
        with self._lock:
            decision = self.decisions.get(decision_id)
            if decision is None:
                return None, "not_found"
            if decision["status"] != "pending":
                return None, "already_resolved"
            if len(decision["attachments"]) >= MAX_ATTACHMENTS:
                return None, f"a decision may have at most {MAX_ATTACHMENTS} attachments"
            decision["attachments"].append(
                {
                    "name": name,
                    "url": f"/_emulator/attachments/{decision_id}/{name}",
                    "type": content_type,
                    "size": len(data),
                }
            )
            return list(decision["attachments"]), None

    def resolve(self, decision_id: str, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        action = body.get("action")
        with self._lock:
            decision = self.decisions.get(decision_id)
            if decision is None:
                return None, "not_found"
            problems = resolve_problems(body, decision["options"])
            if problems:
                return None, "; ".join(problems)
            if decision["status"] != "pending":
                return None, "already_resolved"
            data = body.get("response_data")
            if action not in STATUSES_BY_ACTION:  # one of the decision's own options: chosen, as "choose" answers
                action, data = "approve", {**(data or {}), "chosen": action}
            status = STATUSES_BY_ACTION[action]
            execute_at = data.get("execute_at") if action == "approve" and isinstance(data, dict) else None
            if execute_at:  # a schedule answer: approved to run at that time
                status = "scheduled"
            decision.update(
                status=status,
                response_notes=body.get("notes"),
                response_data=data,
                execute_at=execute_at,
                resolved_by=body.get("resolved_by") or decision["_approver"],
                resolved_at=_iso(_now()),
            )
            snapshot = dict(decision)
        self._fire_callback(snapshot)
        return self.public(snapshot), None

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (0 clears)."""
        with self._lock:
            self._failures = [(status, retry_after)] * count

    def take_failure(self) -> tuple[int, str | None] | None:
        with self._lock:
            return self._failures.pop() if self._failures else None

    def expire(self, decision_id: str, status: str = "expired") -> bool:
        """Expire (or escalate) a pending decision now, exactly as its timeout would."""
        with self._lock:
            decision = self.decisions.get(decision_id)
            if decision is None or decision["status"] != "pending":
                return False
            decision.update(status=status, resolved_at=_iso(_now()))
            snapshot = dict(decision)
        self._fire_callback(snapshot)
        return True

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self.public(d) for d in self.decisions.values() if d["status"] == "pending"]

    def all_decisions(self) -> list[dict[str, Any]]:
        """Every decision, newest first, with its approver (for the inbox page)."""
        with self._lock:
            items = [{**self.public(d), "approver": d["_approver"]} for d in self.decisions.values()]
        return sorted(items, key=lambda d: d["created_at"], reverse=True)

    # -- callbacks and expiry ------------------------------------------------------------
    def _fire_callback(self, decision: dict[str, Any]) -> None:
        url = decision.get("_callback_url")
        if not url:
            return
        if self.drop_callbacks and random.random() < self.drop_callbacks:
            self.callbacks.add("DROP", url, {"decision_id": decision["id"], "url": url, "response_status": "dropped"})
            return
        for _ in range(max(1, self.duplicate_callbacks)):
            with self._lock:
                self.callbacks_in_flight += 1
            threading.Thread(
                target=self._post_callback, args=(decision["id"], url, decision["status"]), daemon=True
            ).start()

    def _post_callback(self, decision_id: str, url: str, status: str) -> None:
        try:
            response = requests.post(url, json={"id": decision_id, "status": status}, timeout=30)
            code: int | None = response.status_code
        except requests.RequestException:
            code = None
        finally:
            with self._lock:
                self.callbacks_in_flight -= 1
        self.callbacks.add("POST", url, {"decision_id": decision_id, "url": url, "response_status": code})

    def _expire_loop(self) -> None:
        while not self._stop.wait(0.2):
            now = _iso(_now())
            expired = []
            with self._lock:
                for decision in self.decisions.values():
                    if decision["status"] == "pending" and decision["expires_at"] <= now:
                        decision.update(status="expired", resolved_at=now)
                        expired.append(dict(decision))
            for decision in expired:
                self._fire_callback(decision)


def create_app(emulator: HandoverEmulator) -> Flask:
    app = Flask("handover-emulator")
    app.config["emulator"] = emulator

    @app.before_request
    def _record_and_authorise():
        if request.path.startswith("/_emulator") or not request.path.startswith("/decisions"):
            return None
        emulator.log.add(request.method, request.path, request.get_json(silent=True))
        if request.headers.get("Authorization", "") != f"Bearer {emulator.api_key}":
            return _error(401, "Invalid or missing API key", "unauthorized")
        failure = emulator.take_failure()
        injected = emulator.faults.next_fault()
        if injected is not None:
            failure = (injected, "0")
        if failure:
            status, retry_after = failure
            response = _error(status, "Injected failure", "rate_limited" if status == 429 else "unavailable")
            if retry_after is not None:
                response[0].headers["Retry-After"] = retry_after
            return response
        return None

    @app.post("/decisions")
    def create_decision():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "Body must be a JSON object", "invalid_body")
        problems = create_problems(body)
        if problems:
            return _error(400, "; ".join(problems), "validation_error")
        return jsonify(emulator.create(body)), 201

    @app.post("/decisions/<decision_id>/attachments")
    def upload_attachment(decision_id: str):
        upload = request.files.get("file")
        if upload is None:
            return _error(400, "Send the file as multipart form field 'file'", "validation_error")
        attachments, problem = emulator.attach(
            decision_id, upload.filename or "", upload.read(), upload.mimetype or "application/octet-stream"
        )
        if problem:
            return _refusal(problem)
        return jsonify({"attachments": attachments}), 201

    @app.get("/decisions/<decision_id>/attachments")
    def list_attachments(decision_id: str):
        decision = emulator.decisions.get(decision_id)
        if decision is None:
            return _error(404, "Decision not found", "not_found")
        return jsonify({"attachments": decision["attachments"]})

    @app.get("/decisions/<decision_id>")
    def get_decision(decision_id: str):
        decision = emulator.decisions.get(decision_id)
        if decision is None:
            return _error(404, "Decision not found", "not_found")
        return jsonify(emulator.public(decision))

    @app.post("/decisions/<decision_id>/resolve")
    def resolve_decision(decision_id: str):
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "Body must be a JSON object", "invalid_body")
        decision, problem = emulator.resolve(decision_id, body)
        if problem:
            return _refusal(problem)
        return jsonify(decision)

    @app.get("/_emulator/log")
    def log():
        return jsonify(emulator.log.entries())

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        """Unknown routes and methods answer in Handover's error shape, never as an HTML page."""
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code or 500, "bad_request")
        return _error(exc.code or 500, exc.description or exc.name, code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        return _error(500, "Internal error", "internal_error")

    register_inbox(app, emulator)

    @app.get("/_emulator/callbacks")
    def callbacks():
        return jsonify([e["body"] for e in emulator.callbacks.entries()])

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SIGNOFF_HANDOVER_PORT", "3001")))
    args = parser.parse_args()
    emulator = HandoverEmulator(api_key=os.environ.get("SIGNOFF_HANDOVER_LOCAL_KEY", "ho_local_dev")).start()
    create_app(emulator).run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
