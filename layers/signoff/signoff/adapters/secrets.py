"""Secrets from Secrets Manager through Powertools parameters, cached for a few minutes."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities import parameters

from signoff.domain.ports import NotConfigured

DEFAULT_MAX_AGE_SECONDS = 300
PLACEHOLDER_KEY = "signoff_placeholder"  # what the template writes into a key secret it creates


class SecretNotSet(NotConfigured):
    """The secret still holds the placeholder the stack created it with: nobody put the key in yet."""

    def __init__(self, secret_id: str):
        super().__init__(
            f"secret {secret_id} still holds its placeholder; put the key in once with "
            f"`aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string <key>`"
        )


def read_secret(secret_id: str, max_age: int = DEFAULT_MAX_AGE_SECONDS) -> str:
    value = parameters.get_secret(secret_id, max_age=max_age)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not value:
        raise RuntimeError(f"secret {secret_id} is empty")
    if value.startswith("{") and PLACEHOLDER_KEY in value:
        try:
            placeholder = PLACEHOLDER_KEY in json.loads(value)
        except ValueError:
            placeholder = False
        if placeholder:
            raise SecretNotSet(secret_id)
    return value
