"""`sam deploy` rehearsed: the template through SAM's translator into moto's CloudFormation, twice
under two stack names in one account. What moto cannot create is named here and covered by the
template assertions in tests/unit/test_template_limits.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from local.rehearsal.deploy import PARAMETERS
from local.rehearsal.translate import sam_python
from local.template import SamTemplate

ROOT = Path(__file__).resolve().parents[2]
STACKS = ["signoff-staging", "signoff-prod"]
# Types moto 5.2's CloudFormation cannot create (it skips them): checked from the template instead.
NOT_IN_MOTO = {
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::CloudWatch::Alarm",
    "AWS::Scheduler::Schedule",
    "AWS::SecretsManager::Secret",
}


@pytest.fixture(scope="module")
def report() -> dict:
    if not sam_python().exists():
        pytest.skip(f"the SAM CLI venv is missing ({sam_python()}); `make test` installs it")
    # Its own process: moto's in-process mock resets every backend when it ends (the stack's too).
    done = subprocess.run(
        [sys.executable, "-m", "local.rehearsal.deploy", *STACKS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_both_stacks_are_created_with_every_resource_moto_can_make(report):
    declared = report["declared"]
    assert set(declared) >= NOT_IN_MOTO, "the template no longer declares a type this test expects"
    for name in STACKS:
        stack = report["stacks"][name]
        assert stack["status"] == "CREATE_COMPLETE", name
        expected = {t: n for t, n in declared.items() if t not in NOT_IN_MOTO}
        assert stack["created"] == expected, name


def test_two_stacks_in_one_account_share_no_physical_resource(report):
    staging, prod = ({i for i in report["stacks"][n]["physical_ids"].values() if i} for n in STACKS)
    assert len(staging) >= 25 and not staging & prod


def test_outputs_resolve_to_what_was_created(report):
    for name in STACKS:
        stack = report["stacks"][name]
        outputs, ids = stack["outputs"], stack["physical_ids"]
        assert outputs["SignoffTableName"] == ids["SignoffTable"]
        assert outputs["WorkDeadLetterQueueUrl"] == ids["WorkDeadLetterQueue"]
        assert outputs["DashboardName"] == f"{name}-signoff"


def test_the_services_hold_what_the_template_asks_for(report):
    template = SamTemplate()
    functions = [f.logical_id for f in template.functions()]
    for name in STACKS:
        live = report["live"][name]
        assert live["table_stream"] == "NEW_AND_OLD_IMAGES"
        short = {fn.removesuffix("Function") for fn in functions}
        assert live["log_groups"] == {f"/aws/lambda/{name}/{s}": 30 for s in short}
        assert sorted(live["functions"]) == sorted(functions)
        for logical, fn in live["functions"].items():
            assert fn["timeout"] == template.function(logical).timeout, logical
            assert fn["memory"] == template.function(logical).memory_size, logical
            assert {"TABLE_NAME", "WORK_QUEUE_URL", "NOTIFY_URL_PREFIXES"} <= set(fn["env"]), logical
        assert [tuple(m) for m in live["mappings"]] == [
            ("AgentWorkerFunction", "sqs", 1),
            ("NotifierFunction", "dynamodb", 100),
            ("NotifierFunction", "sqs", 10),
        ]
        assert live["work_queue"]["VisibilityTimeout"] == "720"
        assert f"{name}-WorkDeadLetterQueue" in json.loads(live["work_queue"]["RedrivePolicy"])["deadLetterTargetArn"]


def test_the_dashboard_names_this_stacks_functions_and_queues(report):
    for name in STACKS:
        ids = report["stacks"][name]["physical_ids"]
        body = json.dumps(report["live"][name]["dashboard"])
        # Every substitution resolved, but the HTTP API's id (moto cannot create an HTTP API).
        assert body.count("${") == body.count("${HttpApi}") == 1
        for logical in ("AgentWorkerFunction", "ApprovalCallbackFunction", "NotifierFunction"):
            assert ids[logical] in body
        other = next(n for n in STACKS if n != name)
        assert report["stacks"][other]["physical_ids"]["AgentWorkerFunction"] not in body


def test_the_rehearsal_takes_every_optional_branch_of_the_template():
    """Conditions on these parameters switch resources and statements on: the rehearsal sets them."""
    conditions = json.dumps(SamTemplate().doc["Conditions"])
    for parameter in ("PolicyParameterName", "AlarmTopicArn"):
        assert parameter in conditions and PARAMETERS[parameter]
