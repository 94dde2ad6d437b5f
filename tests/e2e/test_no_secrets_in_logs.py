"""No secret, API key or callback token ever appears in a log line, at any log level."""

from __future__ import annotations

import requests

from tests.support import captured_product_logs, wait_for


def test_a_full_scenario_logs_no_secret(stack, client):
    from signoff import runtime

    with captured_product_logs() as buffer:
        cid = client.start("Issue a €340 refund to customer #4821.")["conversation_id"]
        [decision] = client.pending_decision_ids(cid)
        client.resolve(decision, "approve", notes="fine")
        client.wait_status(cid, "idle")
        url = client.callback_url(decision)
        token = url.rsplit("/", 1)[1]
        requests.post(url, json={}, timeout=30)  # a late duplicate
        requests.post(url[:-5] + "AAAAA", json={}, timeout=30)  # a forged one
        requests.post(
            f"{stack.api_url}/conversations",
            json={"message": "x"},
            headers={"Authorization": "Bearer wrong-key-123456"},
            timeout=30,
        )
        denied = client.start("Issue a €340 refund to customer #4822.")["conversation_id"]
        [decision] = client.pending_decision_ids(denied)
        client.resolve(decision, "deny", notes="no")
        client.wait_status(denied, "idle")
        client.get_json("/approvals", params={"conversation_id": cid})
        wait_for(lambda: "turn completed" in buffer.getvalue(), what="log lines")
    logs = buffer.getvalue()
    assert len(logs.splitlines()) > 10  # the capture saw the scenario

    secrets = {
        "client API key": stack.config.api_key,
        "Handover key": stack.config.handover_local_key,
        "OpenAI key": "sk-local-emulator",
        "callback signing key": runtime.signing_key().decode(),
        "callback token": token,
        "callback token MAC": token.rsplit(".", 1)[1],
        "a wrong key someone tried": "wrong-key-123456",
    }
    for name, value in secrets.items():
        assert value not in logs, f"the {name} appears in the logs"
