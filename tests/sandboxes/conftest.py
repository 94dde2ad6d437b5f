"""The stack of this tier: each function in a process of its own, holding exactly the environment the
template gives it (local.sandboxes). Run in a pytest process of its own (`make test` does): the
environment of the process is the stack's, and the other tiers' stack would share it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "signoff")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Signoff")

from local.catalogs.example import example_policy
from local.stack import EmbeddedStack, StackConfig
from tests.support import SignoffClient

LADDER = [{"approver": "lead@example.com", "after_minutes": 30}]


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    policy = example_policy()
    policy["tools"]["delete_customer_data"] = {"approval": "always", "urgency": "critical", "escalation": LADDER}
    path: Path = tmp_path_factory.mktemp("policy") / "policy.json"
    path.write_text(json.dumps(policy))
    config = StackConfig(
        reconcile_interval_seconds=3600,  # the tests run the reconciler themselves
        reconcile_after_seconds=0,
        stall_after_seconds=0,
        queue_visibility_seconds=2,
        extra_env={"POLICY_FILE": str(path)},
        sandboxes=True,
    ).on_free_ports()
    running = EmbeddedStack(config).start()
    yield running
    running.stop()


@pytest.fixture
def client(stack) -> SignoffClient:
    return SignoffClient(stack)
