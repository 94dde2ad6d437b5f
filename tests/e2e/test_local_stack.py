"""`make local` and `make demo` as a user runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

from local.demo import run_pass
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_passes_show_both_outcomes(stack, capsys):
    approved = run_pass(stack, "approve", "maria@example.com", "Go ahead.")
    denied = run_pass(stack, "deny", "lee@example.com", "Not today.")
    assert approved["actions"][0]["execution"]["status"] == "executed"
    assert denied["actions"][0]["execution"]["status"] == "not_executed"
    transcript = capsys.readouterr().out
    for line in (
        "user      Issue a €340 refund",
        "approval  [high]",
        "decision  approved by maria@example.com",
        "decision  denied by lee@example.com",
        "→ executed",
        "→ not_executed",
        'Approver notes: "Not today."',
    ):
        assert line in transcript


def test_the_demos_hosted_mcp_pass_runs_the_call_once_after_the_ok(stack, capsys):
    from local.demo import TICKET
    from local.environment import settings_changed

    before = len(stack.mcp_tools.calls.of("create_ticket"))
    with settings_changed(AGENT_API="responses"):
        view = run_pass(stack, "approve", "maria@example.com", "Ticket it.", TICKET, agent="helpdesk")
    assert len(stack.mcp_tools.calls.of("create_ticket")) == before + 1
    assert view["actions"][0]["execution"]["status"] == "executed" and view["actions"][0]["receipt"]
    assert "tool      helpdesk__create_ticket(" in capsys.readouterr().out


def test_the_local_stack_serves_the_seed_scenario_and_stops_on_ctrl_c(tmp_path):
    ports = {name: _free_port() for name in ("API", "HANDOVER", "OPENAI", "AWS", "LAMBDA")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNOFF_"))},
        **{f"SIGNOFF_{name}_PORT": str(port) for name, port in ports.items()},
        "SIGNOFF_API_KEY": "key-for-this-test",
        "PYTHONPATH": f"{ROOT / 'layers' / 'signoff'}:{ROOT}",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    env.pop("OPENAI_API_KEY", None)
    env.pop("HANDOVER_API_KEY", None)
    log = (tmp_path / "stack.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "local.stack"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: "Ctrl-C stops everything" in (tmp_path / "stack.log").read_text(), timeout=60, what="banner")
        banner = (tmp_path / "stack.log").read_text()
        assert f"http://127.0.0.1:{ports['API']}" in banner and "Bearer key-for-this-test" in banner
        assert f"Approval inbox http://127.0.0.1:{ports['HANDOVER']}/" in banner
        api = f"http://127.0.0.1:{ports['API']}"
        headers = {"Authorization": "Bearer key-for-this-test"}
        cid = requests.post(
            f"{api}/conversations",
            json={"message": "Issue a €340 refund to customer #4821."},
            headers=headers,
            timeout=30,
        ).json()["conversation_id"]
        view = wait_for(
            lambda: (
                (v := requests.get(f"{api}/conversations/{cid}", headers=headers, timeout=30).json())["status"]
                == "awaiting_approval"
                and v
            ),
            what="approval request",
        )
        decision_id = view["actions"][0]["decision"]["id"]
        assert decision_id in requests.get(f"http://127.0.0.1:{ports['HANDOVER']}/", timeout=30).text
        requests.post(
            f"http://127.0.0.1:{ports['HANDOVER']}/decisions/{decision_id}/resolve",
            json={"action": "approve"},
            headers={"Authorization": "Bearer ho_local_dev"},
            timeout=30,
        )
        view = wait_for(
            lambda: (
                (v := requests.get(f"{api}/conversations/{cid}", headers=headers, timeout=30).json())["status"]
                == "idle"
                and v
            ),
            what="reply",
        )
        assert "approved" in view["messages"][-1]["content"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        log.close()
    assert code == 0, (tmp_path / "stack.log").read_text()[-2000:]
    # Everything was released: nothing listens on the API port any more.
    wait_for(lambda: _closed(ports["API"]), timeout=10, what="the API port to close")


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
