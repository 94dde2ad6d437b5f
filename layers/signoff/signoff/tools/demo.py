"""The demo tools. Their effects are written to the table so tests and the demo can count them.
Which of them need sign-off, and when, is declared in ``signoff/policy.json``, not here.

Replace these with your own: keep ``run`` idempotent on ``ctx.idempotency_key`` (pass it to your
payment or email provider) so that a retried execution can never act twice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from signoff.domain.ports import EffectLog
from signoff.domain.tools import ToolContext, ToolRegistry, ToolSpec

_CUSTOMER_ID = Field(min_length=1, max_length=64, pattern=r"^#?[A-Za-z0-9_-]+$")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LookupCustomerArgs(_Args):
    customer_id: str = _CUSTOMER_ID


class IssueRefundArgs(_Args):
    customer_id: str = _CUSTOMER_ID
    amount: Decimal = Field(gt=0, le=Decimal("1000000"), max_digits=12, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reason: str = Field(default="", max_length=1000)


class SendCustomerEmailArgs(_Args):
    customer_id: str = _CUSTOMER_ID
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10000)


class DeleteCustomerDataArgs(_Args):
    customer_id: str = _CUSTOMER_ID


class RequestHumanApprovalArgs(_Args):
    action: str = Field(min_length=1, max_length=2000)
    context: str = Field(default="", max_length=8000)
    urgency: Literal["low", "medium", "high", "critical"] = "medium"


def _customer(customer_id: str) -> str:
    return customer_id.lstrip("#")


def build_demo_tools(effects: EffectLog) -> ToolRegistry:
    def lookup_customer(args: LookupCustomerArgs, ctx: ToolContext) -> dict:
        cid = _customer(args.customer_id)
        result = {"customer_id": cid, "name": f"Customer {cid}", "tier": "standard", "open_orders": 1}
        # Recorded like any effect so tests can count how often the tool ran.
        return effects.record_effect(ctx.idempotency_key, "lookup_customer", args.model_dump(mode="json"), result)

    def issue_refund(args: IssueRefundArgs, ctx: ToolContext) -> dict:
        result = {
            "refund_id": f"rf_{ctx.call_id[-12:]}",
            "customer_id": _customer(args.customer_id),
            "amount": str(args.amount),
            "currency": args.currency,
        }
        return effects.record_effect(ctx.idempotency_key, "issue_refund", args.model_dump(mode="json"), result)

    def send_customer_email(args: SendCustomerEmailArgs, ctx: ToolContext) -> dict:
        result = {"message_id": f"em_{ctx.call_id[-12:]}", "customer_id": _customer(args.customer_id)}
        return effects.record_effect(ctx.idempotency_key, "send_customer_email", args.model_dump(mode="json"), result)

    def delete_customer_data(args: DeleteCustomerDataArgs, ctx: ToolContext) -> dict:
        result = {"customer_id": _customer(args.customer_id), "deleted": True}
        return effects.record_effect(ctx.idempotency_key, "delete_customer_data", args.model_dump(mode="json"), result)

    def request_human_approval(args: RequestHumanApprovalArgs, ctx: ToolContext) -> dict:
        return {}

    return ToolRegistry(
        [
            ToolSpec(
                name="lookup_customer",
                description="Look up a customer's profile by id.",
                arguments_model=LookupCustomerArgs,
                run=lookup_customer,
            ),
            ToolSpec(
                name="issue_refund",
                description="Refund money to a customer. Large refunds need a human's approval.",
                arguments_model=IssueRefundArgs,
                run=issue_refund,
                describe=lambda a: (
                    f"Issue a refund of {a.amount:.2f} {a.currency} to customer #{_customer(a.customer_id)}"
                ),
            ),
            ToolSpec(
                name="send_customer_email",
                description="Send an email to a customer.",
                arguments_model=SendCustomerEmailArgs,
                run=send_customer_email,
                describe=lambda a: f"Email customer #{_customer(a.customer_id)}: {a.subject}",
            ),
            ToolSpec(
                name="delete_customer_data",
                description="Permanently delete all data held about a customer.",
                arguments_model=DeleteCustomerDataArgs,
                run=delete_customer_data,
                describe=lambda a: f"Permanently delete all data of customer #{_customer(a.customer_id)}",
            ),
            ToolSpec(
                name="request_human_approval",
                description=(
                    "Request human approval before a sensitive or irreversible action "
                    "(financial transactions, external emails, data deletion)."
                ),
                arguments_model=RequestHumanApprovalArgs,
                run=request_human_approval,
                describe=lambda a: a.action,
                is_sign_off_request=True,
            ),
        ]
    )
