"""Where the approval policy comes from: an SSM parameter, a file, or the default shipped here.

Change the policy without touching code: point ``POLICY_PARAMETER`` at an SSM parameter (read
through Powertools parameters, cached for a few minutes) or ``POLICY_FILE`` at a JSON file.
A policy that does not parse is an error, never a silent "no approval needed".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from signoff.domain.policy import ApprovalPolicy

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policy.json"


class InvalidPolicy(ValueError):
    pass


@lru_cache(maxsize=8)
def parse_policy(text: str, origin: str) -> ApprovalPolicy:
    """Parsed once per distinct text: the SSM value is re-read from cache on every call, not re-parsed."""
    try:
        return ApprovalPolicy.model_validate_json(text)
    except ValueError as exc:
        raise InvalidPolicy(f"the approval policy from {origin} is not valid: {exc}") from exc


def load_policy(parameter: str | None, file: str | None, max_age: int = 300) -> ApprovalPolicy:
    if parameter:
        from aws_lambda_powertools.utilities import parameters

        return parse_policy(parameters.get_parameter(parameter, max_age=max_age), f"SSM parameter {parameter}")
    path = Path(file) if file else DEFAULT_POLICY
    return parse_policy(path.read_text(encoding="utf-8"), str(path))
