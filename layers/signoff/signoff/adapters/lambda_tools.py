"""Tools that are Lambda functions: invoked synchronously with the same payload an ``http`` tool gets.

The function's return value is the result. A function that raises (``FunctionError``) counts as
failed and is not invoked again (it may have acted before it raised). The template allows
``lambda:InvokeFunction`` only on the ARNs listed in ``ToolFunctionArns``.
"""

from __future__ import annotations

import json
from typing import Any

from signoff.adapters.http_tools import MAX_RESULT_BYTES, call_payload
from signoff.domain.catalog import LambdaExecutor
from signoff.domain.tools import ToolContext, ToolFailed, ToolUnreachable


class LambdaToolInvoker:
    def __init__(self, client: Any):
        self._client = client

    def invoke(self, executor: LambdaExecutor, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        payload = json.dumps(call_payload(arguments, ctx), separators=(",", ":")).encode("utf-8")
        try:
            response = self._client.invoke(
                FunctionName=executor.function_arn, InvocationType="RequestResponse", Payload=payload
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            if code in ("TooManyRequestsException", "ServiceException", "EC2ThrottledException"):
                raise ToolUnreachable(f"the function could not be invoked ({code})") from exc
            raise ToolFailed(f"the function could not be invoked ({code})") from exc
        except BotoCoreError as exc:
            raise ToolUnreachable(f"the function could not be invoked ({type(exc).__name__})") from exc
        raw = response["Payload"].read(MAX_RESULT_BYTES + 1)
        if len(raw) > MAX_RESULT_BYTES:
            raise ToolFailed(f"the function's result is larger than {MAX_RESULT_BYTES} bytes")
        try:
            result = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise ToolFailed("the function returned something that is not JSON") from exc
        if response.get("FunctionError"):
            detail = result.get("errorType") if isinstance(result, dict) else None
            raise ToolFailed("the function raised an error", detail)
        return result
