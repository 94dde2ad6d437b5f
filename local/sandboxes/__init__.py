"""Each function in a process of its own, holding exactly the environment the template gives it.

The embedded stack runs every handler in one process, so its environment is the union of all the
functions' variables and a variable missing on one function cannot fail locally (the callback's
relative URL of an escalated decision went unseen that way). With ``StackConfig.sandboxes`` each
function gets a child process (``python -m local.sandboxes <LogicalId>``) whose environment is its
own template variables, resolved against the local resources, plus only what stands in for AWS
here: the endpoint and credentials of moto, the catalog and policy files in place of the SSM
parameters, the Lambda endpoint of the local tool functions, and the Lambda runtime's own variables.
Module globals (cached settings and clients) are the function's own too, as in a Lambda sandbox.

The parent's gateway, queue pumps and schedules invoke a sandboxed function over the Lambda Invoke
API its child serves. Crash drills and request counters hook the parent's boto3, so they are not for
this mode: it is the tier that proves each function runs with what the template gives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from local.template import ROOT

# Not template variables, but what the local stack puts where AWS would be.
STAND_INS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "CATALOG_FILE",
    "POLICY_FILE",
    "POWERTOOLS_TRACE_DISABLED",
    "POWERTOOLS_METRICS_DISABLED",
    "POWERTOOLS_DEV",
)
# Connections each shared boto3 client keeps where one process serves many invocations at once (the
# embedded stack, a sandbox): a Lambda sandbox's pool of 10 would overflow and warn.
CLIENT_POOL = 256
# What a process needs to start at all (never read by the product).
PROCESS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


class FunctionSandbox:
    """One function's child process and the Lambda Invoke endpoint it serves on loopback."""

    def __init__(self, logical_id: str, environment: dict[str, str]):
        self.logical_id = logical_id
        self.environment = environment
        env = {k: os.environ[k] for k in PROCESS if k in os.environ}
        env.update(environment)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "signoff"), str(ROOT)])
        env["AWS_LAMBDA_FUNCTION_NAME"] = logical_id
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.sandboxes", logical_id],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        ready = self._process.stdout.readline().strip()  # the child prints its port once it serves
        if not ready.isdigit():
            self.stop()
            raise RuntimeError(f"the sandbox of {logical_id} did not start")
        self.url = f"http://127.0.0.1:{ready}"
        # The child's log lines (stdout) pass through, as the handlers' would in one process; unread,
        # the pipe would fill and block the child on its next log line.
        self._relay = threading.Thread(
            target=_relay, args=(self._process.stdout,), name=f"{logical_id}-stdout", daemon=True
        )
        self._relay.start()
        self._session = requests.Session()
        self._session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=CLIENT_POOL))

    def invoke(self, event: dict[str, Any]) -> Any:
        response = self._session.post(
            f"{self.url}/2015-03-31/functions/{self.logical_id}/invocations", data=json.dumps(event), timeout=900
        )
        body = response.json() if response.content else None
        if response.status_code != 200 or response.headers.get("X-Amz-Function-Error"):
            raise SandboxedError(f"{self.logical_id}: {(body or {}).get('errorType', response.status_code)}")
        return body

    def variables(self) -> dict[str, str]:
        """The child's environment as its handler sees it (the isolation tests read it)."""
        return self._session.get(f"{self.url}/environment", timeout=30).json()

    def stop(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()  # the child stops when its stdin closes
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)


def _relay(stream: Any) -> None:
    for line in stream:
        sys.stdout.write(line)
    sys.stdout.flush()


class SandboxedError(RuntimeError):
    """A sandboxed handler raised (Lambda's FunctionError): the caller treats it as a failed invocation."""


def sandbox_environments(functions: dict[str, dict[str, str]], shared: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each function's own variables (local values already applied to those it declares), plus the
    stand-ins for AWS present in ``shared``."""
    stand_ins = {k: v for k, v in shared.items() if k in STAND_INS}
    return {fn: {**stand_ins, **env} for fn, env in functions.items()}


class Sandboxes:
    """Every function's sandbox, started together; ``lambda_runtime.invoke`` dispatches to them."""

    def __init__(self, environments: dict[str, dict[str, str]]):
        self._sandboxes: dict[str, FunctionSandbox] = {}
        errors: list[BaseException] = []

        def start(fn: str, env: dict[str, str]) -> None:
            try:
                self._sandboxes[fn] = FunctionSandbox(fn, env)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=item) for item in environments.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.stop()
            raise errors[0]

    def __getitem__(self, logical_id: str) -> FunctionSandbox:
        return self._sandboxes[logical_id]

    def by_function(self) -> dict[str, FunctionSandbox]:
        return dict(self._sandboxes)

    def stop(self) -> None:
        for sandbox in self._sandboxes.values():
            sandbox.stop()
