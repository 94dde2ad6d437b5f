"""Python values to DynamoDB attribute values and back (floats as Decimal, Decimal back to numbers)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return value


def to_attr(value: Any) -> dict:
    normalised = json.loads(json.dumps(value, default=str), parse_float=Decimal)
    return _serializer.serialize(normalised)


def to_item(data: dict[str, Any]) -> dict[str, dict]:
    return {k: to_attr(v) for k, v in data.items() if v is not None}


def from_item(item: dict[str, dict]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}
