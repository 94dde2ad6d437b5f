"""Wiring: builds the adapters and use cases once per Lambda sandbox.

Each getter imports only what its path needs; ``agent_backend`` is the only one that imports
``openai``, so the callback and client API paths never pay for it.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from signoff.config import settings

if TYPE_CHECKING:
    from signoff.dal.table import SignoffTable
    from signoff.domain.ports import AgentBackend
    from signoff.domain.tools import ToolRegistry
    from signoff.logic.agent_runner import AgentRunner
    from signoff.logic.approvals import ApprovalSettler
    from signoff.logic.callback import ApprovalCallback
    from signoff.logic.conversations import ConversationService
    from signoff.logic.reconciler import Reconciler

_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)


@cache
def _dynamodb():
    """One DynamoDB client per sandbox: a client is costly to build, and many leak memory."""
    return boto3.client("dynamodb", config=_BOTO_CONFIG)


@cache
def idempotency_config():
    """One per sandbox: the handler gives it each invocation's context (its remaining time)."""
    from signoff.dal.idempotency import client_request_config

    return client_request_config(settings().idempotency_ttl_seconds)


@cache
def idempotent_command():
    """The client API's command runner, once per Idempotency-Key (Powertools idempotency in the
    table). Built on first use, with the sandbox's DynamoDB client: a request without a key never
    pays for it, and the import does not build a second client."""
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

    from signoff.dal.idempotency import client_request_persistence
    from signoff.logic.conversations import StartedTurn

    @idempotent_function(
        data_keyword_argument="command",
        persistence_store=client_request_persistence(settings().table_name, _dynamodb()),
        config=idempotency_config(),
        output_serializer=PydanticSerializer(StartedTurn),
    )
    def run(command: dict, operation):
        return operation(command["request"])

    return run


@cache
def table() -> SignoffTable:
    from signoff.dal.table import SignoffTable

    cfg = settings()
    client = _dynamodb()
    return SignoffTable(
        client, cfg.table_name, cfg.stall_after_seconds, cfg.audit_retention_days, cfg.running_lease_seconds
    )


@cache
def work_queue():
    from signoff.adapters.sqs import SqsWorkQueue

    return SqsWorkQueue(boto3.client("sqs", config=_BOTO_CONFIG), settings().work_queue_url)


def _secret(secret_id: str) -> str:
    from signoff.adapters.secrets import read_secret

    return read_secret(secret_id)


def signing_key() -> bytes:
    return _secret(settings().callback_signing_key_secret).encode("utf-8")


def cursor_seal():
    """Seals and opens the client API's page cursors: the secret read through the secrets cache,
    the seal built once per value of it."""
    return _cursor_seal(_secret(settings().cursor_key_secret))


@cache
def _cursor_seal(secret: str):
    from signoff.domain.cursors import CursorSeal, cursor_key

    return CursorSeal(cursor_key(secret.encode("utf-8")))


def client_api_keys() -> list[tuple[str, str]]:
    """The client API keys as ``(tenant, key)``: one ``<tenant>:<key>`` per line (or a JSON list of
    such strings) in the secret; a line that is not valid is skipped and logged, never guessed at."""
    import json

    from aws_lambda_powertools import Logger

    from signoff.domain.tenants import InvalidKeyLine, parse_key_line

    raw = _secret(settings().client_api_keys_secret).strip()
    lines = json.loads(raw) if raw.startswith("[") else raw.splitlines()
    keys = []
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, str):
            continue
        try:
            parsed = parse_key_line(line)
        except InvalidKeyLine:
            Logger(child=True).error("client keys secret: line %d is not <tenant>:<key>; skipped", number)
            continue
        if parsed:
            keys.append(parsed)
    return keys


def approval_service():
    """Built per call so a rotated Handover key is picked up once the secret cache expires."""

    return _handover_client(_secret(settings().handover_api_key_secret))


@cache
def _handover_client(api_key: str):
    from signoff.adapters.handover import HandoverClient
    from signoff.observability import trace_library

    trace_library("requests")
    cfg = settings()
    return HandoverClient(cfg.handover_base_url, api_key, timeout=(3.05, cfg.handover_timeout_seconds))


def catalog():
    """The agent catalog; re-read from SSM when its cache expires (a changed text is parsed once)."""
    from signoff.adapters.tool_catalog import load_catalog

    cfg = settings()
    if cfg.catalog_parameter:
        return load_catalog(cfg.catalog_parameter, None)
    return _file_catalog(cfg.catalog_file)


@cache
def _file_catalog(path: str | None):
    from signoff.adapters.tool_catalog import load_catalog

    return load_catalog(None, path)


_per_catalog: dict[str, tuple[object, object]] = {}


def _for_catalog(kind: str, current, build):
    """Built once per catalog in force (a changed catalog text parses to a new Catalog)."""
    held = _per_catalog.get(kind)
    if held is None or held[0] is not current:
        held = (current, build(current))
        _per_catalog[kind] = held
    return held[1]


class _CatalogTools:
    """The use cases' view of ``tools()``, read at each use: a catalog that fails to load fails the
    call that needs it (a turn says Signoff is not fully set up), not the wiring."""

    def get(self, name: str):
        return tools().get(name)

    def definitions(self, names=None):
        return tools().definitions(names)

    def names(self) -> list[str]:
        return tools().names()


def tools() -> ToolRegistry:
    """Every catalog tool bound to its executor."""
    from signoff.adapters.tool_catalog import Invokers, build_registry

    invokers = Invokers(http=_http_tools, lambda_=_lambda_tools, mcp=_mcp_toolbox)
    return _for_catalog("tools", catalog(), lambda current: build_registry(current, invokers))


@cache
def _http_tools():
    from signoff.adapters.http_tools import HttpToolInvoker
    from signoff.observability import trace_library

    trace_library("requests")
    return HttpToolInvoker(lambda: _secret(settings().tool_signing_secret))


@cache
def _lambda_tools():
    from signoff.adapters.lambda_tools import LambdaToolInvoker

    return LambdaToolInvoker(_lambda_client)


@cache
def _lambda_client(read_timeout: float):
    """One client per tool timeout. No retries: botocore retries a read timeout, which would invoke a
    function that may already be running a second time (at most once comes first)."""
    return boto3.client(
        "lambda", config=Config(retries={"total_max_attempts": 1}, connect_timeout=3, read_timeout=read_timeout)
    )


def _mcp_toolbox(server: str):
    """One toolbox per MCP server of the catalog in force: its tools/list is kept a few minutes."""
    from signoff.adapters.mcp_tools import McpToolbox
    from signoff.observability import trace_library

    trace_library("httpx")  # the MCP client's transport

    def authorization(secret_id: str | None):
        return (lambda: _secret(secret_id)) if secret_id else (lambda: None)

    def build(current) -> dict:
        return {
            name: McpToolbox(name, spec, authorization(spec.authorization_secret))
            for name, spec in current.mcp_servers.items()
        }

    return _for_catalog("mcp", catalog(), build)[server]


def agent_setup(conversation):
    """What the conversation's agent is: its model, instructions, tools (and assistant)."""
    return agent_setup_named(conversation.agent)


def agent_setup_named(agent_name: str | None):
    from signoff.domain.ports import AgentSetup

    cfg = settings()
    current = catalog()
    name = agent_name or current.default_agent
    agent = current.agent(name)
    if agent is None:
        from signoff.domain.ports import BackendRejected

        raise BackendRejected(f"the conversation's agent {name!r} is no longer in the catalog")
    hosted = []
    for label in agent.hosted_mcp:
        server = current.hosted_mcp[label]
        tool = server.tool(label)
        if server.authorization_secret:
            tool["headers"] = {"Authorization": _secret(server.authorization_secret)}
        hosted.append(tool)
    return AgentSetup(
        name=name,
        model=agent.model or cfg.openai_model,
        instructions=agent.instructions,
        tools=tools().definitions(offered_tools(name)) + hosted,
        assistant_id=agent.assistant_id or cfg.openai_assistant_id,
    )


def offered_tools(agent_name: str | None) -> list[str]:
    """The tool names the agent is offered: its catalog tools and the tools of its MCP servers."""
    current = catalog()
    agent = current.agent(agent_name)
    if agent is None:
        return []
    names = list(agent.tools)
    for server in agent.mcp_servers:
        names += _mcp_toolbox(server).names()
    return names + [f"{label}__*" for label in agent.hosted_mcp]  # OpenAI lists those tools


def policy():
    """The approval policy; re-read from SSM when its cache expires, so edits apply without a deploy."""
    from signoff.adapters.policy_source import load_policy

    cfg = settings()
    if cfg.policy_parameter:
        return load_policy(cfg.policy_parameter, None)
    return _file_policy(cfg.policy_file)


@cache
def _file_policy(path: str | None):
    from signoff.adapters.policy_source import load_policy

    return load_policy(None, path)


def executor():
    from signoff.logic.executor import ActionExecutor

    return ActionExecutor(
        table(), _CatalogTools(), settings().execution_lease_seconds, budget_keeper(), receipt_issuer()
    )


@cache
def receipt_signer():
    """The KMS key that signs receipts; None when the deployment has none (receipts are then off)."""
    from signoff.adapters.kms_signer import KmsReceiptSigner

    cfg = settings()
    if not cfg.receipt_key_id:
        return None
    return KmsReceiptSigner(boto3.client("kms", config=_BOTO_CONFIG), cfg.receipt_key_id, cfg.retired_receipt_keys)


# The API's URL as the request in hand came in on (the callback function: see signoff.api.origin);
# PUBLIC_API_URL, where the template sets it, comes first.
_request_api_url: ContextVar[str | None] = ContextVar("signoff_request_api_url", default=None)


def use_request_api_url(url: str | None) -> None:
    """For this invocation: the API's URL as its request came in (used where PUBLIC_API_URL is unset)."""
    _request_api_url.set(url.rstrip("/") if url else None)


def public_api_url() -> str:
    """The API's absolute URL: callbacks and receipts' issuer. Empty only outside any request of a
    function the template gives no PUBLIC_API_URL (then no callback URL can be made: not configured)."""
    return settings().public_api_url or _request_api_url.get() or ""


def receipt_issuer():
    from signoff.logic.receipts import ReceiptIssuer

    signer = receipt_signer()
    if signer is None:
        return None
    return ReceiptIssuer(table(), signer, policy, public_api_url() or "signoff")


def checkpointer():
    """Appends queued receipts to each tenant's log; None when receipts are off."""
    from signoff.logic.checkpoints import Checkpointer

    signer = receipt_signer()
    if signer is None:
        return None
    return Checkpointer(table(), signer, public_api_url() or "signoff", _checkpoint_export())


@cache
def _checkpoint_export():
    """Where checkpoints are copied (CheckpointBucketName): one S3 client per container, or None."""
    from signoff.adapters.checkpoint_export import S3CheckpointExport

    bucket = settings().checkpoint_bucket
    return S3CheckpointExport(boto3.client("s3", config=_BOTO_CONFIG), bucket) if bucket else None


def log_proofs():
    from signoff.logic.checkpoints import LogProofs

    return LogProofs(table())


def grant_keeper():
    from signoff.logic.grants import GrantKeeper

    return GrantKeeper(table(), policy)


def budget_keeper():
    from signoff.logic.budgets import BudgetKeeper

    return BudgetKeeper(table(), policy)


def settler(hand_off: bool = False) -> ApprovalSettler:
    """``hand_off``: approved calls run in the worker (the callback's setting: a tool never meets the
    gateway's 30 seconds); the reconciler and the worker run them where they are."""
    from signoff.logic.approvals import ApprovalSettler

    return ApprovalSettler(
        table(),
        executor(),
        work_queue(),
        _CatalogTools(),
        policy,
        budget_keeper(),
        grant_keeper(),
        escalate=lambda action, expired: approval_requester().escalate(action, expired),
        hand_off=hand_off,
    )


def approval_requester():
    """Asks approvers (Handover decisions with signed callback URLs): at a pause, and up a ladder."""
    from signoff.logic.approvals import ApprovalRequester, RequestSettings

    cfg = settings()
    request_settings = RequestSettings(
        default_approver=cfg.approver_email,
        default_timeout_minutes=cfg.decision_timeout_minutes,
        public_api_url=public_api_url(),
        reconcile_after_seconds=cfg.reconcile_after_seconds,
    )
    return ApprovalRequester(
        table(),
        approval_service(),
        _CatalogTools(),
        policy,
        settler(),
        signing_key(),
        request_settings,
        budget_keeper(),
        grant_keeper(),
    )


def conversation_service() -> ConversationService:
    from signoff.logic.conversations import ConversationService

    return ConversationService(table(), work_queue(), executor())


def audit_trail():
    from signoff.logic.audit import AuditTrail

    return AuditTrail(table())


def policy_replay():
    from signoff.logic.replay import PolicyReplay

    return PolicyReplay(table(), _CatalogTools(), settings().approver_email)


def approval_stats():
    from signoff.logic.audit import ApprovalStats

    return ApprovalStats(table())


def approval_callback() -> ApprovalCallback:
    from signoff.logic.callback import ApprovalCallback

    return ApprovalCallback(table(), approval_service(), settler(hand_off=True), signing_key())


def reconciler() -> Reconciler:
    from signoff.logic.reconciler import Reconciler

    cfg = settings()
    return Reconciler(
        table(),
        approval_service(),
        settler(),
        executor(),
        work_queue(),
        cfg.reconcile_after_seconds,
        cfg.unbound_grace_seconds,
        cfg.reconcile_workers,
    )


@cache
def _openai_client(api_key: str):
    from openai import OpenAI

    from signoff.adapters.openai_client import DeadlineBoundClient
    from signoff.observability import trace_library

    trace_library("httpx")
    cfg = settings()
    client = OpenAI(api_key=api_key, base_url=cfg.openai_base_url, timeout=cfg.openai_timeout_seconds, max_retries=2)
    return DeadlineBoundClient(client, cfg.openai_timeout_seconds, max_retries=2)


def agent_backend() -> AgentBackend:
    """The agent API behind one interface; only here does ``openai`` get imported."""
    from signoff.adapters.agent_router import AgentBackendRouter

    cfg = settings()

    def client():
        return _openai_client(_secret(cfg.openai_api_key_secret))

    def responses():
        from signoff.adapters.openai_responses import ResponsesBackend

        return ResponsesBackend(client(), agent_setup)

    def assistants():
        from signoff.adapters.openai_assistants import AssistantsBackend

        return AssistantsBackend(client(), agent_setup)

    def chat():
        from signoff.adapters.openai_chat import ChatCompletionsBackend
        from signoff.dal.chat_history import ChatHistoryTable

        history = ChatHistoryTable(_dynamodb(), cfg.table_name)
        return ChatCompletionsBackend(client(), agent_setup, history)

    return AgentBackendRouter(cfg.agent_api, {"responses": responses, "assistants": assistants, "chat": chat})


def agent_runner() -> AgentRunner:
    from signoff.logic.agent_runner import AgentRunner

    cfg = settings()
    requester = approval_requester()
    return AgentRunner(
        table(),
        agent_backend(),
        _CatalogTools(),
        policy,
        executor(),
        requester,
        work_queue(),
        model_call_seconds=cfg.min_model_call_seconds,
        budgets=budget_keeper(),
        grants=grant_keeper(),
        # A call still executing is looked at again this soon (its lease settles a dead one).
        recheck_seconds=max(1, min(10, cfg.execution_lease_seconds)),
        offered=offered_tools,
    )


@cache
def notification_queue():
    """One per sandbox: each record of a delivery batch used to build its own SQS client."""
    from signoff.adapters.sqs import SqsNotificationQueue

    return SqsNotificationQueue(boto3.client("sqs", config=_BOTO_CONFIG), settings().notify_queue_url)


def notification_relay():
    """Built per call so a rotated webhook secret is picked up once the secret cache expires."""
    from signoff.adapters.webhooks import WebhookSender
    from signoff.logic.notifications import NotificationRelay
    from signoff.observability import trace_library

    trace_library("requests")
    cfg = settings()
    return NotificationRelay(
        notification_queue(),
        WebhookSender(lambda: _secret(cfg.webhook_secret)),
        list(cfg.notify_url_prefixes),
        cfg.notify_retry_base_seconds,
    )


def reset() -> None:
    """Forget cached clients and settings (tests change the environment between stacks)."""
    from aws_lambda_powertools.utilities import parameters

    for fn in (
        _dynamodb,
        _checkpoint_export,
        idempotency_config,
        idempotent_command,
        table,
        work_queue,
        notification_queue,
        _handover_client,
        _file_catalog,
        receipt_signer,
        _http_tools,
        _lambda_tools,
        _lambda_client,
        _cursor_seal,
        _openai_client,
        _file_policy,
        settings,
    ):
        fn.cache_clear()
    parameters.clear_caches()
    _per_catalog.clear()
