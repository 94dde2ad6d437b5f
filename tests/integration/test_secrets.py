"""Key secrets the stack creates hold a placeholder until someone puts the key in: it is refused,
never used as a key, and the refusal says which secret to fill and how."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from local.template import SamTemplate
from signoff.adapters.secrets import SecretNotSet, read_secret
from signoff.domain.ports import NotConfigured


def _template_placeholder(logical_id: str) -> str:
    """The value CloudFormation would generate from the template's own GenerateSecretString."""
    spec = SamTemplate().resources[logical_id]["Properties"]["GenerateSecretString"]
    return json.dumps({**json.loads(spec["SecretStringTemplate"]), spec["GenerateStringKey"]: "Xy12Ab34"})


@pytest.mark.parametrize("logical_id", ["OpenAIApiKeySecret", "HandoverApiKeySecret"])
def test_a_placeholder_is_refused_with_the_command_that_fixes_it(stack, logical_id):
    name = f"placeholder-{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=_template_placeholder(logical_id))
    with pytest.raises(SecretNotSet) as refused:
        read_secret(name, max_age=0)
    assert isinstance(refused.value, NotConfigured)
    assert f"put-secret-value --secret-id {name}" in str(refused.value)


def test_a_real_key_and_json_that_is_not_a_placeholder_are_read_as_they_are(stack):
    client = boto3.client("secretsmanager")
    for value in ("sk-real-key", json.dumps({"note": "signoff_placeholder is only a word here"})):
        name = f"key-{uuid.uuid4().hex[:8]}"
        client.create_secret(Name=name, SecretString=value)
        assert read_secret(name, max_age=0) == value
