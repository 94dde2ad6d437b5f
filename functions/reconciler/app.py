"""Reconciler: on a schedule, settles approvals whose callback never came. One pass, no waiting."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from signoff import runtime

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = runtime.reconciler().run_once()
    logger.info("reconcile pass", extra={"checked": report.checked, "settled": report.settled})
    return asdict(report)
