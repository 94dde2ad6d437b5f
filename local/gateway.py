"""ApiGateway: an HTTP API (payload v2) in front of the handlers, with the routes from template.yaml.

Like API Gateway it answers 404 ``{"message":"Not Found"}`` for unknown routes, 401
``{"message":"Unauthorized"}`` when the identity header is missing and 403
``{"message":"Forbidden"}`` when the Lambda authorizer says no; otherwise it invokes the
route's handler with an API Gateway v2 event and returns its proxy result.
"""

from __future__ import annotations

import base64
import json
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from local.drills.crashes import SimulatedCrash
from local.lambda_runtime import invoke
from local.template import FunctionDef, Route, SamTemplate

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class ApiGateway:
    def __init__(self, template: SamTemplate):
        self.routes: list[tuple[Route, Any]] = [(r, r.pattern()) for r in template.http_routes()]
        self.functions = {f.logical_id: f for f in template.functions()}
        authorizer = template.default_authorizer()
        self.authorizer: FunctionDef | None = self.functions[authorizer] if authorizer else None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self.routes:
            if route.method == method:
                m = pattern.match(path)
                if m:
                    return route, m.groupdict()
        return None

    def handle(self, request: Request) -> Response:
        matched = self._match(request.method, request.path)
        if matched is None:
            return _json(404, {"message": "Not Found"})
        route, params = matched
        if request.content_length and request.content_length > MAX_PAYLOAD_BYTES:
            return _json(413, {"message": "Request Entity Too Large"})
        event = self._event(request, route, params)
        if route.authorized:
            denied = self._authorize(event)
            if denied is not None:
                return denied
        try:
            result = invoke(self.functions[route.function], event)
        except SimulatedCrash:
            return _json(502, {"message": "Internal Server Error"})  # the function died, as API Gateway says
        except Exception:
            traceback.print_exc()
            return _json(500, {"message": "Internal Server Error"})
        return self._to_response(result)

    def _event(self, request: Request, route: Route, params: dict[str, str]) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        try:
            body, encoded = raw.decode("utf-8"), False
        except UnicodeDecodeError:
            body, encoded = base64.b64encode(raw).decode("ascii"), True
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            k = key.lower()
            headers[k] = f"{headers[k]},{value}" if k in headers else value
        # As API Gateway adds them: the scheme and port the client used (a function that needs its own
        # public URL, the callback, reads them).
        headers.setdefault("x-forwarded-proto", request.scheme)
        headers.setdefault("x-forwarded-port", str(request.host.rpartition(":")[2] or "80"))
        headers.setdefault("x-forwarded-for", request.remote_addr or "127.0.0.1")
        now = datetime.now(UTC)
        route_key = f"{route.method} {route.path}"
        return {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode("latin-1"),
            "headers": headers,
            "queryStringParameters": dict(request.args) or None,
            "pathParameters": params or None,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": request.host,
                "domainPrefix": "local",
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(time.time() * 1000),
            },
            "body": body or None,
            "isBase64Encoded": encoded,
        }

    def _authorize(self, event: dict[str, Any]) -> Response | None:
        assert self.authorizer is not None
        identity = event["headers"].get("authorization")
        if not identity:
            return _json(401, {"message": "Unauthorized"})
        auth_event = {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:123456789012:local/$default/"
            + event["routeKey"].replace(" ", ""),
            "identitySource": [identity],
            "routeKey": event["routeKey"],
            "rawPath": event["rawPath"],
            "rawQueryString": event["rawQueryString"],
            "headers": event["headers"],
            "requestContext": event["requestContext"],
            "pathParameters": event["pathParameters"],
        }
        try:
            result = invoke(self.authorizer, auth_event)
        except Exception:
            return _json(500, {"message": "Internal Server Error"})
        if not isinstance(result, dict) or result.get("isAuthorized") is not True:
            return _json(403, {"message": "Forbidden"})
        event["requestContext"]["authorizer"] = {"lambda": result.get("context") or {}}
        return None

    @staticmethod
    def _to_response(result: Any) -> Response:
        if not isinstance(result, dict) or "statusCode" not in result:
            return _json(200, result)
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
        response = Response(data, status=int(result["statusCode"]))
        for key, value in (result.get("headers") or {}).items():
            response.headers[key] = str(value)
        for cookie in result.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response
