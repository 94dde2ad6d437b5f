"""What an approver's "modify" means for a call: which arguments change, and to what."""

from __future__ import annotations

from typing import Any

from signoff.domain.tools import InvalidToolArguments, ToolSpec, arguments_of


class InvalidModification(ValueError):
    """The changed values cannot be applied; the call does not run."""


def changed_arguments(response_data: dict[str, Any] | None) -> dict[str, Any]:
    """The approver's new values: ``response_data.arguments`` when present, else ``response_data`` itself."""
    if not isinstance(response_data, dict):
        return {}
    inner = response_data.get("arguments")
    return dict(inner) if isinstance(inner, dict) else dict(response_data)


def apply_modification(
    spec: ToolSpec, original: dict[str, Any], response_data: dict[str, Any] | None, modifiable: list[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Return (arguments to run, {name: {"from", "to"}}). Only ``modifiable`` arguments may change,
    and the result must still fit the tool's schema."""
    changes = changed_arguments(response_data)
    if not changes:
        raise InvalidModification("the approver asked for changes but sent no changed values")
    refused = sorted(set(changes) - set(modifiable))
    if refused:
        raise InvalidModification(f"these arguments may not be changed by an approver: {', '.join(refused)}")
    merged = {**original, **changes}
    try:
        parsed = spec.parse_arguments(merged)
    except InvalidToolArguments as exc:
        raise InvalidModification(str(exc)) from exc
    final = arguments_of(parsed)  # the validated arguments, as the gate keeps a call's own
    diff = {k: {"from": original.get(k), "to": final.get(k)} for k in changes if original.get(k) != final.get(k)}
    return final, diff
