"""Every function runs with exactly the environment template.yaml gives it, module globals included:
a variable one function needs and the template does not give it fails here, as it would on AWS.

Escalations are where that bit before: the reconciler and the callback ask Handover for the next
rung, and without PUBLIC_API_URL they sent a relative callback_url (never called back on AWS) and
signed receipts as "signoff". The local stack, merging every function's variables into one process,
could not see it.
"""

from __future__ import annotations

from local.sandboxes import PROCESS, STAND_INS
from signoff.domain.receipts import decode


def _template_variables(stack) -> dict[str, set[str]]:
    return {fn.logical_id: set(fn.environment) for fn in stack.template.functions()}


def test_each_function_holds_its_own_template_variables_and_no_other(stack):
    declared = _template_variables(stack)
    everyone = set().union(*declared.values())
    lambda_runtime = {"AWS_LAMBDA_FUNCTION_NAME", "PYTHONPATH"}
    for function, variables in declared.items():
        held = set(stack.sandboxes[function].variables())
        assert held & everyone == variables, function
        assert held - everyone <= set(STAND_INS) | set(PROCESS) | lambda_runtime, (function, held - everyone)
    # what the escalation paths need: an absolute URL wherever the template can give one
    assert "PUBLIC_API_URL" in declared["AgentWorkerFunction"] and "PUBLIC_API_URL" in declared["ReconcilerFunction"]
    assert "PUBLIC_API_URL" not in declared["ApprovalCallbackFunction"]  # an API integration: it would be a cycle


def _callback_url(stack, decision_id: str) -> str:
    return stack.handover.decisions[decision_id]["_callback_url"]


def test_an_approved_refund_runs_once_and_signs_its_receipt_as_the_api(client, stack):
    cid = client.start("Issue a €340 refund to customer #4821.")["conversation_id"]
    [decision] = client.pending_decision_ids(cid)
    assert _callback_url(stack, decision).startswith(f"{stack.api_url}/callbacks/handover/")
    client.resolve(decision, "approve")
    view = client.wait_status(cid, "idle")
    [effect] = client.effects(cid)
    assert effect["invocations"] == 1
    assert decode(view["actions"][0]["receipt"]).claims["iss"] == stack.api_url


def test_the_callback_escalates_with_an_absolute_callback_url(client, stack):
    cid = client.start("Delete customer #sandbox-1's data")["conversation_id"]
    [first] = client.pending_decision_ids(cid)
    assert stack.handover.expire(first)  # Handover calls back "expired": the callback asks the next rung
    second = client.next_decision(cid, first)
    assert _callback_url(stack, second).startswith(f"{stack.api_url}/callbacks/handover/")
    client.resolve(second, "approve", resolved_by="lead@example.com")
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "executed" and len(client.effects(cid)) == 1
    assert decode(view["actions"][0]["receipt"]).claims["iss"] == stack.api_url


def test_the_reconciler_escalates_with_an_absolute_callback_url(client, stack):
    cid = client.start("Delete customer #sandbox-2's data")["conversation_id"]
    [first] = client.pending_decision_ids(cid)
    stack.handover.drop_callbacks = 1.0  # the callback is lost: only the reconciler finds the expiry
    try:
        assert stack.handover.expire(first)
    finally:
        stack.handover.drop_callbacks = 0.0
    stack.run_scheduled("ReconcilerFunction")
    second = client.next_decision(cid, first)
    assert _callback_url(stack, second).startswith(f"{stack.api_url}/callbacks/handover/")
    client.resolve(second, "deny", resolved_by="lead@example.com")  # Handover calls back to that URL
    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["decision"]["status"] == "denied" and client.effects(cid) == []
