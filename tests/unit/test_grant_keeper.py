"""GrantKeeper in memory: when an approval becomes a standing approval, and which calls it covers."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from signoff.domain.grants import GrantUse, grant_id_for
from signoff.domain.models import Action, Approval, ApprovalState, DecisionStatus, iso, utc_now
from signoff.domain.policy import ApprovalPolicy
from signoff.logic.grants import GrantKeeper
from tests.fakes.memory_table import MemoryTable

POLICY = ApprovalPolicy.model_validate(
    {
        "tools": {
            "refund": {"approval": "always", "grant_scope": ["customer_id", "currency"]},
            "wipe": {"approval": "always", "urgency": "critical", "grant_scope": ["device"]},
            "mail": {"approval": "always"},
        }
    }
)
ARGS = {"customer_id": "c1", "currency": "eur", "amount": 120.5, "note": "x", "qty": 2}


def _keeper() -> tuple[GrantKeeper, MemoryTable]:
    table = MemoryTable()
    return GrantKeeper(table, lambda: POLICY), table


def _action(tool: str = "refund", arguments: dict | None = None, tenant: str = "acme") -> Action:
    return Action(
        conversation_id="conv_1",
        turn_id="t",
        call_id="call_1",
        seq=0,
        tool=tool,
        arguments=ARGS if arguments is None else arguments,
        digest="d",
        gated=True,
        tenant=tenant,
    )


def _approval(response_data, decision_id: str | None = "dec_1") -> Approval:
    return Approval(
        approval_id="ap1",
        conversation_id="conv_1",
        turn_id="t",
        call_id="call_1",
        tool="refund",
        digest="d",
        state=ApprovalState.SETTLED,
        outcome=DecisionStatus.APPROVED,
        decision_id=decision_id,
        resolved_by="ann@x.io",
        response_data=response_data,
        created_at=iso(utc_now()),
    )


def test_an_approval_asking_for_similar_calls_makes_one_grant_scoped_and_capped(counted):
    keeper, table = _keeper()
    moment = utc_now()
    with time_machine.travel(moment, tick=False):
        grant = keeper.create_from(_action(), _approval({"allow_similar": {"hours": 3, "max_uses": 4}}))
        again = keeper.create_from(_action(), _approval({"allow_similar": {"hours": 3, "max_uses": 4}}))
    assert grant == again and counted() == {"GrantsCreated": 1}
    assert grant.grant_id == grant_id_for("acme", "refund", {"customer_id": "c1", "currency": "EUR"}, "dec_1")
    assert grant.scope == {"customer_id": "c1", "currency": "EUR"}
    assert grant.caps == {"amount": "120.5", "qty": "2"}
    assert (grant.max_uses, grant.uses_left, grant.tenant, grant.approved_by) == (4, 4, "acme", "ann@x.io")
    assert (grant.origin_conversation_id, grant.origin_call_id, grant.decision_id) == ("conv_1", "call_1", "dec_1")
    assert grant.created_at == iso(moment) and grant.expires_at == iso(moment + timedelta(hours=3))
    assert table.get_grant(grant.grant_id) == grant


def test_no_grant_without_a_request_a_scope_a_decision_or_for_a_tool_that_may_not_have_one():
    keeper, table = _keeper()
    ask = {"allow_similar": {"hours": 1, "max_uses": 1}}
    assert keeper.create_from(_action(), _approval(None)) is None
    assert keeper.create_from(_action(), _approval({"note": "ok"})) is None
    assert keeper.create_from(_action(), _approval({"allow_similar": {"hours": 0, "max_uses": 1}})) is None
    assert keeper.create_from(_action(), _approval({"allow_similar": "forever"})) is None
    assert keeper.create_from(_action(arguments={"customer_id": "c1"}), _approval(ask)) is None  # no currency
    assert keeper.create_from(_action(), _approval(ask, decision_id=None)) is None
    assert keeper.create_from(_action("wipe", {"device": "d"}), _approval(ask)) is None
    assert keeper.create_from(_action("mail", {}), _approval(ask)) is None
    assert table.list_grants("acme", 10, None) == ([], None)


def test_the_approver_is_told_how_to_allow_similar_calls_or_why_not():
    keeper, _ = _keeper()
    assert keeper.note_for_approver("refund", ARGS) == (
        'To approve similar calls for a while, approve with response_data {"allow_similar": '
        '{"hours": H, "max_uses": N}}: same customer_id, currency; amount, qty up to this call\'s.'
    )
    assert keeper.note_for_approver("refund", {"customer_id": "c"}).endswith(": same customer_id, currency.")
    assert keeper.note_for_approver("wipe", {}) == "A standing approval cannot cover this tool: it is critical."


def test_covering_finds_live_grants_of_the_same_tenant_scope_and_caps_soonest_to_expire_first():
    keeper, _ = _keeper()
    ask = {"allow_similar": {"hours": 5, "max_uses": 3}}
    long = keeper.create_from(_action(), _approval(ask, "dec_long"))
    short = keeper.create_from(_action(), _approval({"allow_similar": {"hours": 1, "max_uses": 3}}, "dec_short"))
    call = {"customer_id": "c1", "currency": "EUR", "amount": 100, "qty": 1}
    assert [g.grant_id for g in keeper.covering("acme", "refund", call)] == [short.grant_id, long.grant_id]
    assert keeper.covering("globex", "refund", call) == []
    assert keeper.covering("acme", "refund", call | {"amount": 121}) == []  # above the cap
    assert keeper.covering("acme", "refund", {"customer_id": "c1", "amount": 1}) == []  # scope incomplete
    assert keeper.covering("acme", "wipe", {"device": "d"}) == []
    with time_machine.travel(utc_now() + timedelta(hours=2), tick=False):
        assert [g.grant_id for g in keeper.covering("acme", "refund", call)] == [long.grant_id]
    keeper.revoke("acme", long.grant_id, "ops")
    assert [g.grant_id for g in keeper.covering("acme", "refund", call)] == [short.grant_id]


def test_a_use_is_taken_from_the_first_grant_that_still_has_one():
    keeper, table = _keeper()
    one = keeper.create_from(_action(), _approval({"allow_similar": {"hours": 1, "max_uses": 1}}, "dec_a"))
    two = keeper.create_from(_action(), _approval({"allow_similar": {"hours": 2, "max_uses": 2}}, "dec_b"))
    use = GrantUse(conversation_id="c", turn_id="t", call_id="x", digest="d", at=iso(utc_now()))
    first = keeper.take_use([one, two], use)
    second = keeper.take_use([one, two], use)
    assert (first.id, first.uses_left) == (one.grant_id, 0) and (second.id, second.uses_left) == (two.grant_id, 1)
    assert keeper.take_use([one], use) is None
    assert table.get_grant(one.grant_id).uses == [use]


def test_a_grant_is_revoked_and_listed_by_its_own_tenant_only():
    keeper, _ = _keeper()
    grant = keeper.create_from(_action(), _approval({"allow_similar": {"hours": 1, "max_uses": 1}}))
    assert keeper.revoke("globex", grant.grant_id, "mallory") is None
    assert keeper.list("globex", 10, None) == {"grants": [], "next_cursor": None}
    [shown] = keeper.list("acme", 10, None)["grants"]
    assert shown["live"] is True and shown["grant_id"] == grant.grant_id
    revoked = keeper.revoke("acme", grant.grant_id, "ops")
    assert revoked.revoked_by == "ops" and keeper.revoke("acme", grant.grant_id, "someone else").revoked_by == "ops"
    assert keeper.list("acme", 10, None)["grants"][0]["live"] is False
    assert keeper.revoke("acme", "grt_" + "0" * 24 + "_" + "0" * 12, "ops") is None
