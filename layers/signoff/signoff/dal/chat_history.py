"""ChatHistoryTable: a Chat Completions message list, one item per message.

One item per message keeps every item far below DynamoDB's 400 KB limit however long the
chat grows; the partition ``CHAT#<conversation>`` is read with a paginated query.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

MAX_MESSAGE_BYTES = 350_000


class ChatHistoryConflict(RuntimeError):
    """Another writer appended at the same position."""


class ChatHistoryTable:
    def __init__(self, client: Any, table_name: str):
        self._db = client
        self._table = table_name

    def load(self, conversation_id: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"CHAT#{conversation_id}"}},
            "ConsistentRead": True,
        }
        messages = []
        while True:
            page = self._db.query(**kwargs)
            messages += [json.loads(item["message"]["S"]) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return messages
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def append(self, conversation_id: str, start: int, messages: list[dict[str, Any]]) -> None:
        for offset, message in enumerate(messages):
            text = json.dumps(message, ensure_ascii=False)
            if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
                raise ValueError("a chat message is too large to store")
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item={
                        "pk": {"S": f"CHAT#{conversation_id}"},
                        "sk": {"S": f"{start + offset:08d}"},
                        "type": {"S": "chat_message"},
                        "message": {"S": text},
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    raise ChatHistoryConflict(conversation_id) from exc
                raise
