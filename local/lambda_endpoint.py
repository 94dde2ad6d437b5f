"""The Lambda Invoke API (``POST /2015-03-31/functions/{name}/invocations``) over the local stack's
in-process functions, so code that invokes functions with boto3's ``lambda.invoke`` (the
`make sam-local` driver) runs unchanged against this stack or against `sam local start-lambda`.

Function names are the template's logical ids, as `sam local start-lambda` names them. A handler
that raises answers 200 with ``X-Amz-Function-Error: Unhandled``, as Lambda does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from local.drills.crashes import SimulatedCrash
from local.lambda_runtime import invoke
from local.template import SamTemplate

_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


class LambdaInvokeEndpoint:
    def __init__(self, template: SamTemplate, tool_functions: dict[str, Callable[[Any, Any], Any]] | None = None):
        self.functions = {fn.logical_id: fn for fn in template.functions()}
        # The catalog's lambda tools, by function name: what the worker's boto3 lambda.invoke reaches.
        self.tool_functions = dict(tool_functions or {})

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        matched = _PATH.match(request.path)
        if request.method != "POST" or matched is None:
            return _json(404, {"Type": "User", "message": "Unknown operation"})
        name = matched["name"].rsplit(":", 1)[-1]  # an ARN or a name
        fn = self.functions.get(name)
        if fn is None and name in self.tool_functions:
            return self._invoke_tool(self.tool_functions[name], request)
        if fn is None:
            return _json(404, {"Type": "User", "message": f"Function not found: {name}"}, "ResourceNotFoundException")
        try:
            event = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _json(400, {"Type": "User", "message": "Could not parse request body into json"})
        try:
            result = invoke(fn, event)
        except (Exception, SimulatedCrash) as exc:
            body = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return Response(
                json.dumps(body), 200, {"X-Amz-Function-Error": "Unhandled"}, content_type="application/json"
            )
        return Response(json.dumps(result), 200, content_type="application/json")

    def _invoke_tool(self, handler: Callable[[Any, Any], Any], request: Request) -> Response:
        try:
            event = json.loads(request.get_data() or b"{}")
            result = handler(event, None)
        except Exception as exc:
            body = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return Response(
                json.dumps(body), 200, {"X-Amz-Function-Error": "Unhandled"}, content_type="application/json"
            )
        return Response(json.dumps(result), 200, content_type="application/json")


def _json(status: int, body: dict[str, Any], error_type: str | None = None) -> Response:
    headers = {"X-Amzn-ErrorType": error_type} if error_type else {}
    return Response(json.dumps(body), status, headers, content_type="application/json")
