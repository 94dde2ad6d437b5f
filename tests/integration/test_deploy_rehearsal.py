"""`sam deploy` rehearsed as teams run it: the template through SAM's translator into moto's
CloudFormation; a create with the defaults, a create with every option beside it (two stacks, one
account), an update of each that changes parameters, and a delete (local/rehearsal/deploy.py, which
also names the three places moto differs from CloudFormation and patches them). After each step:
names per stack, concurrency, retention, alarms and their actions, each function's environment.
What moto cannot create is named here and covered by the template assertions in
tests/unit/test_template_limits.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from local.rehearsal.deploy import FULL_STACK, PARAMETERS, STEPS
from local.rehearsal.translate import sam_python
from local.template import SamTemplate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = SamTemplate()
# Types moto 5.2's CloudFormation cannot create (it skips them): checked from the template instead.
NOT_IN_MOTO = {
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::CloudWatch::Alarm",
    "AWS::Scheduler::Schedule",
    "AWS::SecretsManager::Secret",
    "AWS::SNS::Subscription",
}


@pytest.fixture(scope="module")
def report() -> dict:
    if not sam_python().exists():
        pytest.skip(f"the SAM CLI venv is missing ({sam_python()}); `make test` installs it")
    # Its own process: moto's in-process mock resets every backend when it ends (the stack's too).
    done = subprocess.run(
        [sys.executable, "-m", "local.rehearsal.deploy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _deploys(report) -> list[dict]:
    return [s for s in report["steps"] if s["step"] in ("create", "update")]


def _parameter(step: dict, name: str) -> str:
    return str(step["parameters"].get(name, TEMPLATE.doc["Parameters"][name].get("Default", "")))


def test_every_step_completes_with_every_resource_moto_can_make(report):
    assert [(s["step"], s["stack"]) for s in report["steps"]] == [(w, n) for w, n, _ in STEPS]
    assert set(report["declared"]) >= NOT_IN_MOTO, "the template no longer declares a type this test expects"
    for step in _deploys(report):
        assert step["status"] == f"{step['step'].upper()}_COMPLETE", step["stack"]
        expected = {t: n for t, n in step["expected"].items() if t not in NOT_IN_MOTO}
        assert step["created"] == expected, (step["step"], step["stack"])


def test_names_and_metrics_are_each_stacks_own(report):
    latest = {s["stack"]: s for s in _deploys(report)}
    first, second = ({i for i in s["physical_ids"].values() if i} for s in latest.values())
    assert len(first) >= 25 and not first & second
    for name, step in latest.items():
        live = step["live"]
        assert set(live["log_groups"]) == {
            f"/aws/lambda/{name}/{f.logical_id.removesuffix('Function')}" for f in TEMPLATE.functions()
        }
        assert step["outputs"]["DashboardName"] == f"{name}-signoff"
        for logical, fn in live["functions"].items():
            assert fn["env"]["POWERTOOLS_SERVICE_NAME"] == name, logical  # metrics carry service=<stack>
        body = json.dumps(live["dashboard"])
        assert f'"service", "{name}"' in body and '"service", "signoff"' not in body
        other = next(n for n in latest if n != name)
        assert latest[other]["physical_ids"]["AgentWorkerFunction"] not in body


def test_concurrency_and_the_stream_failure_destination_follow_each_step(report):
    for step in _deploys(report):
        queue_arn = (
            f"arn:aws:sqs:us-east-1:123456789012:{step['physical_ids']['NotifyStreamFailureQueue'].rsplit('/', 1)[-1]}"
        )
        assert [tuple(m) for m in step["live"]["mappings"]] == [
            ("AgentWorkerFunction", "sqs", 1, int(_parameter(step, "WorkerMaxConcurrency")), None),
            ("NotifierFunction", "dynamodb", 100, None, queue_arn),
            ("NotifierFunction", "sqs", 10, int(_parameter(step, "NotifierMaxConcurrency")), None),
        ], (step["step"], step["stack"])


def test_log_retention_follows_each_step(report):
    for step in _deploys(report):
        retention = int(_parameter(step, "LogRetentionDays"))
        assert set(step["live"]["log_groups"].values()) == {retention}, (step["step"], step["stack"])


def test_every_alarm_notifies_a_topic_in_every_step(report):
    for step in _deploys(report):
        given = _parameter(step, "AlarmTopicArn")
        topic = given or step["live"]["alarm_topic"]
        assert topic and step["outputs"]["AlarmTopicArn"] == topic
        if not given:
            assert topic.endswith(f":{step['stack']}-alarms")  # the stack's own, named after it
        assert len(step["alarms"]) >= 20
        for alarm, actions in step["alarms"].items():
            assert actions == {"AlarmActions": [topic], "OKActions": [topic]}, (step["stack"], alarm)


def _references(value) -> set[str]:
    if isinstance(value, dict):
        found = {value["Ref"]} if "Ref" in value else set()
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        return found.union(*(_references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    return set()


def _declared(logical: str, step: dict) -> set[str]:
    """The function's variables, less those whose value is a resource moto cannot create (a secret
    made by the stack): moto leaves a variable it cannot resolve out."""
    skipped = {name for name, r in TEMPLATE.resources.items() if r["Type"] in NOT_IN_MOTO}
    environment = TEMPLATE.function(logical).environment
    return {k for k, v in environment.items() if not (_references(v) & skipped and _parameter_free(v, step))}


def _parameter_free(value, step: dict) -> bool:
    """True unless the value is an !If that, for this step, picks a parameter (a secret given by ARN)."""
    if isinstance(value, dict) and "Fn::If" in value:
        condition, yes, no = value["Fn::If"]
        chosen = yes if TEMPLATE.condition(condition, TEMPLATE.parameter_defaults() | step["parameters"]) else no
        return not ("Ref" in chosen and chosen["Ref"] in TEMPLATE.doc["Parameters"])
    return True


def test_each_function_holds_its_template_environment_in_every_step(report):
    for step in _deploys(report):
        ids = step["physical_ids"]
        receipt_key = _parameter(step, "ReceiptKeyArn") or ids["ReceiptSigningKey"]
        for logical, fn in step["live"]["functions"].items():
            assert set(fn["env"]) == _declared(logical, step), logical
            assert fn["env"]["RECEIPT_KEY_ID"] == receipt_key, (step["stack"], logical)
            assert fn["timeout"] == TEMPLATE.function(logical).timeout, logical
        urls = {logical for logical, fn in step["live"]["functions"].items() if "PUBLIC_API_URL" in fn["env"]}
        assert urls == {"AgentWorkerFunction", "ReconcilerFunction"}


def test_a_delete_leaves_the_table_and_the_key_and_nothing_of_the_other_stack_is_touched(report):
    delete = report["steps"][-1]
    assert delete["step"] == "delete" and delete["stacks_left"] == [FULL_STACK]
    # Kept on purpose (Retain): the conversations and the audit trail; the key old receipts verify with.
    assert delete["left_behind"] == {"SignoffTable": True, "ReceiptSigningKey": True, "AgentWorkerFunction": False}
    assert delete["others_intact"] == {FULL_STACK: True}


def test_the_rehearsal_takes_every_optional_branch_of_the_template():
    """Every condition of the template holds in some step and fails in another."""
    defaults = TEMPLATE.parameter_defaults()
    steps = [defaults | p for what, _, p in STEPS if what != "delete"]
    for condition in TEMPLATE.doc["Conditions"]:
        seen = {TEMPLATE.condition(condition, parameters) for parameters in steps}
        if condition == "ReconcileEveryMinute":
            continue  # a schedule expression, not a resource: tests/unit/test_template_limits.py
        assert seen == {True, False}, condition
    assert PARAMETERS["AlarmTopicArn"] and PARAMETERS["ReceiptKeyArn"]
