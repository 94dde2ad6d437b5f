"""The approval inbox in a real browser: Playwright driving Debian's Chromium.

The browser is the system's (`apt-get install chromium`, done by `make test`); Playwright never
downloads one. Screenshots land in test-output/browser/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
SEED = "Issue a €340 refund to customer #4821."


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip("Chromium is not installed and could not be (make test installs Debian's chromium as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    yield context.new_page()
    context.close()


def test_approving_in_the_inbox_reaches_the_agent(stack, client, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)

    page.goto(f"{stack.handover_url}/")
    card = page.locator(f'article[data-decision-id="{decision_id}"]')
    assert card.locator("h3").inner_text() == "Issue a refund of 340.00 EUR to customer #4821"
    assert card.locator(".badge").inner_text() == "high"
    assert "left" in card.locator(".meta").inner_text()
    # A person can decide in ten seconds: what happens, the user's own words, the rule that fired.
    first = card.locator("pre.context").inner_text().split("\n")[:3]
    assert first == [
        "What will happen: Issue a refund of 340.00 EUR to customer #4821.",
        f'The user asked: "{SEED}"',
        "Why you are asked: the policy asks for sign-off when amount over 100 EUR.",
    ]
    page.screenshot(path=str(SHOTS / "inbox-pending.png"), full_page=True)

    card.locator('textarea[name="notes"]').fill("Checked the order, approved.")
    card.locator('button[value="approve"]').click()
    page.wait_for_url(f"{stack.handover_url}/")
    row = page.locator(f'tr[data-decision-id="{decision_id}"]')
    assert row.locator("td").first.inner_text() == "approved"
    page.screenshot(path=str(SHOTS / "inbox-approved.png"), full_page=True)

    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "executed"
    assert '"Checked the order, approved."' in client.reply(view)
    assert len(client.effects(cid)) == 1


def test_denying_with_a_note_reaches_the_reply(stack, client, page):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    page.goto(f"{stack.handover_url}/")
    card = page.locator(f'article[data-decision-id="{decision_id}"]')
    card.locator('input[name="resolved_by"]').fill("finance-lead@example.com")
    card.locator('textarea[name="notes"]').fill("Over this month's refund budget.")
    card.locator('button[value="deny"]').click()
    page.wait_for_url(f"{stack.handover_url}/")
    page.screenshot(path=str(SHOTS / "inbox-denied.png"), full_page=True)

    view = client.wait_status(cid, "idle")
    assert view["actions"][0]["decision"]["resolved_by"] == "finance-lead@example.com"
    assert client.effects(cid) == []
    reply = client.reply(view)
    assert "denied by finance-lead@example.com" in reply
    assert '"Over this month\'s refund budget."' in reply


def test_model_content_is_escaped_in_the_inbox(stack, client, page):
    cid = client.start("Please ask for approval: <img src=x onerror=alert(1)><script>alert(2)</script>")[
        "conversation_id"
    ]
    [decision_id] = client.pending_decision_ids(cid)
    html = requests.get(f"{stack.handover_url}/").text
    assert "<script>alert(2)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{stack.handover_url}/")
    card = page.locator(f'article[data-decision-id="{decision_id}"]')
    assert "<script>alert(2)</script>" in card.locator("h3").inner_text()
    assert dialogs == []
    card.locator('button[value="deny"]').click()
    client.wait_status(cid, "idle")


def test_modify_in_the_inbox_runs_the_changed_call(stack, client, page):
    cid = client.start(SEED)["conversation_id"]
    [decision_id] = client.pending_decision_ids(cid)
    page.goto(f"{stack.handover_url}/")
    card = page.locator(f'article[data-decision-id="{decision_id}"]')
    assert card.locator("button").all_inner_texts() == ["Approve", "Deny", "Modify"]

    # Not JSON: refused with a message, nothing resolved.
    card.locator('textarea[name="response_data"]').fill("{oops")
    card.locator('button[value="modify"]').click()
    assert "must be JSON" in page.locator(".error").inner_text()
    assert client.get(cid)["status"] == "awaiting_approval"

    page.goto(f"{stack.handover_url}/")
    card = page.locator(f'article[data-decision-id="{decision_id}"]')
    card.locator('textarea[name="response_data"]').fill('{"amount": 200}')
    card.locator('textarea[name="notes"]').fill("200 is what we agreed.")
    card.locator('button[value="modify"]').click()
    page.wait_for_url(f"{stack.handover_url}/")
    page.screenshot(path=str(SHOTS / "inbox-modified.png"), full_page=True)

    view = client.wait_status(cid, "idle")
    [action] = view["actions"]
    assert action["decision"]["status"] == "modified"
    assert action["execution"]["status"] == "executed"
    [effect] = client.effects(cid)
    assert effect["arguments"]["amount"] == "200"
    reply = client.reply(view)
    assert "amount from 340 to 200" in reply and '"200 is what we agreed."' in reply
