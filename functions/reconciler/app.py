"""Reconciler: on a schedule, settles approvals whose callback never came. One pass, no waiting."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from signoff import deadline, runtime
from signoff.logic.checkpoints import CheckpointReport
from signoff.observability import count, metrics, seconds, tracer

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics  # each pass: what the safety net had to do (a rising line means lost callbacks)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with deadline.invocation(context.get_remaining_time_in_millis()):
        report = runtime.reconciler().run()
        checkpointer = runtime.checkpointer()
        # Every pass appends the receipts queued since the last to their tenants' logs.
        logged = checkpointer.run() if checkpointer is not None else CheckpointReport()
    logger.info(
        "reconcile pass",
        extra={"checked": report.checked, "settled": report.settled, "receipts_checkpointed": logged.appended},
    )
    for name, value in (
        ("ApprovalsSettledByReconciler", report.settled),
        ("TurnsRedriven", report.turns_redriven),
        ("ScheduledCallsRun", report.scheduled_run),
        ("DecisionFetchErrors", report.errors),
        ("UnreadableDecisionsSettled", report.unreadable_settled),
        ("MissingApprovalsSettled", report.missing_approvals_settled),
        ("ReceiptsCheckpointed", logged.appended),
        ("CheckpointExportsFailed", logged.export_failures),  # alarmed on (CheckpointExportAlarm)
    ):
        count(name, value)
    # Rising means the safety net falls behind (or something is stuck): alarmed on in the template.
    seconds("OldestDueAgeSeconds", report.oldest_due_age_seconds)
    return {**asdict(report), "receipts_checkpointed": logged.appended}
