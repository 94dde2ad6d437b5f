"""What 1,000 approved actions cost on AWS, priced from the counts ``requests.py`` measured, beside
the anchors a user compares with. Every price is a constant here, with its date: check them
against the pricing pages before relying on a figure."""

from __future__ import annotations

from typing import Any

PRICES_AS_OF = "2026-11, us-east-1, on-demand list prices"
DYNAMODB_PER_MILLION_WRU = 0.625
DYNAMODB_PER_MILLION_RRU = 0.125
SQS_PER_MILLION = 0.40
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND = 0.0000166667  # x86_64
LAMBDA_PER_GB_SECOND_ARM64 = 0.0000133334
HTTP_API_PER_MILLION = 1.00
KMS_PER_10K = 0.03
STEP_FUNCTIONS_PER_1K_TRANSITIONS = 0.025
DURABLE_FUNCTIONS_PER_MILLION_OPERATIONS = 8.00

# Stated assumptions (not measured here).
MODEL_SECONDS_PER_CALL = 2.0  # the worker waits this long on each agent API call
MODEL_CALLS_PER_APPROVED_ACTION = 2  # the turn's start, and its continuation after the verdict
SEED_APPROVAL_DELAY_SECONDS = 120  # the seed guide's design holds a function this long per approval
SEED_MEMORY_GB = 0.5
SEED_POLL_INTERVAL_SECONDS = 5
STEP_FUNCTIONS_TRANSITIONS = 6  # start, ask, wait for the task token, choice, execute, end
DURABLE_OPERATIONS = 4  # invoke, ask (a step), wait for the callback, execute (a step)


def signoff_per_1000(
    measured: dict[str, Any], memory_mb: dict[str, int], architecture: str = "x86_64"
) -> dict[str, float]:
    """Priced per 1,000 approved actions from the measured counts, Lambda at the template's
    memory sizes and instruction set."""
    per_gb_second = LAMBDA_PER_GB_SECOND_ARM64 if architecture == "arm64" else LAMBDA_PER_GB_SECOND
    wru = measured["write_units_per_approved_action"]  # from each written item's size, twice in a transaction
    rru = measured["read_units_per_approved_action"]  # strongly consistent: an item (up to 4 KB) each
    sqs = 3 * measured["sqs_requests_per_approved_action"]  # send, and the trigger's receive and delete
    invocations = measured["invocations_per_approved_action"]
    gb_seconds = sum(
        count * measured["median_invocation_ms"][fn] / 1000 * memory_mb.get(fn, 512) / 1024
        for fn, count in invocations.items()
    )
    model_gb_seconds = (
        MODEL_SECONDS_PER_CALL * MODEL_CALLS_PER_APPROVED_ACTION * memory_mb.get("AgentWorkerFunction", 1024) / 1024
    )
    api_requests = invocations.get("ClientApiFunction", 0) + invocations.get("ApprovalCallbackFunction", 0)
    parts = {
        "dynamodb": (wru * DYNAMODB_PER_MILLION_WRU + rru * DYNAMODB_PER_MILLION_RRU) / 1000,
        "sqs": sqs * SQS_PER_MILLION / 1000,
        "lambda_requests": sum(invocations.values()) * LAMBDA_PER_MILLION_REQUESTS / 1000,
        "lambda_compute": gb_seconds * per_gb_second * 1000,
        "lambda_model_wait": model_gb_seconds * per_gb_second * 1000,
        "api_gateway": api_requests * HTTP_API_PER_MILLION / 1000,
        "kms": measured["kms_requests_per_approved_action"] * KMS_PER_10K / 10,
    }
    return {key: round(value, 6) for key, value in parts.items()} | {"total": round(sum(parts.values()), 6)}


def anchors_per_1000() -> dict[str, float]:
    seed_compute = SEED_APPROVAL_DELAY_SECONDS * SEED_MEMORY_GB * LAMBDA_PER_GB_SECOND * 1000
    return {
        "seed_polling_design": round(seed_compute + LAMBDA_PER_MILLION_REQUESTS / 1000, 6),
        "step_functions_standard": round(STEP_FUNCTIONS_TRANSITIONS * STEP_FUNCTIONS_PER_1K_TRANSITIONS, 6),
        "lambda_durable_functions": round(DURABLE_OPERATIONS * DURABLE_FUNCTIONS_PER_MILLION_OPERATIONS / 1000, 6),
    }
