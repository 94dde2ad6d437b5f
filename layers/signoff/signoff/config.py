"""Settings, read from the environment the template sets on each function."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from signoff.domain.notifications import parse_prefixes


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    table_name: str
    work_queue_url: str
    public_api_url: str
    agent_api: str
    openai_model: str
    openai_assistant_id: str
    openai_base_url: str | None
    openai_api_key_secret: str
    handover_base_url: str
    handover_timeout_seconds: float
    handover_api_key_secret: str
    callback_signing_key_secret: str
    client_api_keys_secret: str
    cursor_key_secret: str  # the secret's id (ARN or name) whose value seals page cursors
    approver_email: str
    decision_timeout_minutes: int
    reconcile_after_seconds: int
    stall_after_seconds: int
    running_lease_seconds: int
    openai_timeout_seconds: float
    execution_lease_seconds: int
    unbound_grace_seconds: int
    reconcile_workers: int
    min_model_call_seconds: float
    max_message_chars: int
    max_body_bytes: int
    idempotency_ttl_seconds: int
    catalog_parameter: str | None
    catalog_file: str | None
    tool_signing_secret: str  # the secret's id (ARN or name), not its value
    receipt_key_id: str  # the KMS key that signs receipts ("" : no receipts)
    retired_receipt_keys: tuple[str, ...]
    checkpoint_bucket: str  # where checkpoints are copied as they are made ("": nowhere)
    policy_parameter: str | None
    policy_file: str | None
    audit_retention_days: int
    notify_queue_url: str
    webhook_secret: str  # the secret's id (ARN or name), not its value
    notify_url_prefixes: tuple[str, ...]
    notify_retry_base_seconds: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            table_name=env.get("TABLE_NAME", "signoff"),
            work_queue_url=env.get("WORK_QUEUE_URL", ""),
            public_api_url=env.get("PUBLIC_API_URL", "").rstrip("/"),
            agent_api=env.get("AGENT_API", "responses"),
            openai_model=env.get("OPENAI_MODEL", "gpt-4.1"),
            openai_assistant_id=env.get("OPENAI_ASSISTANT_ID", ""),
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_api_key_secret=env.get("OPENAI_API_KEY_SECRET", "signoff/openai-api-key"),
            handover_base_url=env.get("HANDOVER_BASE_URL", "https://thehandover.xyz"),
            handover_timeout_seconds=float(env.get("HANDOVER_TIMEOUT_SECONDS") or 10),
            handover_api_key_secret=env.get("HANDOVER_API_KEY_SECRET", "signoff/handover-api-key"),
            callback_signing_key_secret=env.get("CALLBACK_SIGNING_KEY_SECRET", "signoff/callback-signing-key"),
            client_api_keys_secret=env.get("CLIENT_API_KEYS_SECRET", "signoff/client-api-keys"),
            cursor_key_secret=env.get("CURSOR_KEY_SECRET", "signoff/cursor-key"),
            approver_email=env.get("APPROVER_EMAIL", ""),
            decision_timeout_minutes=_int("DECISION_TIMEOUT_MINUTES", 60),
            reconcile_after_seconds=_int("RECONCILE_AFTER_SECONDS", 300),
            stall_after_seconds=_int("STALL_AFTER_SECONDS", 120),
            running_lease_seconds=_int("RUNNING_LEASE_SECONDS", 600),
            openai_timeout_seconds=float(env.get("OPENAI_TIMEOUT_SECONDS") or 60),
            execution_lease_seconds=_int("EXECUTION_LEASE_SECONDS", 300),
            # How long an approval may wait for its decision to be created before counting as never
            # asked: longer than a worker invocation can live.
            unbound_grace_seconds=_int("UNBOUND_GRACE_SECONDS", 300),
            # Due items one reconciler pass handles at once: each waits mostly on Handover's answer.
            reconcile_workers=_int("RECONCILE_WORKERS", 8),
            min_model_call_seconds=float(env.get("MIN_MODEL_CALL_SECONDS") or 10),
            max_message_chars=_int("MAX_MESSAGE_CHARS", 32_000),
            max_body_bytes=_int("MAX_BODY_BYTES", 256 * 1024),
            idempotency_ttl_seconds=_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600),
            catalog_parameter=env.get("CATALOG_PARAMETER") or None,
            catalog_file=env.get("CATALOG_FILE") or None,
            tool_signing_secret=env.get("TOOL_SIGNING_SECRET_SECRET", "signoff/tool-signing-secret"),
            receipt_key_id=env.get("RECEIPT_KEY_ID", ""),
            retired_receipt_keys=tuple(k.strip() for k in env.get("RETIRED_RECEIPT_KEYS", "").split(",") if k.strip()),
            checkpoint_bucket=env.get("CHECKPOINT_BUCKET", ""),
            policy_parameter=env.get("POLICY_PARAMETER") or None,
            policy_file=env.get("POLICY_FILE") or None,
            audit_retention_days=_int("AUDIT_RETENTION_DAYS", 400),
            notify_queue_url=env.get("NOTIFY_QUEUE_URL", ""),
            webhook_secret=env.get("WEBHOOK_SECRET_SECRET", "signoff/webhook-secret"),
            # No notify_url is accepted unless its prefix is listed: no requests to arbitrary hosts.
            notify_url_prefixes=tuple(parse_prefixes(env.get("NOTIFY_URL_PREFIXES", ""))),
            notify_retry_base_seconds=_int("NOTIFY_RETRY_BASE_SECONDS", 30),
        )


@cache
def settings() -> Settings:
    return Settings.from_env()
