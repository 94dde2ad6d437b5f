"""`make sam-local` without Docker: its env-vars file and its event-source driver, checked here;
the containers themselves need a machine with Docker or Finch."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from local.samlocal.driver import EventSourceDriver
from local.samlocal.env_file import CONTAINER_HOST, env_vars
from local.template import ROOT, SamTemplate
from tests.support import wait_for

REAL_HOSTS = ("amazonaws.com", "openai.com", "thehandover.xyz", "api.aws")
SEED = "Issue a €340 refund to customer #4821."


@pytest.fixture(scope="module")
def variables(stack):
    return env_vars(
        stack.template,
        stack.resources,
        stack.function_parameters(),
        aws_url=stack.aws_url,
        openai_url=stack.openai_url,
        handover_url=stack.handover_url,
        public_api_url="http://127.0.0.1:3000",
    )


def test_the_env_file_sets_every_variable_of_every_function(variables):
    template = SamTemplate()
    assert set(variables) == {fn.logical_id for fn in template.functions()}
    for fn in template.functions():
        assert set(variables[fn.logical_id]) == set(fn.environment), fn.logical_id
        assert all(isinstance(value, str) for value in variables[fn.logical_id].values())


def test_no_value_points_at_a_real_aws_openai_or_handover_host(variables):
    for function, env in variables.items():
        for name, value in env.items():
            assert not any(host in value for host in REAL_HOSTS), (function, name, value)
            assert "${" not in value, (function, name, value)  # nothing left unresolved
        assert urlsplit(env["AWS_ENDPOINT_URL"]).hostname == CONTAINER_HOST, function
        for name in ("OPENAI_BASE_URL", "HANDOVER_BASE_URL", "WORK_QUEUE_URL"):
            if name in env:
                assert urlsplit(env[name]).hostname == CONTAINER_HOST, (function, name, env[name])


def test_the_driver_delivers_the_queue_and_the_schedule_through_the_lambda_invoke_api(stack, client):
    """The same driver `make sam-local` points at `sam local start-lambda`, here pointed at the local
    stack's Lambda Invoke endpoint while the stack's own queue pump stands aside."""
    refs, attrs = stack.resources.refs, stack.resources.attrs
    driver = EventSourceDriver(stack.lambda_url, refs["WorkQueue"], attrs[("WorkQueue", "Arn")])
    with stack.pumps_paused():
        cid = client.start(SEED)["conversation_id"]
        wait_for(lambda: driver.deliver_once(wait_seconds=0), what="the start_turn message")
        [decision] = client.pending_decision_ids(cid)
        client.resolve(decision, "approve")
        wait_for(lambda: driver.deliver_once(wait_seconds=0), what="the resume_turn message")
        view = client.wait_status(cid, "idle")
    assert view["actions"][0]["execution"]["status"] == "executed"
    assert driver.invocations == 2
    report = driver.reconcile_once()
    assert {"checked", "settled", "turns_redriven"} <= set(report)
    with pytest.raises(ClientError) as missing:
        driver.invoke("NoSuchFunction", {})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_without_a_container_runtime_it_says_so_in_one_line_and_starts_nothing(monkeypatch):
    from local.samlocal import __main__ as sam_local

    monkeypatch.setattr(sam_local, "container_runtime", lambda: None)
    assert sam_local.main() == 1


def test_the_target_runs_here_and_stops_cleanly_without_docker():
    result = subprocess.run(
        [sys.executable, "-m", "local.samlocal"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT / 'layers' / 'signoff'}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode == 0:
        pytest.skip("a container runtime answers here")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "make local" in lines[0], result.stdout + result.stderr
