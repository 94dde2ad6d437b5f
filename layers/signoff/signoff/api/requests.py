"""Request bodies and queries of the client API, and the checks every body goes through.

Order of checks: size (413), media type (415), JSON syntax (400: also too deep a nesting, and
``NaN``/``Infinity``, which JSON does not have), shape (422, by the event handler against the
route's model). Unknown fields are refused so that typos do not pass silently.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from signoff.api.errors import ApiError
from signoff.domain.notifications import MAX_NOTIFY_URL_LENGTH

MAX_METADATA_BYTES = 4096
MAX_JSON_DEPTH = 32  # far beyond any real request; deep enough bodies would exhaust the parser's stack

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


# Dates a query may name: wide enough for any record Signoff keeps, narrow enough that arithmetic
# on them (a default 30-day range before, a zone offset) can never leave what a datetime holds.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)
DATE_RANGE_TEXT = "between 2000-01-01 and 2199-12-31 (UTC)"


def _sane(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"must be {DATE_RANGE_TEXT}") from exc
    if not EARLIEST <= utc <= LATEST:
        raise ValueError(f"must be {DATE_RANGE_TEXT}")
    return value


# An aware date-time within the range Signoff can compute with.
SaneDatetime = Annotated[AwareDatetime, AfterValidator(_sane)]


class StartConversation(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    message: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    # Where Signoff POSTs signed turn events; allowed prefixes only (checked by the handler).
    notify_url: str | None = Field(default=None, min_length=1, max_length=MAX_NOTIFY_URL_LENGTH)
    # The catalog agent to talk to (the catalog's default when absent; checked by the handler).
    agent: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
        return value


class PostMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1)


class SimulatePolicy(BaseModel):
    """``POST /policy/simulate``: a candidate approval policy and the range of recorded calls to replay."""

    model_config = ConfigDict(extra="forbid")

    policy: dict[str, Any] = Field(description="A whole approval policy document (docs/policy.md).")
    since: SaneDatetime | None = Field(default=None, description=f"Replay calls from then; {DATE_RANGE_TEXT}.")
    until: SaneDatetime | None = Field(default=None, description=f"Replay calls until then; {DATE_RANGE_TEXT}.")


class ClientToolResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(min_length=1, max_length=128)
    output: Any  # any JSON value: what the client's run of the tool returned


class PostToolResults(BaseModel):
    """``POST /conversations/{id}/tool-results``: the results of calls handed to the client."""

    model_config = ConfigDict(extra="forbid")

    results: list[ClientToolResult] = Field(min_length=1, max_length=64)

    @field_validator("results")
    @classmethod
    def _one_each(cls, value: list[ClientToolResult]) -> list[ClientToolResult]:
        if len({r.call_id for r in value}) != len(value):
            raise ValueError("each call_id may appear once")
        return value


def problems_of(exc: ValidationError, where: str) -> list[dict[str, str]]:
    """Pydantic's complaints as ``{"field", "problem"}``, without echoing the input back."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or where, "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def raw_body(event: dict[str, Any], max_bytes: int) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, "invalid_body", "The request body could not be decoded.") from exc
    else:
        data = body.encode("utf-8", errors="surrogatepass")
    if len(data) > max_bytes:
        raise ApiError(413, "payload_too_large", f"The request body must be at most {max_bytes} bytes.")
    return data


def _content_type(event: dict[str, Any]) -> str | None:
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == "content-type" and isinstance(value, str):
            return value.split(";", 1)[0].strip().lower()
    return None


def _json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects, found without recursion (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, as a float; one a float cannot hold (``1e400``)
    is refused rather than kept as infinity (and stored as null)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError("a number too large for a double")
    return value


def strict_json(data: bytes) -> Any:
    """JSON as RFC 8259 has it: no NaN or Infinity (nor a number that overflows to one), and no
    nesting deeper than ``MAX_JSON_DEPTH``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", "The request body is not UTF-8.") from exc
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise ApiError(400, "invalid_json", f"The request body nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as exc:  # JSONDecodeError is a ValueError, and so is a refused constant
        why = "holds a number too large for a double" if "too large" in str(exc) else "is not valid JSON"
        raise ApiError(400, "invalid_json", f"The request body {why}.") from exc


BODY_METHODS = ("POST", "PUT", "PATCH")


def check_body_transport(event: dict[str, Any], max_bytes: int) -> None:
    """What is refused before any route reads the body: too big (413), not JSON by its media type
    (415), none at all (400)."""
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "")
    if method.upper() not in BODY_METHODS:
        return
    data = raw_body(event, max_bytes)
    content_type = _content_type(event)
    if content_type is not None and content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "Send the request body as application/json.")
    if not data.strip():
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", "The request body is not UTF-8.") from exc


def request_json(text: str) -> Any:
    """The body as the event handler reads it before validating it against the route's model."""
    payload = strict_json(text.encode("utf-8", errors="surrogatepass"))
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(400, "invalid_json", "The request body contains invalid unicode.") from exc
    return payload


def check_message(message: str, max_chars: int) -> None:
    if len(message) > max_chars:
        raise ApiError(422, "message_too_long", f"A message must be at most {max_chars} characters.")
    if not message.strip():
        raise ApiError(422, "validation_error", "The message must not be blank.")


AUDIT_STATUSES = ("pending", "approved", "denied", "modified", "expired", "escalated", "scheduled", "not_requested")
AuditStatus = Literal["pending", "approved", "denied", "modified", "expired", "escalated", "scheduled", "not_requested"]


class _TimeRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: SaneDatetime | None = None
    until: SaneDatetime | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_8601(cls, value: object) -> object:
        """Dates only as ISO 8601 text (pydantic would also take a bare number as epoch seconds)."""
        if value is not None and not (isinstance(value, str) and ISO_DATE.match(value)):
            raise ValueError("must be an ISO 8601 date-time with a time zone, e.g. 2026-11-26T09:00:00Z")
        return value


TOOL_FILTER = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class AuditQueryParams(_TimeRange):
    """``GET /approvals`` query string."""

    status: str | None = Field(default=None, pattern="^(" + "|".join(AUDIT_STATUSES) + ")$")
    tool: str | None = TOOL_FILTER
    conversation_id: str | None = Field(default=None, pattern=r"^conv_[0-9a-f]{32}$")
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=2048)


class StatsQueryParams(_TimeRange):
    """``GET /approvals/stats`` query string."""

    tool: str | None = TOOL_FILTER
    approver: str | None = Field(default=None, min_length=1, max_length=320)


def query_parameters(event: dict[str, Any]) -> dict[str, str]:
    """The query string as names and values, read from the raw string so that nothing is dropped
    on the way: a parameter without a name, or one given twice, is refused rather than ignored."""
    from urllib.parse import parse_qsl

    raw = event.get("rawQueryString") or ""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except ValueError as exc:
        raise ApiError(400, "invalid_query", "The query string has too many parameters.") from exc
    names = [name for name, _ in pairs]
    if any(not name for name in names) or (raw and not pairs and raw.strip("&")):
        raise ApiError(400, "invalid_query", "Every query parameter needs a name.")
    if len(set(names)) != len(names):
        raise ApiError(400, "invalid_query", "A query parameter is given twice.")
    return dict(pairs)


class GrantQueryParams(BaseModel):
    """``GET /grants`` query string."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=2048)


class ConversationQueryParams(BaseModel):
    """``GET /conversations/{id}`` query string: a page of its messages and tool calls."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=2048)


MAX_LOG_INDEX = 10**12 - 1  # the log's keys hold twelve digits


class ReceiptQueryParams(BaseModel):
    """``GET /receipts`` and ``GET /checkpoints`` query string."""

    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0, le=MAX_LOG_INDEX)
    limit: int = Field(default=100, ge=1, le=500)


class ProofQueryParams(BaseModel):
    """``GET /receipts/{index}/proof`` query string."""

    model_config = ConfigDict(extra="forbid")

    size: int | None = Field(default=None, ge=1, le=MAX_LOG_INDEX)


class ConsistencyQueryParams(BaseModel):
    """``GET /checkpoints/consistency`` query string."""

    model_config = ConfigDict(extra="forbid")

    first: int = Field(ge=1, le=MAX_LOG_INDEX)
    second: int = Field(ge=1, le=MAX_LOG_INDEX)


def parse_query[M: BaseModel](params: dict[str, str], model: type[M]) -> M:
    """A query string against its model: an unknown or ill-formed parameter is a 400."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ApiError(400, "invalid_query", "The query string does not fit.", problems_of(exc, "query")) from exc


def parse_grant_query(params: dict[str, str]) -> GrantQueryParams:
    try:
        return GrantQueryParams.model_validate(params)
    except ValidationError as exc:
        raise ApiError(400, "invalid_query", "The query string does not fit.", problems_of(exc, "query")) from exc


def parse_audit_query(params: dict[str, str]) -> AuditQueryParams:
    try:
        return AuditQueryParams.model_validate(params)
    except ValidationError as exc:
        raise ApiError(400, "invalid_query", "The query string does not fit.", problems_of(exc, "query")) from exc
