"""Tools that are Lambda functions: invoked synchronously with the same payload an ``http`` tool gets.

The function's return value is the result. A function that raises or times out (``FunctionError``)
counts as failed with an unknown outcome and is not invoked again (it may have acted before it
raised); only a request Lambda refused before running the function gives its budget back. The template allows
``lambda:InvokeFunction`` only on the ARNs listed in ``ToolFunctionArns``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from signoff.adapters.http_tools import MAX_RESULT_BYTES, call_payload
from signoff.domain.catalog import LambdaExecutor
from signoff.domain.tools import ToolContext, ToolFailed, ToolUnreachable

# Lambda refused before the function ran: the call certainly did not act.
_NOT_INVOKED = frozenset(
    {
        "TooManyRequestsException",
        "ResourceNotFoundException",
        "AccessDeniedException",
        "InvalidParameterValueException",
        "RequestTooLargeException",
        "ResourceConflictException",
        "ResourceNotReadyException",
        "EC2ThrottledException",
        "KMSAccessDeniedException",
    }
)


class LambdaToolInvoker:
    def __init__(self, client_for: Callable[[float], Any]):
        """``client_for``: a boto3 Lambda client for a read timeout (seconds), the tool's own."""
        self._client_for = client_for

    def invoke(self, executor: LambdaExecutor, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

        payload = json.dumps(call_payload(arguments, ctx), separators=(",", ":")).encode("utf-8")
        try:
            response = self._client_for(executor.timeout_seconds).invoke(
                FunctionName=executor.function_arn, InvocationType="RequestResponse", Payload=payload
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            if code in _NOT_INVOKED:
                raise ToolFailed(f"the function could not be invoked ({code})") from exc
            raise ToolUnreachable(f"the function's invocation failed ({code})") from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise ToolFailed(f"the function could not be invoked ({type(exc).__name__})") from exc
        except BotoCoreError as exc:  # a read timeout or a dropped connection: it may be running
            raise ToolUnreachable(f"the function did not answer ({type(exc).__name__})") from exc
        raw = response["Payload"].read(MAX_RESULT_BYTES + 1)
        if len(raw) > MAX_RESULT_BYTES:
            raise ToolUnreachable(f"the function's result is larger than {MAX_RESULT_BYTES} bytes")
        try:
            result = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise ToolUnreachable("the function returned something that is not JSON") from exc
        if response.get("FunctionError"):
            # Raised or timed out: it may have acted before it did, so the outcome is unknown.
            detail = result.get("errorType") if isinstance(result, dict) else None
            raise ToolUnreachable("the function raised an error", detail)
        return result
