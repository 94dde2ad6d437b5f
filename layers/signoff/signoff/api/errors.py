"""ApiError and the one JSON error shape: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
from typing import Any

JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway v2 proxy result."""
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": json.dumps(body, ensure_ascii=False),
    }


# What each refusal means, for the generated OpenAPI document.
REFUSALS = {
    400: "Not JSON, not an object, a bad query or Idempotency-Key; nothing changed.",
    404: "No such conversation or grant (for this tenant); nothing changed.",
    409: "Busy: a turn is running or waiting, or the call is not awaiting the client; nothing changed.",
    413: "The body is over the size limit; nothing changed.",
    415: "The body is not application/json; nothing changed.",
    422: "The body does not fit the schema (or names an unknown agent, a disallowed notify_url); nothing changed.",
}


def refusal_of(errors: list[Any]) -> ApiError:
    """Powertools' validation errors as Signoff's refusal, without echoing the input back."""
    problems = []
    where = "body"
    for error in errors:
        if not isinstance(error, dict):
            continue
        loc = [str(p) for p in error.get("loc", ())]
        where = loc[0] if loc else where
        kind = error.get("type", "")
        if kind == "json_invalid":
            return ApiError(400, "invalid_json", "The request body is not valid JSON.")
        if kind == "unsupported_content_type":
            return ApiError(415, "unsupported_media_type", "Send the request body as application/json.")
        problems.append({"field": ".".join(loc[1:]) or where, "problem": str(error.get("msg", "invalid"))})
    if where == "query":
        return ApiError(400, "invalid_query", "The query string does not fit.", problems)
    if where == "header":
        return ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 characters.")
    if where == "path":
        return ApiError(404, "not_found", "No such resource.")
    return ApiError(422, "validation_error", "The request body does not fit the schema.", problems)
