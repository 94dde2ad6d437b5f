"""Budgets over real HTTP: what no single call shows, the sum does.

The shipped policy caps ungated refunds at 100 per customer and currency per 24 hours. Each test
uses customers of its own: budgets outlive conversations, and the suite shares one stack."""

from __future__ import annotations

import concurrent.futures
import json
import uuid

import requests

from tests.support import settings_changed, wait_for


def _customer() -> str:
    return f"b{uuid.uuid4().hex[:10]}"


def _refunds(client, cid: str) -> list[dict]:
    return [e for e in client.effects(cid) if e["tool"] == "issue_refund"]


def test_four_refunds_in_one_message_run_only_as_far_as_the_budget_goes(client):
    customer = _customer()
    message = "Refund " + ", ".join([f"€99 to customer #{customer}"] * 4) + "."
    cid = client.start(message)["conversation_id"]
    decisions = client.pending_decision_ids(cid, count=3)
    view = client.get(cid)
    ran = [a for a in view["actions"] if a["execution"] and a["execution"]["status"] == "executed"]
    waiting = [a for a in view["actions"] if a["gated"]]
    assert len(ran) == 1 and not ran[0]["gated"]
    assert len(waiting) == 3
    assert all("refunds-per-customer" in a["gated_by_budget"] for a in waiting)
    assert all("99 already used of 100" in a["gated_by_budget"] for a in waiting)
    decision = requests.get(
        f"{client.stack.handover_url}/decisions/{decisions[0]}", headers=client.handover_headers, timeout=30
    ).json()
    assert "a budget does" in decision["context"]
    assert f"customer_id={customer}, currency=EUR" in decision["context"] and "used of 100" in decision["context"]
    for decision_id in decisions:
        client.resolve(decision_id, "deny")
    view = client.wait_status(cid, "idle")
    assert sum(float(e["arguments"]["amount"]) for e in _refunds(client, cid)) == 99
    # The model heard why the three needed a human although none was over 100 on its own.
    outputs = client.outputs([a["call_id"] for a in waiting])
    assert len(outputs) == 3 and all("gated_by_budget" in json.loads(o) for o in outputs)


def test_twenty_conversations_racing_one_budget_never_pass_it_unseen(client):
    customer = _customer()

    def ask(_):
        return client.start(f"Issue a €30 refund to customer #{customer}.")["conversation_id"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        cids = list(pool.map(ask, range(20)))
    views = [client.wait_status(cid, "idle", "awaiting_approval", timeout=60) for cid in cids]
    ungated = [a for v in views for a in v["actions"] if not a["gated"]]
    assert all(a["execution"]["status"] == "executed" for a in ungated)
    assert len(ungated) == 3  # 3 * 30 = 90; a fourth would make 120
    assert sum(1 for v in views if v["status"] == "awaiting_approval") == 17
    executed = sum(float(e["arguments"]["amount"]) for cid in cids for e in _refunds(client, cid))
    assert executed == 90
    for cid, view in zip(cids, views, strict=True):  # answered, so nothing is left for the reconciler
        if view["status"] == "awaiting_approval":
            client.resolve(client.pending_decision_ids(cid)[0], "deny")


def test_an_approved_refund_counts_so_a_small_one_after_it_needs_sign_off(client):
    customer = _customer()
    cid = client.start(f"Issue a €150 refund to customer #{customer}.")["conversation_id"]
    [decision] = client.pending_decision_ids(cid)
    client.resolve(decision, "approve")
    client.wait_status(cid, "idle")
    client.post(f"/conversations/{cid}/messages", json={"message": f"Refund €10 to customer #{customer}."})
    view = wait_for(
        lambda: (v := client.get(cid))["status"] == "awaiting_approval" and v, what="the small refund to wait"
    )
    small = view["actions"][-1]
    assert small["arguments"]["amount"] == 10 and small["gated"]
    assert "150 already used of 100" in small["gated_by_budget"]
    client.resolve(client.pending_decision_ids(cid)[0], "deny")


def test_a_denied_or_modified_call_counts_at_what_ran(client):
    """A denied call never counted; a modified one counts at the amount the approver set."""
    customer = _customer()
    cid = client.start(f"Issue a €300 refund to customer #{customer}.")["conversation_id"]
    [decision] = client.pending_decision_ids(cid)
    client.resolve(decision, "deny")
    client.wait_status(cid, "idle")
    client.post(f"/conversations/{cid}/messages", json={"message": f"Refund €200 to customer #{customer}."})
    [decision] = client.pending_decision_ids(cid)
    response = requests.post(
        f"{client.stack.handover_url}/decisions/{decision}/resolve",
        json={"action": "modify", "response_data": {"amount": 60}},
        headers=client.handover_headers,
        timeout=30,
    )
    assert response.status_code == 200
    client.wait_status(cid, "idle")
    # 60 used: 40 left, so a €40 refund runs and a further €1 does not.
    client.post(f"/conversations/{cid}/messages", json={"message": f"Refund €40 to customer #{customer}."})
    view = client.wait_status(cid, "idle")
    assert not view["actions"][-1]["gated"] and view["actions"][-1]["execution"]["status"] == "executed"
    client.post(f"/conversations/{cid}/messages", json={"message": f"Refund €1 to customer #{customer}."})
    view = wait_for(lambda: (v := client.get(cid))["status"] == "awaiting_approval" and v, what="€1 to wait")
    assert "100 already used of 100" in view["actions"][-1]["gated_by_budget"]
    client.resolve(client.pending_decision_ids(cid)[0], "deny")


HARD_CAP = {
    "version": 1,
    "tools": {
        "issue_refund": {
            "approval": "rules",
            "rules": [{"kind": "amount_over", "field": "amount", "thresholds": {"*": 100}}],
        }
    },
    "budgets": [
        {
            "name": "refund-cap",
            "tools": ["issue_refund"],
            "sum": "amount",
            "group_by": ["customer_id"],
            "window_hours": 24,
            "limit": 100,
            "over_limit": "deny",
        }
    ],
}


def test_a_hard_cap_refuses_even_what_a_human_approves(client, tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(HARD_CAP))
    customer = _customer()
    with settings_changed(POLICY_FILE=str(path)):
        cid = client.start(f"Refund €60 to customer #{customer} and €60 to customer #{customer}.")["conversation_id"]
        view = client.wait_status(cid, "idle")
        first, second = view["actions"]
        assert first["execution"]["status"] == "executed" and not first["gated"]
        assert second["execution"]["status"] == "not_executed" and "hard cap" in second["error"]
        client.post(f"/conversations/{cid}/messages", json={"message": f"Refund €150 to customer #{customer}."})
        [decision] = client.pending_decision_ids(cid)
        client.resolve(decision, "approve")
        view = client.wait_status(cid, "idle")
        big = view["actions"][-1]
        assert big["decision"]["status"] == "approved" and big["execution"]["status"] == "not_executed"
        assert "hard cap" in big["execution"]["result"]["error"]
    assert sum(float(e["arguments"]["amount"]) for e in _refunds(client, cid)) == 60
