"""`make sam-local`: the functions under `sam local` (in containers), the rest from the local stack.

Starts moto, the Handover- and OpenAI-compatible servers (not the in-process functions), creates
the template's resources in moto, writes the env-vars file, then runs `sam local start-api` and
`sam local start-lambda` with it, and the driver that feeds the work queue and the reconciler's
schedule to the functions through `start-lambda`. Needs Docker (or Finch) and a `sam build`.
Without a container runtime it says so and stops: it never falls back to real AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

from local.samlocal.driver import EventSourceDriver
from local.samlocal.env_file import CONTAINER_HOST, env_vars
from local.template import ROOT

ENV_FILE = ROOT / ".aws-sam" / "local-env.json"
API_PORT, LAMBDA_PORT = 3000, 3005


def container_runtime() -> str | None:
    """``docker`` or ``finch`` when one answers, else None."""
    for tool in ("docker", "finch"):
        if shutil.which(tool) and subprocess.run([tool, "info"], capture_output=True, check=False).returncode == 0:
            return tool
    return None


def main() -> int:
    if container_runtime() is None:
        print(
            "make sam-local needs Docker or Finch, and neither runs here: `make local` runs the product without them."
        )
        return 1
    sam = os.environ.get("SAM", "sam")
    if not (ROOT / ".aws-sam" / "build" / "template.yaml").exists() or not shutil.which(sam):
        print("Run `make build` first: sam local runs the built functions and layer (and it installs the SAM CLI).")
        return 1
    from local.stack import EmbeddedStack, StackConfig

    host = os.environ.get("SIGNOFF_CONTAINER_HOST", CONTAINER_HOST)
    config = StackConfig.from_env()
    config.functions_in_process = False
    stack = EmbeddedStack(config).start()
    public_api = f"http://127.0.0.1:{API_PORT}"
    variables = env_vars(
        stack.template,
        stack.resources,
        {**stack.function_parameters(), "AgentApi": config.agent_api},
        aws_url=stack.aws_url,
        openai_url=stack.openai_url,
        handover_url=stack.handover_url,
        public_api_url=public_api,
        host=host,
    )
    ENV_FILE.parent.mkdir(exist_ok=True)
    ENV_FILE.write_text(json.dumps(variables, indent=2))
    # Containers get the shell's credentials from sam: moto's, never a real account's.
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    common = ["--env-vars", str(ENV_FILE), "--region", "us-east-1", "--add-host", f"{host}:host-gateway"]
    processes = [
        subprocess.Popen([sam, "local", "start-api", "--port", str(API_PORT), *common], cwd=ROOT, env=env),
        subprocess.Popen([sam, "local", "start-lambda", "--port", str(LAMBDA_PORT), *common], cwd=ROOT, env=env),
    ]
    refs, attrs = stack.resources.refs, stack.resources.attrs
    driver = EventSourceDriver(
        f"http://127.0.0.1:{LAMBDA_PORT}",
        refs["WorkQueue"],
        attrs[("WorkQueue", "Arn")],
        batch_size=stack.template.sqs_batch_size("AgentWorkerFunction"),
        schedule_seconds=config.reconcile_interval_seconds,
    )
    threading.Thread(target=driver.run, name="sam-local-driver", daemon=True).start()
    print(f"sam local: API {public_api}, functions {ENV_FILE} (env), inbox {stack.handover_url}/. Ctrl-C stops.")
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    driver.stop()
    for process in processes:
        process.terminate()
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
