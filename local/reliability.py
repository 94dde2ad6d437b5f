"""`make reliability`: drills that attack Signoff's promise, and a table that says how it held.

The promise: no action without a verified approval, none twice, no conversation lost, no way
in without a key. Each scenario runs real traffic through the embedded stack (HTTP API, the
Handover- and OpenAI-compatible servers, moto), with faults injected where the issue says:
duplicate and concurrent callbacks, redelivered queue messages, dropped callbacks, upstream
429/500/slow answers, DynamoDB throttling, forged tokens and bad requests. Crashes are drilled
by the crash matrix (``local.drills.crash_matrix``): every flow killed right after each of its
AWS writes, on every agent API.

Afterwards the table is read back: effects (with how often each tool ran), verdicts, the
requests the OpenAI server received, and every conversation's last message. ``make test``
runs the same scenarios at a small size (and a slice of the matrix); ``make reliability`` runs
them full and writes ``reliability.json``.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from local.drills.crash_matrix import CrashMatrix
from local.evidence import TimedOut, effect_call, effects, local_client, submission_counts
from local.evidence import wait_for as _wait_for

SEED = "Issue a €340 refund to customer #4821."
TWO = "Refund €340 to customer #4821 and €120 to customer #4822."


class DrillFailed(AssertionError):
    pass


@dataclass
class ScenarioResult:
    name: str
    conversations: int = 0
    callbacks_sent: int = 0
    forged_requests: int = 0
    faults_injected: int = 0
    seconds: float = 0.0
    ok: bool = True
    notes: str = ""


@dataclass
class Report:
    scenarios: list[ScenarioResult] = field(default_factory=list)
    callbacks_sent: int = 0
    forged_requests: int = 0
    faults_injected: int = 0
    actions_executed: int = 0
    duplicate_executions: int = 0
    duplicate_submissions: int = 0
    unapproved_executions: int = 0
    over_limit_executions: int = 0  # ungated amounts past a budget's limit
    conversations: int = 0
    conversations_without_reply: int = 0
    dead_letters_seen: int = 0

    def table(self) -> str:
        head = f"{'scenario':<34} {'convs':>5} {'callbacks':>9} {'forged':>6} {'faults':>6} {'secs':>6}  result"
        lines = [head, "-" * len(head)]
        for s in self.scenarios:
            result = "ok" if s.ok else f"FAILED {s.notes}"
            lines.append(
                f"{s.name:<34} {s.conversations:>5} {s.callbacks_sent:>9} {s.forged_requests:>6} "
                f"{s.faults_injected:>6} {s.seconds:>6.1f}  {result}"
            )
        lines += [
            "-" * len(head),
            f"conversations: {self.conversations}   callbacks sent: {self.callbacks_sent}   "
            f"forged requests tried: {self.forged_requests}   faults injected: {self.faults_injected}",
            f"actions executed: {self.actions_executed}   duplicate executions: {self.duplicate_executions} (must be 0)"
            f"   duplicate submissions: {self.duplicate_submissions} (must be 0)",
            f"unapproved executions: {self.unapproved_executions} (must be 0)   "
            f"conversations without a reply: {self.conversations_without_reply} (must be 0)   "
            f"dead letters seen: {self.dead_letters_seen}",
            f"over-limit executions: {self.over_limit_executions} (must be 0)",
        ]
        return "\n".join(lines)

    @property
    def held(self) -> bool:
        return (
            all(s.ok for s in self.scenarios)
            and self.duplicate_executions == 0
            and self.duplicate_submissions == 0
            and self.unapproved_executions == 0
            and self.over_limit_executions == 0
            and self.conversations_without_reply == 0
        )


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    try:
        return _wait_for(condition, timeout=timeout, what=what)
    except TimedOut as exc:
        raise DrillFailed(str(exc)) from exc


class Drills:
    """The scenarios, at ``scale`` (1 for `make test`, larger for `make reliability`)."""

    def __init__(self, stack, scale: int = 1):
        self.stack = stack
        self.scale = scale
        self.api = stack.api_url
        self.headers = {"Authorization": f"Bearer {stack.config.api_key}"}
        self.handover_headers = {"Authorization": f"Bearer {stack.config.handover_local_key}"}
        self.report = Report()
        self.conversations: list[str] = []
        self.http = requests.Session()
        # Drills post from up to 16 threads at once: room for each (urllib3's default pool keeps 10
        # and warns "Connection pool is full" for every connection past them).
        self.http.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=32))

    # -- plumbing ------------------------------------------------------------------------
    def start(self, message: str = SEED) -> str:
        response = self.http.post(
            f"{self.api}/conversations", json={"message": message}, headers=self.headers, timeout=30
        )
        if response.status_code != 202:
            raise DrillFailed(f"POST /conversations answered {response.status_code}: {response.text[:200]}")
        cid = response.json()["conversation_id"]
        self.conversations.append(cid)
        return cid

    def view(self, cid: str) -> dict[str, Any]:
        return self.http.get(f"{self.api}/conversations/{cid}", headers=self.headers, timeout=30).json()

    def wait_status(self, cid: str, *statuses: str, timeout: float = 60.0) -> dict[str, Any]:
        return wait_for(lambda: (v := self.view(cid))["status"] in statuses and v, timeout, f"{cid} {statuses}")

    def wait_with_schedule(self, cid: str, *statuses: str, timeout: float = 60.0, every: float = 5.0) -> dict:
        """Wait as a deployment would: the reconciler runs on its schedule meanwhile (every ``every``
        seconds here), since an answer whose callback failed is only ever fetched by it."""
        last_pass = [time.monotonic()]

        def reached():
            view = self.view(cid)
            if view["status"] in statuses:
                return view
            if time.monotonic() - last_pass[0] >= every:
                self.reconcile()
                last_pass[0] = time.monotonic()
            return None

        return wait_for(reached, timeout, f"{cid} {statuses}")

    def decisions(self, cid: str, count: int = 1) -> list[str]:
        def ready():
            view = self.view(cid)
            ids = [
                a["decision"]["id"] for a in view["actions"] if a["decision"] and a["decision"]["status"] == "pending"
            ]
            return ids if view["status"] == "awaiting_approval" and len(ids) >= count else None

        return wait_for(ready, 60, f"{count} decision(s) for {cid}")

    def resolve(self, decision_id: str, action: str = "approve", notes: str | None = None) -> None:
        """The approver answers (and tries again, as a person would, when the service hiccups)."""
        body = {"action": action, **({"notes": notes} if notes else {})}
        url = f"{self.stack.handover_url}/decisions/{decision_id}/resolve"
        for _ in range(20):
            response = self.http.post(url, json=body, headers=self.handover_headers, timeout=30)
            if response.status_code == 200:
                return
            if response.status_code not in (429, 500, 502, 503):
                break
        raise DrillFailed(f"resolve answered {response.status_code}")

    def callback_url(self, decision_id: str) -> str:
        def find():
            for entry in self.stack.handover.callbacks.entries():
                if entry["body"]["decision_id"] == decision_id:
                    return entry["body"]["url"]
            return None

        return wait_for(find, 30, f"callback of {decision_id}")

    def reconcile(self) -> dict[str, Any]:
        return self.stack.run_scheduled("ReconcilerFunction") or {}

    def _table_name(self) -> str:
        return self.stack.resources.refs["SignoffTable"]

    def expire_leases(self, cid: str) -> None:
        """Let a running turn's lease run out now, as it would after a dead worker's timeout."""
        ddb = local_client("dynamodb")
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        items = ddb.query(
            TableName=self._table_name(),
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": {"S": f"CONV#{cid}"}, ":t": {"S": "TURN#"}},
            ConsistentRead=True,
        )["Items"]
        for item in items:
            if item.get("status", {}).get("S") == "running":
                ddb.update_item(
                    TableName=self._table_name(),
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET due_bucket = :b, due_at = :past",
                    ExpressionAttributeValues={":b": {"S": "DUE"}, ":past": {"S": past}},
                )

    def run(self, name: str, scenario: Callable[[ScenarioResult], None]) -> ScenarioResult:
        result = ScenarioResult(name)
        started = time.monotonic()
        before = len(self.conversations)
        try:
            scenario(result)
        except (DrillFailed, AssertionError) as exc:
            result.ok, result.notes = False, str(exc)[:200]
        result.seconds = time.monotonic() - started
        result.conversations = len(self.conversations) - before
        self.report.scenarios.append(result)
        self.report.callbacks_sent += result.callbacks_sent
        self.report.forged_requests += result.forged_requests
        self.report.faults_injected += result.faults_injected
        return result

    # -- scenarios: exactly once ------------------------------------------------------------
    def concurrent_duplicate_callbacks(self, r: ScenarioResult, copies: int = 50) -> None:
        """Handover sends 50 concurrent copies of one valid callback the moment the approver answers;
        then 50 more arrive late, after the turn finished."""
        handover = self.stack.handover
        for _ in range(self.scale):
            cid = self.start()
            [decision] = self.decisions(cid)
            handover.duplicate_callbacks = copies
            try:
                self.resolve(decision)
            finally:
                handover.duplicate_callbacks = 1
            self.wait_status(cid, "idle")
            url = self.callback_url(decision)
            with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
                codes = list(
                    pool.map(lambda _, u=url: self.http.post(u, json={}, timeout=30).status_code, range(copies))
                )
            if set(codes) - {200}:
                raise DrillFailed(f"late callback answers {sorted(set(codes))}")
            fired = wait_for(
                lambda d=decision: (
                    n
                    if (n := sum(1 for e in handover.callbacks.entries() if e["body"]["decision_id"] == d)) >= copies
                    else None
                ),
                30,
                "the callbacks",
            )
            r.callbacks_sent += fired + copies

    def simultaneous_parallel_callbacks(self, r: ScenarioResult) -> None:
        """The two calls of one run approved at the same moment: their callbacks race."""
        for _ in range(self.scale):
            cid = self.start(TWO)
            ids = self.decisions(cid, 2)
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(self.resolve, ids))
            r.callbacks_sent += 2
            self.wait_status(cid, "idle")

    def redelivered_messages(self, r: ScenarioResult) -> None:
        """Every work message delivered twice, at once (SQS is at-least-once)."""
        self.stack.duplicate_deliveries = True
        try:
            for _ in range(self.scale):
                cid = self.start(TWO)
                ids = self.decisions(cid, 2)
                for decision in ids:
                    self.resolve(decision)
                r.callbacks_sent += 2
                self.wait_status(cid, "idle")
                ungated = self.start("Please look up customer #55.")
                self.wait_status(ungated, "idle")
        finally:
            self.stack.duplicate_deliveries = False

    # -- scenarios: lost, late and stray callbacks --------------------------------------------
    def dropped_callbacks(self, r: ScenarioResult) -> None:
        """Every callback lost: the reconciler's pass settles them all."""
        handover = self.stack.handover
        handover.drop_callbacks = 1.0
        try:
            cids = [self.start() for _ in range(2 * self.scale)]
            for n, cid in enumerate(cids):
                [decision] = self.decisions(cid)
                self.resolve(decision, "approve" if n % 2 else "deny")
        finally:
            handover.drop_callbacks = 0.0
        report = self.reconcile()
        if report.get("settled", 0) < len(cids):
            raise DrillFailed(f"one reconciler pass settled {report.get('settled')} of {len(cids)}")
        for cid in cids:
            self.wait_status(cid, "idle")

    def stray_callbacks(self, r: ScenarioResult) -> None:
        """Callbacks for a settled decision, an unknown approval, and after the run finished."""
        from signoff import runtime
        from signoff.domain.tokens import issue_token

        cid = self.start()
        [decision] = self.decisions(cid)
        self.resolve(decision)
        r.callbacks_sent += 1
        self.wait_status(cid, "idle")
        url = self.callback_url(decision)
        for _ in range(3 * self.scale):
            if self.http.post(url, json={}, timeout=30).status_code != 200:
                raise DrillFailed("a late callback for a finished run was not a 2xx")
            r.callbacks_sent += 1
        unknown = issue_token(runtime.signing_key(), secrets.token_hex(16))
        if self.http.post(f"{self.api}/callbacks/handover/{unknown}", json={}, timeout=30).status_code != 404:
            raise DrillFailed("a genuine token for an unknown approval was not a 404")
        r.callbacks_sent += 1

    # -- scenarios: budgets ---------------------------------------------------------------------
    def budget_race(self, r: ScenarioResult) -> None:
        """Many conversations at once each ask a €30 refund for one customer: the shipped budget
        (100 per customer and currency per day) lets three run without sign-off, never a fourth."""
        customer = f"race{secrets.token_hex(4)}"
        ask = f"Issue a €30 refund to customer #{customer}."
        count = 8 * self.scale
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(count, 20)) as pool:
            cids = list(pool.map(lambda _: self.start(ask), range(count)))
        ran = 0.0
        for cid in cids:
            view = self.wait_status(cid, "awaiting_approval", "idle", timeout=120)
            ungated = [a for a in view["actions"] if not a["gated"]]
            ran += sum(30.0 for a in ungated if (a["execution"] or {}).get("status") == "executed")
            if view["status"] == "awaiting_approval":
                for decision in self.decisions(cid):
                    self.resolve(decision, "deny")
                    r.callbacks_sent += 1
        for cid in cids:
            self.wait_status(cid, "idle", timeout=120)
        self.report.over_limit_executions += int(max(0.0, ran - 100.0) // 30)
        if ran != 90.0:
            raise DrillFailed(f"{ran} ran without sign-off; the budget allows exactly 90 of 100 in €30 steps")

    # -- scenarios: faults upstream ----------------------------------------------------------
    def upstream_faults(self, r: ScenarioResult) -> None:
        """OpenAI and Handover answer 429/500 (and slowly) at random; DynamoDB throttles."""
        openai, handover, throttle = self.stack.openai.faults, self.stack.handover.faults, self.stack.throttle
        before = openai.injected + handover.injected + throttle.injected
        openai.fail_rate, handover.fail_rate, throttle.rate = 0.15, 0.15, 0.05
        # Some Handover answers come after the client's read timeout (1 s in the drills), on create and get.
        handover.slow_rate, handover.slow_seconds = 0.1, 1.5
        try:
            cids = [self.start() for _ in range(2 * self.scale)]
            cids.append(self.start("Please look up customer #77."))
            for cid in cids[:-1]:
                view = self.wait_status(cid, "awaiting_approval", "idle", timeout=120)
                if view["status"] == "awaiting_approval":
                    [decision] = self.decisions(cid)
                    self.resolve(decision)
                    r.callbacks_sent += 1
            for cid in cids:
                view = self.wait_with_schedule(cid, "idle", "failed", timeout=180)
                if view["status"] == "failed":
                    raise DrillFailed(f"{cid} failed under faults")
        finally:
            openai.fail_rate, handover.fail_rate, throttle.rate = 0.0, 0.0, 0.0
            handover.slow_rate = 0.0
        # Answers lost to faults are still fetched by the safety net.
        self.reconcile()
        r.faults_injected = openai.injected + handover.injected + throttle.injected - before

    def handover_down(self, r: ScenarioResult) -> None:
        """No decision can be created: nothing runs, and the model is told."""
        self.stack.handover.fail_next(1000, status=503)
        try:
            cid = self.start()
            view = self.wait_status(cid, "idle", timeout=60)
        finally:
            self.stack.handover.fail_next(0)
        r.faults_injected += 4
        if view["actions"][0]["execution"]["status"] != "not_executed":
            raise DrillFailed("a call ran without a decision")

    def poison_message(self, r: ScenarioResult) -> None:
        """A message the worker cannot read goes to the dead-letter queue, where it can be seen."""
        sqs = local_client("sqs")
        refs = self.stack.resources.refs
        sqs.send_message(QueueUrl=refs["WorkQueue"], MessageBody='{"kind": "format_disk"}')

        def dead_letters() -> int:
            attrs = sqs.get_queue_attributes(
                QueueUrl=refs["WorkDeadLetterQueue"], AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            return int(attrs["ApproximateNumberOfMessages"])

        wait_for(dead_letters, 90, "the poison message in the DLQ")
        self.report.dead_letters_seen = dead_letters()

    # -- scenarios: forgeries and bad input --------------------------------------------------
    def forgeries(self, r: ScenarioResult) -> None:
        from signoff import runtime
        from signoff.domain.tokens import issue_token

        cid = self.start()
        [decision] = self.decisions(cid)
        before = len(self.stack.handover.log.entries())
        approval_id = self._approval_ids(cid)[0]
        genuine = issue_token(runtime.signing_key(), approval_id)
        forged = [
            "v1." + secrets.token_hex(16) + "." + secrets.token_urlsafe(32)[:43],
            f"v1.{approval_id}." + secrets.token_urlsafe(32)[:43],
            genuine[:-3],
            issue_token(b"not our key", approval_id),
            "v1." + secrets.token_hex(200),
            "../../admin",
        ] * (5 * self.scale)
        for token in forged:
            code = self.http.post(
                f"{self.api}/callbacks/handover/{token}", json={"status": "approved"}, timeout=30
            ).status_code
            if code not in (401, 404):
                raise DrillFailed(f"forged token answered {code}")
        keys = [None, "Bearer nope", "Basic x", f"Bearer {self.stack.config.api_key}x"] * (5 * self.scale)
        for key in keys:
            headers = {"Authorization": key} if key else {}
            code = self.http.post(
                f"{self.api}/conversations", json={"message": "hi"}, headers=headers, timeout=30
            ).status_code
            if code not in (401, 403):
                raise DrillFailed(f"a request without a valid key answered {code}")
        bodies = [b"{", b"[]", b'{"message": 5}', b'{"message": "x", "extra": 1}', b"x" * 300_000] * self.scale
        for body in bodies:
            code = self.http.post(f"{self.api}/conversations", data=body, headers=self.headers, timeout=30).status_code
            if not 400 <= code < 500:
                raise DrillFailed(f"bad input answered {code}")
        r.forged_requests = len(forged) + len(keys) + len(bodies)
        if len(self.stack.handover.log.entries()) != before:
            raise DrillFailed("a forged callback reached Handover")
        if self.view(cid)["status"] != "awaiting_approval":
            raise DrillFailed("a forged callback changed the conversation")
        self.resolve(decision, "deny")
        self.wait_status(cid, "idle")

    # -- the verdict -------------------------------------------------------------------------
    def _approval_ids(self, cid: str) -> list[str]:
        from signoff import runtime

        return [i for a in runtime.table().load_conversation(cid)[2] for i in a.approval_ids]

    def _effects(self, cid: str) -> list[dict[str, Any]]:
        return effects(self._table_name(), cid)

    def _executions(self, cid: str) -> int:
        return sum(1 for a in self.view(cid)["actions"] if (a["execution"] or {}).get("status") == "executed")

    def _submitted(self, cid: str) -> bool:
        call_ids = {a["call_id"] for a in self.view(cid)["actions"]}
        return any(n for n in self._submission_counts(call_ids).values())

    def _submission_counts(self, call_ids: set[str]) -> dict[str, int]:
        return submission_counts(self.stack.openai.log.entries(), call_ids)

    def verify(self) -> Report:
        """Read everything back and count what must be zero."""
        from signoff import runtime

        report = self.report
        table = runtime.table()
        for cid in self.conversations:
            report.conversations += 1
            loaded = table.load_conversation(cid)
            if loaded is None:
                report.conversations_without_reply += 1
                continue
            conversation, messages, actions = loaded
            if conversation.status.value != "idle" or not messages or messages[-1].role != "assistant":
                report.conversations_without_reply += 1
            effects = {effect_call(e): e for e in self._effects(cid)}
            for action in actions:
                effect = effects.get((action.turn_id, action.call_id))
                if action.execution and action.execution.status.value == "executed":
                    report.actions_executed += 1
                if effect is not None:
                    report.duplicate_executions += max(0, int(effect.get("invocations", 1)) - 1)
                    allowed = action.grant is not None or (
                        action.verdict is not None and action.verdict.permits_execution
                    )
                    if action.gated and not allowed:
                        report.unapproved_executions += 1
            counts = self._submission_counts({a.call_id for a in actions})
            report.duplicate_submissions += sum(max(0, n - 1) for n in counts.values())
        return report


SCENARIOS: list[tuple[str, str]] = [
    ("50 concurrent copies of a callback", "concurrent_duplicate_callbacks"),
    ("parallel calls' callbacks at once", "simultaneous_parallel_callbacks"),
    ("every queue message delivered twice", "redelivered_messages"),
    ("all callbacks dropped", "dropped_callbacks"),
    ("late and stray callbacks", "stray_callbacks"),
    ("upstream 429/500/slow, DB throttling", "upstream_faults"),
    ("Handover down on create", "handover_down"),
    ("poison message to the DLQ", "poison_message"),
    ("forged tokens, keys and bodies", "forgeries"),
    ("conversations racing one budget", "budget_race"),
]


def run_drills(stack, scale: int) -> Report:
    drills = Drills(stack, scale)
    for name, method in SCENARIOS:
        drills.run(name, getattr(drills, method))
    return drills.verify()


def main() -> int:
    from local.stack import EmbeddedStack, StackConfig

    scale = int(os.environ.get("SIGNOFF_RELIABILITY_SCALE", "5"))
    config = StackConfig.from_env()
    config.on_free_ports()
    config.reconcile_interval_seconds = 3600  # the drills run the reconciler when they mean to
    config.reconcile_after_seconds = 0
    config.stall_after_seconds = 0
    config.queue_visibility_seconds = 2
    config.extra_env = {"POWERTOOLS_LOG_LEVEL": "ERROR", "OPENAI_TIMEOUT_SECONDS": "5", "HANDOVER_TIMEOUT_SECONDS": "1"}
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    stack = EmbeddedStack(config).start()
    try:
        report = run_drills(stack, scale)
        matrix = CrashMatrix(stack).run() if os.environ.get("SIGNOFF_CRASH_MATRIX", "1") != "0" else None
    finally:
        stack.stop()
    print(report.table())
    held = report.held
    result: dict[str, Any] = {"scale": scale, **asdict(report)}
    if matrix is not None:
        print(matrix.line())
        for failure in matrix.failures():
            print(f"  FAILED {failure.flow} [{failure.backend}] after write {failure.after_writes}: {failure.notes}")
        result["crash_matrix"] = matrix.as_json()
        held = held and not matrix.failures()
    out = Path(os.environ.get("SIGNOFF_RELIABILITY_OUT", "reliability.json"))
    out.write_text(json.dumps({**result, "held": held}, indent=2))
    print(f"\nwritten to {out}; the promise {'held' if held else 'DID NOT HOLD'}")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
