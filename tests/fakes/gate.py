"""Gate: every use case wired as ``signoff.runtime`` wires them, over in-memory fakes.

The table is the MemoryTable, the agent a ScriptedAgent, Handover a MemoryHandover, the queue a
list; the tools are python tools that count each invocation, so "ran once" is counted where it
happens. Nothing here replaces Signoff's own code: the use cases are the real ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signoff.domain.models import Action, Approval, Conversation
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.ports import WorkMessage
from signoff.domain.tools import (
    ToolFailed,
    ToolRegistry,
    ToolSpec,
    ToolUnreachable,
    arguments_of,
    json_schema_check,
    model_check,
)
from signoff.logic.agent_runner import AgentRunner
from signoff.logic.approvals import ApprovalRequester, ApprovalSettler, RequestSettings
from signoff.logic.budgets import BudgetKeeper
from signoff.logic.callback import ApprovalCallback, CallbackOutcome
from signoff.logic.conversations import ConversationService
from signoff.logic.executor import ActionExecutor
from signoff.logic.grants import GrantKeeper
from signoff.logic.receipts import ReceiptIssuer
from signoff.logic.reconciler import Reconciler
from tests.fakes.agent import ScriptedAgent
from tests.fakes.handover import MemoryHandover
from tests.fakes.memory_table import MemoryTable

SIGNING_KEY = b"k" * 32
APPROVER = "approver@example.com"

POLICY: dict[str, Any] = {
    "version": 1,
    "tools": {
        "lookup_customer": {"approval": "never"},
        "issue_refund": {
            "approval": "rules",
            "rules": [{"kind": "amount_over", "field": "amount", "thresholds": {"*": 100}}],
            "modifiable": ["amount"],
            "grant_scope": ["customer_id"],
        },
        "send_email": {"approval": "always", "modifiable": ["subject"]},
        "deploy": {"approval": "always", "quorum": {"required": 2, "approvers": ["a@x.io", "b@x.io", "c@x.io"]}},
        "wipe_device": {
            "approval": "always",
            "approver": "oncall@x.io",
            "escalation": [{"approver": "lead@x.io", "after_minutes": 30}],
        },
        "run_on_laptop": {"approval": "never"},
        "flaky": {"approval": "never"},
    },
}

_OBJECT = {"type": "object"}
_REFUND = {
    "type": "object",
    "properties": {"customer_id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["customer_id", "amount"],
}


@dataclass
class MemoryQueue:
    """The work queue: what was sent, with its delay; ``fail`` makes the next send raise."""

    sent: list[tuple[WorkMessage, int]] = field(default_factory=list)
    fail: bool = False

    def send(self, message: WorkMessage, delay_seconds: int = 0) -> None:
        if self.fail:
            raise ConnectionError("queue unavailable")
        self.sent.append((message, delay_seconds))


class FixedSigner:
    """A receipt signer with a fixed key (the KMS adapter's part is tested against moto)."""

    key_id = "test-key"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.private = ec.generate_private_key(ec.SECP256R1())
        self.signed = 0  # signatures made (each is a KMS Sign in production)

    def jwks(self) -> dict:
        """The public key as a JWKS, as ``GET /.well-known/jwks.json`` serves the KMS one."""
        from signoff.domain.receipts import b64url

        numbers = self.private.public_key().public_numbers()
        x, y = (b64url(n.to_bytes(32, "big")) for n in (numbers.x, numbers.y))
        return {"keys": [{"kty": "EC", "crv": "P-256", "kid": self.key_id, "x": x, "y": y, "alg": "ES256"}]}

    def sign(self, message: bytes) -> bytes:
        self.signed += 1
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Gate:
    def __init__(
        self,
        agent: ScriptedAgent | None = None,
        policy: dict[str, Any] | None = None,
        *,
        receipts: bool = False,
        lease_seconds: int = 300,
        offered: Callable[[str | None], list[str]] | None = None,
        models: dict[str, Any] | None = None,
    ):
        """``models``: more python tools, by name, each checked by its pydantic input model (as the
        catalog's python executors are) and counted like the others; ``(model, run)`` to say what
        the tool does with its checked arguments."""
        self._models = models or {}
        self.table = MemoryTable()
        self.agent = agent or ScriptedAgent()
        self.handover = MemoryHandover()
        self.queue = MemoryQueue()
        self.invocations: list[tuple[str, dict[str, Any], str]] = []  # (tool, arguments, idempotency key)
        self.policy_document = policy or POLICY
        policy_model = ApprovalPolicy.model_validate(self.policy_document)
        self.policy = lambda: policy_model
        self.tools = ToolRegistry(self._tools())
        self.budgets = BudgetKeeper(self.table, self.policy)
        self.grants = GrantKeeper(self.table, self.policy)
        self.signer = FixedSigner() if receipts else None
        issuer = ReceiptIssuer(self.table, self.signer, self.policy, "signoff-test") if self.signer else None
        self.executor = ActionExecutor(self.table, self.tools, lease_seconds, self.budgets, issuer)
        self.settler = self._settler(hand_off=False)
        settings = RequestSettings(APPROVER, 60, "https://signoff.test", 300)
        self.requester = ApprovalRequester(
            self.table,
            self.handover,
            self.tools,
            self.policy,
            self.settler,
            SIGNING_KEY,
            settings,
            self.budgets,
            self.grants,
        )
        self.runner = AgentRunner(
            self.table,
            self.agent,
            self.tools,
            self.policy,
            self.executor,
            self.requester,
            self.queue,
            budgets=self.budgets,
            grants=self.grants,
            offered=offered,
        )
        # As the runtime wires it: the callback hands approved calls to the worker (run_calls).
        self.callback = ApprovalCallback(self.table, self.handover, self._settler(hand_off=True), SIGNING_KEY)
        self.reconciler = Reconciler(self.table, self.handover, self.settler, self.executor, self.queue, 300, 300)
        self.conversations = ConversationService(self.table, self.queue, self.executor)

    def _settler(self, *, hand_off: bool) -> ApprovalSettler:
        return ApprovalSettler(
            self.table,
            self.executor,
            self.queue,
            self.tools,
            self.policy,
            self.budgets,
            self.grants,
            escalate=lambda action, expired: self.requester.escalate(action, expired),
            hand_off=hand_off,
        )

    # -- tools: python tools that count each invocation ----------------------------------------
    def _tool(self, name: str, schema: dict[str, Any], run: Callable[[dict[str, Any]], Any], **kw: Any) -> ToolSpec:
        def counted(arguments: dict[str, Any], ctx) -> Any:
            self.invocations.append((name, dict(arguments), ctx.idempotency_key))
            return run(arguments)

        return ToolSpec(name, f"the {name} tool", schema, json_schema_check(name, schema), counted, **kw)

    def _model_tool(self, name: str, model: Any) -> ToolSpec:
        model, run = model if isinstance(model, tuple) else (model, lambda _args: {"done": True})

        def counted(arguments: Any, ctx) -> Any:
            self.invocations.append((name, arguments_of(arguments), ctx.idempotency_key))
            return run(arguments)

        return ToolSpec(name, f"the {name} tool", model.model_json_schema(), model_check(name, model), counted)

    def _tools(self) -> list[ToolSpec]:
        def flaky(arguments: dict[str, Any]) -> Any:
            mode = arguments.get("mode")
            if mode == "refuse":
                raise ToolFailed("no such account", detail={"code": 404})
            if mode == "timeout":
                raise ToolUnreachable("the tool did not answer")
            if mode == "crash":
                raise KeyError("secret internals")
            return {"ok": True}

        return [
            *(self._model_tool(name, model) for name, model in self._models.items()),
            self._tool("lookup_customer", _OBJECT, lambda a: {"customer": a.get("customer_id", "?")}),
            self._tool("issue_refund", _REFUND, lambda a: {"refund_id": f"re_{a['amount']}"}, summary_template=None),
            self._tool("send_email", _OBJECT, lambda a: {"sent": True}),
            self._tool("deploy", _OBJECT, lambda a: {"deployed": True}),
            self._tool("wipe_device", _OBJECT, lambda a: {"wiped": True}),
            self._tool("flaky", _OBJECT, flaky),
            ToolSpec(
                "run_on_laptop", "client tool", _OBJECT, json_schema_check("run_on_laptop", _OBJECT), executor="client"
            ),
            ToolSpec("gated_on_laptop", "client tool", _OBJECT, json_schema_check("x", _OBJECT), executor="client"),
            ToolSpec(
                "request_human_approval",
                "ask a human",
                _OBJECT,
                json_schema_check("request_human_approval", _OBJECT),
                is_sign_off_request=True,
            ),
        ]

    def ran(self, tool: str | None = None) -> list[dict[str, Any]]:
        """The arguments of each invocation (of one tool)."""
        return [args for name, args, _key in self.invocations if tool is None or name == tool]

    # -- driving it --------------------------------------------------------------------------
    def drain(self, most: int = 50) -> int:
        """Deliver queued work messages to the worker until none is left; how many were handled."""
        handled = 0
        while self.queue.sent:
            assert handled < most, "the worker keeps sending itself work"
            message, _delay = self.queue.sent.pop(0)
            self.runner.handle(message)
            handled += 1
        return handled

    def ask(self, text: str = "please", tenant: str = "default", agent: str | None = None) -> str:
        """A new conversation whose first turn the worker has taken as far as it goes."""
        started = self.conversations.start(text, tenant=tenant, agent=agent)
        self.drain()
        return started.conversation_id

    def conversation(self, cid: str) -> Conversation:
        found = self.table.get_conversation(cid)
        assert found is not None
        return found

    def actions(self, cid: str) -> list[Action]:
        return self.table.list_actions(cid, self.conversation(cid).active_turn_id)

    def action(self, cid: str, index: int = 0) -> Action:
        return self.actions(cid)[index]

    def approvals(self, cid: str, index: int = 0) -> list[Approval]:
        return self.table.get_approvals(self.action(cid, index).approval_ids)

    def answer(self, decision_id: str, status: str, *, drain: bool = True, **fields: Any) -> CallbackOutcome:
        """The approver answers and Handover calls back; then the worker takes the turn on."""
        self.handover.answer(decision_id, status, **fields)
        outcome = self.callback.handle(self.handover.token(decision_id))
        if drain:
            self.drain()
        return outcome

    def decide_only(self, cid: str, decision_id: str, status: str) -> Action:
        """The approver answers and the call's verdict is recorded, as a callback would, but nothing
        runs yet (the call as it now is)."""
        self.handover.answer(decision_id, status)
        self.table.settle_approval(self.approvals(cid)[0], self.handover.get_decision(decision_id))
        self.settler.decide(self.action(cid))
        return self.action(cid)

    def reply(self, cid: str) -> str:
        """The latest assistant message (in memory a reply can share the question's millisecond)."""
        loaded = self.table.load_conversation(cid)
        assert loaded is not None
        return [m for m in loaded[1] if m.role == "assistant"][-1].content


def args(**values: Any) -> str:
    return json.dumps(values)
