"""Test helpers: a client for the local stack and waiting on conditions with a deadline."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from local.environment import settings_changed
from local.evidence import effects, submission_counts, submitted_outputs, wait_for

__all__ = ["SignoffClient", "assistant_for", "captured_product_logs", "settings_changed", "wait_for"]


@contextmanager
def captured_product_logs(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Every product log line, as the handlers' JSON formatter writes it, into a buffer.

    The use cases' child loggers carry a level of their own (set from the environment when their
    module was first imported), so each logger of the ``signoff`` family is set, not only the parent.
    """
    from local.lambda_runtime import load_handler
    from local.template import SamTemplate

    for fn in SamTemplate().functions():  # their Logger sets up the product logger and its formatter
        load_handler(fn.code_uri, fn.handler)
    product = logging.getLogger("signoff")
    buffer = io.StringIO()
    capture = logging.StreamHandler(buffer)
    capture.setFormatter(product.handlers[0].formatter)
    family = [logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict) if n.startswith("signoff")]
    levels = [member.level for member in family]
    product.addHandler(capture)
    for member in family:
        member.setLevel(level)
    try:
        yield buffer
    finally:
        product.removeHandler(capture)
        for member, previous in zip(family, levels, strict=True):
            member.setLevel(previous)


def assistant_for(stack) -> str:
    """The assistant the Assistants backend uses: the configured one, or one made once (as the guide advises)."""
    from openai import OpenAI

    from signoff import runtime
    from signoff.adapters.assistant_setup import create_assistant

    if not os.environ.get("OPENAI_ASSISTANT_ID"):
        client = OpenAI(api_key="sk-test", base_url=stack.openai_url)
        os.environ["OPENAI_ASSISTANT_ID"] = create_assistant(client, "gpt-4.1", runtime.tools().definitions())
    return os.environ["OPENAI_ASSISTANT_ID"]


class SignoffClient:
    def __init__(self, stack, key: str | None = None):
        self.stack = stack
        self.api = stack.api_url
        self.headers = {"Authorization": f"Bearer {key or stack.config.api_key}"}
        self.handover_headers = {"Authorization": f"Bearer {stack.config.handover_local_key}"}

    # -- client API ------------------------------------------------------------------------
    def start(self, message: str, **kwargs: Any) -> dict[str, Any]:
        response = requests.post(f"{self.api}/conversations", json={"message": message}, headers=self.headers, **kwargs)
        assert response.status_code == 202, response.text
        return response.json()

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.post(f"{self.api}{path}", headers=headers, timeout=30, **kwargs)

    def get_json(self, path: str, params: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        response = requests.get(f"{self.api}{path}", headers=self.headers, params=params, timeout=30)
        assert response.status_code == status, response.text
        return response.json()

    def get(self, conversation_id: str) -> dict[str, Any]:
        response = requests.get(f"{self.api}/conversations/{conversation_id}", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, conversation_id: str, *statuses: str, timeout: float = 15.0) -> dict[str, Any]:
        return wait_for(
            lambda: (view := self.get(conversation_id))["status"] in statuses and view,
            timeout=timeout,
            what=f"{conversation_id} to reach {statuses}",
        )

    def reply(self, view: dict[str, Any]) -> str:
        assistant = [m["content"] for m in view["messages"] if m["role"] == "assistant"]
        assert assistant, view
        return assistant[-1]

    # -- Handover side -----------------------------------------------------------------------
    def pending_decision_ids(self, conversation_id: str, count: int = 1) -> list[str]:
        def ready():
            view = self.get(conversation_id)
            ids = [
                a["decision"]["id"] for a in view["actions"] if a["decision"] and a["decision"]["status"] == "pending"
            ]
            return ids if len(ids) >= count and view["status"] == "awaiting_approval" else None

        return wait_for(ready, what=f"{count} pending decision(s)")

    def next_decision(self, conversation_id: str, after: str) -> str:
        """The decision of the first call once it is a new one (the next rung of an escalation)."""

        def asked():
            decision = self.get(conversation_id)["actions"][0]["decision"]
            return decision and decision["id"] != after and decision["status"] == "pending" and decision["id"]

        return wait_for(asked, what="the next rung's decision")

    def resolve(self, decision_id: str, action: str, notes: str | None = None, resolved_by: str | None = None):
        body: dict[str, Any] = {"action": action}
        if notes is not None:
            body["notes"] = notes
        if resolved_by is not None:
            body["resolved_by"] = resolved_by
        response = requests.post(
            f"{self.stack.handover_url}/decisions/{decision_id}/resolve", json=body, headers=self.handover_headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    def callbacks(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.stack.handover_url}/_emulator/callbacks").json()

    def callback_url(self, decision_id: str) -> str:
        return wait_for(
            lambda: next((c["url"] for c in self.callbacks() if c["decision_id"] == decision_id), None),
            what=f"the callback of {decision_id}",
        )

    def handover_log(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.stack.handover_url}/_emulator/log").json()

    def openai_log(self) -> list[dict[str, Any]]:
        return requests.get(self.stack.openai_url.removesuffix("/v1") + "/_emulator/log").json()

    # -- the table ---------------------------------------------------------------------------
    def approval_ids(self, conversation_id: str) -> list[str]:
        from signoff import runtime

        _, _, actions = runtime.table().load_conversation(conversation_id)
        return [approval_id for a in actions for approval_id in a.approval_ids]

    def effects(self, conversation_id: str) -> list[dict[str, Any]]:
        """Side effects of the demo tools recorded for one conversation."""
        return effects(self.stack.resources.refs["SignoffTable"], conversation_id)

    def outputs(self, call_ids: list[str]) -> list[str]:
        """What the model was told of these calls (each output as submitted)."""
        return [output for call_id, output in submitted_outputs(self.openai_log()) if call_id in call_ids]

    def submissions(self, call_id: str) -> int:
        """How many times outputs for ``call_id`` reached the agent API."""
        return submission_counts(self.openai_log(), [call_id])[call_id]


def dynamodb_table(prefix: str):
    """A SignoffTable over a fresh table built from template.yaml on the running stack's moto."""
    import uuid

    import boto3

    from local.aws_resources import create_resources
    from local.template import SamTemplate
    from signoff.dal.table import SignoffTable

    created = create_resources(
        SamTemplate(),
        {"OpenAIApiKeySecret": "x", "HandoverApiKeySecret": "y"},
        prefix=f"{prefix}-{uuid.uuid4().hex[:8]}",
    )
    return SignoffTable(boto3.client("dynamodb"), created.refs["SignoffTable"])


def queued_conversation(table) -> tuple[str, str]:
    """A new conversation of the default tenant whose first turn ("hi") is queued: (its id, the turn's)."""
    import uuid

    from signoff.domain.models import Conversation, ConversationStatus, Message, Turn, TurnStatus, iso, utc_now

    cid, tid, now = f"conv_{uuid.uuid4().hex}", f"turn_{uuid.uuid4().hex}", iso(utc_now())
    table.create_conversation(
        Conversation(conversation_id=cid, status=ConversationStatus.RUNNING, active_turn_id=tid, created_at=now),
        Turn(conversation_id=cid, turn_id=tid, status=TurnStatus.QUEUED, created_at=now, input="hi"),
        Message(role="user", content="hi", created_at=now),
    )
    return cid, tid
