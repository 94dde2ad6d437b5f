"""HandoverClient: the Handover decisions API over ``requests``.

Bounded retries with backoff on 429, 5xx and connection errors (honouring ``Retry-After``),
short timeouts, and typed errors. The callback body is never trusted: callers re-fetch the
decision with ``get_decision``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from signoff import deadline
from signoff.domain.models import Decision, DecisionStatus
from signoff.domain.ports import ApprovalServiceError, DecisionRequest, UnreadableDecision
from signoff.observability import traced

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class HandoverError(ApprovalServiceError):
    """Handover could not be reached or answered something we cannot use."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class HandoverUnavailable(HandoverError):
    """Retries are spent: 429/5xx/timeouts all the way."""


class HandoverRejected(HandoverError):
    """A 4xx other than 429: retrying will not help (bad request, auth, not on the allowed list)."""


class HandoverNotFound(HandoverRejected):
    pass


class UnknownDecisionStatus(HandoverError, UnreadableDecision):
    """Handover answered a status this version does not know; treated as no permission."""


class MalformedDecision(HandoverError, UnreadableDecision):
    """Handover's decision has fields of the wrong type (e.g. notes a number)."""


class _CreatedDecision(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    status: str = "pending"


class HandoverClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = (3.05, 10.0),
        max_attempts: int = 4,
        max_backoff_seconds: float = 8.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._base = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {api_key}", "Accept": "application/json"})
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep

    def create_decision(self, request: DecisionRequest) -> str:
        with traced("handover create_decision"):
            data = self._call("POST", "/decisions", json=request.model_dump())
        try:
            return _CreatedDecision.model_validate(data).id
        except ValidationError as exc:
            raise HandoverError("Handover's create answer has no decision id") from exc

    def get_decision(self, decision_id: str) -> Decision:
        with traced("handover get_decision", decision_id=decision_id):
            data = self._call("GET", f"/decisions/{requests.utils.quote(decision_id, safe='')}")
        status = data.get("status") if isinstance(data, dict) else None
        if status not in {s.value for s in DecisionStatus}:
            raise UnknownDecisionStatus(f"unknown decision status {status!r}")
        try:
            return Decision.model_validate(
                {
                    "id": data.get("id", decision_id),
                    "status": status,
                    "resolved_by": data.get("resolved_by"),
                    "notes": data.get("response_notes"),
                    "response_data": data.get("response_data") if isinstance(data.get("response_data"), dict) else None,
                    "resolved_at": data.get("resolved_at"),
                    "execute_at": data.get("execute_at"),
                }
            )
        except ValidationError as exc:
            raise MalformedDecision("Handover's decision is malformed") from exc

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self._base}{path}"
        last: HandoverError | None = None
        for attempt in range(1, self._max_attempts + 1):
            retry_after: float | None = None
            left = deadline.remaining()
            if left < 1.0:  # no time for another try in this invocation
                last = last or HandoverUnavailable("no time left in this invocation to reach Handover")
                break
            timeout = (self._timeout[0], min(self._timeout[1], left))
            try:
                response = self._session.request(method, url, timeout=timeout, **kwargs)
            except requests.RequestException as exc:
                last = HandoverUnavailable(f"Handover unreachable: {type(exc).__name__}")
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise HandoverError("Handover answered non-JSON", response.status_code) from exc
                code = _error_code(response)
                if response.status_code not in RETRYABLE_STATUS:
                    error_type = HandoverNotFound if response.status_code == 404 else HandoverRejected
                    raise error_type(f"Handover rejected {method} {path}", response.status_code, code)
                last = HandoverUnavailable(f"Handover answered {response.status_code}", response.status_code, code)
                retry_after = _retry_after(response)
            if attempt < self._max_attempts:
                backoff = min(self._max_backoff, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)  # noqa: S311
                pause = min(self._max_backoff, retry_after) if retry_after is not None else backoff
                self._sleep(min(pause, max(0.0, deadline.remaining() - 1.0)))
        assert last is not None
        raise last


def _error_code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
