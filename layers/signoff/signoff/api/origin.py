"""The public base URL an API Gateway request came in on.

The callback function cannot be given the API's URL in its environment: it is one of the HTTP API's
integrations, so the API depends on the function and ``!Ref HttpApi`` in the function would be a
circular dependency. Yet it asks Handover for decisions too (the next rung of an escalation) and
signs receipts, both of which need the API's absolute URL. The URL Handover just called is that URL:
the scheme API Gateway forwards, the domain it served, and whatever the path holds before the route
(a stage, a custom domain's base path).
"""

from __future__ import annotations

from typing import Any

from signoff.domain.tokens import CALLBACK_PATH


def public_base_url(event: dict[str, Any], route_prefix: str = CALLBACK_PATH) -> str | None:
    """``https://<domain>[/<base path>]`` of the request; None when the event does not say."""
    context = event.get("requestContext") or {}
    domain = context.get("domainName")
    if not isinstance(domain, str) or not domain or any(c in domain for c in "/\\@ "):
        return None
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    scheme = str(headers.get("x-forwarded-proto", "https")).split(",")[0].strip().lower()
    if scheme not in ("http", "https"):
        scheme = "https"
    path = str(event.get("rawPath") or "")
    base = path[: path.index(route_prefix)] if route_prefix in path else ""
    return f"{scheme}://{domain}{base.rstrip('/')}"
