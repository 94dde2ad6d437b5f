"""Secrets from Secrets Manager through Powertools parameters, cached for a few minutes."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

DEFAULT_MAX_AGE_SECONDS = 300


def read_secret(secret_id: str, max_age: int = DEFAULT_MAX_AGE_SECONDS) -> str:
    value = parameters.get_secret(secret_id, max_age=max_age)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not value:
        raise RuntimeError(f"secret {secret_id} is empty")
    return value
