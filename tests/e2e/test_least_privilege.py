"""Least privilege: each function's IAM policy names only the resources and actions it uses.

The template is translated by SAM's own translator; then real traffic runs through every
function while a botocore hook records the AWS actions each one performs. What a function does
must be allowed to it, and what it is allowed must be used: no wildcards, no spare grants.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from local.rehearsal.translate import sam_python, translated_template
from tests.support import settings_changed, wait_for

ALLOWED_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",  # its own log group
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",  # tracing (X-Ray has no resource-level permissions)
}
SQS_TRIGGER = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"  # added by SAM for SQS
STREAM_TRIGGER = "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole"  # and for a stream
TRIGGER_MANAGED = {"AgentWorker": {SQS_TRIGGER}, "Notifier": {SQS_TRIGGER, STREAM_TRIGGER}}


@pytest.fixture(scope="module")
def translated() -> dict:
    """template.yaml as CloudFormation, by SAM's own translator (in the SAM CLI's venv)."""
    if not sam_python().exists():
        pytest.skip(f"the SAM CLI venv is missing ({sam_python()}); `make test` installs it")
    return translated_template()


def _statements(role: dict) -> list[dict]:
    statements = []
    for policy in role["Properties"].get("Policies", []):
        if "Fn::If" in policy:  # the optional SSM policy: check the branch that grants something
            policy = policy["Fn::If"][1]
        statements += policy["PolicyDocument"]["Statement"]
    return statements


def _resource_names(resource) -> list[str]:
    """Logical ids (and index names) a statement's resources point at."""
    items = resource if isinstance(resource, list) else [resource]
    names = []
    for item in items:
        text = str(item)
        for logical in (
            "SignoffTable",
            "WorkQueue",
            "NotifyQueue",
            "WebhookSigningSecret",
            "OpenAIApiKeySecret",
            "HandoverApiKeySecret",
            "CallbackSigningKeySecret",
            "ClientApiKeysSecret",
            "CursorKeySecret",
            "PolicyParameterName",
            "CatalogParameterName",
            "ToolSigningSecret",
            "ToolFunctionArns",
            "ToolSecretArns",
            "ReceiptSigningKey",
            "ReceiptKeyArn",
            "RetiredReceiptKeyArns",
            "SecretsKmsKeyArn",
            "CheckpointBucketName",
            "NotifyStreamFailureQueue",
        ):
            if logical in text:
                index = text.split("/index/")[1].split("'")[0].split('"')[0] if "/index/" in text else None
                names.append(f"{logical}/index/{index}" if index else logical)
    return names


def _grants(translated: dict) -> dict[str, set[tuple[str, str]]]:
    grants: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for name, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role" or not name.endswith("FunctionRole"):
            continue
        function = name.removesuffix("Role")
        for statement in _statements(resource):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                for target in _resource_names(statement["Resource"]):
                    grants[function].add((action, target))
    return grants


def test_no_wildcards_and_only_expected_managed_policies(translated):
    for name, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role" or not name.endswith("FunctionRole"):
            continue
        managed = set(resource["Properties"].get("ManagedPolicyArns", []))
        allowed = ALLOWED_MANAGED | TRIGGER_MANAGED.get(name.removesuffix("FunctionRole"), set())
        assert managed <= allowed, (name, managed - allowed)
        for statement in _statements(resource):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all(a != "*" and not a.endswith(":*") for a in actions), (name, actions)
            assert statement["Resource"] != "*", (name, statement)
            assert _resource_names(statement["Resource"]), (name, statement["Resource"])


def test_each_secret_is_readable_only_where_needed(translated):
    readers: dict[str, set[str]] = defaultdict(set)
    for function, grants in _grants(translated).items():
        for action, target in grants:
            if action == "secretsmanager:GetSecretValue":
                readers[target].add(function)
    assert readers == {
        "ClientApiKeysSecret": {"AuthorizerFunction"},
        "CursorKeySecret": {"ClientApiFunction"},  # seals page cursors
        "OpenAIApiKeySecret": {"AgentWorkerFunction"},
        "HandoverApiKeySecret": {"AgentWorkerFunction", "ApprovalCallbackFunction", "ReconcilerFunction"},
        # The reconciler too: it asks the next rung of an escalation ladder when it finds an expiry.
        "CallbackSigningKeySecret": {"AgentWorkerFunction", "ApprovalCallbackFunction", "ReconcilerFunction"},
        "WebhookSigningSecret": {"NotifierFunction"},
        # The functions that run tools: sign http requests, authorise to MCP servers.
        "ToolSigningSecret": {"AgentWorkerFunction", "ApprovalCallbackFunction", "ReconcilerFunction"},
        "ToolSecretArns": {"AgentWorkerFunction", "ApprovalCallbackFunction", "ReconcilerFunction"},
    }


def test_receipts_are_signed_only_by_the_functions_that_run_tools(translated):
    signers = {f for f, grants in _grants(translated).items() for action, target in grants if action == "kms:Sign"}
    assert signers == {"AgentWorkerFunction", "ApprovalCallbackFunction", "ReconcilerFunction"}
    for function, grants in _grants(translated).items():
        for action, target in grants:
            if action == "kms:Decrypt":  # secrets under a customer-managed key, only when one is given
                assert target == "SecretsKmsKeyArn", (function, action, target)
            elif action.startswith("kms:"):
                assert target in ("ReceiptSigningKey", "ReceiptKeyArn", "RetiredReceiptKeyArns"), (
                    function,
                    action,
                    target,
                )


def _used_as_granted(stack, recorded: dict[str, set[tuple[str, str]]]) -> dict[str, set[tuple[str, str]]]:
    """Map recorded physical names back to the template's logical ids."""
    from local.stack import CHECKPOINT_BUCKET

    physical = {v: k for k, v in stack.resources.refs.items()}
    physical[CHECKPOINT_BUCKET] = "CheckpointBucketName"  # the team's bucket, outside the template
    used: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for function, calls in recorded.items():
        for action, resource in calls:
            base, _, index = resource.partition("/index/")
            logical = physical.get(base) or physical.get(resource, resource)
            action = "sqs:SendMessage*" if action == "sqs:SendMessage" else action
            used[function].add((action, f"{logical}/index/{index}" if index else logical))
    return used


def _traffic(client, api: str) -> None:
    """Approve, deny with the callback lost, a busy conversation, a second turn, the audit trail."""
    approved = client.start("Issue a €340 refund to customer #4821.")["conversation_id"]
    [decision] = client.pending_decision_ids(approved)
    busy = client.post(
        f"/conversations/{approved}/messages", json={"message": "hi"}, headers={"Idempotency-Key": f"k-{api}"}
    )
    assert busy.status_code == 409  # the idempotency record of a failed request is deleted
    client.resolve(decision, "approve")
    client.wait_status(approved, "idle")
    denied = client.start("Issue a €340 refund to customer #4821.")["conversation_id"]
    [decision] = client.pending_decision_ids(denied)
    client.stack.handover.drop_callbacks = 1.0
    client.resolve(decision, "deny")
    client.stack.handover.drop_callbacks = 0.0
    client.stack.run_scheduled("ReconcilerFunction")
    client.wait_status(denied, "idle")
    client.post(f"/conversations/{approved}/messages", json={"message": "Please look up customer #1."})
    client.wait_status(approved, "idle")
    client.get_json("/approvals", params={"conversation_id": approved})
    client.get_json("/receipts")
    import requests

    requests.get(f"{client.api}/.well-known/jwks.json", timeout=10).raise_for_status()  # kms:GetPublicKey
    _a_standing_approval_is_made_used_listed_and_revoked(client)
    _a_client_is_notified_after_one_refusal(client)
    _worker_dies_and_the_reconciler_ends_the_turn(client)


def _a_standing_approval_is_made_used_listed_and_revoked(client) -> None:
    """The callback makes the grant from the answer, the worker finds it and takes a use, the client
    API lists and revokes it."""
    import uuid

    import requests

    customer = f"iam{uuid.uuid4().hex[:8]}"
    cid = client.start(f"Issue a €300 refund to customer #{customer}.")["conversation_id"]
    [decision] = client.pending_decision_ids(cid)
    requests.post(
        f"{client.stack.handover_url}/decisions/{decision}/resolve",
        json={"action": "approve", "response_data": {"allow_similar": {"hours": 1, "max_uses": 2}}},
        headers=client.handover_headers,
        timeout=30,
    ).raise_for_status()
    client.wait_status(cid, "idle")
    client.post(f"/conversations/{cid}/messages", json={"message": f"Refund €200 to customer #{customer}."})
    view = client.wait_status(cid, "idle")
    assert view["actions"][-1].get("grant"), view["actions"][-1]
    [grant] = [g for g in client.get_json("/grants")["grants"] if g["decision_id"] == decision]
    requests.delete(f"{client.api}/grants/{grant['grant_id']}", headers=client.headers, timeout=30).raise_for_status()


def _a_client_is_notified_after_one_refusal(client) -> None:
    """The notifier queues the event, the receiver refuses it once, the retry is delayed, then taken."""
    from local.receivers.webhook import WebhookReceiver

    receiver = WebhookReceiver(client.stack.config.webhook_secret).start()
    try:
        receiver.refuse_next(1)
        response = client.post(
            "/conversations", json={"message": "Please look up customer #4.", "notify_url": receiver.url}
        )
        cid = response.json()["conversation_id"]
        wait_for(lambda: any(e["conversation_id"] == cid for e in receiver.events()), timeout=30, what="the event")
    finally:
        receiver.stop()


def _a_quorum_is_decided_by_the_callback_and_by_the_reconciler(client, tmp_path) -> None:
    """A call two of three must approve: each answer reads the call's other approvals (in one batch),
    the first in the callback, the second in the reconciler (its callback lost)."""
    import json

    from signoff import runtime

    approvers = ["ana@example.com", "ben@example.com", "cai@example.com"]
    path = tmp_path / "quorum-policy.json"
    quorum = {"quorum": {"required": 2, "approvers": approvers}}
    path.write_text(json.dumps({"tools": {"delete_customer_data": quorum}}))
    with settings_changed(POLICY_FILE=str(path)):
        runtime.reset()
        cid = client.start("Delete customer #66's data")["conversation_id"]
        handover = client.stack.handover
        wait_for(lambda: client.get(cid)["status"] == "awaiting_approval", what="all three asked")
        decisions = [d["id"] for d in handover.decisions.values() if cid in d["context"]]
        assert len(decisions) == 3
        client.resolve(decisions[0], "approve")
        wait_for(lambda: client.stack.quiescent(), what="the first answer's callback")
        handover.drop_callbacks = 1.0
        client.resolve(decisions[1], "approve")
        handover.drop_callbacks = 0.0
        client.stack.run_scheduled("ReconcilerFunction")
        client.wait_status(cid, "idle")
    runtime.reset()


def _worker_dies_and_the_reconciler_ends_the_turn(client) -> None:
    """The worker dies right after claiming a turn; once its lease is over the reconciler fails the
    turn (a transaction that also writes the reply saying so) and settles its calls."""
    from local.drills.crash_matrix import MATRIX_SETTINGS
    from local.drills.crashes import CrashPlan

    stack = client.stack
    with settings_changed(**MATRIX_SETTINGS):
        plan = stack.crashes.arm(CrashPlan("AgentWorkerFunction", 1))
        try:
            cid = client.start("Please look up customer #3.")["conversation_id"]
            wait_for(lambda: plan.done.is_set(), what="the worker's crash")
        finally:
            stack.crashes.disarm()

        def failed():
            if stack.quiescent():
                stack.run_scheduled("ReconcilerFunction")
            return client.get(cid)["status"] == "failed"

        wait_for(failed, timeout=30, what="the reconciler to end the turn")


def test_what_each_function_does_is_exactly_what_it_may_do(stack, client, translated, tmp_path):
    from local.iam_audit import AwsCallRecorder
    from local.lambda_runtime import load_handler
    from signoff import runtime

    load_handler("functions/client_api/", "app.handler")
    recorder = AwsCallRecorder().install()
    runtime.reset()  # every client (the idempotency store's too) is built again, hooked
    try:
        for api in ("responses", "chat"):
            with settings_changed(AGENT_API=api):
                _traffic(client, api)
        _a_quorum_is_decided_by_the_callback_and_by_the_reconciler(client, tmp_path)
        # The agent API down for a moment: the worker hands the turn back and queues a retry.
        stack.openai.faults.fail_next = 3
        retried = client.start("Please look up customer #2.")["conversation_id"]
        client.wait_status(retried, "idle", timeout=30)
        client.post("/conversations", json={"message": "x"}, headers={"Idempotency-Key": "iam-1"})
    finally:
        recorder.uninstall()
        runtime.reset()
    used = _used_as_granted(stack, recorder.calls)
    grants = _grants(translated)
    for function, calls in used.items():
        missing = calls - grants[function]
        assert not missing, f"{function} does what its policy does not allow: {sorted(missing)}"
    for function, granted in grants.items():
        # Secret reads are cached process-wide here (one process plays every function), so which
        # function read a secret first is luck; secrets are checked statically above. What the user
        # lists (their lambda tools, MCP secrets, retired receipt keys) is checked statically too
        # (test_template_limits, and the kms test above), as is kms:Sign: the reconciler signs
        # receipts of scheduled calls only, which this traffic has not.
        # kms:Decrypt on SecretsKmsKeyArn is Secrets Manager's own call on the function's behalf, and
        # only when a team gives its key: checked statically (test_template_limits).
        static = ("ssm:", "secretsmanager:", "kms:Sign", "kms:Decrypt")
        listed = ("ToolFunctionArns", "ToolSecretArns", "RetiredReceiptKeyArns", "ReceiptKeyArn", "SecretsKmsKeyArn")
        # The stream trigger's on-failure destination: Lambda's event source mapping sends there with the
        # notifier's role, after a batch's last retry, which no healthy traffic reaches.
        by_lambda = {("sqs:SendMessage", "NotifyStreamFailureQueue")}
        unused = {g for g in granted if not g[0].startswith(static) and g[1] not in listed} - used.get(function, set())
        unused -= by_lambda
        assert not unused, f"{function} is allowed more than it uses: {sorted(unused)}"
