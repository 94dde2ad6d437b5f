"""EmbeddedStack: the whole product on one machine, with the handlers Lambda runs.

- API Gateway (routes from template.yaml) on 127.0.0.1:3000
- Handover-compatible approval service on :3001, OpenAI-compatible server on :3002/v1
- DynamoDB, SQS and Secrets Manager from moto's server on :3003, created from the template
- the work queue feeding the worker, and the reconciler on its schedule, in-process

Real OpenAI / Handover are used where OPENAI_API_KEY / HANDOVER_API_KEY are set.

    python -m local.stack        (what `make local` runs)
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config as BotoConfig

from local.aws_resources import CreatedResources, create_resources, function_environments
from local.catalogs.example import write_example
from local.drills.crashes import CrashInjector, SimulatedCrash
from local.evidence import local_client
from local.faults import DynamoThrottle
from local.gateway import ApiGateway
from local.handover_server import HandoverEmulator
from local.handover_server import create_app as handover_app
from local.lambda_endpoint import LambdaInvokeEndpoint
from local.lambda_runtime import in_flight, invoke, sqs_record
from local.openai_server import OpenAIEmulator
from local.openai_server import create_app as openai_app
from local.sandboxes import CLIENT_POOL
from local.servers import BackgroundServer
from local.template import SamTemplate
from local.tool_servers.http_tools import HttpToolServer
from local.tool_servers.lambda_tools import FUNCTIONS as LOCAL_TOOL_FUNCTIONS
from local.tool_servers.mcp_tools import McpToolServer

CHECKPOINT_BUCKET = "signoff-local-checkpoints"  # the stand-in for a team's own bucket


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass
class StackConfig:
    api_port: int = 3000
    handover_port: int = 3001
    openai_port: int = 3002
    aws_port: int = 3003
    api_key: str = "local-dev-key"  # tenant "default"
    tenant_keys: str = ""  # more keys, "<tenant>:<key>,...": SIGNOFF_API_KEYS
    handover_local_key: str = "ho_local_dev"
    approver_email: str = "approver@example.com"
    decision_timeout_minutes: int = 60
    handover_minute_seconds: float = 60.0
    reconcile_interval_seconds: float = 30.0
    reconcile_after_seconds: int = 30
    stall_after_seconds: int = 30
    queue_visibility_seconds: int = 10
    openai_api_key: str | None = None
    handover_api_key: str | None = None
    handover_base_url: str = "https://thehandover.xyz"
    openai_base_url: str | None = None
    public_url: str | None = None
    agent_api: str = "responses"
    assistant_id: str | None = None
    lambda_port: int = 3004  # the Lambda Invoke API over the in-process functions
    functions_in_process: bool = True  # False: only the services (moto, emulators), for `sam local`
    webhook_secret: str = field(default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
    notify_url_prefixes: str = "http://127.0.0.1,http://localhost"
    notify_retry_base_seconds: int = 1  # a failed notification is tried again after 1, 2, 4, ... s
    queue_pollers: int | None = None  # invocations per queue at once; None: the trigger's MaximumConcurrency
    # Signs the requests to http tools: SIGNOFF_TOOL_SIGNING_SECRET, generated when unset.
    tool_signing_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    # The agent catalog (SIGNOFF_CATALOG_FILE); None: the example catalog over the local tool servers.
    catalog_file: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # Each function in a process of its own with exactly its template environment (local.sandboxes):
    # SIGNOFF_SANDBOXES=1. Off by default: drills and counters hook this process's boto3.
    sandboxes: bool = False

    def on_free_ports(self) -> StackConfig:
        """The same settings, every server on a port the system picks (tests, demo, bench, drills)."""
        self.api_port = self.handover_port = self.openai_port = self.aws_port = self.lambda_port = 0
        return self

    @classmethod
    def from_env(cls) -> StackConfig:
        env = os.environ
        return cls(
            api_port=_env_int("SIGNOFF_API_PORT", 3000),
            handover_port=_env_int("SIGNOFF_HANDOVER_PORT", 3001),
            openai_port=_env_int("SIGNOFF_OPENAI_PORT", 3002),
            aws_port=_env_int("SIGNOFF_AWS_PORT", 3003),
            api_key=env.get("SIGNOFF_API_KEY", "local-dev-key"),
            tenant_keys=env.get("SIGNOFF_API_KEYS", ""),
            handover_local_key=env.get("SIGNOFF_HANDOVER_LOCAL_KEY", "ho_local_dev"),
            approver_email=env.get("SIGNOFF_APPROVER_EMAIL", "approver@example.com"),
            decision_timeout_minutes=_env_int("SIGNOFF_DECISION_TIMEOUT_MINUTES", 60),
            handover_minute_seconds=_env_float("SIGNOFF_HANDOVER_MINUTE_SECONDS", 60.0),
            reconcile_interval_seconds=_env_float("SIGNOFF_RECONCILE_INTERVAL_SECONDS", 30.0),
            reconcile_after_seconds=_env_int("SIGNOFF_RECONCILE_AFTER_SECONDS", 30),
            stall_after_seconds=_env_int("SIGNOFF_STALL_AFTER_SECONDS", 30),
            queue_visibility_seconds=_env_int("SIGNOFF_QUEUE_VISIBILITY_SECONDS", 10),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            handover_api_key=env.get("HANDOVER_API_KEY") or None,
            handover_base_url=env.get("SIGNOFF_HANDOVER_BASE_URL", "https://thehandover.xyz"),
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            public_url=env.get("SIGNOFF_PUBLIC_URL") or None,
            agent_api=env.get("SIGNOFF_AGENT_API", "responses"),
            assistant_id=env.get("OPENAI_ASSISTANT_ID") or None,
            lambda_port=_env_int("SIGNOFF_LAMBDA_PORT", 3004),
            notify_url_prefixes=env.get("SIGNOFF_NOTIFY_URL_PREFIXES", "http://127.0.0.1,http://localhost"),
            notify_retry_base_seconds=_env_int("SIGNOFF_NOTIFY_RETRY_BASE_SECONDS", 1),
            **({"webhook_secret": env["SIGNOFF_WEBHOOK_SECRET"]} if env.get("SIGNOFF_WEBHOOK_SECRET") else {}),
            **(
                {"tool_signing_secret": env["SIGNOFF_TOOL_SIGNING_SECRET"]}
                if env.get("SIGNOFF_TOOL_SIGNING_SECRET")
                else {}
            ),
            catalog_file=env.get("SIGNOFF_CATALOG_FILE") or None,
            sandboxes=env.get("SIGNOFF_SANDBOXES", "") in ("1", "true"),
        )


class EmbeddedStack:
    def __init__(self, config: StackConfig | None = None):
        self.config = config or StackConfig.from_env()
        self.template = SamTemplate()
        self._servers: list[BackgroundServer] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.handover: HandoverEmulator | None = None
        self.openai: OpenAIEmulator | None = None
        self.resources: CreatedResources | None = None
        self.errors: list[str] = []
        self.duplicate_deliveries = os.environ.get("SIGNOFF_QUEUE_DUPLICATE_DELIVERIES", "") in ("1", "true")
        self.deliveries = 0
        self.throttle: DynamoThrottle | None = None
        self._pumps_paused = threading.Event()
        self._pumps_idle: dict[str, threading.Event] = {}  # per queue pump: standing aside now

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> EmbeddedStack:
        cfg = self.config
        from local.moto_server import SerializedMotoServer

        self._moto = SerializedMotoServer(ip_address="127.0.0.1", port=cfg.aws_port, verbose=False)
        self._moto.start()
        self.throttle = DynamoThrottle(float(os.environ.get("SIGNOFF_AWS_THROTTLE_RATE", "0") or 0)).install()
        self.crashes = CrashInjector().install(boto3.DEFAULT_SESSION)  # inert until a drill arms it
        # Every function here shares one process and its clients: a Lambda sandbox's pool of 10 would
        # overflow ("Connection pool is full, discarding connection") under a hundred requests at once.
        boto3.DEFAULT_SESSION._session.set_default_client_config(BotoConfig(max_pool_connections=CLIENT_POOL))
        host, port = self._moto.get_host_and_port()
        self.aws_url = f"http://{host}:{port}"
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.aws_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
            }
        )

        if cfg.handover_api_key:
            self.handover_url = cfg.handover_base_url
        else:
            self.handover = HandoverEmulator(cfg.handover_local_key, cfg.handover_minute_seconds).start()
            self.handover_url = self._serve(handover_app(self.handover), cfg.handover_port, "handover").url
        if cfg.openai_api_key:
            self.openai_url = cfg.openai_base_url or "https://api.openai.com/v1"
        else:
            self.openai = OpenAIEmulator()
            self.openai_url = self._serve(openai_app(self.openai), cfg.openai_port, "openai").url + "/v1"

        self.resources = create_resources(
            self.template,
            {
                "OpenAIApiKeySecret": cfg.openai_api_key or "sk-local-emulator",
                "HandoverApiKeySecret": cfg.handover_api_key or cfg.handover_local_key,
                "ClientApiKeysSecret": "\n".join([cfg.api_key, *filter(None, cfg.tenant_keys.split(","))]),
                "CallbackSigningKeySecret": secrets.token_urlsafe(48),
                "CursorKeySecret": secrets.token_urlsafe(48),
                "WebhookSigningSecret": cfg.webhook_secret,
                "ToolSigningSecret": cfg.tool_signing_secret,
            },
            queue_visibility_seconds=cfg.queue_visibility_seconds,
        )
        # What a team creates outside the stack (docs/receipts.md): an Object Lock bucket for the
        # checkpoints, named in CheckpointBucketName.
        local_client("s3").create_bucket(Bucket=CHECKPOINT_BUCKET, ObjectLockEnabledForBucket=True)
        if not cfg.functions_in_process:
            return self  # `sam local` runs the functions, in containers
        self._start_tool_servers()
        self.gateway = ApiGateway(self.template)
        gateway_server = BackgroundServer(self.gateway, port=cfg.api_port, name="gateway")
        self.api_url = gateway_server.url
        self._set_function_environment()
        self._servers.append(gateway_server.start())
        endpoint = LambdaInvokeEndpoint(self.template, tool_functions=LOCAL_TOOL_FUNCTIONS)
        self.lambda_url = self._serve(endpoint, cfg.lambda_port, "lambda").url
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self.lambda_url  # lambda tools are invoked here, not in moto
        if cfg.sandboxes:
            self.start_sandboxes()
        self._start_queue_pumps()
        self._start_stream_pumps()
        self._start_schedules()
        return self

    def _start_tool_servers(self) -> None:
        """The example tool servers (http, MCP), and the example catalog over them unless a catalog
        file was given."""
        cfg = self.config
        self.http_tools = HttpToolServer(cfg.tool_signing_secret).start()
        self._servers.append(self.http_tools)
        self.mcp_tools = McpToolServer().start()
        self._servers.append(self.mcp_tools)
        if cfg.catalog_file:
            self._catalog_env = {"CATALOG_FILE": cfg.catalog_file}
            return
        self._example_dir = tempfile.TemporaryDirectory(prefix="signoff-catalog-")
        catalog, policy = write_example(Path(self._example_dir.name), self.http_tools.url, self.mcp_tools.url)
        self._catalog_env = {"CATALOG_FILE": str(catalog), "POLICY_FILE": str(policy)}

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if getattr(self, "sandboxes", None) is not None:
            from local.lambda_runtime import SANDBOXES

            SANDBOXES.clear()
            self.sandboxes.stop()
        for server in reversed(self._servers):
            server.stop()
        if self.handover:
            self.handover.stop()
        with contextlib.suppress(requests.RequestException):  # the next stack in this process starts empty
            requests.post(f"{getattr(self, 'aws_url', '')}/moto-api/reset", timeout=30)
        self._moto.stop()

    def _serve(self, app: Any, port: int, name: str) -> BackgroundServer:
        server = BackgroundServer(app, port=port, name=name).start()
        self._servers.append(server)
        return server

    def function_parameters(self) -> dict[str, Any]:
        """The template's parameters as the local stack sets them (``!Ref`` values of the functions' env)."""
        cfg = self.config
        return {
            **self.template.parameter_defaults(),
            "AgentApi": cfg.agent_api,
            "OpenAIAssistantId": self._assistant_id(),
            "OpenAIBaseUrl": self.openai_url,
            "HandoverBaseUrl": self.handover_url,
            "ApproverEmail": cfg.approver_email,
            "DecisionTimeoutMinutes": str(cfg.decision_timeout_minutes),
            "NotifyUrlPrefixes": cfg.notify_url_prefixes,
            "CheckpointBucketName": CHECKPOINT_BUCKET,
            "AWS::Region": "us-east-1",
            "AWS::StackName": "signoff",  # the service name metrics and logs carry (template: the stack name)
        }

    def _local_values(self) -> dict[str, str]:
        """What the local stack sets besides the template: its own values of template variables
        (applied only where a function declares them) and the stand-ins for AWS."""
        cfg = self.config
        return {
            "PUBLIC_API_URL": cfg.public_url or self.api_url,
            "RECONCILE_AFTER_SECONDS": str(cfg.reconcile_after_seconds),
            "STALL_AFTER_SECONDS": str(cfg.stall_after_seconds),
            "NOTIFY_RETRY_BASE_SECONDS": str(cfg.notify_retry_base_seconds),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_DEV": os.environ.get("POWERTOOLS_DEV", "false"),
            "AWS_ENDPOINT_URL": self.aws_url,
            **self._catalog_env,
            **self.config.extra_env,
        }

    def _set_function_environment(self) -> None:
        """This process: every function's variables at once (the handlers share it). In sandbox mode,
        each function's process gets its own only (``start_sandboxes``)."""
        parameters = self.function_parameters()
        assert self.resources is not None
        env: dict[str, str] = {}
        for function_env in function_environments(self.template, self.resources, parameters, {}).values():
            env.update(function_env)
        env.update(self._local_values())
        os.environ.update(env)
        self.warm()

    def start_sandboxes(self) -> None:
        """Each function in a process holding exactly its template environment (local.sandboxes)."""
        from local.lambda_runtime import SANDBOXES
        from local.sandboxes import Sandboxes, sandbox_environments

        assert self.resources is not None
        local = self._local_values()
        declared = function_environments(self.template, self.resources, self.function_parameters(), local)
        shared = {**os.environ, **local}  # the stand-ins for AWS, as this process has them
        self.sandboxes = Sandboxes(sandbox_environments(declared, shared))
        SANDBOXES.update(self.sandboxes.by_function())

    def warm(self) -> None:
        """Build the shared clients afresh, as a sandbox's first request would. The functions of the
        embedded stack share one process: without this, a burst of first requests (a load test's
        100 at once) each builds the same boto3 clients and secrets providers, seconds of CPU that
        a Lambda sandbox pays once. A hook on the boto3 session reaches clients built after it: a
        bench that adds one calls this again."""
        from signoff import runtime

        runtime.reset()
        for getter in (
            runtime.table,
            runtime.work_queue,
            runtime.notification_queue,
            runtime.client_api_keys,
            runtime.signing_key,
            runtime.approval_service,
            runtime.receipt_signer,
            runtime.agent_backend,
        ):
            with contextlib.suppress(Exception):  # what this configuration cannot build fails on use, as before
                getter()

    def _assistant_id(self) -> str:
        """For the Assistants API: the configured assistant, or one made once at start-up."""
        cfg = self.config
        if cfg.agent_api != "assistants" or cfg.assistant_id:
            return cfg.assistant_id or ""
        from openai import OpenAI

        from signoff.adapters.assistant_setup import create_assistant

        client = OpenAI(api_key=cfg.openai_api_key or "sk-local-emulator", base_url=self.openai_url)
        # One assistant for every agent: each run sends its agent's instructions and tools.
        cfg.assistant_id = create_assistant(client, "gpt-4.1", [], name="local")
        return cfg.assistant_id

    # -- event sources -------------------------------------------------------------------
    def _start_queue_pumps(self) -> None:
        """One poller per invocation the trigger may run at once (its MaximumConcurrency, as Lambda
        scales an SQS event source up to it; one where it sets none)."""
        assert self.resources is not None
        parameters = self.function_parameters()
        for queue_id, function_id in self.template.sqs_triggers().items():
            fn = self.template.function(function_id)
            url, arn = self.resources.refs[queue_id], self.resources.attrs[(queue_id, "Arn")]
            batch = self.template.sqs_batch_size(function_id)
            pollers = self.config.queue_pollers or self.template.sqs_max_concurrency(function_id, parameters) or 1
            for n in range(pollers):
                name = f"pump-{queue_id}-{n}"
                self._pumps_idle[name] = threading.Event()
                thread = threading.Thread(target=self._pump, args=(name, fn, url, arn, batch), name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, name: str, fn, url: str, arn: str, batch_size: int) -> None:
        """The SQS event source mapping: receive (up to the trigger's batch size), invoke, delete what
        succeeded."""
        sqs = local_client("sqs")
        while not self._stop.is_set():
            if self._pumps_paused.is_set():  # someone else delivers the queue for now (a test's driver)
                self._pumps_idle[name].set()
                self._stop.wait(0.05)
                continue
            try:
                received = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=min(10, batch_size), WaitTimeSeconds=1, AttributeNames=["All"]
                ).get("Messages", [])
            except Exception:
                if self._stop.is_set():
                    return
                self._report("queue receive failed")
                continue
            if not received:
                continue
            event = {"Records": [sqs_record(m, arn) for m in received]}
            failed = self._deliver(fn, event, received)
            for message in received:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _start_stream_pumps(self) -> None:
        assert self.resources is not None
        for trigger in self.template.stream_triggers():
            table_name = self.resources.refs[trigger.table]
            thread = threading.Thread(
                target=self._stream_pump, args=(trigger, table_name), name=f"stream-{trigger.table}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _stream_pump(self, trigger, table_name: str) -> None:
        """The DynamoDB stream event source mapping: records in order, filtered by the trigger's
        patterns, in batches; a failed batch is retried (a few times, as MaximumRetryAttempts)."""
        from local.moto_server import drain_stream

        fn = self.template.function(trigger.function)
        waiting: list[dict[str, Any]] = []
        while not self._stop.is_set():
            waiting += [r for r in drain_stream(table_name) if trigger.matches(r)]
            if not waiting:
                self._stop.wait(0.1)
                continue
            batch, waiting = waiting[: trigger.batch_size], waiting[trigger.batch_size :]
            for attempt in range(1, 4):
                try:
                    invoke(fn, {"Records": batch})
                    break
                except (Exception, SimulatedCrash):
                    self._report(f"stream invocation failed (attempt {attempt})")
                    self._stop.wait(0.2 * attempt)

    def _deliver(self, fn, event: dict[str, Any], received: list[dict[str, Any]]) -> set[str]:
        """Invoke the function with a batch (twice at once when drilling at-least-once delivery);
        return the ids of messages to leave on the queue."""
        copies = 2 if self.duplicate_deliveries else 1
        results: list[set[str]] = [set() for _ in range(copies)]

        def once(index: int) -> None:
            try:
                result = invoke(fn, event) or {}
                results[index] = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            except SimulatedCrash:
                results[index] = {m["MessageId"] for m in received}
            except Exception:
                self._report("worker invocation failed")
                results[index] = {m["MessageId"] for m in received}

        threads = [threading.Thread(target=once, args=(i,)) for i in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.deliveries += copies * len(received)
        return set().union(*results)

    def _start_schedules(self) -> None:
        for function_id in self.template.scheduled_functions():
            fn = self.template.function(function_id)
            thread = threading.Thread(target=self._tick, args=(fn,), name=f"schedule-{function_id}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _tick(self, fn) -> None:
        while not self._stop.wait(self.config.reconcile_interval_seconds):
            self.run_scheduled(fn.logical_id)

    @contextmanager
    def pumps_paused(self) -> Iterator[None]:
        """Every queue pump stands aside (after finishing what it holds) until the block ends."""
        for idle in self._pumps_idle.values():
            idle.clear()
        self._pumps_paused.set()
        try:
            if not all(idle.wait(timeout=30) for idle in self._pumps_idle.values()):
                raise TimeoutError("the queue pump did not stand aside")
            yield
        finally:
            self._pumps_paused.clear()

    def quiescent(self) -> bool:
        """Nothing runs and nothing waits to run: no invocation in flight, no callback on its way,
        no message on the work queue (visible, in flight or delayed)."""
        if in_flight() or (self.handover and self.handover.callbacks_in_flight):
            return False
        assert self.resources is not None
        attributes = local_client("sqs").get_queue_attributes(
            QueueUrl=self.resources.refs["WorkQueue"],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return not any(int(value) for value in attributes.values()) and not in_flight()

    def run_scheduled(self, function_id: str) -> Any:
        event = {
            "version": "0",
            "id": "local",
            "detail-type": "Scheduled Event",
            "source": "aws.scheduler",
            "account": "123456789012",
            "region": "us-east-1",
            "resources": [],
            "detail": {},
        }
        try:
            return invoke(self.template.function(function_id), event)
        except SimulatedCrash:
            return None  # a drill killed it on purpose; the next pass picks up where it stopped
        except Exception:
            self._report(f"{function_id} failed")
            return None

    def _report(self, what: str) -> None:
        self.errors.append(f"{what}: {traceback.format_exc(limit=3)}")
        print(f"[signoff-local] {what}", file=sys.stderr)
        traceback.print_exc()

    def _more_keys(self) -> str:
        more = [k.strip() for k in self.config.tenant_keys.split(",") if k.strip()]
        return f"; also {', '.join(more)}" if more else ""

    # -- the banner ----------------------------------------------------------------------
    def banner(self) -> str:
        cfg = self.config
        inbox = f"{self.handover_url}/" if self.handover else "(real Handover: approve from its email/Slack)"
        return f"""
Signoff is running locally.

  API            {self.api_url}          (Authorization: Bearer {cfg.api_key}, tenant "default"{self._more_keys()})
  Approval inbox {inbox}
  Handover API   {self.handover_url}     (Bearer {cfg.handover_local_key if self.handover else "<HANDOVER_API_KEY>"})
  OpenAI API     {self.openai_url}  {"(scripted model)" if self.openai else "(real)"}, agent API: {cfg.agent_api}
  AWS (moto)     {self.aws_url}
  Lambda API     {self.lambda_url}  (invoke the functions by logical id, as `sam local start-lambda` does)
  Notifications  signed with {cfg.webhook_secret}  (notify_url prefixes: {cfg.notify_url_prefixes})
  Tool requests  signed with {cfg.tool_signing_secret}  (http tools verify it; example server {self.http_tools.url})
  MCP tools      {self.mcp_tools.url}  (agent "ops"; catalog: {self._catalog_env["CATALOG_FILE"]})

Try the seed scenario:

  curl -s -X POST {self.api_url}/conversations \\
    -H 'Authorization: Bearer {cfg.api_key}' -H 'Content-Type: application/json' \\
    -d '{{"message": "Issue a €340 refund to customer #4821."}}'

then approve it in the inbox and read the reply:

  curl -s {self.api_url}/conversations/<conversation_id> -H 'Authorization: Bearer {cfg.api_key}'

Ctrl-C stops everything.
"""


def main() -> None:
    stack = EmbeddedStack().start()
    print(stack.banner(), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    print("\nStopping...", flush=True)
    stack.stop()


if __name__ == "__main__":
    main()
