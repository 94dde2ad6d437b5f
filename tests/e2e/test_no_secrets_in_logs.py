"""No secret, API key or callback token ever appears in a log line, at any log level."""

from __future__ import annotations

import io
import logging

import requests

from tests.support import wait_for


def test_a_full_scenario_logs_no_secret(stack, client):
    from local.lambda_runtime import load_handler
    from local.template import SamTemplate
    from signoff import runtime

    for fn in SamTemplate().functions():  # their Logger set up the product logger and its JSON formatter
        load_handler(fn.code_uri, fn.handler)
    product = logging.getLogger("signoff")
    formatter = product.handlers[0].formatter
    buffer = io.StringIO()
    capture = logging.StreamHandler(buffer)
    capture.setFormatter(formatter)
    previous = product.level
    product.addHandler(capture)
    product.setLevel(logging.DEBUG)
    try:
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
    finally:
        product.removeHandler(capture)
        product.setLevel(previous)
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
