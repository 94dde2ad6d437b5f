"""Powertools idempotency, stored in the single table (``IDEMPOTENCY#...`` partition, ``ttl`` expiry)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig


def client_request_persistence(table_name: str, client: Any = None) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        boto3_client=client,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="IDEMPOTENCY#client-api",
        expiry_attr="ttl",
        in_progress_expiry_attr="in_progress_ttl",
        status_attr="idempotency_status",
        data_attr="idempotency_data",
        validation_key_attr="idempotency_validation",
    )


def client_request_config(ttl_seconds: int) -> IdempotencyConfig:
    """Keyed on the caller's Idempotency-Key; the same key with another body is refused."""
    return IdempotencyConfig(
        event_key_jmespath="idempotency_key",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=False,
        expires_after_seconds=ttl_seconds,
    )
