"""The bench's price arithmetic against a hand calculation (the counts themselves come from the stack)."""

import pytest

from local.bench.costs import anchors_per_1000, signoff_per_1000

MEASURED = {
    "write_units_per_approved_action": 10,
    "read_units_per_approved_action": 6,
    "sqs_requests_per_approved_action": 2,
    "invocations_per_approved_action": {"AgentWorkerFunction": 2, "ClientApiFunction": 1},
    "median_invocation_ms": {"AgentWorkerFunction": 100.0, "ClientApiFunction": 50.0},
    "kms_requests_per_approved_action": 1,
}


def test_signoff_is_priced_from_the_counts():
    costs = signoff_per_1000(MEASURED, {"AgentWorkerFunction": 1024, "ClientApiFunction": 512})
    # DynamoDB: 10 WRU at $0.625/M, 6 RRU at $0.125/M, per 1,000
    assert costs["dynamodb"] == pytest.approx((10 * 0.625 + 6 * 0.125) / 1000)
    assert costs["sqs"] == pytest.approx(6 * 0.40 / 1000)  # send, receive, delete
    assert costs["lambda_requests"] == pytest.approx(3 * 0.20 / 1000)
    # 2 x 0.1 s x 1 GB + 1 x 0.05 s x 0.5 GB = 0.225 GB-s per action
    assert costs["lambda_compute"] == pytest.approx(0.225 * 0.0000166667 * 1000, rel=1e-4)
    assert costs["lambda_model_wait"] == pytest.approx(2.0 * 2 * 1.0 * 0.0000166667 * 1000, rel=1e-4)
    assert costs["api_gateway"] == pytest.approx(1 * 1.00 / 1000)
    assert costs["kms"] == pytest.approx(0.03 / 10)
    parts = [v for k, v in costs.items() if k != "total"]
    assert costs["total"] == pytest.approx(sum(parts), abs=1e-5)


def test_the_anchors_are_what_their_assumptions_say():
    anchors = anchors_per_1000()
    assert anchors["seed_polling_design"] == pytest.approx(120 * 0.5 * 0.0000166667 * 1000 + 0.0002, rel=1e-4)
    assert anchors["step_functions_standard"] == pytest.approx(6 * 0.025)
    assert anchors["lambda_durable_functions"] == pytest.approx(4 * 8 / 1000)


def test_arm64_lambda_is_priced_at_its_own_rate():
    x86 = signoff_per_1000(MEASURED, {"AgentWorkerFunction": 1024, "ClientApiFunction": 512})
    arm = signoff_per_1000(MEASURED, {"AgentWorkerFunction": 1024, "ClientApiFunction": 512}, "arm64")
    assert arm["lambda_compute"] == pytest.approx(0.225 * 0.0000133334 * 1000, rel=1e-4)
    assert arm["lambda_compute"] < x86["lambda_compute"] and arm["dynamodb"] == x86["dynamodb"]


def test_a_function_that_mostly_waits_gets_the_smallest_size_that_holds_it():
    from local.bench.memory import predicted_ms, right_size

    # 40 ms of which 4 ms CPU: at 256 MB the CPU part takes 4 x 1769/256 = 27.6 ms → 63.6 ms
    assert predicted_ms(40, 4, 256) == pytest.approx(36 + 4 * 1769 / 256)
    assert predicted_ms(40, 4, 1769) == pytest.approx(40)
    sized = right_size(wall_ms=40, cpu_ms=4, rss_mb=100)
    assert 128 not in sized["predicted_ms"]  # 100 MB resident needs 200 with the headroom
    # 256: 63.6 ms, over 1.25 x 40; 512: 49.8 ms, within, and 0.0243 GB-s against 1,024's 0.0429
    assert sized["chosen_mb"] == 512


def test_a_function_that_waits_on_io_only_is_sized_by_its_memory():
    from local.bench.memory import right_size

    assert right_size(wall_ms=2000, cpu_ms=1, rss_mb=60)["chosen_mb"] == 128
    assert right_size(wall_ms=2000, cpu_ms=1, rss_mb=130)["chosen_mb"] == 512  # 2 x 130 > 256


def test_the_worker_is_sized_with_the_model_wait_it_spends_most_of_its_time_in():
    from local.bench.memory import memory_sizes

    measured = {
        "invocations_per_approved_action": {"AgentWorkerFunction": 2, "ApprovalCallbackFunction": 1},
        "median_invocation_ms": {"AgentWorkerFunction": 55.0, "ApprovalCallbackFunction": 43.0},
        "median_invocation_cpu_ms": {"AgentWorkerFunction": 18.0, "ApprovalCallbackFunction": 8.0},
    }
    imports = {"AgentWorkerFunction": {"rss_mb": 71}, "ApprovalCallbackFunction": {"rss_mb": 70}}
    sizes = memory_sizes(measured, imports)
    # 2 model calls of 2 s over 2 invocations: 2,055 ms each, of which 18 ms CPU; 256 MB adds 106 ms
    assert sizes["AgentWorkerFunction"]["wall_ms"] == 2055.0 and sizes["AgentWorkerFunction"]["chosen_mb"] == 256
    assert sizes["ApprovalCallbackFunction"]["chosen_mb"] == 512  # 256 MB: 35 + 55 ms, over 43 + 20


def test_an_item_is_measured_as_dynamodb_bills_it():
    from local.bench.requests import item_size

    # names 2 + 2 + 3 + 1 bytes; "CONV#x" 6, "META" 4, 12345 (5 digits) 4, True 1, ["ab"] 3 + 1 + 2
    item = {"pk": {"S": "CONV#x"}, "sk": {"S": "META"}, "n": {"N": "12345"}, "ok": {"BOOL": True}}
    assert item_size(item) == 2 + 6 + 2 + 4 + 1 + 4 + 2 + 1
    assert item_size({"l": {"L": [{"S": "ab"}]}}) == 1 + 3 + 1 + 2
    assert item_size({"s": {"S": "é"}}) == 1 + 2  # UTF-8 bytes
