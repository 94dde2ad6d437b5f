"""The demo tools, run as ``python`` executors of the shipped catalog (``signoff/catalog.json``).

Their effects are written to the table so tests and the demo can count how often each ran.
Which of them need sign-off is declared in ``signoff/policy.json``, not here.

A python tool is ``fn(arguments, ctx) -> JSON``; annotate ``arguments`` with a pydantic model and
the model checks the call (and gives the schema when the catalog leaves ``parameters`` out).
Keep it idempotent on ``ctx.idempotency_key`` (pass it to your payment or email provider) so a
retried execution can never act twice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from signoff.domain.ports import EffectLog
from signoff.domain.tools import ToolContext

CustomerId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^#?[A-Za-z0-9_-]+$"), AfterValidator(lambda v: v.lstrip("#"))
]

_effect_log: EffectLog | None = None


def use_effect_log(log: EffectLog | None) -> None:
    """Where the demo tools record their effects (the stack's table unless a test says otherwise)."""
    global _effect_log
    _effect_log = log


def _effects() -> EffectLog:
    if _effect_log is not None:
        return _effect_log
    from signoff import runtime

    return runtime.table()


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LookupCustomerArgs(_Args):
    customer_id: CustomerId


class IssueRefundArgs(_Args):
    customer_id: CustomerId
    amount: Decimal = Field(gt=0, le=Decimal("1000000"), max_digits=12, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reason: str = Field(default="", max_length=1000)


class SendCustomerEmailArgs(_Args):
    customer_id: CustomerId
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10000)


class DeleteCustomerDataArgs(_Args):
    customer_id: CustomerId


class RequestHumanApprovalArgs(_Args):
    action: str = Field(min_length=1, max_length=2000)
    context: str = Field(default="", max_length=8000)
    urgency: Literal["low", "medium", "high", "critical"] = "medium"


def _record(ctx: ToolContext, tool: str, args: BaseModel, result: dict) -> dict:
    return _effects().record_effect(ctx.idempotency_key, tool, args.model_dump(mode="json"), result)


def lookup_customer(args: LookupCustomerArgs, ctx: ToolContext) -> dict:
    cid = args.customer_id
    result = {"customer_id": cid, "name": f"Customer {cid}", "tier": "standard", "open_orders": 1}
    # Recorded like any effect so tests can count how often the tool ran.
    return _record(ctx, "lookup_customer", args, result)


def issue_refund(args: IssueRefundArgs, ctx: ToolContext) -> dict:
    result = {
        "refund_id": f"rf_{ctx.call_id[-12:]}",
        "customer_id": args.customer_id,
        "amount": str(args.amount),
        "currency": args.currency,
    }
    return _record(ctx, "issue_refund", args, result)


def send_customer_email(args: SendCustomerEmailArgs, ctx: ToolContext) -> dict:
    result = {"message_id": f"em_{ctx.call_id[-12:]}", "customer_id": args.customer_id}
    return _record(ctx, "send_customer_email", args, result)


def delete_customer_data(args: DeleteCustomerDataArgs, ctx: ToolContext) -> dict:
    result = {"customer_id": args.customer_id, "deleted": True}
    return _record(ctx, "delete_customer_data", args, result)


def request_human_approval(args: RequestHumanApprovalArgs, ctx: ToolContext) -> dict:
    return {}  # never run: the decision is the output
