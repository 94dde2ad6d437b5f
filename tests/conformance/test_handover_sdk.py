"""The Handover-compatible server, driven by Handover's official SDK (`the-handover` 0.4.0) through
every method it has: what the SDK sends is accepted, what it documents as invalid is refused with
Handover's JSON error (which the SDK turns into ``HandoverError``), and never an HTML page.

Bugs of the SDK itself, worked around here: ``approve()`` calls ``.get()`` on the ``Decision`` that
``create()`` returns since 0.4.0 (an ``AttributeError``), and the package reports ``__version__``
0.3.0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from the_handover import (
    ChooseResponse,
    DecisionStatus,
    HandoverClient,
    HandoverError,
    ScheduleResponse,
)

APPROVER = "approver@example.com"


@pytest.fixture
def sdk(stack):
    with HandoverClient(api_key=stack.config.handover_local_key, base_url=stack.handover_url, dev_mode=False) as c:
        yield c


def test_create_get_and_resolve_with_every_field_the_sdk_sends(sdk):
    created = sdk.create(
        "Refund €340 to customer #4821",
        APPROVER,
        context="VIP customer",
        urgency="high",
        timeout_minutes=30,
        channel="slack",
        options=["approve", "deny", "modify"],
        callback_url="http://127.0.0.1:9/callback",
        response_type=ScheduleResponse(),
        context_images=["https://example.com/a.png"],
        enforce=True,
    )
    assert created.status is DecisionStatus.PENDING and created.expires_at and created.created_at
    fetched = sdk.get(created.id)
    assert fetched.action == "Refund €340 to customer #4821" and fetched.urgency == "high"
    assert fetched.context_images == ["https://example.com/a.png"]
    assert fetched.enforce is True and fetched.action_permitted is False  # pending: not permitted
    resolved = sdk.resolve(created.id, "approve", notes="ok", resolved_by="maria@example.com")
    assert resolved.status is DecisionStatus.APPROVED and resolved.action_permitted is True
    assert resolved.response_notes == "ok" and resolved.resolved_by == "maria@example.com"


@pytest.mark.parametrize(("answer", "permitted"), [("deny", False), ("modify", True)])
def test_enforce_permits_exactly_what_lets_the_action_run(sdk, answer, permitted):
    decision = sdk.create("Delete the data of customer #7", APPROVER, enforce=True)
    resolved = sdk.resolve(decision.id, answer, response_data={"reason": "x"} if answer == "modify" else None)
    assert sdk.get(decision.id).action_permitted is permitted is resolved.action_permitted


def test_without_enforce_there_is_no_action_permitted(sdk):
    decision = sdk.create("Send an email", APPROVER)
    assert sdk.get(decision.id).action_permitted is None


def test_a_schedule_answer_is_scheduled_at_its_time(sdk):
    decision = sdk.create("Run the payout", APPROVER, response_type=ScheduleResponse())
    when = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    resolved = sdk.resolve(decision.id, "approve", response_data={"execute_at": when})
    assert resolved.status is DecisionStatus.SCHEDULED and resolved.execute_at == when


def test_custom_options_can_be_answered(sdk, stack):
    decision = sdk.create(
        "Which carrier?", APPROVER, options=["ups", "dhl"], response_type=ChooseResponse(choices=["ups", "dhl"])
    )
    resolved = sdk.resolve(decision.id, "dhl")
    assert resolved.status is DecisionStatus.APPROVED and resolved.response_data == {"chosen": "dhl"}
    other = sdk.create("Which carrier?", APPROVER, options=["ups", "dhl"])
    page = requests.get(f"{stack.handover_url}/", timeout=10).text
    assert 'name="action" value="ups"' in page  # the inbox offers each option as a button
    answered = requests.post(
        f"{stack.handover_url}/inbox/{other.id}/resolve", data={"action": "ups"}, timeout=10, allow_redirects=False
    )
    assert answered.status_code == 303 and sdk.get(other.id).response_data == {"chosen": "ups"}


def test_attachments_upload_and_list(sdk):
    decision = sdk.create("Approve the invoice", APPROVER)
    attachments = sdk.upload_attachment(decision.id, ("invoice.pdf", b"%PDF-1.4 test", "application/pdf"))
    assert [(a.name, a.type, a.size) for a in attachments] == [("invoice.pdf", "application/pdf", 13)]
    assert [a.name for a in sdk.list_attachments(decision.id)] == ["invoice.pdf"]
    with pytest.raises(HandoverError):
        sdk.upload_attachment(decision.id, ("run.exe", b"MZ", "application/octet-stream"))
    for n in range(4):
        sdk.upload_attachment(decision.id, (f"page{n}.txt", b"x", "text/plain"))
    with pytest.raises(HandoverError, match="at most 5"):
        sdk.upload_attachment(decision.id, ("one-too-many.txt", b"x", "text/plain"))
    sdk.resolve(decision.id, "approve")
    with pytest.raises(HandoverError):
        sdk.upload_attachment(decision.id, ("late.txt", b"x", "text/plain"))


@pytest.mark.parametrize(
    "fields",
    [
        {"context_images": ["ftp://example.com/a.png"] * 6},
        {"context_images": [f"https://example.com/{n}.png" for n in range(6)]},
        {"approver": "not-an-email"},
        {"channel": "carrier-pigeon"},
        {"timeout_minutes": 100_000},
        {"timeout_minutes": 0},
        {"action": "x" * 100_000},
        {"urgency": "whenever"},
    ],
    ids=["ftp-images", "six-images", "approver", "channel", "long-timeout", "zero-timeout", "huge-action", "urgency"],
)
def test_what_the_sdk_documents_as_invalid_is_refused(sdk, fields):
    arguments = {"action": "Send an email", "approver": APPROVER, **fields}
    with pytest.raises(HandoverError, match="API error 400"):
        sdk.create(arguments.pop("action"), arguments.pop("approver"), **arguments)


@pytest.mark.parametrize(
    "body",
    [
        {"action": "approve", "notes": 123},
        {"action": "approve", "resolved_by": {"x": 1}},
        {"action": "approve", "response_data": [1]},
        {"action": "approve", "response_data": {"execute_at": "tomorrow"}},
        {"action": "shrug"},
    ],
    ids=["notes-number", "resolved-by-object", "data-list", "bad-execute-at", "unknown-action"],
)
def test_answers_of_the_wrong_type_are_refused_and_change_nothing(sdk, stack, body):
    decision = sdk.create("Send an email", APPROVER)
    response = requests.post(
        f"{stack.handover_url}/decisions/{decision.id}/resolve",
        json=body,
        headers={"Authorization": f"Bearer {stack.config.handover_local_key}"},
        timeout=10,
    )
    assert response.status_code == 400 and set(response.json()) == {"error", "code"}
    assert sdk.get(decision.id).status is DecisionStatus.PENDING


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("DELETE", "/decisions"), ("PUT", "/decisions/dec_x/resolve"), ("GET", "/decisions/dec_x/x")],
)
def test_unknown_routes_and_methods_answer_handovers_json_error(stack, method, path):
    response = requests.request(
        method,
        f"{stack.handover_url}{path}",
        headers={"Authorization": f"Bearer {stack.config.handover_local_key}"},
        timeout=10,
    )
    assert response.status_code in (404, 405)
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"error", "code"}


def test_an_unknown_decision_is_a_handover_error_not_a_crash(sdk):
    with pytest.raises(HandoverError, match="404"):
        sdk.get("dec_does_not_exist")
    with pytest.raises(HandoverError, match="404"):
        sdk.list_attachments("dec_does_not_exist")


def test_approve_in_sdk_0_4_0_breaks_on_its_own_create_result(sdk):
    """The SDK's blocking ``approve()`` reads ``result.get("auto_resolved")`` from the ``Decision``
    that ``create()`` returns since 0.4.0: an AttributeError before any polling. Pinned so a fixed
    SDK is noticed; Signoff never calls ``approve()`` (it never waits on a human)."""
    with pytest.raises(AttributeError, match="get"):
        sdk.approve("Send an email", APPROVER, max_wait=1)


def test_poll_returns_once_the_decision_is_answered(sdk):
    decision = sdk.create("Send an email", APPROVER)
    sdk.resolve(decision.id, "deny", notes="no")
    polled = sdk.poll(decision.id, interval=0.01, max_wait=5)
    assert polled.status is DecisionStatus.DENIED and polled.response_notes == "no"
