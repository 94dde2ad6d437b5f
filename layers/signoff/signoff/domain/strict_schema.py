"""Function schemas in OpenAI's strict form, and the model's placeholders for optional fields undone.

In strict mode every property must be listed in ``required`` and every object must say
``additionalProperties: false``; an optional field is written as a union with ``null`` and the
model sends ``null`` when it has nothing to say. Signoff sends each tool's schema in that form and
turns those nulls back into absence before the arguments are checked, so the approver, the
digest and the receipt see what the model meant, never a placeholder.

Strict mode takes a subset of JSON Schema: a keyword outside it is refused here, by name, when
the catalog is loaded (set ``"strict": false`` on that tool), rather than by the API at run time.
"""

from __future__ import annotations

import copy
from typing import Any

# Keywords strict mode cannot express (OpenAI's structured-outputs subset has no place for them).
UNSUPPORTED = (
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "minProperties",
    "maxProperties",
    "contains",
)
# Keywords that describe rather than constrain: dropped from the strict form.
ANNOTATIONS = ("title", "default", "examples", "$comment", "$schema", "readOnly", "writeOnly", "deprecated")


class NotStrict(ValueError):
    """A schema strict mode cannot express; says which keyword, and where."""

    def __init__(self, keyword: str, where: str):
        super().__init__(f"{where or 'parameters'} uses {keyword!r}, which strict mode cannot express")
        self.keyword = keyword
        self.where = where


def strict_form(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as strict mode wants it: every property required, optional ones nullable, no
    additional properties anywhere. NotStrict for a schema that cannot be written so."""
    return _strict(copy.deepcopy(schema), "")


def is_strictable(schema: dict[str, Any]) -> bool:
    try:
        strict_form(schema)
    except NotStrict:
        return False
    return True


def _strict(node: Any, where: str) -> Any:
    if not isinstance(node, dict):
        return node
    for keyword in UNSUPPORTED:
        if keyword in node:
            raise NotStrict(keyword, where)
    for keyword in ANNOTATIONS:
        node.pop(keyword, None)
    for defs in ("$defs", "definitions"):
        if isinstance(node.get(defs), dict):
            node[defs] = {name: _strict(sub, f"{where}.{defs}.{name}".lstrip(".")) for name, sub in node[defs].items()}
    if "anyOf" in node:
        node["anyOf"] = [_strict(sub, f"{where}.anyOf[{n}]".lstrip(".")) for n, sub in enumerate(node["anyOf"])]
    if "items" in node:
        node["items"] = _strict(node["items"], f"{where}.items".lstrip("."))
    if node.get("type") == "object" or "properties" in node:
        extra = node.get("additionalProperties", False)
        if extra is not False:
            raise NotStrict("additionalProperties", where)
        properties = node.get("properties") or {}
        required = set(node.get("required") or [])
        strict_properties = {}
        for name, sub in properties.items():
            sub = _strict(sub, f"{where}.properties.{name}".lstrip("."))
            strict_properties[name] = sub if name in required else _nullable(sub)
        node["properties"] = strict_properties
        node["required"] = list(strict_properties)
        node["additionalProperties"] = False
    return node


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` or null."""
    kind = node.get("type")
    if isinstance(kind, str) and kind != "null":
        node = {**node, "type": [kind, "null"]}
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        return node
    if isinstance(kind, list):
        return node if "null" in kind else {**node, "type": [*kind, "null"]}
    if "anyOf" in node:
        nulls = any(isinstance(s, dict) and s.get("type") == "null" for s in node["anyOf"])
        return node if nulls else {**node, "anyOf": [*node["anyOf"], {"type": "null"}]}
    return {"anyOf": [node, {"type": "null"}]}


def absent_nulls(arguments: Any, schema: dict[str, Any]) -> Any:
    """The arguments with every null the strict form allowed for an optional field removed (at any
    depth the schema describes), so they read as the model meant them. A null for a field the
    original schema requires, or one that allows null itself, stays: the check decides."""
    return _absent(arguments, schema, schema)


def _absent(value: Any, node: Any, root: dict[str, Any]) -> Any:
    if not isinstance(node, dict):
        return value
    node = _resolve(node, root)
    if isinstance(value, dict) and isinstance(node.get("properties"), dict):
        required = set(node.get("required") or [])
        kept = {}
        for name, item in value.items():
            sub = node["properties"].get(name)
            if item is None and name not in required and sub is not None and not _allows_null(sub, root):
                continue
            kept[name] = _absent(item, sub, root) if sub is not None else item
        return kept
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_absent(item, node["items"], root) for item in value]
    if "anyOf" in node and isinstance(value, dict | list):
        objects = [s for s in node["anyOf"] if isinstance(s, dict) and _resolve(s, root).get("properties")]
        if len(objects) == 1:
            return _absent(value, objects[0], root)
    return value


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else node


def _allows_null(node: dict[str, Any], root: dict[str, Any]) -> bool:
    node = _resolve(node, root)
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if "enum" in node and None in node["enum"]:
        return True
    return any(isinstance(s, dict) and _allows_null(s, root) for s in node.get("anyOf", []))
