"""One embedded stack per test session: moto's server, both emulators and the gateway on loopback.

Everything talks real HTTP: boto3 to moto, the openai SDK to the OpenAI-compatible server,
requests to the Handover-compatible server, and the Handover server's callbacks to the gateway.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
# As in Lambda, where the template sets it before any import: a use case's child logger made at
# test collection must name the same service as the handlers' logger, or its records go nowhere.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "signoff")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Signoff")  # as the template sets it, before any Metrics()

from local.stack import EmbeddedStack, StackConfig
from tests.support import SignoffClient


@pytest.fixture(scope="session")
def stack():
    config = StackConfig(
        # The tests run the reconciler themselves, so its schedule stays out of the way.
        reconcile_interval_seconds=3600,
        reconcile_after_seconds=0,
        stall_after_seconds=0,
        queue_visibility_seconds=2,
        extra_env={"HANDOVER_TIMEOUT_SECONDS": "1"},  # so the drills' slow Handover answers time out
        tenant_keys="acme:key-acme-1,acme:key-acme-2,globex:key-globex,audit:key-audit",  # isolation, tampering
    ).on_free_ports()
    running = EmbeddedStack(config).start()
    yield running
    running.stop()


@pytest.fixture
def client(stack) -> SignoffClient:
    return SignoffClient(stack)


# The isolation tests' tenants (the session stack's keys above).
@pytest.fixture
def acme(stack) -> SignoffClient:
    return SignoffClient(stack, "key-acme-1")


@pytest.fixture
def acme_again(stack) -> SignoffClient:
    return SignoffClient(stack, "key-acme-2")


@pytest.fixture
def globex(stack) -> SignoffClient:
    return SignoffClient(stack, "key-globex")
