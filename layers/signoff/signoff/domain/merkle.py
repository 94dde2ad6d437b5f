"""A Merkle tree over a tenant's receipts, as Certificate Transparency builds one (RFC 9162 §2.1).

Leaves are hashed ``SHA-256(0x00 || leaf)`` and nodes ``SHA-256(0x01 || left || right)``, so a leaf
can never pass for a node. The tree over ``n`` leaves splits at the largest power of two below
``n``; every range such a split produces is either a *perfect* subtree (a power of two of leaves,
aligned) or splits again, so everything here reduces to perfect subtrees, addressed by
``(level, index)``: the ``2**level`` leaves from ``index * 2**level``. The store keeps those; a
proof for any tree size needs O(log n) of them.

The *frontier* of a tree of ``n`` leaves is the list of its maximal perfect subtrees, largest
first (one per set bit of ``n``): all an appender needs to add leaves and compute the new root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Node = tuple[int, int]  # (level, index)
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _perfect(start: int, end: int) -> Node | None:
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        return size.bit_length() - 1, start // size
    return None


def range_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees whose hashes make up the hash of leaves ``[start, end)``, left to right."""
    found = _perfect(start, end)
    if found is not None:
        return [found]
    k = _split(end - start)
    return range_nodes(start, start + k) + range_nodes(start + k, end)


def range_hash(start: int, end: int, node: Callable[[Node], bytes]) -> bytes:
    found = _perfect(start, end)
    if found is not None:
        return node(found)
    k = _split(end - start)
    return node_hash(range_hash(start, start + k, node), range_hash(start + k, end, node))


def _inclusion_ranges(index: int, start: int, end: int) -> list[tuple[int, int]]:
    """RFC 6962 PATH(m, D[start:end]) as the ranges whose hashes form it, leaf side first."""
    if end - start <= 1:
        return []
    k = _split(end - start)
    if index < start + k:
        return [*_inclusion_ranges(index, start, start + k), (start + k, end)]
    return [*_inclusion_ranges(index, start + k, end), (start, start + k)]


def _consistency_ranges(m: int, start: int, end: int, whole: bool) -> list[tuple[int, int]]:
    """RFC 6962 SUBPROOF(m, D[start:end], whole) as ranges."""
    if start + m == end:
        return [] if whole else [(start, end)]
    k = _split(end - start)
    if m <= k:
        return [*_consistency_ranges(m, start, start + k, whole), (start + k, end)]
    return [*_consistency_ranges(m - k, start + k, end, False), (start, start + k)]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    return _inclusion_ranges(index, 0, size)


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    return [] if first == second else _consistency_ranges(first, 0, second, True)


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    """Every stored node a proof made of ``ranges`` reads (to fetch them in one batch)."""
    return {node for start, end in ranges for node in range_nodes(start, end)}


def hashes_for(ranges: Iterable[tuple[int, int]], node: Callable[[Node], bytes]) -> list[bytes]:
    return [range_hash(start, end, node) for start, end in ranges]


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` is number ``index`` of the tree
    of ``size`` leaves whose root is ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of ``first`` leaves a prefix of the tree of ``second``?"""
    if not 0 < first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


@dataclass(frozen=True)
class Frontier:
    """A tree's maximal perfect subtrees, largest first: enough to append and to compute the root."""

    size: int
    hashes: tuple[bytes, ...] = ()

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def append(self, leaves: Iterable[bytes]) -> tuple[Frontier, dict[Node, bytes]]:
        """The frontier after appending these leaf hashes, and every perfect subtree they complete
        (leaves included, as level 0): what the store must keep for later proofs."""
        size = self.size
        stack = [(level, h) for level, h in zip(_levels(size), self.hashes, strict=True)]
        made: dict[Node, bytes] = {}
        for leaf in leaves:
            made[(0, size)] = leaf
            stack.append((0, leaf))
            size += 1
            while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
                (level, right), (_, left) = stack.pop(), stack.pop()
                merged = node_hash(left, right)
                made[(level + 1, (size >> (level + 1)) - 1)] = merged
                stack.append((level + 1, merged))
        return Frontier(size, tuple(h for _, h in stack)), made


def _levels(size: int) -> list[int]:
    """The levels of a frontier's subtrees, largest first (the set bits of ``size``)."""
    return [bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]


def root_of(leaves: list[bytes]) -> bytes:
    """The root over these leaf hashes (a verifier's recomputation from a full listing)."""
    return Frontier(0).append(leaves)[0].root()
