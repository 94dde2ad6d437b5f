"""``python -m local.sandboxes <LogicalId>``: one function's sandbox (see ``local.sandboxes``).

Serves the Lambda Invoke API for that function on a free loopback port, printed on stdout once it
serves, plus ``GET /environment``; stops when stdin closes (its parent went away).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from werkzeug.wrappers import Request, Response

from local.lambda_endpoint import LambdaInvokeEndpoint
from local.sandboxes import CLIENT_POOL
from local.servers import BackgroundServer
from local.template import SamTemplate


def main() -> None:
    logical_id = sys.argv[1]
    # One sandbox serves its function's invocations at once (a Lambda sandbox serves one): its shared
    # clients need a pool that size.
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION._session.set_default_client_config(BotoConfig(max_pool_connections=CLIENT_POOL))
    template = SamTemplate()
    template.function(logical_id)  # fails at once for a function the template does not have
    endpoint = LambdaInvokeEndpoint(template)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.method == "GET" and request.path == "/environment":
            return Response(json.dumps(dict(os.environ)), mimetype="application/json")(environ, start_response)
        return endpoint(environ, start_response)

    server = BackgroundServer(app, name=f"sandbox-{logical_id}").start()
    print(server.port, flush=True)
    sys.stdin.read()  # until the parent closes it
    server.stop()


if __name__ == "__main__":
    main()
