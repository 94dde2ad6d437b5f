"""The receipts' Merkle tree against RFC 6962's definitions, computed independently here."""

from __future__ import annotations

import hashlib

import pytest

from signoff.domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_ranges,
    hashes_for,
    inclusion_ranges,
    leaf_hash,
    nodes_for,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, straight from the text."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


DATA = [f"receipt-{i}".encode() for i in range(40)]
LEAVES = [leaf_hash(d) for d in DATA]


def _nodes(n: int) -> dict:
    return Frontier(0).append(LEAVES[:n])[1]


# RFC 6962's published test vector: the tree of the eight leaves in its reference implementation.
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]


def test_the_root_is_rfc_6962s_for_the_reference_vector() -> None:
    root = root_of([leaf_hash(d) for d in RFC_LEAVES])
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


@pytest.mark.parametrize("n", range(0, 41))
def test_the_frontier_root_is_the_tree_hash_at_every_size(n: int) -> None:
    assert root_of(LEAVES[:n]) == mth(DATA[:n])
    assert n or root_of([]) == EMPTY_ROOT


def test_appending_in_batches_gives_the_same_tree_and_nodes() -> None:
    whole, all_nodes = Frontier(0).append(LEAVES)
    frontier, nodes = Frontier(0), {}
    for start, end in [(0, 3), (3, 4), (4, 17), (17, 40)]:
        frontier, made = frontier.append(LEAVES[start:end])
        nodes |= made
    assert frontier == whole and nodes == all_nodes


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 31, 32, 40])
def test_every_inclusion_proof_verifies_and_no_other_leaf_does(size: int) -> None:
    nodes = _nodes(size)
    root = mth(DATA[:size])
    for index in range(size):
        ranges = inclusion_ranges(index, size)
        assert nodes_for(ranges) <= nodes.keys()  # the store holds everything a proof reads
        path = hashes_for(ranges, nodes.__getitem__)
        assert verify_inclusion(LEAVES[index], index, size, path, root)
        assert not verify_inclusion(leaf_hash(b"forged"), index, size, path, root)
        if path:
            assert not verify_inclusion(LEAVES[index], index, size, [leaf_hash(b"x"), *path[1:]], root)


@pytest.mark.parametrize("second", [1, 2, 3, 7, 8, 9, 16, 25, 40])
def test_every_consistency_proof_verifies_and_a_changed_prefix_does_not(second: int) -> None:
    nodes = _nodes(second)
    for first in range(1, second + 1):
        path = hashes_for(consistency_ranges(first, second), nodes.__getitem__)
        assert verify_consistency(first, second, mth(DATA[:first]), mth(DATA[:second]), path)
        forged = mth([b"forged", *DATA[1:first]])
        assert not verify_consistency(first, second, forged, mth(DATA[:second]), path)
