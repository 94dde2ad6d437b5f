"""Each function invoked with its sample event from events/ (the files `sam local invoke -e` takes)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from local.lambda_runtime import invoke
from local.template import SamTemplate

EVENTS = Path(__file__).resolve().parents[2] / "events"
TEMPLATE = SamTemplate()


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def call(function_id: str, payload: dict):
    return invoke(TEMPLATE.function(function_id), payload)


def body(result: dict) -> dict:
    return json.loads(result["body"])


def test_every_event_file_is_exercised_here():
    source = Path(__file__).read_text()
    for path in EVENTS.glob("*.json"):
        assert f'"{path.name}"' in source, f"{path.name} has no test"


def test_create_conversation_event_is_accepted_and_idempotent(stack, client):
    first = call("ClientApiFunction", event("client_api_create_conversation.json"))
    assert first["statusCode"] == 202, first
    created = body(first)
    assert set(created) == {"conversation_id", "turn_id", "status"}
    # Same Idempotency-Key, same body: the same conversation, not a second one.
    again = call("ClientApiFunction", event("client_api_create_conversation.json"))
    assert body(again) == created
    view = client.get(created["conversation_id"])
    assert view["metadata"] == {"ticket": "SUP-1"}
    assert len([m for m in view["messages"] if m["role"] == "user"]) == 1
    # Same key, another body: refused, nothing created.
    changed = event("client_api_create_conversation.json")
    changed["body"] = json.dumps({"message": "something else"})
    refused = call("ClientApiFunction", changed)
    assert refused["statusCode"] == 422 and body(refused)["error"]["code"] == "idempotency_key_reused"
    client.wait_status(created["conversation_id"], "awaiting_approval")


def test_get_and_post_events_answer_404_for_an_unknown_conversation(stack):
    for name in ("client_api_get_conversation.json", "client_api_post_message.json"):
        result = call("ClientApiFunction", event(name))
        assert result["statusCode"] == 404, (name, result)
        assert body(result)["error"]["code"] == "conversation_not_found"


def test_get_and_post_events_for_a_real_conversation(stack, client):
    cid = client.start("Please look up customer #9.")["conversation_id"]
    client.wait_status(cid, "idle")
    get = event("client_api_get_conversation.json")
    get["pathParameters"]["conversation_id"] = cid
    get["rawPath"] = get["requestContext"]["http"]["path"] = f"/conversations/{cid}"
    viewed = call("ClientApiFunction", get)
    assert viewed["statusCode"] == 200 and body(viewed)["status"] == "idle"
    post = event("client_api_post_message.json")
    post["pathParameters"]["conversation_id"] = cid
    post["rawPath"] = post["requestContext"]["http"]["path"] = f"/conversations/{cid}/messages"
    posted = call("ClientApiFunction", post)
    assert posted["statusCode"] == 202, posted
    client.wait_status(cid, "idle")


def test_list_approvals_event(stack, client):
    cid = client.start("Issue a €340 refund to customer #4821.")["conversation_id"]
    [decision] = client.pending_decision_ids(cid)
    client.resolve(decision, "approve")
    client.wait_status(cid, "idle")
    result = call("ClientApiFunction", event("client_api_list_approvals.json"))
    assert result["statusCode"] == 200
    page = body(result)
    assert page["approvals"] and all(a["status"] == "approved" for a in page["approvals"])
    assert len(page["approvals"]) <= 10


def test_callback_event_with_a_token_we_did_not_sign_is_401(stack):
    result = call("ApprovalCallbackFunction", event("approval_callback.json"))
    assert result["statusCode"] == 401
    assert body(result) == {"error": {"code": "invalid_token", "message": "This callback URL is not valid."}}


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [("Bearer local-dev-key", True), ("Bearer wrong-key", False), ("local-dev-key", False), ("", False)],
)
def test_authorizer_event(stack, authorization, expected):
    payload = event("authorizer.json")
    payload["headers"]["authorization"] = authorization
    result = call("AuthorizerFunction", payload)
    assert result["isAuthorized"] is expected
    if expected:
        assert "local-dev-key" not in json.dumps(result)


def test_worker_event_for_an_unknown_turn_is_acknowledged_and_changes_nothing(stack):
    result = call("AgentWorkerFunction", event("agent_worker_sqs.json"))
    assert result == {"batchItemFailures": []}


def test_worker_reports_a_poison_message_as_failed(stack):
    payload = copy.deepcopy(event("agent_worker_sqs.json"))
    payload["Records"][0]["body"] = '{"kind": "launch_missiles"}'
    result = call("AgentWorkerFunction", payload)
    assert result == {"batchItemFailures": [{"itemIdentifier": payload["Records"][0]["messageId"]}]}


def test_reconciler_event_runs_one_pass(stack):
    result = call("ReconcilerFunction", event("reconciler_schedule.json"))
    assert set(result) >= {"checked", "settled", "still_pending", "errors"}


def test_reconciler_and_callback_publish_metrics(stack, monkeypatch, capsys):
    """Embedded-metric-format lines an operator can alarm on (forged callbacks, lost callbacks)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Signoff")
    capsys.readouterr()
    call("ReconcilerFunction", event("reconciler_schedule.json"))
    call("ApprovalCallbackFunction", event("approval_callback.json"))
    poison = copy.deepcopy(event("agent_worker_sqs.json"))
    poison["Records"][0]["body"] = '{"kind": "launch_missiles"}'  # handed back: WorkMessagesHandedBack
    call("AgentWorkerFunction", poison)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for e in emitted for d in e["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"ApprovalsSettledByReconciler", "TurnsRedriven", "CallbackForged", "OldestDueAgeSeconds"} <= names
    assert "WorkMessagesHandedBack" in names
    assert all(d["Namespace"] == "Signoff" for e in emitted for d in e["_aws"]["CloudWatchMetrics"])
    # Every alarm on a Signoff metric watches one the functions really emit, with their dimensions (the
    # service is the stack's name: locally the stack resolves AWS::StackName to "signoff").
    stack_name = stack.function_parameters()["AWS::StackName"]
    for alarm in TEMPLATE.of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("Namespace") == "Signoff":
            assert props["MetricName"] in names
            for dimension in props["Dimensions"]:
                assert dimension["Value"] == {"Ref": "AWS::StackName"}
                assert all(e.get(dimension["Name"]) == stack_name for e in emitted)


def test_the_reconciler_reports_how_long_the_oldest_due_item_waited(stack):
    """A turn that fell due two hours ago (a lost queue message nobody re-drove): the pass says so."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import boto3

    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="milliseconds")
    cid, tid = f"conv_{uuid.uuid4().hex}", f"turn_{uuid.uuid4().hex}"
    boto3.client("dynamodb").put_item(
        TableName=stack.resources.refs["SignoffTable"],
        Item={
            "pk": {"S": f"CONV#{cid}"},
            "sk": {"S": f"TURN#{tid}"},
            "type": {"S": "turn"},
            "conversation_id": {"S": cid},
            "turn_id": {"S": tid},
            "status": {"S": "completed"},
            "created_at": {"S": two_hours_ago},
            "due_bucket": {"S": "DUE"},
            "due_at": {"S": two_hours_ago.replace("+00:00", "Z")},
        },
    )
    report = call("ReconcilerFunction", event("reconciler_schedule.json"))
    assert report["oldest_due_age_seconds"] >= 7200
    assert call("ReconcilerFunction", event("reconciler_schedule.json"))["oldest_due_age_seconds"] < 7200  # handled


def test_notifier_stream_event_queues_one_notification_and_ignores_other_changes(stack):
    """The stream event (a conversation with a notify_url that went idle) → one notification; the
    same change without a status change, or without a notify_url, → none."""
    assert call("NotifierFunction", event("notifier_stream.json")) == {"queued": 1}
    unchanged = event("notifier_stream.json")
    unchanged["Records"][0]["dynamodb"]["OldImage"]["status"] = {"S": "idle"}
    assert call("NotifierFunction", unchanged) == {"queued": 0}
    silent = event("notifier_stream.json")
    del silent["Records"][0]["dynamodb"]["NewImage"]["notify_url"]
    assert call("NotifierFunction", silent) == {"queued": 0}


def test_notifier_delivery_event_that_cannot_be_delivered_is_handed_back(stack):
    """Nothing listens on port 9: the message is reported failed, so SQS brings it back later."""
    result = call("NotifierFunction", event("notifier_delivery.json"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]}
