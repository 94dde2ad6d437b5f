"""The gate's core rules, one by one: verdicts, binding, modification, tokens, canonical digests.

These are the decisions that make Signoff safe; each case names the rule it holds the code to."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest

from signoff.domain.binding import approval_matches, grant_matches
from signoff.domain.canonical import action_digest, canonical_json
from signoff.domain.grants import Grant, GrantUse
from signoff.domain.models import Action, Approval, ApprovalState, DecisionStatus, GrantRef
from signoff.domain.modification import InvalidModification, apply_modification, changed_arguments
from signoff.domain.tokens import MAX_TOKEN_LENGTH, InvalidCallbackToken, issue_token, parse_token, verify_token
from signoff.domain.tools import ToolSpec, json_schema_check
from signoff.domain.verdict import verdict_of

A, D, M, E, X, S = (
    DecisionStatus.APPROVED,
    DecisionStatus.DENIED,
    DecisionStatus.MODIFIED,
    DecisionStatus.EXPIRED,
    DecisionStatus.ESCALATED,
    DecisionStatus.SCHEDULED,
)
PENDING = "pending"
NOBODY = "nobody"  # settled with no answer: the approver could not be asked


def _approval(n: int, outcome, *, by: str | None = None, notes: str | None = None, **kw) -> Approval:
    settled = outcome is not PENDING
    return Approval(
        approval_id=f"ap{n:08d}",
        conversation_id=kw.get("conversation_id", "conv_1"),
        turn_id="turn_1",
        call_id=kw.get("call_id", "call_1"),
        tool=kw.get("tool", "issue_refund"),
        digest=kw.get("digest", DIGEST),
        state=ApprovalState.SETTLED if settled else ApprovalState.PENDING,
        outcome=None if outcome in (PENDING, NOBODY) else outcome,
        resolved_by=by if by is not None else (f"person{n}" if settled and outcome is not NOBODY else None),
        notes=notes,
        created_at="2026-11-26T10:00:00.000Z",
    )


ARGS = {"customer_id": "c1", "amount": 340}
DIGEST = action_digest("issue_refund", ARGS, "call_1")


# -- verdict_of ---------------------------------------------------------------------------------
@pytest.mark.parametrize("outcome", [A, D, M, E, X, S])
def test_one_approvers_answer_is_the_verdict(outcome):
    only = _approval(1, outcome, notes="n")
    verdict = verdict_of([only], 1)
    assert verdict.status is outcome and verdict.deciding == (only,)
    assert verdict.resolved_by == "person1" and verdict.notes == "n"


def test_one_approver_not_asked_gives_no_status_and_nobody_resolved_it():
    verdict = verdict_of([_approval(1, NOBODY)], 1)
    assert verdict.status is None and verdict.resolved_by is None and verdict.notes is None


def test_one_approver_still_pending_decides_nothing():
    assert verdict_of([_approval(1, PENDING)], 1) is None


@pytest.mark.parametrize(
    ("outcomes", "required", "status", "deciding"),
    [
        ([A, A, PENDING], 2, A, [0, 1]),  # the M-th yes approves
        ([A, PENDING, A], 2, A, [0, 2]),
        ([A, A, A], 2, A, [0, 1]),  # only the first M decide
        ([A, PENDING, PENDING], 2, None, None),  # still reachable: wait
        ([A, A, D], 2, D, [2]),  # any denial denies, even after enough yeses
        ([PENDING, D, PENDING], 2, D, [1]),
        ([D, D, A], 1, D, [0]),  # the first denial decides
        ([A, E, E], 2, E, [1, 2]),  # no longer reachable, lapsed: expired
        ([A, X, PENDING], 3, E, [1]),  # escalated counts as lapsed
        ([M, A, PENDING], 2, None, None),  # a modify is not a yes of the group, but two may still say yes
        ([M, A, S], 2, M, [0, 2]),  # unreachable without lapses: the first other answer
        ([NOBODY, NOBODY, A], 2, None, []),  # nobody could be asked: no status
        ([NOBODY, E, A], 2, E, [1]),
        ([A, A], 2, A, [0, 1]),  # two of two
        ([A], 2, None, []),  # more required than there are approvals: never approves
    ],
)
def test_a_quorum(outcomes, required, status, deciding):
    approvals = [_approval(n, o) for n, o in enumerate(outcomes)]
    verdict = verdict_of(approvals, required)
    if deciding is None:
        assert verdict is None
        return
    assert verdict is not None and verdict.status is status
    assert verdict.deciding == tuple(approvals[i] for i in deciding)


def test_a_quorums_names_and_notes_are_joined_in_order_skipping_blanks():
    approvals = [_approval(1, A, by="ann", notes="ok"), _approval(2, A, by="", notes=None), _approval(3, PENDING)]
    verdict = verdict_of(approvals, 2)
    assert verdict.resolved_by == "ann" and verdict.notes == "ok"
    both = verdict_of([_approval(1, A, by="ann", notes="a"), _approval(2, A, by="bob", notes="b")], 2)
    assert both.resolved_by == "ann, bob" and both.notes == "a / b"


# -- approval_matches -----------------------------------------------------------------------------
def _action(**kw) -> Action:
    base = {
        "conversation_id": "conv_1",
        "turn_id": "turn_1",
        "call_id": "call_1",
        "seq": 0,
        "tool": "issue_refund",
        "arguments": ARGS,
        "digest": DIGEST,
        "gated": True,
        "approval_ids": ["ap00000001"],
        "verdict": A,
    }
    return Action(**(base | kw))


def test_an_approval_for_exactly_this_call_matches():
    assert approval_matches(_action(), [_approval(1, A)])


@pytest.mark.parametrize(
    ("action", "approval"),
    [
        (_action(gated=False), _approval(1, A)),
        (_action(verdict=None), _approval(1, A)),
        (_action(verdict=D), _approval(1, D)),
        (_action(verdict=E), _approval(1, E)),
        (_action(verdict=A), _approval(1, D)),  # the stored verdict is not what the approvals say
        (_action(approval_ids=["ap00000009"]), _approval(1, A)),  # an approval the call never asked for
        (_action(), _approval(1, A, call_id="call_2")),
        (_action(), _approval(1, A, conversation_id="conv_2")),
        (_action(), _approval(1, A, tool="send_email")),
        (_action(), _approval(1, A, digest="0" * 64)),
        (_action(arguments={"customer_id": "c1", "amount": 341}), _approval(1, A)),  # arguments changed since
        (_action(digest="0" * 64), _approval(1, A, digest="0" * 64)),  # digest not of the arguments
        (_action(), _approval(1, PENDING)),
    ],
    ids=lambda v: "",
)
def test_an_approval_for_anything_else_does_not(action, approval):
    assert not approval_matches(action, [approval])


def test_a_quorum_matches_only_with_every_deciding_approval_bound_to_the_call():
    action = _action(approval_ids=["ap00000001", "ap00000002", "ap00000003"], quorum_required=2)
    good = [_approval(1, A), _approval(2, A), _approval(3, PENDING)]
    assert approval_matches(action, good)
    assert not approval_matches(action, [_approval(1, A), _approval(2, A, digest="0" * 64), _approval(3, PENDING)])
    assert not approval_matches(action, [_approval(1, A), _approval(2, PENDING), _approval(3, PENDING)])


def test_a_modified_call_matches_only_with_the_digest_of_its_changed_arguments():
    changed = {"customer_id": "c1", "amount": 200}
    ok = action_digest("issue_refund", changed, "call_1")
    approval = [_approval(1, M)]
    assert approval_matches(_action(verdict=M, approved_arguments=changed, approved_digest=ok), approval)
    assert not approval_matches(_action(verdict=M, approved_arguments=changed, approved_digest=DIGEST), approval)
    assert not approval_matches(_action(verdict=M, approved_arguments=None, approved_digest=ok), approval)
    assert not approval_matches(_action(verdict=M, approved_arguments=changed, approved_digest=None), approval)


def test_a_scheduled_call_matches_its_scheduled_approval():
    assert approval_matches(_action(verdict=S), [_approval(1, S)])


# -- grant_matches ---------------------------------------------------------------------------------
def _grant(**kw) -> Grant:
    use = GrantUse(conversation_id="conv_1", turn_id="turn_1", call_id="call_1", digest=DIGEST, at="t")
    base = {
        "grant_id": "grt_" + "a" * 24 + "_" + "b" * 12,
        "tool": "issue_refund",
        "scope": {"customer_id": "c1"},
        "caps": {},
        "origin_conversation_id": "conv_0",
        "origin_call_id": "call_0",
        "created_at": "2026-11-26T10:00:00.000Z",
        "expires_at": "2026-11-26T11:00:00.000Z",
        "max_uses": 3,
        "uses_left": 2,
        "uses": [use],
    }
    return Grant(**(base | kw))


def test_a_call_runs_under_a_grant_only_with_the_use_it_recorded():
    grant = _grant()
    action = _action(verdict=None, approval_ids=[], grant=GrantRef(id=grant.grant_id, uses_left=2))
    assert grant_matches(action, grant)
    assert not grant_matches(action.model_copy(update={"grant": None}), grant)
    assert not grant_matches(action.model_copy(update={"grant": GrantRef(id="grt_other", uses_left=2)}), grant)
    assert not grant_matches(action, _grant(tool="send_email"))
    assert not grant_matches(action, _grant(uses=[]))
    for field, value in (("conversation_id", "conv_9"), ("turn_id", "turn_9"), ("call_id", "call_9"), ("digest", "x")):
        other_use = _grant().uses[0].model_copy(update={field: value})
        assert not grant_matches(action, _grant(uses=[other_use])), field
    assert not grant_matches(action.model_copy(update={"arguments": {"amount": 1}}), grant)
    assert not grant_matches(
        action.model_copy(update={"digest": "x"}), _grant(uses=[_grant().uses[0].model_copy(update={"digest": "x"})])
    )


# -- apply_modification ----------------------------------------------------------------------------
REFUND = ToolSpec(
    "issue_refund",
    "refund",
    {
        "type": "object",
        "properties": {"customer_id": {"type": "string"}, "amount": {"type": "number", "maximum": 1000}},
        "required": ["customer_id", "amount"],
    },
    json_schema_check(
        "issue_refund",
        {
            "type": "object",
            "properties": {"customer_id": {"type": "string"}, "amount": {"type": "number", "maximum": 1000}},
            "required": ["customer_id", "amount"],
        },
    ),
)


def test_a_modification_changes_only_what_the_approver_sent():
    final, diff = apply_modification(REFUND, ARGS, {"amount": 200}, ["amount"])
    assert final == {"customer_id": "c1", "amount": 200}
    assert diff == {"amount": {"from": 340, "to": 200}}


def test_changed_values_may_come_under_arguments_and_an_unchanged_one_is_no_change():
    final, diff = apply_modification(REFUND, ARGS, {"arguments": {"amount": 340}, "note": "x"}, ["amount"])
    assert final == ARGS and diff == {}
    assert changed_arguments({"arguments": {"amount": 1}, "amount": 2}) == {"amount": 1}
    assert changed_arguments({"arguments": "not a dict", "amount": 2}) == {"arguments": "not a dict", "amount": 2}
    assert changed_arguments(None) == {} and changed_arguments(["amount"]) == {}


NO_VALUES = "the approver asked for changes but sent no changed values"
NOT_CHANGEABLE = "these arguments may not be changed by an approver: "
SCHEMA = "arguments for issue_refund do not fit its schema: amount: "


@pytest.mark.parametrize(
    ("response_data", "modifiable", "why"),
    [
        (None, ["amount"], NO_VALUES),
        ({}, ["amount"], NO_VALUES),
        ({"customer_id": "c2"}, ["amount"], NOT_CHANGEABLE + "customer_id"),
        ({"customer_id": "c2", "amount": 1, "zz": 1}, ["amount"], NOT_CHANGEABLE + "customer_id, zz"),
        ({"amount": 1}, [], NOT_CHANGEABLE + "amount"),
        ({"amount": 5000}, ["amount"], SCHEMA + "5000 is greater than the maximum of 1000"),
        ({"amount": "lots"}, ["amount"], SCHEMA + "'lots' is not of type 'number'"),
    ],
)
def test_a_modification_the_policy_or_schema_refuses(response_data, modifiable, why):
    """The reason is what the model hears as the call's error: said in full."""
    with pytest.raises(InvalidModification) as refused:
        apply_modification(REFUND, ARGS, response_data, modifiable)
    assert str(refused.value) == why


def test_a_modification_keeps_only_arguments_the_tool_knows_after_its_check():
    from pydantic import BaseModel

    class Refund(BaseModel):
        customer_id: str
        amount: float

    from signoff.domain.tools import model_check

    typed = ToolSpec("issue_refund", "refund", {}, model_check("issue_refund", Refund))
    final, diff = apply_modification(typed, {**ARGS, "stray": 1}, {"amount": 10}, ["amount"])
    assert final == {"customer_id": "c1", "amount": 10} and diff == {"amount": {"from": 340, "to": 10}}


# -- tokens ---------------------------------------------------------------------------------------
KEY = b"k" * 32


def test_a_token_is_v1_the_approval_id_and_an_hmac_of_it():
    token = issue_token(KEY, "abcdefgh")
    version, approval_id, mac = token.split(".")
    expected = hmac.new(KEY, b"v1:callback:abcdefgh", hashlib.sha256).digest()
    import base64

    assert (version, approval_id) == ("v1", "abcdefgh")
    assert mac == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    assert parse_token(token) == ("abcdefgh", mac) and verify_token(KEY, token) == "abcdefgh"


@pytest.mark.parametrize("approval_id", ["abcdefgh", "a" * 64, "0123456789"])
def test_ids_of_8_to_64_lowercase_letters_and_digits_make_tokens(approval_id):
    assert verify_token(KEY, issue_token(KEY, approval_id)) == approval_id


@pytest.mark.parametrize("approval_id", ["abcdefg", "a" * 65, "ABCDEFGH", "abcd_efgh", "abcdefgh\n"])
def test_other_ids_make_none(approval_id):
    with pytest.raises(ValueError, match=r"^approval id must be 8-64 lowercase letters or digits$"):
        issue_token(KEY, approval_id)


def test_a_token_longer_than_the_limit_is_refused_before_anything_else():
    token = issue_token(KEY, "a" * 64)
    assert len(token) <= MAX_TOKEN_LENGTH
    with pytest.raises(InvalidCallbackToken, match=r"^malformed token$"):
        parse_token(token + "." * (MAX_TOKEN_LENGTH + 1 - len(token)))
    with pytest.raises(InvalidCallbackToken, match=r"^malformed token$"):
        parse_token("v1." + "a" * 64 + "." + "A" * 94)  # the right parts but too long: the MAC shape fails too


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1.abcdefgh",
        "v1.abcdefgh.mac.extra",
        "v2.abcdefgh." + "A" * 43,
        "v1.abcdefgh." + "A" * 42,
        "v1.abcdefgh." + "A" * 44,
        "v1.abcdefgh." + "+" * 43,
        "v1.ABCDEFGH." + "A" * 43,
    ],
)
def test_malformed_tokens_are_refused_by_shape(token):
    with pytest.raises(InvalidCallbackToken, match=r"^malformed token$"):
        parse_token(token)


def test_a_well_formed_token_with_the_wrong_mac_does_not_verify():
    token = issue_token(KEY, "abcdefgh")
    with pytest.raises(InvalidCallbackToken, match=r"^token does not match$"):
        verify_token(b"other key", token)


# -- canonical digests -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": 1, "a": [1.0, Decimal("2.50"), True, None, "é"]}, '{"a":[1,2.5,true,null,"é"],"b":1}'),
        ({"n": (1, 2)}, '{"n":[1,2]}'),
        ({1: "x"}, '{"1":"x"}'),
        ({"f": 0.1}, '{"f":0.1}'),
        ({"neg": -3.0}, '{"neg":-3}'),
    ],
)
def test_each_value_has_one_spelling(value, text):
    assert canonical_json(value) == text


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("-Infinity")])
def test_nan_and_infinity_are_refused(bad):
    with pytest.raises(ValueError, match=r"^NaN and infinity are not valid JSON$"):
        canonical_json({"x": bad})


@pytest.mark.parametrize(("bad", "name"), [({1, 2}, "set"), (object(), "object"), (b"x", "bytes")])
def test_what_json_cannot_say_is_refused_by_type(bad, name):
    with pytest.raises(TypeError, match=rf"^not a JSON value: {name}$"):
        canonical_json({"x": bad})


def test_the_digest_is_sha256_of_the_canonical_tool_arguments_and_call_id():
    payload = '{"arguments":{"amount":340,"customer_id":"c1"},"call_id":"call_1","tool":"issue_refund"}'
    assert hashlib.sha256(payload.encode()).hexdigest() == DIGEST


def test_a_trailing_newline_is_not_part_of_any_accepted_id():
    """``$`` matches before a final newline: every id check is a full match."""
    token = issue_token(KEY, "abcdefgh")
    with pytest.raises(InvalidCallbackToken, match="malformed"):
        parse_token(token + "\n")
    approval_id, mac = token.split(".")[1:]
    with pytest.raises(InvalidCallbackToken, match="malformed"):
        parse_token(f"v1.{approval_id}\n.{mac}")


# -- policy ----------------------------------------------------------------------------------------
def _policy(tools: dict, **defaults):
    from signoff.domain.policy import ApprovalPolicy

    return ApprovalPolicy.model_validate({"tools": tools, "defaults": defaults})


def test_a_never_gated_tool_is_not_gated_whatever_rules_it_carries():
    rule = {"kind": "amount_over", "field": "amount", "thresholds": {"*": 0}}
    policy = _policy({"t": {"approval": "never", "rules": [rule]}, "r": {"approval": "rules", "rules": [rule]}})
    assert not policy.requires_approval("t", {"amount": 5})
    assert policy.requires_approval("r", {"amount": 5}) and not policy.requires_approval("r", {"amount": 0})
    assert policy.requires_approval("unknown", {})  # a tool the policy does not name: fail closed


def test_each_rung_of_a_ladder_names_its_approver_and_waits_its_minutes():
    ladder = [{"approver": "lead@x.io", "after_minutes": 30}, {"approver": "vp@x.io", "after_minutes": 90}]
    policy = _policy({"t": {"approval": "always", "escalation": ladder, "timeout_minutes": 600}})
    assert [policy.rung_approver("t", r) for r in (0, 1, 2, 3)] == [None, "lead@x.io", "vp@x.io", None]
    assert [policy.decision_minutes("t", r, 60) for r in (0, 1, 2)] == [30, 90, 600]
    assert policy.decision_minutes("other", 0, 60) == 60


def test_a_timeout_is_the_tools_else_the_defaults_else_the_deployments_within_a_week():
    policy = _policy(
        {"t": {"approval": "always", "timeout_minutes": 1}, "u": {"approval": "always"}}, timeout_minutes=45
    )
    assert policy.timeout_minutes("t", 60) == 1 and policy.timeout_minutes("u", 60) == 45
    assert _policy({}).timeout_minutes("x", 60) == 60
    assert _policy({}).timeout_minutes("x", 10**9) == 7 * 24 * 60 and _policy({}).timeout_minutes("x", 0) == 1


def test_why_a_tool_cannot_have_a_standing_approval():
    policy = _policy(
        {
            "q": {"approval": "always", "quorum": {"required": 1, "approvers": ["a@x.io"]}, "grant_scope": ["c"]},
            "c": {"approval": "always", "urgency": "critical", "grant_scope": ["c"]},
            "n": {"approval": "always"},
            "ok": {"approval": "always", "grant_scope": ["c"]},
        }
    )
    assert policy.ungrantable("q") == "it needs a quorum"
    assert policy.ungrantable("c") == "it is critical"
    assert policy.ungrantable("n") == "the policy gives it no grant_scope"
    assert policy.ungrantable("ok") is None
