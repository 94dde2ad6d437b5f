"""Template settings that must hold together, read from template.yaml itself."""

from __future__ import annotations

from local.template import SamTemplate

TEMPLATE = SamTemplate()


def _props(logical_id: str) -> dict:
    return TEMPLATE.resources[logical_id]["Properties"]


def test_the_work_queue_outlasts_every_worker_invocation_six_times():
    worker_timeout = int(_props("AgentWorkerFunction")["Timeout"])
    assert int(_props("WorkQueue")["VisibilityTimeout"]) >= 6 * worker_timeout


def test_a_dead_letter_is_kept_longer_than_its_message_could_have_waited_before():
    assert int(_props("WorkDeadLetterQueue")["MessageRetentionPeriod"]) > int(
        _props("WorkQueue")["MessageRetentionPeriod"]
    )


def test_the_reconciler_schedule_is_named_per_stack_and_says_minute_in_the_singular():
    schedule = _props("ReconcilerFunction")["Events"]["Schedule"]["Properties"]
    assert "${AWS::StackName}" in schedule["Name"]["Fn::Sub"]
    condition, one, many = schedule["ScheduleExpression"]["Fn::If"]
    assert TEMPLATE.doc["Conditions"][condition] == {"Fn::Equals": [{"Ref": "ReconcileIntervalMinutes"}, 1]}
    assert one == "rate(1 minute)" and many == {"Fn::Sub": "rate(${ReconcileIntervalMinutes} minutes)"}


def test_the_worker_takes_one_turn_per_invocation():
    assert TEMPLATE.sqs_batch_size("AgentWorkerFunction") == 1
