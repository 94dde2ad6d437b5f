"""Checkpoints over the receipt log, in memory: what a verifier with only the JWKS catches."""

from __future__ import annotations

import json
import uuid

import pytest

from signoff.domain.merkle import leaf_hash, root_of
from signoff.domain.models import Action, Execution, ExecutionStatus
from signoff.domain.receipts import (
    CHECKPOINT_TYPE,
    GENESIS,
    b64url,
    checkpoint_claims,
    compact,
    decode,
    inclusion_problems,
    log_problems,
    receipt_hash,
    signing_input,
)
from signoff.logic.checkpoints import Checkpointer, CheckpointReport, LogProofs, NoSuchCheckpoint
from signoff.verify import KeySet, main
from tests.fakes.gate import FixedSigner
from tests.fakes.memory_table import MemoryTable

TENANT = "acme"
DONE = Execution(status=ExecutionStatus.EXECUTED, result={"ok": True})


class Exported:
    """Checkpoints kept out of the table's reach (what the S3 export holds)."""

    def __init__(self, fail: bool = False):
        self.kept: dict[int, str] = {}
        self.fail = fail

    def put(self, tenant: str, size: int, checkpoint: str) -> None:
        if self.fail:
            raise ConnectionError("the bucket did not answer")
        self.kept[size] = checkpoint


def _receipt(signer: FixedSigner, n: int) -> str:
    message = signing_input(signer.key_id, {"tenant": TENANT, "call_id": f"call_{n}", "tool": "issue_refund"})
    return compact(message, signer.sign(message))


def _settle(table: MemoryTable, signer: FixedSigner, count: int) -> list[str]:
    written = []
    for _ in range(count):
        n = uuid.uuid4().hex[:8]
        action = Action(
            conversation_id=f"conv_{n}", turn_id="turn_1", call_id=f"call_{n}", seq=0, tool="t",
            arguments={}, digest="d", gated=False, tenant=TENANT,
        )  # fmt: skip
        assert table.put_action(action) and table.claim_execution(action)
        written.append(_receipt(signer, len(written)))
        assert table.finish_with_receipt(action, DONE, written[-1])
    return written


def _log(table: MemoryTable) -> tuple[list[tuple[int, str]], list[str]]:
    return table.list_log(TENANT, 0, 500)[0], table.list_checkpoints(TENANT, 0, 500)[0]


def _problems(table, signer, entries=None, checkpoints=None, trusted=()) -> list[str]:
    got_entries, got_checkpoints = _log(table)
    entries = got_entries if entries is None else entries
    checkpoints = got_checkpoints if checkpoints is None else checkpoints
    return [str(p) for p in log_problems(entries, checkpoints, KeySet(signer.jwks()).verify, trusted)]


@pytest.fixture
def logged():
    """A tenant with 10 receipts in its log, over checkpoints of 4, 8 and 10."""
    table, signer = MemoryTable(), FixedSigner()
    checkpointer = Checkpointer(table, signer, "https://signoff.example", batch=4)
    _settle(table, signer, 10)
    signed_before = signer.signed
    assert checkpointer.run().appended == 10
    assert signer.signed - signed_before == 3  # one signature per checkpoint, none per receipt
    return table, signer


def test_a_checkpoint_signs_the_size_and_root_of_the_receipts_chained_to_the_one_before(logged):
    table, signer = logged
    entries, checkpoints = _log(table)
    assert [i for i, _ in entries] == list(range(10)) and len(checkpoints) == 3
    prev = GENESIS
    for checkpoint in checkpoints:
        parsed = decode(checkpoint)
        assert parsed.header["typ"] == CHECKPOINT_TYPE and parsed.claims["prev"] == prev
        size = parsed.claims["size"]
        assert parsed.claims["root"] == root_of([leaf_hash(r.encode()) for _, r in entries[:size]]).hex()
        prev = receipt_hash(checkpoint)
    assert [decode(c).claims["size"] for c in checkpoints] == [4, 8, 10]
    assert table.queued_receipts(TENANT, 10) == [] and _problems(table, signer) == []


def test_a_receipt_deleted_at_the_start_in_the_middle_or_at_the_end_is_reported(logged):
    table, signer = logged
    entries, _ = _log(table)
    assert _problems(table, signer, entries[1:]) == ["receipt 0: missing (at the start of the log)"]
    assert _problems(table, signer, entries[:5] + entries[6:]) == ["receipt 5: missing (in the middle of the log)"]
    assert _problems(table, signer, entries[:-2]) == ["receipts 8..9: missing (at the end of the log)"]


def test_an_edited_replaced_or_reordered_receipt_is_reported(logged):
    table, signer = logged
    entries, _ = _log(table)
    forged = [*entries[:3], (3, _receipt(signer, 99)), *entries[4:]]  # validly signed, but not the one logged
    assert _problems(table, signer, forged) == [
        f"checkpoint {size}: root does not match the receipts (edited, replaced or reordered)" for size in (4, 8, 10)
    ]
    swapped = [(0, entries[1][1]), (1, entries[0][1]), *entries[2:]]
    assert len(_problems(table, signer, swapped)) == 3
    header, _claims, signature = entries[6][1].split(".")
    claims = b64url(json.dumps({**decode(entries[6][1]).claims, "tool": "delete_account"}).encode())
    edited = [*entries[:6], (6, f"{header}.{claims}.{signature}"), *entries[7:]]
    assert "receipt 6: signature does not verify (edited, or signed by another key)" in _problems(table, signer, edited)


def test_a_forged_or_removed_checkpoint_is_reported(logged):
    table, signer = logged
    entries, checkpoints = _log(table)
    intruder = FixedSigner()  # someone with table access, but not the KMS key
    claims = checkpoint_claims(TENANT, 9, root_of([leaf_hash(r.encode()) for _, r in entries[:9]]), "0" * 64, "x", 0)
    message = signing_input(intruder.key_id, claims, CHECKPOINT_TYPE)
    forged = compact(message, intruder.sign(message))
    assert _problems(table, signer, entries[:9], [*checkpoints[:2], forged]) == [
        "checkpoint 9: signature does not verify (forged or edited)",
    ]
    assert _problems(table, signer, checkpoints=[checkpoints[0], checkpoints[2]]) == [
        "checkpoint 10: does not follow the checkpoint before it (one removed or replaced)"
    ]
    assert _problems(table, signer, checkpoints=checkpoints[1:]) == [
        "checkpoint 8: does not follow the checkpoint before it (one removed or replaced)"
    ]


def test_a_log_cut_back_with_its_checkpoint_is_caught_by_an_exported_one():
    table, signer = MemoryTable(), FixedSigner()
    export = Exported()
    checkpointer = Checkpointer(table, signer, "iss", export=export, batch=4)
    _settle(table, signer, 6)
    checkpointer.run()
    assert sorted(export.kept) == [4, 6]
    entries, checkpoints = _log(table)
    # The last receipts and the checkpoint that covered them deleted: consistent in the table alone.
    assert _problems(table, signer, entries[:4], checkpoints[:1]) == []
    assert _problems(table, signer, entries[:4], checkpoints[:1], trusted=[export.kept[6]]) == [
        "exported checkpoint 6: the log's latest checkpoint is 4: the log was cut back"
    ]
    rewritten = [*entries[:5], (5, _receipt(signer, 77))]
    assert _problems(table, signer, rewritten, checkpoints[:1], trusted=[export.kept[4]]) == []
    assert "exported checkpoint 6: the log no longer matches this checkpoint (rewritten)" in _problems(
        table, signer, rewritten, checkpoints, trusted=[export.kept[6]]
    )


def test_an_export_that_fails_never_loses_the_checkpoint():
    table, signer = MemoryTable(), FixedSigner()
    _settle(table, signer, 2)
    report = Checkpointer(table, signer, "iss", export=Exported(fail=True)).run()
    assert (report.appended, report.checkpoints, report.export_failures) == (2, 1, 1)
    assert table.receipt_log(TENANT).size == 2


def test_an_inclusion_proof_verifies_offline_with_only_the_jwks_and_the_checkpoint(logged, tmp_path, capsys):
    table, signer = logged
    proofs = LogProofs(table)
    keys = KeySet(json.loads(json.dumps(signer.jwks())))  # as fetched: nothing but the public key
    for size in (4, 8, 10):
        for index in range(size):
            proof = json.loads(json.dumps(proofs.inclusion(TENANT, index, size)))  # as served
            assert inclusion_problems(proof, keys.verify) == []
    proof = proofs.inclusion(TENANT, 6)
    assert proof["tree_size"] == 10
    other = proofs.inclusion(TENANT, 7)
    swapped = {**proof, "receipt": other["receipt"]}
    assert [str(p) for p in inclusion_problems(swapped, keys.verify)] == [
        "receipt 6: is not in the tree the checkpoint of size 10 signs"
    ]
    (tmp_path / "jwks.json").write_text(json.dumps(signer.jwks()))
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    (tmp_path / "bad.json").write_text(json.dumps(swapped))
    assert main(["--jwks", str(tmp_path / "jwks.json"), "--proof", str(tmp_path / "proof.json")]) == 0
    assert main(["--jwks", str(tmp_path / "jwks.json"), "--proof", str(tmp_path / "bad.json")]) == 1
    assert "is not in the tree" in capsys.readouterr().out
    with pytest.raises(NoSuchCheckpoint):
        proofs.inclusion(TENANT, 9, 8)  # not under that checkpoint
    with pytest.raises(NoSuchCheckpoint):
        proofs.inclusion(TENANT, 0, 5)  # no checkpoint of size 5


def test_checkpoints_are_consistent_with_each_other(logged):
    from signoff.domain.merkle import verify_consistency

    table, _signer = logged
    proof = LogProofs(table).consistency(TENANT, 4, 10)
    first, second = decode(proof["first_checkpoint"]).claims, decode(proof["second_checkpoint"]).claims
    path = [bytes.fromhex(h) for h in proof["path"]]
    assert verify_consistency(4, 10, bytes.fromhex(first["root"]), bytes.fromhex(second["root"]), path)
    with pytest.raises(NoSuchCheckpoint):
        LogProofs(table).consistency(TENANT, 8, 4)


def test_the_verifier_reads_a_log_export_and_a_kept_checkpoint(logged, tmp_path, capsys):
    table, signer = logged
    entries, checkpoints = _log(table)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(signer.jwks()))
    export = {"entries": [{"index": i, "receipt": r} for i, r in entries], "checkpoints": checkpoints}
    (tmp_path / "log.json").write_text(json.dumps(export))
    (tmp_path / "kept.jwt").write_text(checkpoints[-1] + "\n")
    args = ["--jwks", str(jwks), "--receipts", str(tmp_path / "log.json"), "--checkpoint", str(tmp_path / "kept.jwt")]
    assert main(args) == 0
    assert (
        "10 receipts, latest checkpoint covers 10, checked against 1 exported checkpoint(s)" in capsys.readouterr().out
    )
    export["entries"] = export["entries"][:-1]
    export["checkpoints"] = checkpoints[:-1]
    (tmp_path / "log.json").write_text(json.dumps(export))
    assert main(args) == 1
    assert "exported checkpoint 10: the log's latest checkpoint is 8" in capsys.readouterr().out


def test_a_second_checkpointer_at_the_same_moment_appends_nothing_twice():
    table, signer = MemoryTable(), FixedSigner()
    _settle(table, signer, 5)
    first, second = Checkpointer(table, signer, "iss"), Checkpointer(table, signer, "iss")
    head = table.receipt_log(TENANT)
    pending = table.queued_receipts(TENANT, 10)
    assert first.checkpoint(TENANT).appended == 5
    assert not second._append(TENANT, head, pending, CheckpointReport())  # the same head and queue: refused whole
    entries, checkpoints = _log(table)
    assert len(entries) == 5 and len(checkpoints) == 1 and _problems(table, signer) == []


def test_chain_mode_receipts_keep_verifying_and_become_the_logs_first_leaves():
    """A tenant upgraded with receipts from before the log: they chain as before, the first
    checkpoint takes them in first (index = seq - 1), and from then on removing one is caught both
    ways."""
    from signoff.domain.receipts import GENESIS as ZERO
    from tests.fakes.memory_table import _Row

    table, signer = MemoryTable(), FixedSigner()
    chain, prev = [], ZERO
    for seq in (1, 2, 3):
        message = signing_input(signer.key_id, {"tenant": TENANT, "call_id": f"old_{seq}", "seq": seq, "prev": prev})
        chain.append(compact(message, signer.sign(message)))
        prev = receipt_hash(chain[-1])
        table._rows[(f"RECEIPTS#{TENANT}", f"SEQ#{seq:012d}")] = _Row({"jws": chain[-1]})
    table._rows[(f"RECEIPTS#{TENANT}", "HEAD")] = _Row({"seq": 3, "hash": prev})
    assert _problems(table, signer, checkpoints=[]) == []  # before the log: checked as a chain
    new = _settle(table, signer, 2)
    assert Checkpointer(table, signer, "iss").run().appended == 5
    entries, _ = _log(table)
    logged = [r for _, r in entries]
    assert logged[:3] == chain and sorted(logged[3:]) == sorted(new) and _problems(table, signer) == []
    assert _problems(table, signer, [entries[0], *entries[2:]]) == [
        "seq 3: follows seq 1 (removed: 2..2; or out of order)",
        "seq 3: prev is not the hash of seq 1",
        "receipt 1: missing (in the middle of the log)",
    ]


def test_a_consistency_proof_checks_offline_and_a_rewritten_log_fails_it(logged, tmp_path, capsys):
    table, signer = logged
    proof = json.loads(json.dumps(LogProofs(table).consistency(TENANT, 4, 10)))
    (tmp_path / "jwks.json").write_text(json.dumps(signer.jwks()))
    (tmp_path / "good.json").write_text(json.dumps(proof))
    assert main(["--jwks", str(tmp_path / "jwks.json"), "--consistency", str(tmp_path / "good.json")]) == 0
    # A second log, signed by the same key, that rewrote receipt 2: its checkpoint does not extend the first.
    other = MemoryTable()
    _settle(other, signer, 10)
    Checkpointer(other, signer, "iss", batch=4).run()
    forked = {**proof, "second_checkpoint": other.checkpoint_at(TENANT, 10)}
    (tmp_path / "forked.json").write_text(json.dumps(forked))
    assert main(["--jwks", str(tmp_path / "jwks.json"), "--consistency", str(tmp_path / "forked.json")]) == 1
    assert "checkpoint 10: does not extend checkpoint 4 (its log was rewritten)" in capsys.readouterr().out
